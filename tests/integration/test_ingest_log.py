"""The ingest log on a real Delta table: rows written as runs start and completed as they end, by several
processes at once; dead processes' rows found and marked interrupted; a log from before those columns kept."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from retreasure.lake import Lake, ingest_log
from retreasure.lake.ingest_log import INGEST_LOG, IngestRun


def rows(lake: Lake) -> list[dict]:
    return lake.query(f"SELECT * FROM {INGEST_LOG} ORDER BY run_id, entity", [INGEST_LOG]).to_pylist()


def _log_runs(uri: str, run_id: str, entities: int) -> None:
    lake = Lake(uri)
    for n in range(entities):
        run = IngestRun(run_id, "src", f"entity_{n}", f"bronze.src_entity_{n}")
        ingest_log.start(lake, run)
        run.status, run.records, run.finished_at = "success", n, datetime.now(UTC)
        ingest_log.finish(lake, run)


def test_three_processes_logging_at_once_lose_and_leave_nothing(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    ingest_log.record(lake, [IngestRun("seed", "src", "seed", "bronze.src_seed", status="success")])
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_log_runs, args=(lake.uri, f"run{i}", 12)) for i in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    logged = [r for r in rows(lake) if r["run_id"] != "seed"]
    assert len(logged) == 36 and {r["status"] for r in logged} == {"success"}
    assert sorted((r["run_id"], r["records"]) for r in logged) == sorted(
        (f"run{i}", n) for i in range(3) for n in range(12)
    )


def test_only_rows_of_dead_processes_of_this_host_become_interrupted(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # started after the run below
    try:
        runs = {
            "dead": IngestRun("r1", "pos", "sales", "bronze.pos_sales", pid=dead_pid),
            "live": IngestRun("r2", "geo", "zones", "bronze.geo_zones", pid=os.getpid()),
            "elsewhere": IngestRun("r3", "ecb", "fx_rates", "bronze.ecb_fx_rates", pid=dead_pid, host="another-host"),
            "reused": IngestRun("r4", "web", "clicks", "bronze.web_clicks", pid=later.pid, started_at=an_hour_ago),
        }
        for run in runs.values():
            ingest_log.start(lake, run)
        closed = ingest_log.close_interrupted(lake)
    finally:
        later.kill()
        later.wait()
    assert sorted(r.run_id for r in closed) == ["r1", "r4"]
    status = {r["run_id"]: r["status"] for r in rows(lake)}
    assert status == {"r1": "interrupted", "r2": "running", "r3": "running", "r4": "interrupted"}
    assert ingest_log.close_interrupted(lake) == [], "marking is done once"
    assert ingest_log.watermark(lake, "pos", "sales") is None, "an interrupted run moves no watermark"


def test_a_log_written_before_the_new_columns_takes_them_and_keeps_its_rows(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    old_schema = pa.schema([f for f in ingest_log.SCHEMA if f.name not in ("warnings", "last_retry", "pid", "host")])
    end = datetime(2025, 3, 1, tzinfo=UTC)
    old = IngestRun("old", "ebay", "orders", "bronze.ebay_orders", window_end=end, status="success").row()
    lake.append(INGEST_LOG, pa.Table.from_pylist([{k: old[k] for k in old_schema.names}], schema=old_schema))
    run = IngestRun("new", "ebay", "orders", "bronze.ebay_orders", window_end=end + timedelta(days=1))
    ingest_log.start(lake, run)
    assert ingest_log.watermark(lake, "ebay", "orders") == end, "a running row moves no watermark"
    run.status, run.warnings = "success", ["a.csv: no records (empty or header-only)"]
    ingest_log.finish(lake, run)
    by_run = {r["run_id"]: r for r in rows(lake)}
    assert by_run["old"]["status"] == "success" and by_run["old"]["pid"] is None
    assert by_run["new"]["status"] == "success" and by_run["new"]["pid"] == os.getpid()
    assert by_run["new"]["warnings"] == "a.csv: no records (empty or header-only)"
    assert ingest_log.watermark(lake, "ebay", "orders") == end + timedelta(days=1)
