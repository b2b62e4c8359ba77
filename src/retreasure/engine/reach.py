"""Which days of a partitioned model a rebuilt unpartitioned input changed.

An unpartitioned model (product costs, fx rates, the product dimension) is rebuilt whole, and one of its rows can
feed rows of any day of a date-partitioned reader: a SKU's new cost changes the cost of every line that ever sold
it, not only of the days the cost landed on. The reader's contract names, per such input, the columns it reads
and the days a changed row touches (``changed_inputs``); the input's rows in those columns as the last successful
build left them (what its readers were built from) are compared with its rows after this build's run, and the rows
added or removed are ``changed``. An input the reader names no rule for rebuilds every day of the reader: right,
whatever it costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import pyarrow as pa
from deltalake import DeltaTable

from retreasure.engine.changes import Days
from retreasure.engine.models import Model, tables_read
from retreasure.lake.store import Lake, TableRef

_BEFORE, _AFTER = "__changed_before", "__changed_after"


@dataclass(frozen=True)
class Rebuilt:
    """An unpartitioned model's rows, in the columns its readers read, as the last successful build left them
    (what its readers were built from: a failed build may have rewritten it since without them) and after this
    build's run of it; None when they could not be read (no table then, or one without a column read)."""

    before: pa.Table | None
    after: pa.Table | None
    # the days found per (columns, days query): readers sharing a rule (fx rates' five) compare once
    reached: dict[tuple[tuple[str, ...], str], frozenset[date]] = field(default_factory=dict, compare=False)


def watched_columns(models: dict[TableRef, Model], ref: TableRef) -> list[str]:
    """The columns of ``ref`` that some reader's contract says it reads (none: no reader names it)."""
    rules = [m.contract.changed_inputs.get(str(ref)) for m in models.values()]
    return sorted({column for rule in rules if rule is not None for column in rule.columns})


def rows_of(lake: Lake, ref: TableRef, columns: list[str], when: datetime | None = None) -> pa.Table | None:
    """The table's distinct rows in ``columns``, now or as its newest commit at or before ``when`` stood; None
    when it did not exist then or lacked one of them."""
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
    return table.to_pyarrow_table(columns=columns).group_by(columns).aggregate([])


def changed_days(lake: Lake, reader: Model, ref: TableRef, rebuilt: Rebuilt) -> Days:
    """The days of ``reader``'s window that the rows ``ref``'s run changed feed: by the reader's rule; None (all
    of time) without a rule or without the rows before and after."""
    rule = reader.contract.changed_inputs.get(str(ref))
    if rule is None or rebuilt.before is None or rebuilt.after is None:
        return None
    key = (tuple(rule.columns), rule.days)
    if key not in rebuilt.reached:
        rebuilt.reached[key] = _changed_days(lake, ref, rule.columns, rule.days, rebuilt)
    return rebuilt.reached[key]


def _changed_days(lake: Lake, ref: TableRef, read: list[str], days: str, rebuilt: Rebuilt) -> frozenset[date]:
    columns = ", ".join(f'"{c}"' for c in read)
    assert rebuilt.before is not None and rebuilt.after is not None
    con = lake.connect([i for i in tables_read(days) if i != ref])
    try:
        con.register(_BEFORE, rebuilt.before.select(read))
        con.register(_AFTER, rebuilt.after.select(read))
        con.execute(
            f"CREATE TEMP VIEW changed AS (SELECT {columns} FROM {_BEFORE} EXCEPT SELECT {columns} FROM {_AFTER}) "
            f"UNION (SELECT {columns} FROM {_AFTER} EXCEPT SELECT {columns} FROM {_BEFORE})"
        )
        if not con.execute("SELECT count(*) FROM changed").fetchone()[0]:  # type: ignore[index]
            return frozenset()
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
