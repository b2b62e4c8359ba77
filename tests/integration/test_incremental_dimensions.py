"""A change to an unpartitioned model reaches every day of its readers that it touches: a SKU's new unit cost
changes the cost of goods of every line that sold it, however long ago, so the hourly build that lands the cost
must leave the lake as a full build of the same bronze would."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from retreasure.engine.build import JOIN_DAYS, build, build_incremental
from retreasure.lake import Lake, TableRef
from retreasure_sim.model import Truth
from tests.helpers import copy_lake, rows_without

LEVELS = TableRef("bronze", "shopify_inventory_levels")
COSTS = [TableRef("silver", "stg_shopify_inventory_levels"), TableRef("silver", "product_costs")]
LINES = TableRef("gold", "fct_order_lines")
PRODUCTS = TableRef("gold", "dim_product")
RAISE = Decimal("7.50")
VOLATILE = ("run_id",)


def _oldest_sold_sku(lake: Lake) -> tuple[str, object]:
    """The warehouse SKU (its cost from Shopify) whose last sale is the oldest, and the day of that sale."""
    sql = (
        f"SELECT l.sku, max(l.order_date) AS last_sold FROM {LINES} l JOIN {PRODUCTS} p USING (sku) "
        "WHERE p.cost_source = 'shopify' AND l.unit_cost IS NOT NULL GROUP BY l.sku ORDER BY last_sold, l.sku LIMIT 1"
    )
    row = lake.query(sql, [LINES, PRODUCTS]).to_pylist()[0]
    return row["sku"], row["last_sold"]


def _repriced(lake: Lake, sku: str) -> pa.Table:
    """The newest bronze record of one of the SKU's inventory levels, its item's unit cost raised and its change
    an hour after the newest change the table holds: what an ingest run lands when the shop changes a cost."""
    where = (
        "error IS NULL AND json_extract_string(raw, '$.item.sku') = $sku "
        "AND json_extract_string(raw, '$.item.unitCost.currencyCode') = 'EUR'"
    )
    record = lake.query(
        f"SELECT * FROM {LEVELS} WHERE {where} ORDER BY record_updated_at DESC, record_hash LIMIT 1",
        [LEVELS],
        {"sku": sku},
    ).to_pylist()[0]
    newest = lake.query(f"SELECT max(record_updated_at) AS t FROM {LEVELS}", [LEVELS]).column("t")[0].as_py()
    changed_at = newest + timedelta(hours=1)
    payload: dict[str, Any] = json.loads(record["raw"])
    cost = payload["item"]["unitCost"]
    raised = Decimal(str(cost["amount"])) + RAISE
    cost["amount"] = str(raised) if isinstance(cost["amount"], str) else float(raised)
    payload["updatedAt"] = changed_at.isoformat().replace("+00:00", "Z")
    raw = json.dumps(payload)
    record |= {
        "raw": raw,
        "record_hash": hashlib.sha256(raw.encode()).hexdigest(),
        "record_updated_at": changed_at,
        "ingested_at": changed_at,
        "partition_date": changed_at.date(),
        "batch_id": "cost-change",
    }
    return pa.Table.from_pylist([record], schema=lake.dataset(LEVELS).schema)


@pytest.mark.parametrize("costs_built_first", [False, True], ids=["hourly", "after-a-partial-build"])
def test_a_changed_cost_reaches_every_day_that_sold_the_sku(
    gold_lake: tuple[Truth, Lake], tmp_path: Path, costs_built_first: bool
) -> None:
    # after-a-partial-build: the costs are rebuilt alone first (`build --select`), so the incremental build finds
    # them already new; what their readers were built from is what the last successful build left.
    hourly = copy_lake(gold_lake[1], tmp_path / "hourly")
    sku, last_sold = _oldest_sold_sku(hourly)
    old_cost = hourly.query(f"SELECT unit_cost FROM {PRODUCTS} WHERE sku = $sku", [PRODUCTS], {"sku": sku})
    change = _repriced(hourly, sku)
    # The change lands well after the SKU's last sale: no window of the hour reaches back to that day.
    landed_on = change.column("partition_date")[0].as_py()
    assert (landed_on - last_sold).days > JOIN_DAYS + 2, (landed_on, last_sold)
    assert hourly.insert_new(LEVELS, change, ["record_hash"], partition_by="partition_date") == 1
    full = copy_lake(hourly, tmp_path / "full")

    if costs_built_first:
        build(hourly, select=COSTS)
    result = build_incremental(hourly)
    assert result.mode == "incremental" and not result.blocked
    assert not any(r.whole for r in result.runs if r.ref == LINES), "a cost change rebuilt every day of sales"
    new_cost = old_cost.column("unit_cost")[0].as_py() + RAISE
    sold = hourly.query(f"SELECT DISTINCT unit_cost FROM {LINES} WHERE sku = $sku", [LINES], {"sku": sku})
    assert sold.column("unit_cost").to_pylist() == [new_cost]

    assert not any(r.blocked for r in build(full))
    tables = full.tables("silver") + full.tables("gold")
    assert set(tables) == set(hourly.tables("silver") + hourly.tables("gold"))
    for ref in tables:
        expected, got = rows_without(full, ref, VOLATILE), rows_without(hourly, ref, VOLATILE)
        assert got == expected, f"{ref}: the hourly build differs from a full build of the same bronze"
