"""Demand forecasts: how many units, and how much net revenue, each category will sell per week on each channel
and in each store over the next quarter, with prediction intervals, judged against a seasonal-naive baseline.

Most goods are one of a kind, so an item has no history to forecast: demand is forecast at category level, the
level at which the business sources. The series are weekly (Monday to Sunday, whole weeks only) from
``gold.mart_sales_daily``: units and net sales (EUR) of each category on each channel (the stores together as
``pos``), and of each category in each store. Weeks without a sale are zeros, from the first whole week of data.

A run (``run_forecast``):

1. builds the weekly series (``weekly_series``; also written as ``gold.ml_demand_features``);
2. backtests the model and the baseline from rolling origins (``windows`` cutoffs ``step`` weeks apart, each
   forecasting ``horizon`` weeks from only what came before it) and scores them per series and cutoff: MASE
   (mean absolute error over the in-sample seasonal-naive error), WAPE (absolute errors over actuals) and bias
   (signed errors over actuals); appended to ``gold.ml_forecast_backtest``;
3. fits the model on all the history and forecasts ``horizon`` weeks, with 80% and 95% intervals;
4. promotes the forecast (replaces ``gold.ml_demand_forecast`` and the sourcing plan ``gold.ml_sourcing_plan``)
   only when the model's backtest MASE beats the baseline's; otherwise the run is recorded as rejected and the
   serving tables keep the last promoted forecast. Every run is a row of ``ops.ml_runs`` (``ml/runs.py``).

The model is statsforecast's AutoETS (exponential smoothing, its error, trend and season forms chosen by AICc
per series). A yearly season needs two years of weekly history to estimate: with less, the model and the
baseline are non-seasonal (the baseline is then the last week repeated, the seasonal-naive of a one-week season).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from retreasure.lake.store import Lake, TableRef
from retreasure.ml.runs import Run, record_run
from retreasure.ml.tables import write_checked

if TYPE_CHECKING:
    import pandas as pd

TASK = "demand_forecast"
SALES = TableRef("gold", "mart_sales_daily")
FEATURES = TableRef("gold", "ml_demand_features")
FORECAST = TableRef("gold", "ml_demand_forecast")
BACKTEST = TableRef("gold", "ml_forecast_backtest")
SOURCING = TableRef("gold", "ml_sourcing_plan")
LEVELS = (80, 95)
TARGETS = ("units", "revenue")
BASELINE = "SeasonalNaive"
YEAR_WEEKS = 52
# ETS refuses a series of at most its parameters + 4 points (statsforecast: "tiny datasets"), and a damped trend
# has five (level, trend, their smoothing, damping): ten weeks fit every model the automatic choice tries.
MIN_FIT_WEEKS = 10
ModelName = Literal["AutoETS", "AutoARIMA", "HistoricAverage"]
MODELS: tuple[ModelName, ...] = ("AutoETS", "AutoARIMA", "HistoricAverage")


@dataclass(frozen=True)
class ForecastParams:
    """What a run is asked to do. ``planned_uplift`` scales every forecast (1.0: none): a what-if for planning,
    and the way to force a model worse than the baseline, which the gate then refuses."""

    horizon: int = 13
    windows: int = 4
    step: int = 4
    model: ModelName = "AutoETS"
    season_length: int = YEAR_WEEKS
    planned_uplift: float = 1.0

    def weeks_needed(self) -> int:
        """Whole weeks of history a backtest needs: every cutoff's horizon, the cutoffs' spread, and enough weeks
        before the first cutoff to fit on."""
        return self.horizon + self.step * (self.windows - 1) + MIN_FIT_WEEKS


@dataclass
class ForecastRun:
    """What a run produced: its record, its verdict and the tables it computed (promoted or not)."""

    run: Run
    promoted: bool
    reason: str
    forecast: pa.Table
    backtest: pa.Table
    sourcing: pa.Table
    metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """The run in one line: the model against the baseline, and whether it went live."""
        m = self.metrics
        return (
            f"MASE {m['model_mase']:.3f} vs seasonal-naive {m['baseline_mase']:.3f}, "
            f"WAPE {m['model_wape']:.1%} vs {m['baseline_wape']:.1%}, bias {m['model_bias']:+.1%}; "
            f"{'promoted' if self.promoted else 'REJECTED'}: {self.reason}"
        )


# -- features --------------------------------------------------------------------------------------------------
SERIES_SQL = f"""
WITH bounds AS (
    -- Whole weeks only: a week counts once its Sunday is in the data.
    SELECT date_trunc('week', min(day) + 6)::DATE AS first_week,
           (date_trunc('week', max(day) + 1) - 7)::DATE AS last_week
    FROM {SALES}
),
daily AS (
    SELECT date_trunc('week', day)::DATE AS week, category, channel, store_id,
           sum(units)::DOUBLE AS units, sum(net_sales)::DOUBLE AS revenue
    FROM {SALES}
    WHERE category <> 'unknown'
    GROUP BY ALL
),
by_scope AS (
    SELECT 'channel' AS scope, category, channel, NULL::VARCHAR AS store_id, week, sum(units) AS units,
           sum(revenue) AS revenue
    FROM daily GROUP BY ALL
    UNION ALL
    SELECT 'store', category, channel, store_id, week, units, revenue FROM daily WHERE store_id IS NOT NULL
),
series AS (SELECT DISTINCT scope, category, channel, store_id FROM by_scope),
weeks AS (SELECT unnest(generate_series(first_week, last_week, INTERVAL 7 DAY))::DATE AS week FROM bounds)
SELECT s.scope, s.category, s.channel, s.store_id, w.week,
       coalesce(b.units, 0) AS units, round(coalesce(b.revenue, 0), 2) AS revenue
FROM series s CROSS JOIN weeks w
LEFT JOIN by_scope b ON b.scope = s.scope AND b.category = s.category AND b.channel = s.channel
    AND b.store_id IS NOT DISTINCT FROM s.store_id AND b.week = w.week
ORDER BY ALL
"""


def weekly_series(lake: Lake) -> pa.Table:
    """Units and net revenue per whole week of each category x channel, and category x store, zeros filled."""
    if not lake.exists(SALES):
        raise ValueError(f"{SALES} does not exist: build the models first")
    return lake.query(SERIES_SQL, [SALES])


def series_id(target: str, scope: str, category: str, channel: str, store_id: str | None) -> str:
    return "|".join((target, scope, category, channel, store_id or ""))


def _split_id(uid: str) -> tuple[str, str, str, str, str | None]:
    target, scope, category, channel, store = uid.split("|")
    return target, scope, category, channel, store or None


def long_frame(features: pa.Table) -> pd.DataFrame:
    """The series in statsforecast's shape (unique_id, ds, y), both targets stacked."""
    import pandas as pd

    frame = features.to_pandas()
    parts = []
    for target in TARGETS:
        ids = [
            series_id(target, *key)
            for key in zip(frame.scope, frame.category, frame.channel, frame.store_id, strict=True)
        ]
        parts.append(pd.DataFrame({"unique_id": ids, "ds": pd.to_datetime(frame.week), "y": frame[target]}))
    return pd.concat(parts, ignore_index=True).sort_values(["unique_id", "ds"], ignore_index=True)


# -- models ----------------------------------------------------------------------------------------------------
def _seasons(params: ForecastParams, history_weeks: int) -> tuple[int, int]:
    """(the model's season, the baseline's season) the history can carry: a season is estimated from two of
    them; the seasonal-naive needs one whole season before the first cutoff."""
    first_cutoff = history_weeks - params.horizon - params.step * (params.windows - 1)
    model = params.season_length if history_weeks >= 2 * params.season_length else 1
    baseline = params.season_length if first_cutoff >= params.season_length else 1
    return model, baseline


def _models(params: ForecastParams, model_season: int, baseline_season: int) -> list[object]:
    from statsforecast.models import AutoARIMA, AutoETS, HistoricAverage, SeasonalNaive

    chosen: object
    if params.model == "AutoETS":
        chosen = AutoETS(season_length=model_season, model="ZZZ" if model_season > 1 else "ZZN", alias="model")
    elif params.model == "AutoARIMA":
        chosen = AutoARIMA(season_length=model_season, alias="model")
    elif params.model == "HistoricAverage":
        chosen = HistoricAverage(alias="model")
    else:
        raise ValueError(f"unknown model {params.model!r}: one of {', '.join(MODELS)}")
    return [chosen, SeasonalNaive(season_length=baseline_season, alias=BASELINE)]


def _engine(models: list[object]) -> object:
    from statsforecast import StatsForecast

    # One process: the series are few and small, and workers would cost more to start than they save.
    return StatsForecast(models=models, freq="W-MON", n_jobs=1)


def _scaled(frame: pd.DataFrame, uplift: float) -> pd.DataFrame:
    """Apply the planned uplift to the model's columns, and clip at zero: demand is never negative."""
    for column in frame.columns:
        if column == "model" or column.startswith("model-"):
            frame[column] = (frame[column] * uplift).clip(lower=0)
        elif column == BASELINE or column.startswith(f"{BASELINE}-"):
            frame[column] = frame[column].clip(lower=0)
    return frame


# -- backtest --------------------------------------------------------------------------------------------------
def _scale(history: pd.DataFrame, season: int) -> float:
    """The in-sample seasonal-naive mean absolute error: what MASE divides by."""
    y = history.to_numpy()
    if len(y) <= season:
        return math.nan
    return float(abs(y[season:] - y[:-season]).mean())


def _score(actual: pd.Series, predicted: pd.Series, scale: float) -> dict[str, float]:
    errors = predicted.to_numpy() - actual.to_numpy()
    total = float(actual.abs().sum())
    mae = float(abs(errors).mean())
    return {
        "mae": mae,
        "mase": mae / scale if scale > 0 else math.nan,
        "wape": float(abs(errors).sum()) / total if total > 0 else math.nan,
        "bias": float(errors.sum()) / total if total > 0 else math.nan,
        "actual": float(actual.sum()),
        "forecast": float(predicted.sum()),
        "abs_error": float(abs(errors).sum()),
        "error": float(errors.sum()),
    }


def backtest(
    frame: pd.DataFrame, params: ForecastParams, run_id: str, model_name: str
) -> tuple[pa.Table, dict[str, float]]:
    """Rolling-origin evaluation of the model and the baseline: one row per model, series and cutoff, and the
    overall figures (MASE averaged over series and cutoffs; WAPE and bias over all errors) per model."""
    weeks = frame.groupby("unique_id").size().min()
    model_season, baseline_season = _seasons(params, int(weeks))
    engine = _engine(_models(params, model_season, baseline_season))
    cv = engine.cross_validation(  # type: ignore[attr-defined]
        df=frame, h=params.horizon, n_windows=params.windows, step_size=params.step
    )
    cv = _scaled(cv, params.planned_uplift)
    history = frame.set_index("unique_id")
    rows: list[dict[str, object]] = []
    now = datetime.now(UTC)
    for (uid, cutoff), window in cv.groupby(["unique_id", "cutoff"], sort=True):
        past = history.loc[[uid]]
        scale = _scale(past[past.ds <= cutoff].y, baseline_season)
        target, scope, category, channel, store_id = _split_id(str(uid))
        for model, column in ((model_name, "model"), (BASELINE, BASELINE)):
            rows.append(
                {
                    "run_id": run_id,
                    "model": model,
                    "is_baseline": model == BASELINE,
                    "cutoff": cutoff.date(),
                    "target": target,
                    "scope": scope,
                    "category": category,
                    "channel": channel,
                    "store_id": store_id,
                    "horizon_weeks": params.horizon,
                    **_score(window.y, window[column], scale),
                    "created_at": now,
                }
            )
    table = pa.Table.from_pylist(rows, schema=BACKTEST_SCHEMA)
    return table, overall(rows)


def overall(rows: Iterable[dict[str, object]]) -> dict[str, float]:
    """Per model (``model`` or ``baseline``) and per target: mean MASE over the series and cutoffs that have a
    scale (a series with no movement before its cutoff has none), and WAPE and bias over every error."""
    sums: dict[str, list[float]] = {}
    for row in rows:
        who = "baseline" if row["is_baseline"] else "model"
        for key in (who, f"{who}_{row['target']}"):
            acc = sums.setdefault(key, [0.0, 0.0, 0.0, 0.0, 0.0])
            mase = float(row["mase"])  # type: ignore[arg-type]
            if not math.isnan(mase):
                acc[0] += mase
                acc[1] += 1
            acc[2] += float(row["abs_error"])  # type: ignore[arg-type]
            acc[3] += float(row["error"])  # type: ignore[arg-type]
            acc[4] += float(row["actual"])  # type: ignore[arg-type]
    metrics: dict[str, float] = {}
    for key, (mase_sum, mase_n, abs_error, error, actual) in sorted(sums.items()):
        metrics[f"{key}_mase"] = mase_sum / mase_n if mase_n else math.nan
        metrics[f"{key}_wape"] = abs_error / actual if actual else math.nan
        metrics[f"{key}_bias"] = error / actual if actual else math.nan
    return metrics


def verdict(metrics: dict[str, float]) -> tuple[bool, str]:
    """Promote only a model whose backtest MASE beats the baseline's (a NaN never does)."""
    model, baseline = metrics.get("model_mase", math.nan), metrics.get("baseline_mase", math.nan)
    if model < baseline:
        return True, f"MASE {model:.3f} beats the baseline's {baseline:.3f}"
    return False, f"MASE {model:.3f} does not beat the baseline's {baseline:.3f}: the serving tables are kept"


# -- scoring ---------------------------------------------------------------------------------------------------
def score(frame: pd.DataFrame, params: ForecastParams, run_id: str, model_name: str) -> tuple[pa.Table, object]:
    """Fit on all the history and forecast ``horizon`` weeks with intervals; (the forecast, the fitted engine)."""
    weeks = int(frame.groupby("unique_id").size().min())
    model_season, _ = _seasons(params, weeks)
    engine = _engine(_models(params, model_season, 1)[:1])
    engine.fit(df=frame)  # type: ignore[attr-defined]
    predicted = _scaled(engine.predict(h=params.horizon, level=list(LEVELS)), params.planned_uplift)  # type: ignore[attr-defined]
    trained_through = frame.ds.max().date()
    now = datetime.now(UTC)
    wide: dict[tuple[str, str, str, str | None, date], dict[str, object]] = {}
    for record in predicted.to_dict("records"):
        target, scope, category, channel, store_id = _split_id(str(record["unique_id"]))
        week = record["ds"].date()
        row = wide.setdefault(
            (scope, category, channel, store_id, week),
            {
                "run_id": run_id,
                "model": model_name,
                "week": week,
                "scope": scope,
                "category": category,
                "channel": channel,
                "store_id": store_id,
                "weeks_ahead": (week - trained_through).days // 7,
                "trained_through": trained_through,
                "created_at": now,
            },
        )
        row[target] = round(float(record["model"]), 2)
        for level in LEVELS:
            row[f"{target}_lo_{level}"] = round(float(record[f"model-lo-{level}"]), 2)
            row[f"{target}_hi_{level}"] = round(float(record[f"model-hi-{level}"]), 2)
    return pa.Table.from_pylist(sorted(wide.values(), key=_forecast_order), schema=FORECAST_SCHEMA), engine


def _forecast_order(row: dict[str, object]) -> tuple[str, ...]:
    return tuple(str(row[k] or "") for k in ("scope", "category", "channel", "store_id", "week"))


def sourcing_plan(forecast: pa.Table) -> pa.Table:
    """Units to buy per category over the forecast's quarter: what all channels together are expected to sell
    (to hold the stock where it is), with a prudent upper figure, the sum of the weekly 80% upper bounds."""
    from retreasure.lake.store import connection

    con = connection()
    try:
        con.register("forecast", forecast)
        return con.execute(
            """
            SELECT run_id, category, min(week) AS quarter_start, max(week) + 6 AS quarter_end,
                   round(sum(units), 1) AS expected_units, ceil(sum(units))::BIGINT AS units_to_buy,
                   round(sum(units_hi_80), 1) AS units_upper_80, round(sum(revenue), 2) AS expected_revenue,
                   max(created_at) AS created_at
            FROM forecast WHERE scope = 'channel'
            GROUP BY run_id, category ORDER BY category
            """
        ).fetch_arrow_table()
    finally:
        con.close()


# -- the run ---------------------------------------------------------------------------------------------------
def write_features(lake: Lake, run_id: str = "features") -> pa.Table:
    features = weekly_series(lake)
    write_checked(lake, FEATURES, features, run_id, "overwrite")
    return features


def run_forecast(lake: Lake, params: ForecastParams | None = None, run_id: str = "") -> ForecastRun:
    """Backtest, fit, forecast and (if it beats the baseline) promote; the run recorded whatever happens."""
    params = params or ForecastParams()
    features = weekly_series(lake) if not lake.exists(FEATURES) else lake.query(f"SELECT * FROM {FEATURES}", [FEATURES])
    run = Run(TASK, params.model, {**asdict(params), "levels": list(LEVELS)}, run_id)
    try:
        frame = long_frame(features)
        history_weeks = int(frame.groupby("unique_id").size().min())
        if history_weeks < params.weeks_needed():
            raise ValueError(f"{history_weeks} whole weeks of sales are too few to backtest {params.horizon} ahead")
        checked, metrics = backtest(frame, params, run.run_id, params.model)
        model_season, baseline_season = _seasons(params, history_weeks)
        run.metrics = {
            **metrics,
            "series": float(frame.unique_id.nunique()),
            "history_weeks": float(history_weeks),
            "model_season": float(model_season),
            "baseline_season": float(baseline_season),
        }
        write_checked(lake, BACKTEST, checked, run.run_id, "append")
        promoted, reason = verdict(metrics)
        forecast, engine = score(frame, params, run.run_id, params.model)
        plan = sourcing_plan(forecast)
        if promoted:
            write_checked(lake, FORECAST, forecast, run.run_id, "overwrite")
            write_checked(lake, SOURCING, plan, run.run_id, "overwrite")
    except Exception as exc:
        record_run(lake, run, "failed", f"{type(exc).__name__}: {exc}")
        raise
    record_run(lake, run, "promoted" if promoted else "rejected", reason, engine)
    return ForecastRun(run, promoted, reason, forecast, checked, plan, run.metrics)


BACKTEST_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("model", pa.string()),
        ("is_baseline", pa.bool_()),
        ("cutoff", pa.date32()),
        ("target", pa.string()),
        ("scope", pa.string()),
        ("category", pa.string()),
        ("channel", pa.string()),
        ("store_id", pa.string()),
        ("horizon_weeks", pa.int32()),
        ("mae", pa.float64()),
        ("mase", pa.float64()),
        ("wape", pa.float64()),
        ("bias", pa.float64()),
        ("actual", pa.float64()),
        ("forecast", pa.float64()),
        ("abs_error", pa.float64()),
        ("error", pa.float64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

FORECAST_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("model", pa.string()),
        ("week", pa.date32()),
        ("scope", pa.string()),
        ("category", pa.string()),
        ("channel", pa.string()),
        ("store_id", pa.string()),
        ("weeks_ahead", pa.int32()),
        ("trained_through", pa.date32()),
        *[
            (f"{target}{suffix}", pa.float64())
            for target in TARGETS
            for suffix in ("", *(f"_{side}_{level}" for level in LEVELS for side in ("lo", "hi")))
        ],
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
