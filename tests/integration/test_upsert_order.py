"""An upsert table's files hold their rows in key order (NULLs last), whichever way the build got there: a whole
run whose rows hold one per key writes them as DuckDB produced them, a run with repeated keys through the
newest-version window; both must leave the same layout."""

from __future__ import annotations

import pyarrow.parquet as pq

from retreasure.engine.models import load_models
from retreasure.lake import Lake, TableRef
from retreasure_sim.model import Truth


def test_every_file_of_every_upsert_table_is_in_key_order(gold_lake: tuple[Truth, Lake]) -> None:
    _, lake = gold_lake
    checked: dict[TableRef, int] = {}
    for ref, model in load_models().items():
        contract = model.contract
        if contract.write_mode != "upsert":
            continue
        # A partition column is one value per file (and lives in the file's path, not its columns).
        keys = [k for k in contract.keys if k != contract.partition_by]
        files = lake.delta(ref).file_uris()
        for uri in files:
            rows = pq.read_table(uri, columns=keys)
            in_order = rows.sort_by([(k, "ascending") for k in keys], null_placement="at_end")
            assert rows.equals(in_order), f"{ref}: {uri} is not in key order"
        checked[ref] = len(files)
    # The faulty lake has no refunds on some channels; the web events (the one-per-key shortcut) are every day.
    assert checked[TableRef("silver", "web_events")] > 1
    assert sum(1 for n in checked.values() if n) >= 10, checked
