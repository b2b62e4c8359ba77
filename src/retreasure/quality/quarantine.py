"""A model's quarantine as the model's runs leave it: the rows that break its row rules, held back with the rule and
the reason, until a run places them.

A row held back is often settled later: a refund whose receipt lands a day after it, a corrected version of a line
that broke a rule. The quarantine then holds what a full build of the same bronze would hold, hour after hour:

- a run over all of time (and every run of a model rebuilt whole) replaces the quarantine with its own rows;
- a windowed run adds its rows, and releases those earlier runs held back whose key its table now holds in the
  partitions the run wrote (a merge's: anywhere in its table), or that the run held back again as they stand now
  (a newer version breaking a rule).

A row held back without its key (``not_null`` on the key) stays until a run over all of time.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from retreasure.contracts.model import Contract
from retreasure.lake.sql import first_per_key
from retreasure.lake.store import Lake, TableRef
from retreasure.quality.checks import QUARANTINE_SCHEMA, in_partitions, quarantine_of, sql_literal

# One row per rule broken by one version of a row: a row held back again keeps when it was first held.
SAME_ROW = ["table_name", "rule", "row_json"]


def hold(
    lake: Lake, ref: TableRef, contract: Contract, held: pa.Table, run_id: str, written: Sequence[object] | None
) -> None:
    """Quarantine ``held`` (the run's rows that broke a rule) for ``ref``, releasing what the run settled;
    ``written``: the partitions a windowed run wrote ([] for a merge's window, whose rows may land anywhere in the
    table), None for a run that replaced the table with its own rows only. One commit when the quarantine changes,
    none when it holds the same rows as before."""
    quarantine = quarantine_of(ref)
    if not lake.exists(quarantine):
        if held.num_rows:
            lake.insert_new(quarantine, held, SAME_ROW)
        return
    released = _released(ref, contract, run_id, written)
    con = lake.connect([quarantine] if written is None else [ref, quarantine], native=True)
    try:
        con.register("__held", held)
        rows = _with_keys(str(quarantine), contract)
        flagged = con.execute(f"SELECT q.*, {released} AS __released FROM {rows} q").fetch_arrow_table()
        settled = flagged.column("__released")
        still = flagged.filter(pc.invert(settled)).select(QUARANTINE_SCHEMA.names)
        con.register("__still", still)
        same = " AND ".join(f"s.{c} = h.{c}" for c in SAME_ROW)
        first = first_per_key(f"SELECT h.* FROM __held h ANTI JOIN __still s ON {same}", SAME_ROW, "quarantined_at")
        new = con.execute(first).fetch_arrow_table().cast(QUARANTINE_SCHEMA)
    finally:
        con.close()
    if pc.any(settled).as_py():
        lake.overwrite(quarantine, pa.concat_tables([still.cast(QUARANTINE_SCHEMA), new]))
    elif new.num_rows:
        lake.append(quarantine, new)


def _released(ref: TableRef, contract: Contract, run_id: str, written: Sequence[object] | None) -> str:
    """SQL over a quarantine row ``q`` (its key in ``__k0``...): true when this run settles it."""
    held_again = "EXISTS (SELECT 1 FROM __held h WHERE h.rule = q.rule AND h.row_json = q.row_json)"
    if written is None:  # the run holds back what the table's whole history breaks: nothing else stays
        return f"NOT {held_again}"
    if not contract.keys:
        return "false"
    same_key = " AND ".join(f"k.__k{i} = q.__k{i}" for i in range(len(contract.keys)))
    placed = ", ".join(f"json_extract_string(to_json(\"{c}\"), '$') AS __k{i}" for i, c in enumerate(contract.keys))
    part = contract.partition_by
    in_written = in_partitions(ref, part, written) if part else str(ref)
    # Keys compared as DuckDB writes them in JSON (how a held row's values were kept); NULL keys never equal.
    return (
        f"q.run_id IS DISTINCT FROM {sql_literal(run_id)} AND ("
        f"EXISTS (SELECT 1 FROM (SELECT {placed} FROM {in_written}) k WHERE {same_key}) "
        f"OR (EXISTS (SELECT 1 FROM {_with_keys('__held', contract)} k WHERE {same_key}) AND NOT {held_again}))"
    )


def _with_keys(rows: str, contract: Contract) -> str:
    """``rows`` (quarantine rows) with the model's key columns taken out of their JSON as ``__k0``, ``__k1``..."""
    keys = "".join(f", json_extract_string(row_json, '$.{c}') AS __k{i}" for i, c in enumerate(contract.keys))
    return f"(SELECT *{keys} FROM {rows})"
