"""The Dagster layer on a real Delta lake: the asset graph made from the declarations, blocking and warning
checks, the landing sensor, partition windows, and the `build` / `backfill` commands."""

import json
import logging
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from retreasure.bronze.ingest import run_ingest
from retreasure.bronze.landing import bronze_table
from retreasure.connectors.base import load_sources
from retreasure.engine.changes import BUILDS
from retreasure.engine.models import MODELS_DIR, load_models
from retreasure.exitcodes import ExitCode
from retreasure.lake import Lake
from retreasure.lake.store import TableRef
from retreasure.ml import forecast as fc
from retreasure.pipeline.cli import app
from retreasure.pipeline.definitions import build_definitions
from retreasure.pipeline.exports import EXPORT_JOB
from retreasure.pipeline.incidents import incidents
from retreasure.pipeline.maintenance import COMPACT_JOB
from retreasure.pipeline.ml import ML_JOB
from retreasure.pipeline.ml_assets import RECO_JOB, RECO_TABLES
from retreasure.pipeline.partitions import is_partitioned, partition_window
from retreasure.pipeline.resources import RetreasureResource
from retreasure.pipeline.schedules import FILES_JOB, INCREMENTAL_JOB, INGEST_JOB, MODELS_JOB
from retreasure.pipeline.sensors import SENSOR
from retreasure.pipeline.stream_history import FRESHNESS_CHECK, LAG_CHECK, STREAM_CHECKS_JOB
from retreasure.quality.checks import DQ_RESULTS
from retreasure.settings import get_settings

ECB_FIXTURE = Path(__file__).parents[1] / "fixtures" / "ecb" / "eurofxref-hist-90d_2017-03-03.xml"
HMAC_KEY = "pipeline-test-hmac-key-0123456789"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    """Settings from the environment, as Dagster's processes read them: a lake and a landing folder on tmp_path."""
    monkeypatch.chdir(tmp_path)  # no .env of the working tree
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("RETREASURE_DAGSTER_HOME", str(tmp_path / "dagster"))
    for name in [n for n in os.environ if n.startswith("RETREASURE_ALERTS__")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RETREASURE_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("RETREASURE_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("RETREASURE_PII_HMAC_KEY", HMAC_KEY)
    monkeypatch.setenv("RETREASURE_INGEST__START", "2016-12-01T00:00:00Z")  # also the first partition
    get_settings.cache_clear()
    yield Lake(tmp_path / "lake")
    get_settings.cache_clear()


@pytest.fixture
def own_logging() -> Iterator[None]:
    """The CLI sets up the process's log handlers on the stream it prints to: put them back afterwards."""
    logger = logging.getLogger("retreasure")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


def _model(root: Path, ref: str, sql: str, **contract: object) -> None:
    layer, name = ref.split(".")
    (root / layer).mkdir(parents=True, exist_ok=True)
    (root / layer / f"{name}.sql").write_text(sql)
    body = {"description": f"{ref} for a test.", "grain": "one row", "keys": ["id"], "write_mode": "full"} | contract
    (root / layer / f"{name}.yml").write_text(json.dumps(body))  # JSON is YAML


def _with_fx_rates(root: Path) -> Path:
    (root / "silver").mkdir(parents=True, exist_ok=True)
    for suffix in (".sql", ".yml"):
        shutil.copy(MODELS_DIR / "silver" / f"fx_rates{suffix}", root / "silver" / f"fx_rates{suffix}")
    return root


def _land_ecb(lake: Lake) -> None:
    folder = Path(get_settings().landing_dir) / "ecb"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ECB_FIXTURE, folder / ECB_FIXTURE.name)


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


# -- the asset graph -------------------------------------------------------------------------------------------
def test_definitions_have_every_bronze_table_and_model_with_their_lineage(env: Lake, tmp_path: Path) -> None:
    from retreasure.pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    sources, models = load_sources(), load_models()
    bronze = {f"bronze/{bronze_table(n, e).name}" for n, cls in sources.items() for e in cls.entities}
    assert len(bronze) >= 15 and bronze <= keys
    assert {f"{r.layer}/{r.name}" for r in models} <= keys
    # Beside the models, the Python-built tables of the demand forecast and the recommendations (docs/ml.md).
    ml = {f"{r.layer}/{r.name}" for r in (fc.FEATURES, fc.FORECAST, fc.BACKTEST, fc.SOURCING, *RECO_TABLES)}
    assert keys == bronze | {f"{r.layer}/{r.name}" for r in models} | ml
    for ref, model in models.items():
        node = graph.get(dg.AssetKey([ref.layer, ref.name]))
        assert {p.to_user_string() for p in node.parent_keys} == {f"{i.layer}/{i.name}" for i in model.inputs}
        assert node.group_name == ref.layer and node.description == model.contract.description
        assert (node.partitions_def is not None) == is_partitioned(model.contract)
        assert len(graph.get_check_keys_for_assets({node.key})) == len(model.contract.table_checks)
    for streamed in ("web_clickstream", "web_transactions"):  # the stream's lag and freshness (stream_history.py)
        checks = graph.get_check_keys_for_assets({dg.AssetKey(["bronze", streamed])})
        assert {c.name for c in checks} == {LAG_CHECK, FRESHNESS_CHECK}
    fx_rates = graph.get(dg.AssetKey(["silver", "fx_rates"]))
    assert dg.AssetKey(["bronze", "ecb_fx_rates"]) in fx_rates.parent_keys
    assert graph.get(dg.AssetKey(["bronze", "ecb_fx_rates"])).group_name == "bronze"
    jobs = {INGEST_JOB, FILES_JOB, MODELS_JOB, INCREMENTAL_JOB, EXPORT_JOB, STREAM_CHECKS_JOB, COMPACT_JOB, ML_JOB}
    jobs |= {RECO_JOB}
    assert {j.name for j in defs.jobs} == jobs  # type: ignore[union-attr]
    assert {s.name for s in defs.schedules} == {  # type: ignore[union-attr]
        f"{INGEST_JOB}_schedule",
        f"{MODELS_JOB}_schedule",
        f"{INCREMENTAL_JOB}_schedule",
        f"{EXPORT_JOB}_schedule",
        f"{STREAM_CHECKS_JOB}_schedule",
        f"{COMPACT_JOB}_schedule",
        f"{ML_JOB}_schedule",
        f"{RECO_JOB}_schedule",
    }
    assert {s.name for s in defs.sensors} == {SENSOR}  # type: ignore[union-attr]

    # Building them opens nothing: no lake, no landing folder come into being.
    rebuilt = build_definitions()
    rebuilt.resolve_all_job_defs()
    assert not (tmp_path / "lake").exists() and not (tmp_path / "landing").exists()


# -- checks ----------------------------------------------------------------------------------------------------
def test_a_failing_blocking_check_stops_its_downstream_and_a_warning_does_not(env: Lake, tmp_path: Path) -> None:
    root = tmp_path / "models"
    duplicated = "SELECT 1 AS id UNION ALL SELECT 1 AS id UNION ALL SELECT 2 AS id"
    _model(root, "silver.dup_error", duplicated, checks=[{"check": "unique", "columns": ["id"]}])
    _model(root, "silver.dup_warn", duplicated, checks=[{"check": "unique", "columns": ["id"], "severity": "warn"}])
    _model(root, "gold.after_error", "SELECT count(*) AS id FROM silver.dup_error")
    _model(root, "gold.after_warn", "SELECT count(*) AS id FROM silver.dup_warn")
    defs = build_definitions(models_root=root, sources={}, retry_delay_s=0.01)

    result = defs.resolve_job_def(MODELS_JOB).execute_in_process(raise_on_error=False)

    assert not result.success
    assert _materialized(result) == {"silver/dup_error", "silver/dup_warn", "gold/after_warn"}
    assert env.exists(TableRef("gold", "after_warn")) and not env.exists(TableRef("gold", "after_error"))
    evaluations = {
        (e.asset_key.to_user_string(), e.check_name): (e.passed, e.severity)
        for e in result.get_asset_check_evaluations()
    }
    assert evaluations == {
        ("silver/dup_error", "unique_id"): (False, dg.AssetCheckSeverity.ERROR),
        ("silver/dup_warn", "unique_id"): (False, dg.AssetCheckSeverity.WARN),
    }
    # ops.dq_results: each check of this run exactly once (the runner records, the asset only reports).
    recorded = env.query(
        f"SELECT table_name, check_name, count(*) AS n, sum(failed) AS failed FROM {DQ_RESULTS} "
        "WHERE run_id = $run GROUP BY ALL ORDER BY ALL",
        [DQ_RESULTS],
        {"run": result.run_id},
    ).to_pylist()
    assert recorded == [
        {"table_name": "silver.dup_error", "check_name": "unique(id)", "n": 1, "failed": 1},
        {"table_name": "silver.dup_warn", "check_name": "unique(id)", "n": 1, "failed": 1},
    ]
    # The blocked asset is an incident; the warning is not.
    assert [(i["asset"], i["status"]) for i in incidents(env)] == [("silver.dup_error", "open")]
    assert "unique(id)" in incidents(env)[0]["error"]


def test_a_failing_row_rule_quarantines_and_blocks_nothing_in_dagster_and_in_the_cli(
    env: Lake, tmp_path: Path, own_logging: None
) -> None:
    root = tmp_path / "models"
    rows = "SELECT 1 AS id, 'a' AS name UNION ALL SELECT 2, NULL UNION ALL SELECT 3, 'c'"
    _model(root, "silver.rows", rows, checks=[{"check": "not_null", "columns": ["name"]}])
    _model(root, "gold.after_rows", "SELECT count(*) AS id FROM silver.rows")
    dup = "SELECT 1 AS id UNION ALL SELECT 1"
    defs = build_definitions(models_root=root, sources={}, retry_delay_s=0.01)

    result = defs.resolve_job_def(MODELS_JOB).execute_in_process(raise_on_error=False)

    assert result.success and _materialized(result) == {"silver/rows", "gold/after_rows"}
    assert env.query("SELECT id FROM gold.after_rows", [TableRef("gold", "after_rows")]).to_pylist() == [{"id": 2}]
    quarantined = env.query("SELECT rule, reason FROM quarantine.silver_rows", [TableRef("quarantine", "silver_rows")])
    assert quarantined.to_pylist() == [{"rule": "not_null(name)", "reason": "a value is missing in name"}]
    assert incidents(env) == []  # a quarantined row is normal operation, not an incident

    # The engine (the CLI's builds, full and incremental) applies the same rule: exit 0, downstream built.
    runner = CliRunner()
    full = runner.invoke(app, ["build", "--models-root", str(root)])
    assert full.exit_code == ExitCode.OK and "built   gold.after_rows" in full.output, full.output
    hourly = runner.invoke(app, ["build", "--incremental", "--models-root", str(root)])
    assert hourly.exit_code == ExitCode.OK, hourly.output
    log = env.query(f"SELECT run_id, mode, status, models, rows FROM {BUILDS} ORDER BY started_at", [BUILDS])
    # Dagster's run built each asset through the engine too: one partial build per step, named by the run.
    steps, first = log.to_pylist()[:2], log.to_pylist()[2]
    assert [(s["run_id"], s["mode"], s["models"]) for s in steps] == [(result.run_id, "partial", 1)] * 2
    assert (first["mode"], first["status"], first["models"], first["rows"]) == ("full", "success", 2, 3)
    run_ids = env.query(f"SELECT DISTINCT run_id FROM {DQ_RESULTS} WHERE table_name = 'silver.rows'", [DQ_RESULTS])
    assert first["run_id"] in {r["run_id"] for r in run_ids.to_pylist()}

    # A failed blocking table check stops what reads the table: the build is partial (exit 3), not failed.
    _model(root, "silver.rows", dup, checks=[{"check": "unique", "columns": ["id"]}])
    blocked = runner.invoke(app, ["build", "--models-root", str(root)])
    assert blocked.exit_code == ExitCode.PARTIAL and "gold.after_rows" not in blocked.output, blocked.output
    status = env.query(f"SELECT status FROM {BUILDS} ORDER BY started_at DESC LIMIT 1", [BUILDS]).to_pylist()
    assert status == [{"status": "blocked"}]


def test_a_model_that_fails_fails_the_build_and_the_build_is_still_recorded(env: Lake, tmp_path: Path) -> None:
    root = tmp_path / "models"
    _model(root, "silver.fine", "SELECT 1 AS id")
    _model(root, "silver.broken", "SELECT CAST('not a number' AS INTEGER) AS id FROM silver.fine")

    failed = CliRunner().invoke(app, ["build", "--models-root", str(root)])

    assert failed.exit_code == ExitCode.FAILED and "Build failed" in failed.output, failed.output
    log = env.query(f"SELECT mode, status, models FROM {BUILDS}", [BUILDS]).to_pylist()
    assert log == [{"mode": "full", "status": "failed", "models": 1}]


# -- landing sensor --------------------------------------------------------------------------------------------
def test_the_landing_sensor_asks_once_per_new_file_and_the_run_lands_it(env: Lake, tmp_path: Path) -> None:
    defs = build_definitions(models_root=_with_fx_rates(tmp_path / "models"), retry_delay_s=0.01)
    sensor = defs.resolve_sensor_def(SENSOR)
    resources = {"retreasure": RetreasureResource()}

    def evaluate(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        return sensor(dg.build_sensor_context(cursor=cursor, resources=resources))

    assert isinstance(evaluate(None), dg.SkipReason)  # nothing landed yet (no folder at all)
    _land_ecb(env)
    first = evaluate(None)
    assert isinstance(first, dg.SensorResult) and len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.asset_selection == [dg.AssetKey(["bronze", "ecb_fx_rates"])]
    assert isinstance(evaluate(first.cursor), dg.SkipReason)  # the same file is not asked for again

    ingest = defs.resolve_job_def(FILES_JOB).execute_in_process(asset_selection=request.asset_selection)
    assert ingest.success and _materialized(ingest) == {"bronze/ecb_fx_rates"}
    # One record per rate the file publishes (its <Cube currency="..."> elements): 64 days of 31 currencies.
    assert env.count(TableRef("bronze", "ecb_fx_rates")) == ECB_FIXTURE.read_text().count("<Cube currency=") == 64 * 31
    models = defs.resolve_job_def(MODELS_JOB).execute_in_process()
    assert models.success and all(e.passed for e in models.get_asset_check_evaluations())
    assert env.count(TableRef("silver", "fx_rates")) > 0

    daily = Path(get_settings().landing_dir) / "ecb" / "eurofxref-daily_2017-03-06.xml"
    daily.write_text(ECB_FIXTURE.read_text())
    newer = json.loads(first.cursor or "[0]")[0] + 1_000_000_000
    os.utime(daily, ns=(newer, newer))
    second = evaluate(first.cursor)
    assert isinstance(second, dg.SensorResult) and second.run_requests[0].run_key != request.run_key
    assert isinstance(evaluate(second.cursor), dg.SkipReason)


# -- partitions ------------------------------------------------------------------------------------------------
def test_a_partition_key_becomes_its_day_widened_by_the_lookback(env: Lake, tmp_path: Path) -> None:
    assert partition_window("2025-03-05") == (date(2025, 3, 5), date(2025, 3, 5))
    # The lookback is the runner's to add, once: the partition's window is the days themselves.
    assert partition_window("2025-03-05", "2025-03-07") == (date(2025, 3, 5), date(2025, 3, 7))
    with pytest.raises(ValueError, match="ends before"):
        partition_window("2025-03-05", "2025-03-04")

    root = tmp_path / "models"
    echo = "SELECT @start_date AS window_start, @end_date AS window_end, @end_date AS id"
    _model(root, "silver.echo_daily", echo, write_mode="overwrite_partitions", partition_by="id", lookback_days=3)
    _model(root, "silver.echo_full", echo)
    defs = build_definitions(models_root=root, sources={}, partition_start="2025-01-01", retry_delay_s=0.01)
    job = defs.resolve_job_def(MODELS_JOB)

    def windows() -> dict[str, tuple[date, date]]:
        found = {}
        for name in ("echo_daily", "echo_full"):
            sql = f"SELECT * FROM silver.{name} ORDER BY window_end DESC LIMIT 1"
            row = env.query(sql, [TableRef("silver", name)]).to_pylist()[0]
            found[name] = (row["window_start"], row["window_end"])
        return found

    assert job.execute_in_process(partition_key="2025-03-05").success
    assert windows() == {
        "echo_daily": (date(2025, 3, 2), date(2025, 3, 5)),
        "echo_full": (date(1970, 1, 1), date(9999, 12, 31)),  # unpartitioned: in full, whatever the run's day
    }
    # A single-run backfill over a range reads the range, less the lookback before its first day.
    ranged = {"dagster/asset_partition_range_start": "2025-03-10", "dagster/asset_partition_range_end": "2025-03-12"}
    assert job.execute_in_process(tags=ranged, asset_selection=[dg.AssetKey(["silver", "echo_daily"])]).success
    assert windows()["echo_daily"] == (date(2025, 3, 7), date(2025, 3, 12))

    schedule = defs.resolve_schedule_def(f"{MODELS_JOB}_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2025, 3, 6, 2, 30, tzinfo=UTC))
    request = schedule(context)
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2025-03-05"


# -- build and backfill ----------------------------------------------------------------------------------------
def test_the_hourly_job_builds_what_bronze_gained_and_nothing_more(
    env: Lake, tmp_path: Path, own_logging: None
) -> None:
    root = _with_fx_rates(tmp_path / "models")
    defs = build_definitions(models_root=root, sources=load_sources(), retry_delay_s=0.01)
    _land_ecb(env)
    assert run_ingest(get_settings(), env, ["ecb"])[0].status == "success"
    hourly = defs.resolve_job_def(INCREMENTAL_JOB)
    first = hourly.execute_in_process()
    assert first.success  # no build before it: a full one
    assert _materialized(first) == {"silver/fx_rates"}  # the model's run, in its asset's history
    assert env.count(TableRef("silver", "fx_rates")) > 3 * 30
    assert hourly.execute_in_process().success  # nothing new: no model runs
    again = CliRunner().invoke(app, ["build", "--incremental", "--models-root", str(root)])
    assert again.exit_code == 0 and "0 model run(s)" in again.output, again.output
    log = env.query(f"SELECT mode, status, models, windows FROM {BUILDS} ORDER BY started_at", [BUILDS]).to_pylist()
    assert [(r["mode"], r["status"], r["models"]) for r in log] == [
        ("full", "success", 1),
        ("incremental", "success", 0),
        ("incremental", "success", 0),
    ]
    assert json.loads(log[0]["windows"]) == {"silver.fx_rates": [["1970-01-01", "9999-12-31"]]}
    schedule = defs.resolve_schedule_def(f"{INCREMENTAL_JOB}_schedule")
    assert schedule.cron_schedule == "35 * * * *" and schedule.job_name == INCREMENTAL_JOB


DAILY_ECB = (
    '<?xml version="1.0" encoding="UTF-8"?><gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
    'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube><Cube time="2017-03-06">'
    '<Cube currency="USD" rate="1.0588"/><Cube currency="GBP" rate="0.86560"/></Cube></Cube></gesmes:Envelope>'
)


def test_each_model_run_of_a_cli_build_is_in_its_dagster_asset_history(env: Lake, tmp_path: Path) -> None:
    root = _with_fx_rates(tmp_path / "models")
    days_sql = (
        "SELECT rate_date, count(*) AS rates FROM silver.fx_rates "
        "WHERE rate_date BETWEEN @start_date AND @end_date GROUP BY rate_date"
    )
    _model(
        root,
        "gold.fx_days",
        days_sql,
        keys=["rate_date"],
        write_mode="overwrite_partitions",
        partition_by="rate_date",
        # fx_rates is not partitioned: this rule is what lets an hourly build rebuild only the new rates' days.
        changed_inputs={
            "silver.fx_rates": {
                "columns": ["rate_date", "currency", "rate_per_eur"],
                "days": "SELECT rate_date FROM changed",
            }
        },
        checks=[{"check": "unique", "columns": ["rate_date"]}],
    )
    _land_ecb(env)
    assert run_ingest(get_settings(), env, ["ecb"])[0].status == "success"
    runner = CliRunner()
    assert runner.invoke(app, ["build", "--models-root", str(root)]).exit_code == ExitCode.OK

    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
    builds = env.query(f"SELECT run_id FROM {BUILDS} ORDER BY started_at", [BUILDS]).to_pylist()
    fx_rates, fx_days = dg.AssetKey(["silver", "fx_rates"]), dg.AssetKey(["gold", "fx_days"])

    def history(key: dg.AssetKey) -> list[tuple[str | None, dict[str, object]]]:
        records = instance.fetch_materializations(key, limit=1000).records
        return [(r.partition_key, {k: v.value for k, v in r.asset_materialization.metadata.items()}) for r in records]

    (full_rates,) = history(fx_rates)
    assert full_rates[0] is None and full_rates[1]["rows"] == env.count(TableRef("silver", "fx_rates"))
    assert full_rates[1]["build"] == builds[0]["run_id"] and full_rates[1]["window"] == "all of time"
    # A full build of a partitioned model is one event that counts its partitions (not one event per day).
    (full_days,) = history(fx_days)
    assert full_days[1]["partitions written"] == env.count(TableRef("gold", "fx_days")) > 31
    checks = [(fx_rates, "unique_rate_date_currency"), (fx_rates, "conservation"), (fx_days, "unique_rate_date")]
    for key, check in checks:
        evaluation = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(key, check))
        assert evaluation is not None and evaluation.event.asset_check_evaluation.passed, (key, check)

    # The next hour brings one new day: the incremental build's runs are there too, the partitioned one per day.
    (Path(get_settings().landing_dir) / "ecb" / "eurofxref-daily_2017-03-06.xml").write_text(DAILY_ECB)
    assert run_ingest(get_settings(), env, ["ecb"])[0].new_records == 2
    assert runner.invoke(app, ["build", "--incremental", "--models-root", str(root)]).exit_code == ExitCode.OK
    hourly_build = env.query(f"SELECT run_id FROM {BUILDS} ORDER BY started_at", [BUILDS]).to_pylist()[-1]["run_id"]
    assert [meta["build"] for _, meta in history(fx_rates)] == [hourly_build, builds[0]["run_id"]]
    new_days = {partition: meta["rows"] for partition, meta in history(fx_days) if meta["build"] == hourly_build}
    assert "2017-03-06" in new_days and len(new_days) <= 31
    written = env.query("SELECT rate_date, rates FROM gold.fx_days", [TableRef("gold", "fx_days")]).to_pylist()
    assert all(new_days[str(row["rate_date"])] == 1 for row in written if str(row["rate_date"]) in new_days)
    instance.dispose()


def _snapshot(lake: Lake, first: str, last: str) -> dict[str, bytes]:
    """Every row of the given days of each table, in one order, as Arrow IPC bytes."""
    found = {}
    for ref, column in (
        (TableRef("silver", "fx_rates"), "rate_date"),
        (TableRef("silver", "fx_daily"), "rate_date"),
        (TableRef("gold", "fx_summary"), "id"),
    ):
        for label, where in (("days", f"{column} BETWEEN '{first}' AND '{last}'"), ("all", "true")):
            table = lake.query(f"SELECT * FROM {ref} WHERE {where} ORDER BY ALL", [ref]).combine_chunks()
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            found[f"{ref}/{label}"] = sink.getvalue().to_pybytes()
    return found


def test_backfill_rebuilds_the_days_to_the_same_bytes(env: Lake, tmp_path: Path, own_logging: None) -> None:
    _land_ecb(env)
    assert run_ingest(get_settings(), env, ["ecb"])[0].status == "success"
    root = _with_fx_rates(tmp_path / "models")
    _model(
        root,
        "silver.fx_daily",
        "SELECT rate_date, currency, rate_per_eur FROM silver.fx_rates "
        "WHERE rate_date BETWEEN @start_date AND @end_date",
        keys=["rate_date", "currency"],
        write_mode="overwrite_partitions",
        partition_by="rate_date",
        lookback_days=2,
        checks=[{"check": "unique", "columns": ["rate_date", "currency"]}],
    )
    _model(
        root,
        "gold.fx_summary",
        "SELECT rate_date AS id, count(*) AS currencies, sum(rate_per_eur) AS rate_sum FROM silver.fx_daily "
        "WHERE rate_date BETWEEN @start_date AND @end_date GROUP BY rate_date",
        write_mode="overwrite_partitions",
        partition_by="id",
    )
    runner = CliRunner()
    built = runner.invoke(app, ["build", "--models-root", str(root)])
    assert built.exit_code == 0, built.output
    for name in ("silver.fx_rates", "silver.fx_daily", "gold.fx_summary"):
        assert f"built   {name}" in built.output
    refs = [TableRef("silver", "fx_rates"), TableRef("silver", "fx_daily"), TableRef("gold", "fx_summary")]
    versions = {ref: env.delta(ref).version() for ref in refs}
    before = _snapshot(env, "2017-02-01", "2017-02-03")
    assert env.count(TableRef("silver", "fx_daily")) > 3 * 30

    args = ["backfill", "--from", "2017-02-01", "--to", "2017-02-03", "--models-root", str(root)]
    done = runner.invoke(app, args)

    assert done.exit_code == 0, done.output
    assert done.output.count("built   silver.fx_daily [2017-02-0") == 3
    # fx_rates (unpartitioned) once, before the days that read it; each partitioned model once a day.
    assert {ref: env.delta(ref).version() - versions[ref] for ref in refs} == {refs[0]: 1, refs[1]: 3, refs[2]: 3}
    assert _snapshot(env, "2017-02-01", "2017-02-03") == before

    only_gold = runner.invoke(app, [*args, "--select", "gold.*"])
    assert only_gold.exit_code == 0, only_gold.output
    assert {ref: env.delta(ref).version() - versions[ref] for ref in refs} == {refs[0]: 1, refs[1]: 3, refs[2]: 6}
    assert _snapshot(env, "2017-02-01", "2017-02-03") == before

    outside = runner.invoke(app, ["backfill", "--from", "2016-01-01", "--to", "2016-01-02", "--models-root", str(root)])
    assert outside.exit_code == 2 and "outside the partitions" in outside.output
