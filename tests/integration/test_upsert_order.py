"""An upsert table's files hold their rows by day, then in key order (NULLs last), whichever way the build got there:
a whole run whose rows hold one per key writes them as DuckDB produced them, a run with repeated keys through the
newest-version window; both must leave the same layout."""

from __future__ import annotations

from retreasure.engine.models import load_models
from retreasure.lake import Lake, TableRef
from retreasure_sim.model import Truth
from tests.helpers import days_in_write_order


def test_every_file_of_every_upsert_table_is_in_day_then_key_order(gold_lake: tuple[Truth, Lake]) -> None:
    _, lake = gold_lake
    checked: dict[TableRef, int] = {}
    for ref, model in load_models().items():
        contract = model.contract
        if contract.write_mode != "upsert":
            continue
        days = [days_in_write_order(uri, contract.partition_by, contract.keys) for uri in lake.delta(ref).file_uris()]
        checked[ref] = sum(days)
    # The faulty lake has no refunds on some channels; the web events (the one-per-key shortcut) are every day.
    assert checked[TableRef("silver", "web_events")] > 1
    assert sum(1 for n in checked.values() if n) >= 10, checked
