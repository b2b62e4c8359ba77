"""The machine learning headline of a freshly built lake, in two lines: the demand forecast's backtest MASE
against the seasonal-naive baseline, and the recommendations' recall@10 against the popularity baseline.

Each line comes from a real run of the real model (recorded in ``ops.ml_runs``, promoted only when it beats its
baseline), as ``retreasure ml forecast`` and ``retreasure ml recommend`` run it. A lake too young for a task
says so in its line instead of failing: the forecast's backtest needs ``ForecastParams.weeks_needed()`` whole
weeks of sales (35 with the defaults: the demo simulates nine months for it).
"""

from __future__ import annotations

from retreasure.lake.store import Lake
from retreasure.ml import forecast as fc
from retreasure.ml import reco_run


def forecast_line(lake: Lake, params: fc.ForecastParams | None = None) -> str:
    """Refresh the weekly features and, when there are enough whole weeks, backtest, fit and (if better) promote."""
    params = params or fc.ForecastParams()
    try:
        features = fc.write_features(lake)
    except ValueError as exc:
        return f"forecast: skipped, {exc}"
    weeks = len(set(features.column("week").to_pylist()))
    needed = params.weeks_needed()
    if weeks < needed:
        return (
            f"forecast: skipped, needs >= {needed} whole weeks of sales for a {params.horizon}-week backtest "
            f"from {params.windows} cutoffs (this lake has {weeks})"
        )
    result = fc.run_forecast(lake, params)
    return f"forecast ({params.model}, {weeks} weeks, backtest over {params.windows} cutoffs): {result.summary()}"


def recommendations_line(lake: Lake) -> str:
    """Evaluate on the last four weeks, train on all of it, score everyone and (if better) publish."""
    try:
        result = reco_run.run(lake)
    except ValueError as exc:
        return f"recommendations: skipped, {exc}"
    verdict = "published" if result.promoted else "NOT published, the served recommendations are kept"
    return f"recommendations ({reco_run.MODEL}): {result.judged()}; {verdict}"


def headline(lake: Lake) -> list[str]:
    return [forecast_line(lake), recommendations_line(lake)]
