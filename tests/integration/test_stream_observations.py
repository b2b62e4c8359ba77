"""The stream in the Dagster UI: `retreasure stream` against the real broker records, on the instance the UI reads,
an observation of each bronze table it lands in (messages, lag, latency, table version) that matches
ops.stream_batches, and an evaluation of the table's stream_lag check; the checks also run in Dagster."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest

from retreasure.lake import Lake, TableRef
from retreasure.pipeline.definitions import build_definitions
from retreasure.pipeline.resources import RetreasureResource
from retreasure.pipeline.stream_history import FRESHNESS_CHECK, LAG_CHECK, STREAM_CHECKS_JOB
from retreasure.streaming.broker import Broker
from tests.integration.test_stream_consumer import CLICKSTREAM, TRANSACTIONS, finished, stream, stream_env, web_events

pytestmark = pytest.mark.kafka
BATCHES = TableRef("ops", "stream_batches")


def _observations(instance: dg.DagsterInstance, table: TableRef) -> list[dict[str, object]]:
    records = instance.fetch_observations(dg.AssetKey([table.layer, table.name]), limit=1000).records
    return [
        {k: getattr(v, "value", v) for k, v in r.asset_observation.metadata.items()}
        for r in sorted(records, key=lambda r: r.storage_id)
    ]


def test_the_stream_s_lag_latency_and_batch_sizes_are_in_the_dagster_ui(tmp_path: Path, kafka_broker: Broker) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"
    web_events(kafka_broker, name, clicks=400, payments=80)
    dagster = tmp_path / "dagster"
    env = stream_env(tmp_path, kafka_broker, name, group=f"{name}-o") | {
        "RETREASURE_STREAMING__BATCH_MESSAGES": "50",
        "DAGSTER_HOME": str(dagster),
    }
    _, log = finished(stream(tmp_path, env, "--until-idle", "3", "--max-seconds", "180"))
    assert "stream figures reported" in log
    lake = Lake(tmp_path / "lake")
    instance = dg.DagsterInstance.from_config(str(dagster))
    try:
        for table in (CLICKSTREAM, TRANSACTIONS):
            rows = lake.query(
                f"SELECT * FROM {BATCHES} WHERE table_name = $t ORDER BY batch_id", [BATCHES], {"t": str(table)}
            ).to_pylist()
            assert len(rows) > 1, f"{table}: one batch only, nothing to sum"
            seen = _observations(instance, table)
            assert seen, f"no observation of {table}"
            assert sum(int(o["batches"]) for o in seen) == len(rows)
            assert sum(int(o["messages"]) for o in seen) == sum(r["messages"] for r in rows) > 0
            assert sum(int(o["new rows"]) for o in seen) == sum(r["new_rows"] for r in rows) == lake.count(table)
            assert sum(int(o["duplicates"]) for o in seen) == sum(r["duplicates"] for r in rows) > 0
            newest = seen[-1]
            assert newest["lag"] == rows[-1]["lag"] == 0, "the stream stopped idle: nothing left behind"
            assert max(int(o["max lag"]) for o in seen) == max(r["lag"] for r in rows)
            assert max(float(o["latency max ms"]) for o in seen) == pytest.approx(
                max(r["latency_max_ms"] for r in rows), abs=0.1
            )
            assert newest["table version"] == max(r["table_version"] for r in rows) == lake.delta(table).version()
            assert newest["last batch"] == rows[-1]["batch_id"]
            partitions = {part.split(":")[0] for o in seen for part in str(o["offsets"]).split()}
            assert partitions == {"0", "1", "2"}
            check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey([table.layer, table.name]), LAG_CHECK)]
            )
            evaluation = next(iter(check.values())).event.dagster_event.event_specific_data
            assert evaluation.passed and evaluation.metadata["lag"].value == 0
    finally:
        instance.dispose()

    # The same checks as Dagster runs them, over ops.stream_batches: the lag is fine, the stream just landed.
    defs = build_definitions(resource=RetreasureResource(lake_uri=str(tmp_path / "lake")))
    checks = (LAG_CHECK, FRESHNESS_CHECK)
    result = defs.resolve_job_def(STREAM_CHECKS_JOB).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    evaluations = {(tuple(e.asset_key.path), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {
        (("bronze", table), check): True for table in ("web_clickstream", "web_transactions") for check in checks
    }
