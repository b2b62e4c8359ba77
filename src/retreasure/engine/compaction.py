"""Compacting the models' tables: the small files the hourly windows leave behind rewritten, in day order, into
files of about ``FILE_BYTES`` (``engine/runner.py``).

A window rewrites the files holding its days and writes the other days of those files back as a file of their own,
so a sliding window leaves a small file behind about once a day per table (a year: thousands over silver and gold,
which every query then plans over). Here each run of neighbouring small files whose days no other file holds is
read, put in the order a build writes (day, then an upsert's keys) and written back over its days in one commit:
the same rows, fewer files. A table rewritten whole by every run, or one created partitioned in Delta (an older
lake's, the Spark engine's), has nothing to compact. It holds the build lock: a build rewrites the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from retreasure.engine import runner
from retreasure.engine.models import Model, load_models
from retreasure.lake.lock import build_lock
from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger

log = get_logger("engine")


@dataclass
class Compacted:
    """What compacting one model's table did."""

    table: str
    files_before: int
    files_after: int
    files_rewritten: int = 0  # small files rewritten into fewer
    commits: int = 0  # one per run of days rewritten


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    first: date
    last: date


def compact_models(lake: Lake, models: dict[TableRef, Model] | None = None) -> list[Compacted]:
    """Compact every model's table that exists, holding the build lock throughout."""
    models = models if models is not None else load_models()
    with build_lock(lake, "compaction"):
        return [compact(lake, model) for ref, model in models.items() if lake.exists(ref)]


def compact(lake: Lake, model: Model) -> Compacted:
    """Rewrite the runs of small files of ``model``'s table (the caller holds the build lock)."""
    ref, part = model.ref, model.contract.partition_by
    table = lake.delta(ref)
    files = _files(table.get_add_actions(flatten=True), part) if part else None
    count = len(table.file_uris())
    done = Compacted(str(ref), count, count)
    if part is None or files is None or table.metadata().partition_columns:
        return done
    order = [(c, "ascending", "at_end") for c in runner.write_order(model)]
    for run in _runs(files):
        first, last = min(f.first for f in run), max(f.last for f in run)
        window = (pc.field(part) >= first) & (pc.field(part) <= last)
        rows = lake.dataset(ref).to_table(filter=window).sort_by(order)
        between = f"{part} >= '{first.isoformat()}' AND {part} <= '{last.isoformat()}'"
        lake.overwrite(ref, rows, predicate=between, **runner.file_layout())
        done.files_rewritten += len(run)
        done.commits += 1
    done.files_after = len(lake.delta(ref).file_uris())
    if done.commits:
        log.info("table compacted", extra=vars(done))
    return done


def _files(actions: object, part: str) -> list[_File] | None:
    """The table's files with the first and last day each holds (from the log's statistics), in day order; None
    when a file has no statistics for the day column."""
    added = pa.table(actions)
    if f"min.{part}" not in added.column_names:
        return None
    columns = [added.column(c).to_pylist() for c in ("path", "size_bytes", f"min.{part}", f"max.{part}")]
    files = [_File(*row) for row in zip(*columns, strict=True)]
    if any(f.first is None or f.last is None for f in files):
        return None
    return sorted(files, key=lambda f: (f.first, f.last))


def _runs(files: list[_File]) -> list[list[_File]]:
    """Runs of two or more neighbouring small files (together at most ``FILE_BYTES``) whose days no file outside
    the run holds: rewriting their days rewrites them alone."""
    small = runner.FILE_BYTES // 2
    runs: list[list[_File]] = []
    current: list[_File] = []
    for file in [*files, None]:
        if file is not None and file.size < small and sum(f.size for f in current) + file.size <= runner.FILE_BYTES:
            current.append(file)
            continue
        if len(current) >= 2 and _alone(current, files):
            runs.append(current)
        current = [file] if file is not None and file.size < small else []
    return runs


def _alone(run: list[_File], files: list[_File]) -> bool:
    first, last = min(f.first for f in run), max(f.last for f in run)
    return not any(f.first <= last and f.last >= first for f in files if f not in run)
