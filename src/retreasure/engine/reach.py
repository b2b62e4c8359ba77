"""Which days of a partitioned model a rebuilt input changed, when its days are not the model's own.

An unpartitioned model (product costs, fx rates, the product dimension) is rebuilt whole, and one of its rows can
feed rows of any day of a date-partitioned reader: a SKU's new cost changes the cost of every line that ever sold
it, not only of the days the cost landed on. A partitioned input whose partition means another day than the
reader's does the same through a key: an order (partitioned by its order day) feeds its refunds on their refund
days, its shipments on their ship days; an order that lands after its refund reaches the refund's day only so. The
reader's contract names, per such input, the columns it reads and the days a changed row touches
(``changed_inputs``); the input's rows in those columns as the last successful build left them (what its readers
were built from) are compared with its rows after this build's run, and the rows added or removed are ``changed``.
A partitioned input is compared only in the windows its runs rewrote (rows elsewhere did not change), and still
reaches the days of the partitions it wrote (the days it shares with the reader); an unpartitioned input the
reader names no rule for rebuilds every day of the reader: right, whatever it costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from retreasure.engine.changes import Days
from retreasure.engine.models import Model, tables_read
from retreasure.lake.store import Lake, TableRef, connection

_BEFORE, _AFTER = "__changed_before", "__changed_after"


# A partitioned table's rows to compare: (its partition column, the windows [first, last] its runs rewrote).
Within = tuple[str, list[tuple[date, date]]]


@dataclass(frozen=True)
class Rebuilt:
    """A model's rows, in the columns its readers read (of a partitioned model: in the windows its runs rewrote), as
    the last successful build left them (what its readers were built from: a failed build may have rewritten it
    since without them) and after this build's run of it; None when they could not be read (no table then, or one
    without a column read)."""

    before: pa.Table | None
    after: pa.Table | None
    # The rows added or removed per set of columns read, and the days found per (columns, days query): the readers
    # of a dimension share one comparison of its rows, and readers sharing a rule (fx rates' five) one answer.
    changes: dict[tuple[str, ...], pa.Table] = field(default_factory=dict, compare=False)
    reached: dict[tuple[tuple[str, ...], str], frozenset[date]] = field(default_factory=dict, compare=False)

    def changed(self, columns: tuple[str, ...]) -> pa.Table:
        """The distinct rows, in ``columns``, that are in one of before and after only: compared once per build."""
        if columns not in self.changes:
            assert self.before is not None and self.after is not None
            self.changes[columns] = _added_or_removed(self.before.select(columns), self.after.select(columns))
        return self.changes[columns]


def watched_columns(models: dict[TableRef, Model], ref: TableRef) -> list[str]:
    """The columns of ``ref`` that some reader's contract says it reads (none: no reader names it)."""
    rules = [m.contract.changed_inputs.get(str(ref)) for m in models.values()]
    return sorted({column for rule in rules if rule is not None for column in rule.columns})


def rows_of(
    lake: Lake, ref: TableRef, columns: list[str], when: datetime | None = None, within: Within | None = None
) -> pa.Table | None:
    """The table's distinct rows in ``columns``, now or as its newest commit at or before ``when`` stood, only those
    whose partition falls in one of the windows of ``within`` when given; None when it did not exist then or lacked
    one of them."""
    if not lake.exists(ref):
        return None
    try:
        table = DeltaTable(lake.table_uri(ref), storage_options=lake.storage_options) if when else lake.delta(ref)
        if when:
            table.load_as_version(when)
    except Exception:  # no commit that early (a table built since), or its log cleaned up
        return None
    if not set(columns) <= set(table.schema().to_arrow().names):
        return None
    if within is None:
        rows = table.to_pyarrow_table(columns=columns)
    else:
        # Only the rewritten partitions' files are opened: a dataset over every file of a day-partitioned table costs
        # delta-rs a partition expression per file in Python (0.3 s over three years, twice per input per build).
        column, windows = within
        days = sorted(
            {str(first + timedelta(days=i)) for first, last in windows for i in range((last - first).days + 1)}
        )
        dataset = table.to_pyarrow_dataset(file_pruning_predicate=[(column, "in", days)])
        rows = dataset.to_table(columns=columns, filter=_in_windows(column, windows))
    return rows.group_by(columns).aggregate([])


def _in_windows(column: str, windows: list[tuple[date, date]]) -> pc.Expression:
    """True for a row whose ``column`` falls in one of the windows (first and last day included)."""
    condition = pc.scalar(False)
    for first, last in windows:
        condition = condition | ((pc.field(column) >= first) & (pc.field(column) <= last))
    return condition


def changed_days(lake: Lake, reader: Model, ref: TableRef, rebuilt: Rebuilt) -> Days:
    """The days of ``reader``'s window that the rows ``ref``'s run changed feed, by the reader's rule (of a
    partitioned input: besides the partitions it wrote, which the caller adds); None (all of time) without a rule
    or without the rows before and after."""
    rule = reader.contract.changed_inputs.get(str(ref))
    if rule is None or rebuilt.before is None or rebuilt.after is None:
        return None
    key = (tuple(rule.columns), rule.days)
    if key not in rebuilt.reached:
        rebuilt.reached[key] = _changed_days(lake, ref, rule.days, rebuilt.changed(key[0]))
    return rebuilt.reached[key]


def _added_or_removed(before: pa.Table, after: pa.Table) -> pa.Table:
    """The distinct rows of ``before`` not in ``after`` and of ``after`` not in ``before`` (a changed row is both)."""
    columns = ", ".join(f'"{c}"' for c in before.column_names)
    con = connection()  # a cursor on the process's database: no view of any table needed
    try:
        con.register(_BEFORE, before)
        con.register(_AFTER, after)
        return con.execute(
            f"(SELECT {columns} FROM {_BEFORE} EXCEPT SELECT {columns} FROM {_AFTER}) "
            f"UNION (SELECT {columns} FROM {_AFTER} EXCEPT SELECT {columns} FROM {_BEFORE})"
        ).fetch_arrow_table()
    finally:
        con.close()


def _changed_days(lake: Lake, ref: TableRef, days: str, changed: pa.Table) -> frozenset[date]:
    """The days ``days`` (SQL over ``changed`` and the reader's other inputs) names; none when no row changed, without
    opening a table."""
    if not changed.num_rows:
        return frozenset()
    read = [i for i in tables_read(days) if i != ref]
    # Silver and gold by DuckDB's own Parquet reader, as models read them (engine/runner.py); bronze as datasets.
    con = lake.connect(read, native={i for i in read if i.layer != "bronze"})
    try:
        con.register("changed", changed)
        found = con.execute(f"SELECT DISTINCT * FROM ({days})").fetchall()
    finally:
        con.close()
    return frozenset(_day(row[0]) for row in found if row[0] is not None)


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise ValueError(f"changed_inputs days give {value!r}, not a day")
