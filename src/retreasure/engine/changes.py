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
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable

from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger

BUILDS = TableRef("ops", "builds")
SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        # full | incremental | downstream (an incremental build of what some bronze tables feed: the stream's
        # micro-builds) | partial (some models or some days)
        ("mode", pa.string()),
        ("status", pa.string()),  # success | blocked (a blocking check stopped part of it) | failed
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("models", pa.int64()),  # model runs made
        ("rows", pa.int64()),  # rows written, all runs together
        ("bronze_versions", pa.string()),  # JSON {table: Delta version read}: the watermark of those tables
        ("windows", pa.string()),  # JSON {model: [[start, end], ...]}, lookback included
    ]
)
# The days a table changed; None when they cannot be told (no usable watermark): treat as all of time.
Days = frozenset[date] | None
WHOLE_MODES = ("full", "incremental")  # builds that bring every model up to every bronze table they read
MOVING_MODES = (*WHOLE_MODES, "downstream")  # builds that move the watermark (of the tables they read)

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
    """The bronze versions the last successful builds read, per table: the newest successful full or
    incremental build's, each table moved on by the successful ``downstream`` builds since (which read only
    the tables they were given); None when there is no full or incremental build yet. A partial build (some
    models, some days) brought only part of the lake up to its bronze: never a watermark."""
    if not lake.exists(BUILDS):
        return None
    whole, moving = ", ".join(f"'{m}'" for m in WHOLE_MODES), ", ".join(f"'{m}'" for m in MOVING_MODES)
    rows = lake.query(
        f"SELECT bronze_versions FROM {BUILDS} WHERE status = 'success' AND mode IN ({moving}) AND finished_at >= "
        f"(SELECT max(finished_at) FROM {BUILDS} WHERE status = 'success' AND mode IN ({whole})) "
        "ORDER BY finished_at DESC",
        [BUILDS],
    ).to_pylist()
    if not rows:
        return None
    merged: dict[str, int] = {}
    for row in rows:  # newest first: a table's newest version read wins
        for table, version in json.loads(row["bronze_versions"]).items():
            merged.setdefault(str(table), int(version))
    return merged


def last_success(lake: Lake) -> datetime | None:
    """When the newest successful build that moved the watermark ended: every table it wrote was consistent with
    the tables it read from then (a later failed, blocked or partial build may have rebuilt some without their
    readers); None when there is none."""
    if not lake.exists(BUILDS):
        return None
    moving = ", ".join(f"'{m}'" for m in MOVING_MODES)
    sql = f"SELECT max(finished_at) AS t FROM {BUILDS} WHERE status = 'success' AND mode IN ({moving})"
    value = lake.query(sql, [BUILDS]).column("t")[0].as_py()
    return value if isinstance(value, datetime) else None


def downstream_watermark(lake: Lake) -> dict[str, int]:
    """The bronze versions the successful ``downstream`` builds read, per table, newest first: where the stream's
    micro-builds stopped on a lake that has had no full build yet (empty when none)."""
    if not lake.exists(BUILDS):
        return {}
    rows = lake.query(
        f"SELECT bronze_versions FROM {BUILDS} WHERE status = 'success' AND mode = 'downstream' "
        "ORDER BY finished_at DESC",
        [BUILDS],
    ).to_pylist()
    merged: dict[str, int] = {}
    for row in rows:
        for table, version in json.loads(row["bronze_versions"]).items():
            merged.setdefault(str(table), int(version))
    return merged


def versions(lake: Lake, refs: Iterable[TableRef]) -> dict[str, int]:
    """Each existing table's current Delta version: what a build starting now reads (at least)."""
    return {str(ref): version for ref in refs if (version := lake.latest_version(ref)) is not None}


@dataclass(frozen=True)
class Arrivals:
    """What a bronze table gained between two versions: the rows of its new files per day (partition), and the
    newest day it held before them (its event-time high-water mark; None when it held nothing)."""

    rows: dict[date, int]
    newest_before: date | None

    def older_than(self, days: int) -> dict[date, int]:
        """The new rows per day for days more than ``days`` before the newest day held before: rows that a
        build looking back only ``days`` from the newest day would not see again (late arrivals)."""
        if self.newest_before is None:
            return {}
        return {day: rows for day, rows in sorted(self.rows.items()) if (self.newest_before - day).days > days}


def arrivals(lake: Lake, ref: TableRef, since: int | None, until: int) -> Arrivals | None:
    """The rows per day of the files ``ref`` gained from version ``since`` to ``until`` (from the Delta log's
    file statistics, not the rows), and its newest day at ``since``; None when that cannot be told (the table is
    not partitioned by day, or the old version's log is gone)."""
    now = _files(lake, ref, until)
    if now is None:
        return None
    appended = None if since is None else _appended(lake, ref, since, until)
    before: dict[str, tuple[object, int | None]] | None = {}
    if appended is not None:  # only appends since: the table then was the table now less the files they added
        before = {path: held for path, held in now.items() if unquote(path) not in appended}
    elif since is not None:
        before = _files(lake, ref, since)
    if before is None:  # the old version's log is gone (cleaned up): the changes cannot be told apart
        log.warning("watermark version unreadable", extra={"table": str(ref), "version": since})
        return None
    # Rows of the files added less rows of the files removed, per day: bronze is append-only, so this is what a
    # day gained, also when a compaction (lake/maintenance.py) rewrote its files meanwhile; a day only compacted
    # gained nothing.
    net: dict[date, int] = {}
    uncounted: set[date] = set()  # days of new files that carry no row count: changed, by how much unknown
    for files, sign in ((now.items() - before.items(), 1), (before.items() - now.items(), -1)):
        for _path, (day, rows) in files:
            if not isinstance(day, date):
                return None
            net[day] = net.get(day, 0) + sign * (rows or 0)
            if rows is None and sign > 0:
                uncounted.add(day)
    gained = {day: max(rows, 0) for day, rows in sorted(net.items()) if rows or day in uncounted}
    held = [day for day, _ in before.values() if isinstance(day, date)]
    return Arrivals(gained, max(held, default=None))


def _appended(lake: Lake, ref: TableRef, since: int, until: int) -> set[str] | None:
    """The files the commits after ``since`` up to ``until`` added, read from those commit files, when they did
    nothing but add files (an ingest's appends); None otherwise, or when a commit file is not on local disk: the
    table is then loaded at ``since`` (a bronze table's log replayed again, ~30 ms a table at a year of days)."""
    if not lake.is_local:
        return None
    added: set[str] = set()
    for version in range(since + 1, until + 1):
        try:
            lines = lake.commit_file(ref, version).read_text().splitlines()
        except OSError:
            return None
        for action in (json.loads(line) for line in lines if line.strip()):
            if "add" in action:
                added.add(unquote(action["add"]["path"]))
            elif action.keys() - {"commitInfo", "txn"}:
                return None  # a file removed, or the table's metadata or protocol changed
    return added


def _files(lake: Lake, ref: TableRef, version: int) -> dict[str, tuple[object, int | None]] | None:
    """{file path: (its partition value, its rows)} at ``version``; None when the table is not partitioned by one
    column or that version cannot be loaded."""
    try:
        table = lake.delta(ref)  # the lake's own copy when it is at that version (the build's reads are)
        if table.version() != version:
            table = DeltaTable(lake.table_uri(ref), version=version, storage_options=lake.storage_options)
    except Exception:  # a version whose log was cleaned up, typically
        return None
    columns = table.metadata().partition_columns
    if len(columns) != 1:
        return None
    actions = pa.table(table.get_add_actions(flatten=True)).select(["path", f"partition.{columns[0]}", "num_records"])
    paths, days, rows = (c.to_pylist() for c in actions.columns)
    return {path: (day, count) for path, day, count in zip(paths, days, rows, strict=True)}
