"""Keeping tables healthy: the stream's many small files compacted into few, and files that no version of the
last week reads any more removed.

Every micro-batch the stream commits adds a small Parquet file per day it touched (thousands a day); readers
open each. ``optimize`` rewrites each partition's small files into files of up to 256 MB (delta-rs
``optimize.compact``): one commit that adds the new files and removes the old ones, marked as no data change, so
rows, record hashes and the stream's offsets (the ``txn`` actions) stay as they were. It only ever reads and
rewrites files already committed, so it is safe while the stream appends: the commit is checked for conflicts
with the appends made meanwhile (appends never conflict with a compaction; a rare conflict is retried).
Running it again on a compacted table does nothing.

``vacuum`` deletes the files no version of the retention window reads (replaced by a compaction, or by a
model's overwrite): readers can still time-travel ``RETENTION_HOURS`` back. It lists what it would delete
unless told to apply.
"""

from __future__ import annotations

import time
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from retreasure.lake import RETENTION_HOURS
from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger

TRIES = 3
log = get_logger("lake")
# What the stream appends to in micro-batches: the tables that gather small files.
STREAMED = (
    TableRef("bronze", "web_clickstream"),
    TableRef("bronze", "web_transactions"),
    TableRef("quarantine", "web_clickstream"),
    TableRef("quarantine", "web_transactions"),
    TableRef("ops", "stream_batches"),
    TableRef("ops", "stream_builds"),
)


@dataclass
class Optimized:
    """What optimizing one table did."""

    table: str
    version_before: int
    version_after: int
    files_before: int
    files_after: int
    files_removed: int = 0  # small files compacted away (still on disk until vacuumed)
    files_added: int = 0
    partitions: int = 0
    vacuum: list[str] = field(default_factory=list)  # files vacuum deleted (or, dry, would delete)
    vacuum_applied: bool = False
    seconds: float = 0.0

    def figures(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if k != "vacuum"} | {"vacuum_files": len(self.vacuum)}


def optimize(
    lake: Lake, ref: TableRef, vacuum: bool = False, retention_hours: int = RETENTION_HOURS, compact: bool = True
) -> Optimized:
    """Compact ``ref``'s small files (unless ``compact`` is False: a model's table, which
    ``engine/compaction.py`` compacts in day order), then vacuum what the retention window no longer needs
    (``vacuum``) or list it (dry run). Logged as ``table optimized``."""
    began = time.monotonic()
    table = DeltaTable(lake.table_uri(ref), storage_options=lake.storage_options)
    before, files_before = table.version(), len(table.file_uris())
    done = Optimized(str(ref), before, before, files_before, files_before)
    if compact:
        table, metrics = _compact(lake, ref, table)
        done.files_added, done.files_removed = int(metrics["numFilesAdded"]), int(metrics["numFilesRemoved"])
        done.partitions = int(metrics.get("partitionsOptimized", 0))
    # The retention is this function's to hold (a shorter one than Delta's week is the caller's explicit choice).
    done.vacuum = table.vacuum(retention_hours=retention_hours, dry_run=not vacuum, enforce_retention_duration=False)
    done.vacuum_applied = vacuum
    table = DeltaTable(lake.table_uri(ref), storage_options=lake.storage_options)
    done.version_after, done.files_after = table.version(), len(table.file_uris())
    done.seconds = round(time.monotonic() - began, 3)
    log.info("table optimized", extra=done.figures())
    return done


def _compact(lake: Lake, ref: TableRef, table: DeltaTable) -> tuple[DeltaTable, dict[str, Any]]:
    """delta-rs's compaction of ``table``, tried again on a conflicting commit; the table as it then stands."""
    for attempt in range(1, TRIES + 1):
        try:
            return table, table.optimize.compact()
        except CommitFailedError as exc:  # another writer's commit conflicted: read the table again and retry
            if attempt == TRIES:
                raise
            log.warning("optimize conflicted, retrying", extra={"table": str(ref), "error": str(exc)})
            table = DeltaTable(lake.table_uri(ref), storage_options=lake.storage_options)
    raise AssertionError("unreachable")


def optimize_tables(
    lake: Lake,
    tables: list[TableRef],
    vacuum: bool = False,
    retention_hours: int = RETENTION_HOURS,
    compacted_elsewhere: Container[TableRef] = (),
) -> list[Optimized]:
    """``optimize`` each of ``tables`` that exists; those in ``compacted_elsewhere`` (the models') only vacuumed."""
    return [
        optimize(lake, ref, vacuum, retention_hours, compact=ref not in compacted_elsewhere)
        for ref in tables
        if lake.exists(ref)
    ]
