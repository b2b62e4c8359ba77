"""The ingest log: one row per source entity per run, the place to ask "what landed, and what failed?"."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from retreasure.lake.store import Lake, TableRef

INGEST_LOG = TableRef("ops", "ingest_log")

SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("source", pa.string()),
        ("entity", pa.string()),
        ("bronze_table", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),  # success | partial | failed
        ("records", pa.int64()),  # received from the source
        ("new_records", pa.int64()),  # appended to bronze (the rest were already there)
        ("malformed", pa.int64()),  # kept raw in bronze and copied to quarantine
        ("bytes", pa.int64()),
        ("requests", pa.int64()),
        ("retries", pa.int64()),
        ("files", pa.int64()),
        ("duration_s", pa.float64()),
        ("error", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class IngestRun:
    run_id: str
    source: str
    entity: str
    bronze_table: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    status: str = "running"
    records: int = 0
    new_records: int = 0
    malformed: int = 0
    bytes: int = 0
    requests: int = 0
    retries: int = 0
    files: int = 0
    duration_s: float = 0.0
    error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None


def record(lake: Lake, runs: list[IngestRun]) -> None:
    if runs:
        lake.append(INGEST_LOG, pa.Table.from_pylist([asdict(r) for r in runs], schema=SCHEMA))


def watermark(lake: Lake, source: str, entity: str) -> datetime | None:
    """End of the last window that landed completely: where the next incremental run starts."""
    if not lake.exists(INGEST_LOG):
        return None
    result = lake.query(
        f"SELECT max(window_end) AS w FROM {INGEST_LOG} "
        "WHERE source = $source AND entity = $entity AND status = 'success'",
        [INGEST_LOG],
        {"source": source, "entity": entity},
    )
    return result.column("w")[0].as_py()
