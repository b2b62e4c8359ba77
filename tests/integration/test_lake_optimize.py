"""Compacting the stream's small files: safe while the stream appends (every row, hash and offset stays), a second
run does nothing, the next micro-build sees only the rows that really arrived, vacuum lists before it deletes; the
command and the nightly Dagster job do the same."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import dagster as dg

from retreasure.bronze.pii import PiiMasker
from retreasure.engine.changes import Arrivals, arrivals
from retreasure.lake import Lake, TableRef
from retreasure.lake.maintenance import optimize
from retreasure.pipeline.definitions import build_definitions
from retreasure.pipeline.maintenance import COMPACT_JOB
from retreasure.pipeline.resources import RetreasureResource
from retreasure.streaming import offsets
from retreasure.streaming.landing import Message, TopicLanding
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import cli_env

CLICKSTREAM = TableRef("bronze", "web_clickstream")
TOPIC = "web.clickstream"
PER_BATCH = 5


def _batch(landing: TopicLanding, number: int) -> None:
    """One micro-batch of new page views over two days, on partition 0 at the next offsets."""
    messages = [
        Message(
            TOPIC,
            0,
            number * PER_BATCH + n,
            json.dumps(
                {
                    "type": "page",
                    "messageId": f"m{number}-{n}",
                    "timestamp": f"2025-03-0{1 + n % 2}T{number % 24:02d}:{n:02d}:00Z",
                    "anonymousId": f"visitor-{n}",
                    "properties": {"session_id": f"s{number}", "path": "/"},
                }
            ).encode(),
            None,
        )
        for n in range(PER_BATCH)
    ]
    landing.land(messages, f"b{number:04d}")


def _ids(lake: Lake) -> list[str]:
    return sorted(lake.query(f"SELECT record_key FROM {CLICKSTREAM}", [CLICKSTREAM]).column(0).to_pylist())


def test_compaction_while_the_stream_appends_keeps_every_row_and_offset(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    landing = TopicLanding(lake, PiiMasker(HMAC_KEY, VAULT_KEY), TOPIC)
    for number in range(30):
        _batch(landing, number)
        if number == 19:
            earlier = lake.delta(CLICKSTREAM).version()
    watermark = lake.delta(CLICKSTREAM).version()
    # Appends only since the earlier watermark: told from their commits, the table's log not replayed at it.
    appended = arrivals(lake, CLICKSTREAM, earlier, watermark)
    per_day = {date(2025, 3, 1): 10 * 3, date(2025, 3, 2): 10 * 2}  # page views n = 0, 2, 4 fall on the 1st
    assert appended == Arrivals(per_day, date(2025, 3, 2))
    files = len(lake.delta(CLICKSTREAM).file_uris())
    assert files >= 60  # one small file per day per batch

    # The stream goes on appending while the table is compacted.
    appending = threading.Thread(target=lambda: [_batch(landing, n) for n in range(30, 45)])
    appending.start()
    done = optimize(Lake(lake.uri), CLICKSTREAM)
    appending.join()
    assert done.files_removed >= 60 and done.files_added <= 4 and done.partitions == 2
    assert _ids(lake) == sorted(f"m{b}-{n}" for b in range(45) for n in range(PER_BATCH))
    assert offsets.stored_offset(lake, CLICKSTREAM, TOPIC, 0) == 45 * PER_BATCH - 1
    hashes = lake.query(f"SELECT count(DISTINCT record_hash) AS h, count(*) AS n FROM {CLICKSTREAM}", [CLICKSTREAM])
    assert hashes.to_pylist() == [{"h": 45 * PER_BATCH, "n": 45 * PER_BATCH}]

    # What a micro-build sees since its watermark: the rows that arrived, not the ones compaction rewrote.
    gained = arrivals(lake, CLICKSTREAM, watermark, lake.delta(CLICKSTREAM).version())
    assert gained is not None and sum(gained.rows.values()) == 15 * PER_BATCH

    # Again, on a compacted table: nothing to do. Then the whole table at once, nothing appending.
    optimize(lake, CLICKSTREAM)
    again = optimize(lake, CLICKSTREAM)
    assert again.files_removed == again.files_added == 0 and again.version_after == again.version_before
    assert again.files_after <= 2

    # Vacuum lists first (a week of time travel kept by default: nothing is old enough), deletes when told.
    assert optimize(lake, CLICKSTREAM).vacuum == []
    dry = optimize(lake, CLICKSTREAM, retention_hours=0)
    assert len(dry.vacuum) >= 60 and all((Path(lake.table_uri(CLICKSTREAM)) / f).exists() for f in dry.vacuum)
    command = [sys.executable, "-m", "retreasure", "lake", "optimize", "--table", str(CLICKSTREAM)]
    out = subprocess.run(
        [*command, "--vacuum", "--retention-hours", "0"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(dry.vacuum):,} old files deleted" in out.stdout
    assert not any((Path(lake.table_uri(CLICKSTREAM)) / f).exists() for f in dry.vacuum)
    assert _ids(Lake(lake.uri)) == sorted(f"m{b}-{n}" for b in range(45) for n in range(PER_BATCH))

    unknown = subprocess.run(
        [sys.executable, "-m", "retreasure", "lake", "optimize", "--table", "bronze.nothing"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert unknown.returncode == 2 and "No such table: bronze.nothing" in unknown.stdout


def test_the_nightly_job_compacts_the_streamed_tables(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    landing = TopicLanding(lake, PiiMasker(HMAC_KEY, VAULT_KEY), TOPIC)
    for number in range(10):
        _batch(landing, number)
    defs = build_definitions(resource=RetreasureResource(lake_uri=lake.uri))
    result = defs.resolve_job_def(COMPACT_JOB).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert len(Lake(lake.uri).delta(CLICKSTREAM).file_uris()) == 2  # one per day
    assert result.output_for_node("compact_streamed_tables") >= 1
