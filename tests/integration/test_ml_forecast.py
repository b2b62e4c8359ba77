"""Demand forecasts on a simulated year: better than seasonal-naive over the backtest, the same for the same data,
refused when worse than the baseline, written under their contracts, and served to the roles that may read them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from retreasure.lake import Lake, TableRef
from retreasure.ml import forecast as fc
from retreasure.ml.runs import ML_RUNS, runs
from retreasure.serving import auth
from retreasure.settings import Settings
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.integration.test_api import assert_problem, serving
from tests.ml_fixtures import assert_documented

DQ = TableRef("ops", "dq_results")
KEPT_APART = ("run_id", "created_at")


def table(lake: Lake, ref: TableRef, order: str) -> list[dict]:
    return lake.query(f"SELECT * EXCLUDE ({', '.join(KEPT_APART)}) FROM {ref} ORDER BY {order}", [ref]).to_pylist()


def test_forecasts_beat_seasonal_naive_over_the_backtest(trained: tuple[Lake, fc.ForecastRun]) -> None:
    lake, result = trained
    m = result.metrics
    for target in ("", "_units", "_revenue"):
        model, baseline = (
            {k: m[f"{who}{target}_{k}"] for k in ("mase", "wape", "bias")} for who in ("model", "baseline")
        )
        print(
            f"MASE{target or ' (all)'}: model {model['mase']:.3f}, seasonal-naive {baseline['mase']:.3f}; "
            f"WAPE {model['wape']:.3f} vs {baseline['wape']:.3f}; bias {model['bias']:+.3f} vs {baseline['bias']:+.3f}"
        )
        assert m[f"model{target}_mase"] < m[f"baseline{target}_mase"]
        assert m[f"model{target}_wape"] < m[f"baseline{target}_wape"]
    assert result.promoted, result.reason
    # What was written is what the run computed, under its contracts, every check passed.
    forecast = lake.query(f"SELECT * FROM {fc.FORECAST}", [fc.FORECAST])
    assert forecast.num_rows == result.forecast.num_rows > 0
    assert set(forecast.column("run_id").to_pylist()) == {result.run.run_id}
    weeks = lake.query(
        f"SELECT scope, category, channel, store_id, count(*) AS n, min(weeks_ahead) AS first, "
        f"max(weeks_ahead) AS last FROM {fc.FORECAST} GROUP BY ALL",
        [fc.FORECAST],
    ).to_pylist()
    assert {(w["n"], w["first"], w["last"]) for w in weeks} == {(13, 1, 13)}
    assert {w["scope"] for w in weeks} == {"channel", "store"}
    failed = lake.query(f"SELECT table_name, check_name FROM {DQ} WHERE NOT passed", [DQ]).to_pylist()
    assert failed == []
    checked = {r["table_name"] for r in lake.query(f"SELECT DISTINCT table_name FROM {DQ}", [DQ]).to_pylist()}
    assert checked >= {str(fc.FORECAST), str(fc.BACKTEST), str(fc.SOURCING), str(fc.FEATURES)}
    # The sourcing plan is the channel forecasts summed per category over the quarter.
    plan = {r["category"]: r for r in lake.query(f"SELECT * FROM {fc.SOURCING}", [fc.SOURCING]).to_pylist()}
    channel_rows = [r for r in forecast.to_pylist() if r["scope"] == "channel"]
    for category, row in plan.items():
        expected = sum(r["units"] for r in channel_rows if r["category"] == category)
        assert row["expected_units"] == pytest.approx(expected, abs=0.1)
        assert row["units_to_buy"] >= row["expected_units"]
    (recorded,) = runs(lake, fc.TASK)
    assert recorded["status"] == "promoted" and recorded["run_id"] == result.run.run_id
    artefact = Path(str(recorded["artefact"]))
    assert {p.name for p in artefact.iterdir()} == {"params.json", "metrics.json", "model.pkl"}


def test_the_tables_written_are_the_ones_documented(trained: tuple[Lake, fc.ForecastRun]) -> None:
    lake, _ = trained
    assert_documented(lake, [fc.FEATURES, fc.BACKTEST, fc.FORECAST, fc.SOURCING, ML_RUNS])


def test_training_is_deterministic(year_lake: Lake, trained: tuple[Lake, fc.ForecastRun], tmp_path: Path) -> None:
    first, _ = trained
    again = Lake(shutil.copytree(year_lake.uri, tmp_path / "lake"))
    fc.write_features(again)
    result = fc.run_forecast(again)
    assert result.promoted
    order = "scope, category, channel, store_id, week"
    assert table(again, fc.FORECAST, order) == table(first, fc.FORECAST, order)
    order = "model, cutoff, target, scope, category, channel, store_id"
    assert table(again, fc.BACKTEST, order) == table(first, fc.BACKTEST, order)


def test_a_model_worse_than_the_baseline_is_flagged_and_not_served(
    trained: tuple[Lake, fc.ForecastRun], tmp_path: Path
) -> None:
    lake = Lake(shutil.copytree(trained[0].uri, tmp_path / "lake"))
    served = table(lake, fc.FORECAST, "scope, category, channel, store_id, week")
    plan = table(lake, fc.SOURCING, "category")
    # Every forecast tripled: far worse than repeating last week.
    bad = fc.run_forecast(lake, fc.ForecastParams(planned_uplift=3.0))
    print(f"forced bad model: MASE {bad.metrics['model_mase']:.3f} vs baseline {bad.metrics['baseline_mase']:.3f}")
    assert not bad.promoted and bad.metrics["model_mase"] > bad.metrics["baseline_mase"]
    assert table(lake, fc.FORECAST, "scope, category, channel, store_id, week") == served
    assert table(lake, fc.SOURCING, "category") == plan
    assert {r["run_id"] for r in lake.query(f"SELECT run_id FROM {fc.FORECAST}", [fc.FORECAST]).to_pylist()} == {
        trained[1].run.run_id
    }
    latest, previous = runs(lake, fc.TASK)
    assert (latest["run_id"], latest["status"]) == (bad.run.run_id, "rejected")
    assert "does not beat" in str(latest["reason"]) and previous["status"] == "promoted"
    # The rejected run's backtest is kept: it is the evidence of the refusal.
    backtested = lake.query(f"SELECT DISTINCT run_id FROM {fc.BACKTEST}", [fc.BACKTEST]).column("run_id").to_pylist()
    assert set(backtested) == {trained[1].run.run_id, bad.run.run_id}
    assert lake.count(ML_RUNS) == 2


@pytest.fixture(scope="module")
def forecast_api(
    trained: tuple[Lake, fc.ForecastRun], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    lake = Lake(shutil.copytree(trained[0].uri, tmp_path_factory.mktemp("forecast-api") / "lake"))
    settings = Settings(_env_file=None, lake_uri=lake.uri, pii_hmac_key=HMAC_KEY, pii_vault_key=VAULT_KEY)  # type: ignore[call-arg]
    keys = {role: auth.create_key(lake, role, f"test {role}") for role in auth.ROLES}
    with serving(settings) as url:
        yield url, keys


def test_the_forecast_api_serves_leadership_and_operations_with_problems_for_bad_input(
    forecast_api: tuple[str, dict[str, str]], trained: tuple[Lake, fc.ForecastRun]
) -> None:
    url, keys = forecast_api

    def get(role: str | None, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {keys[role]}"} if role else {}
        return httpx.get(f"{url}/v1/forecasts/demand", params=params, headers=headers, timeout=60)

    good = {"category": "Lighting", "channel": "shopify"}
    for role in auth.ROLES:
        response = get(role, **good)
        if role in ("leadership", "operations", "admin"):
            assert response.status_code == 200, response.text
        else:
            assert_problem(response, 403, "/v1/forecasts/demand")
    assert_problem(get(None, **good), 401, "/v1/forecasts/demand")
    body = get("leadership", **good).json()
    expected = [
        r
        for r in trained[1].forecast.to_pylist()
        if r["scope"] == "channel" and r["category"] == "Lighting" and r["channel"] == "shopify"
    ]
    assert [w["units"] for w in body["forecast"]] == [r["units"] for r in expected]
    assert body["run"]["run_id"] == trained[1].run.run_id and len(body["history"]) == 26
    assert all(
        w["units_lo_95"] <= w["units_lo_80"] <= w["units"] <= w["units_hi_80"] <= w["units_hi_95"]
        for w in body["forecast"]
    )
    store = get("operations", category="Lighting", channel="pos", store="BER").json()
    assert store["store_id"] == "BER" and len(store["forecast"]) == 13
    for params in (
        {"category": "Spaceships", "channel": "shopify"},
        {"category": "Lighting", "channel": "carrier-pigeon"},
        {"channel": "shopify"},
        {"category": "Lighting", "channel": "shopify", "store": "BER"},
        {"category": "x" * 500, "channel": "shopify"},
    ):
        problem = assert_problem(get("leadership", **params), 422, "/v1/forecasts/demand")
        assert "x" * 100 not in problem["detail"]
    assert_problem(get("operations", category="Lighting", channel="pos", store="XYZ"), 404, "/v1/forecasts/demand")


def test_dagster_trains_weekly_and_a_losing_run_is_flagged_not_materialized(
    trained: tuple[Lake, fc.ForecastRun], tmp_path: Path
) -> None:
    import dagster as dg

    from retreasure.pipeline.definitions import build_definitions
    from retreasure.pipeline.ml import ML_JOB, OUTPUT_KEYS, ml_assets
    from retreasure.pipeline.resources import RetreasureResource

    definitions = build_definitions()
    assert definitions.resolve_job_def(ML_JOB) is not None
    assert definitions.get_schedule_def(f"{ML_JOB}_schedule").cron_schedule == "0 5 * * 1"

    lake = Lake(shutil.copytree(trained[0].uri, tmp_path / "lake"))
    resources = {"retreasure": RetreasureResource(lake_uri=lake.uri)}
    instance = dg.DagsterInstance.ephemeral()

    def materialized(uplift: float) -> set[dg.AssetKey]:
        config = {"ops": {"demand_forecast": {"config": {"planned_uplift": uplift}}}}
        result = dg.materialize(
            ml_assets(dg.RetryPolicy(max_retries=0)), resources=resources, run_config=config, instance=instance
        )
        assert result.success
        return {event.asset_key for event in result.get_asset_materialization_events() if event.asset_key}

    good = materialized(1.0)
    assert set(OUTPUT_KEYS.values()) <= good
    bad = materialized(3.0)
    assert OUTPUT_KEYS[fc.BACKTEST] in bad and OUTPUT_KEYS[fc.FORECAST] not in bad
    statuses = [r["status"] for r in runs(lake, fc.TASK)]
    assert statuses[:2] == ["rejected", "promoted"]
    incidents = lake.query("SELECT asset, status, error FROM ops.incidents", [TableRef("ops", "incidents")]).to_pylist()
    assert [(i["asset"], i["status"]) for i in incidents] == [(str(fc.FORECAST), "open")]
    assert "not promoted" in incidents[0]["error"]


def test_the_command_refuses_a_losing_model_with_exit_3_and_a_bad_option_with_2(
    trained: tuple[Lake, fc.ForecastRun], tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    lake = Lake(shutil.copytree(trained[0].uri, tmp_path / "lake"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")} | {
        "RETREASURE_LAKE_URI": lake.uri,
        "RETREASURE_PII_HMAC_KEY": HMAC_KEY,
        "RETREASURE_PII_VAULT_KEY": VAULT_KEY,
        "RETREASURE_LOG_FILE": "-",
    }
    command = [str(Path(sys.executable).with_name("retreasure")), "ml", "forecast"]
    done = subprocess.run([*command, "--planned-uplift", "3"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert "REJECTED" in done.stdout and "seasonal-naive" in done.stdout
    assert [r["status"] for r in runs(lake, fc.TASK)][:2] == ["rejected", "promoted"]
    wrong = subprocess.run([*command, "--model", "Prophet"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert wrong.returncode == 2 and "unknown model" in wrong.stderr


def test_the_shortest_history_a_backtest_accepts_fits_every_model(year_lake: Lake) -> None:
    """A lake with just ``weeks_needed`` whole weeks (the demo's case) is backtested, not refused by the
    library for too few points before the first cutoff."""
    params = fc.ForecastParams()
    frame = fc.long_frame(fc.weekly_series(year_lake))
    last = frame.sort_values("ds").groupby("unique_id").tail(params.weeks_needed())
    _, metrics = fc.backtest(last.reset_index(drop=True), params, "shortest", params.model)
    assert metrics, "both the model and the baseline were scored"
