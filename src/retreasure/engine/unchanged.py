"""Which partitions a model run would change: an hourly build recomputes many windows whose rows come out exactly
as the table already holds them (a dimension no new row touched, the weeks of an order mart around one new
order). Such a run writes nothing, checks nothing new and passes nothing on to the models that read it.

The comparison is DuckDB set arithmetic between the run's rows and the table's rows of the same window, read with
DuckDB's Parquet reader: a fraction of the write, the table checks and the downstream runs it spares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa

from retreasure.engine.models import ALL_TIME, Model
from retreasure.lake.store import Lake

WHOLE = "__whole__"  # the one "partition" of an unpartitioned table


@dataclass(frozen=True)
class Changes:
    """What a run's rows change in its table: the partitions (values of the partition column) whose rows differ,
    or ``WHOLE`` for an unpartitioned table that differs; empty when the table already holds exactly these rows."""

    partitions: frozenset[object]

    @property
    def none(self) -> bool:
        return not self.partitions


def changes(lake: Lake, model: Model, rows: pa.Table, start: date, end: date) -> Changes | None:
    """What writing ``rows`` for [start, end] in the contract's mode would change; None when that cannot be told
    cheaply (no table yet, columns that differ from the table's): the run then writes as always."""
    ref, contract = model.ref, model.contract
    if not lake.exists(ref):
        return None
    held = [f.name for f in lake.delta(ref).schema().fields]
    if sorted(held) != sorted(rows.column_names):
        return None
    part = contract.partition_by
    columns = ", ".join(f'"{c}"' for c in rows.column_names)
    con = lake.connect([ref], native={ref})
    try:
        con.register("incoming", rows)
        if part is None:
            existing = f"SELECT {columns} FROM {ref}"
        elif contract.write_mode == "upsert":
            # An upsert keeps the newest row per key: it changes nothing when every incoming row is already held.
            touched = [v for (v,) in con.execute(f'SELECT DISTINCT "{part}" FROM incoming').fetchall()]
            if not touched:
                return Changes(frozenset())
            values = ", ".join(_literal(v) for v in touched)
            existing = f'SELECT {columns} FROM {ref} WHERE "{part}" IN ({values})'
        elif (start, end) == ALL_TIME:
            existing = f"SELECT {columns} FROM {ref}"
        else:  # overwrite_partitions: the window's partitions are replaced by exactly these rows
            existing = f"SELECT {columns} FROM {ref} WHERE \"{part}\" BETWEEN '{start}' AND '{end}'"
        new = f"SELECT {columns} FROM incoming"
        if contract.write_mode == "upsert":
            differing = f"({new} EXCEPT {existing})"
        else:
            differing = f"({new} EXCEPT ALL {existing}) UNION ALL ({existing} EXCEPT ALL {new})"
        key = f'"{part}"' if part else f"'{WHOLE}'"
        found = con.execute(f"SELECT DISTINCT {key} FROM ({differing})").fetchall()
    finally:
        con.close()
    return Changes(frozenset(value for (value,) in found))


def _literal(value: object) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"
