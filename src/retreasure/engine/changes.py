"""What landed in bronze since the last build, and the build log that remembers where each build stopped.

A build records, in ``ops.builds``, the Delta version of every bronze table it read. The next incremental
build compares each table's files at that version with its files now: the new files' partitions are the days
that changed. Only the Delta log is read, never the rows, so finding the changes costs in proportion to the
table's file count, not to its history of rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa
from deltalake import DeltaTable

from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger

BUILDS = TableRef("ops", "builds")
SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("mode", pa.string()),  # full | incremental | partial (some models or some days)
        ("status", pa.string()),  # success | blocked (a blocking check stopped part of it) | failed
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("models", pa.int64()),  # model runs made
        ("rows", pa.int64()),  # rows written, all runs together
        ("bronze_versions", pa.string()),  # JSON {table: Delta version read}: the watermark
        ("windows", pa.string()),  # JSON {model: [[start, end], ...]}, lookback included
    ]
)
# The days a table changed; None when they cannot be told (no usable watermark): treat as all of time.
Days = frozenset[date] | None

log = get_logger("engine")


@dataclass(frozen=True)
class BuildRecord:
    run_id: str
    mode: str
    status: str
    started_at: datetime
    bronze_versions: dict[str, int]
    windows: dict[str, list[tuple[date, date]]]
    rows: int = 0
    finished_at: datetime | None = None

    def as_row(self) -> dict[str, object]:
        windows = {ref: [[s.isoformat(), e.isoformat()] for s, e in spans] for ref, spans in self.windows.items()}
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at or datetime.now(UTC),
            "models": sum(len(spans) for spans in self.windows.values()),
            "rows": self.rows,
            "bronze_versions": json.dumps(self.bronze_versions, sort_keys=True),
            "windows": json.dumps(windows, sort_keys=True),
        }


def record_build(lake: Lake, build: BuildRecord) -> None:
    lake.append(BUILDS, pa.Table.from_pylist([build.as_row()], schema=SCHEMA))


def watermark(lake: Lake) -> dict[str, int] | None:
    """The bronze versions the last successful full or incremental build read; None when there is none. A
    partial build (some models, some days) brought only part of the lake up to its bronze: never a watermark."""
    if not lake.exists(BUILDS):
        return None
    rows = lake.query(
        f"SELECT bronze_versions FROM {BUILDS} WHERE status = 'success' AND mode IN ('full', 'incremental') "
        "ORDER BY finished_at DESC LIMIT 1",
        [BUILDS],
    ).to_pylist()
    return {str(k): int(v) for k, v in json.loads(rows[0]["bronze_versions"]).items()} if rows else None


def versions(lake: Lake, refs: Iterable[TableRef]) -> dict[str, int]:
    """Each existing table's current Delta version: what a build starting now reads (at least)."""
    return {str(ref): lake.delta(ref).version() for ref in refs if lake.exists(ref)}


def changed_days(lake: Lake, ref: TableRef, since: int | None, until: int) -> Days:
    """The partitions (days) of the files ``ref`` gained from version ``since`` to ``until``; every partition
    when ``since`` is None (the table is new since the watermark)."""
    if since == until:
        return frozenset()
    now = _files(lake, ref, until)
    if now is None:
        return None
    before = set() if since is None else _files(lake, ref, since)
    if before is None:  # the old version's log is gone (cleaned up): the changes cannot be told apart
        log.warning("watermark version unreadable", extra={"table": str(ref), "version": since})
        return None
    days = {day for path, day in now.items() if path not in before}
    if not all(isinstance(d, date) for d in days):
        return None
    return frozenset(days)


def _files(lake: Lake, ref: TableRef, version: int) -> dict[str, object] | None:
    """{file path: its partition value} at ``version``; None when the table is not partitioned by one column
    or that version cannot be loaded."""
    try:
        table = DeltaTable(lake.table_uri(ref), version=version, storage_options=lake.storage_options)
    except Exception:  # a version whose log was cleaned up, typically
        return None
    columns = table.metadata().partition_columns
    if len(columns) != 1:
        return None
    actions = pa.table(table.get_add_actions(flatten=True)).select(["path", f"partition.{columns[0]}"])
    return dict(zip(*(c.to_pylist() for c in actions.columns), strict=True))
