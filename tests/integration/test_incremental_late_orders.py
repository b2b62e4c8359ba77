"""An order that lands after what it explains: a store's sale receipt exported days after the refund of one of its
lines, an eBay order delivered after its parcel's shipment. The refund (the shipment) cannot be booked without its
order: the hourly build that lands it holds it in quarantine with the reason, and the build that lands the order
brings it back on its own day (the refund's, the ship day), weeks after the order's. The lake then equals a full
build of the same bronze."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from retreasure.engine.build import build, build_incremental
from retreasure.lake import Lake, TableRef
from retreasure_sim.model import Truth
from tests.helpers import copy_lake, rows_without

VOLATILE = ("run_id",)
HELD_AT = ("run_id", "quarantined_at")  # which run held a row back, and when
DAILY = TableRef("gold", "mart_sales_daily")
LINES = TableRef("gold", "fct_order_lines")


@dataclass(frozen=True)
class LateOrder:
    """A fact row whose order arrives late: the gold fact and its key column and day, the gold row to hold back
    (chosen in the full build, its day well after its order's), and the bronze records that carry it and that
    carry its order (a predicate on ``raw``/``record_key`` with ``$id``, the channel's order id)."""

    fact: TableRef
    key: str
    day: str
    channel: str
    records: TableRef
    records_of: str
    order: TableRef
    order_of: str


CASES = {
    "refund-before-its-receipt": LateOrder(
        TableRef("gold", "fct_refunds"),
        "refund_key",
        "refund_date",
        "pos",
        TableRef("bronze", "pos_sales"),
        "split_part(record_key, '/', 1) = $id AND split_part(record_key, '/', 3) = 'refund'",
        TableRef("bronze", "pos_sales"),
        "split_part(record_key, '/', 1) = $id AND split_part(record_key, '/', 3) = 'sale'",
    ),
    "shipment-before-its-order": LateOrder(
        TableRef("gold", "fct_fulfillments"),
        "fulfillment_key",
        "shipped_date",
        "ebay",
        TableRef("bronze", "ebay_shipping_fulfillments"),
        "split_part(record_key, '/', 1) = $id",
        TableRef("bronze", "ebay_orders"),
        "json_extract_string(raw, '$.orderId') = $id",
    ),
}


def _latest_after_its_order(full: Lake, case: LateOrder) -> dict[str, object]:
    """The case's fact row (of its channel) that comes longest after its order's day, and that order's id."""
    sql = (
        f"SELECT {case.key} AS key, order_key, {case.day} AS day, order_date FROM {case.fact} "
        f"WHERE channel = $channel ORDER BY {case.day} - order_date DESC, {case.key} LIMIT 1"
    )
    row: dict[str, object] = full.query(sql, [case.fact], {"channel": case.channel}).to_pylist()[0]
    return row | {"id": str(row["order_key"]).split(":", 1)[1]}


def _records(lake: Lake, ref: TableRef, where: str, order_id: str) -> pa.Table:
    return lake.query(f"SELECT * FROM {ref} WHERE {where}", [ref], {"id": order_id})


def _without(lake: Lake, ref: TableRef, wheres: list[str], order_id: str) -> None:
    """Bronze as it stood before those records landed."""
    kept = " AND ".join(f"NOT coalesce(({w}), false)" for w in wheres)
    rest = lake.query(f"SELECT * FROM {ref} WHERE {kept}", [ref], {"id": order_id})
    lake.overwrite(ref, rest, partition_by=["partition_date"])


def _land(lake: Lake, ref: TableRef, records: pa.Table) -> None:
    """What an ingest run does: append the records bronze does not hold yet."""
    assert lake.insert_new(ref, records, ["record_hash"], partition_by="partition_date") == records.num_rows


def _held(lake: Lake, case: LateOrder, key: object) -> list[dict[str, object]]:
    quarantine = TableRef("quarantine", f"{case.fact.layer}_{case.fact.name}")
    if not lake.exists(quarantine):
        return []
    sql = f"SELECT rule, reason FROM {quarantine} WHERE json_extract_string(row_json, '$.{case.key}') = $key"
    return lake.query(sql, [quarantine], {"key": key}).to_pylist()


def _held_rows(lake: Lake, ref: TableRef) -> list[dict[str, object]]:
    """A quarantine table's rows, less which run held each back and when; none where it was never made."""
    return rows_without(lake, ref, HELD_AT) if lake.exists(ref) else []


def _facts(lake: Lake, case: LateOrder, key: object) -> list[dict[str, object]]:
    sql = f"SELECT {case.key}, order_date FROM {case.fact} WHERE {case.key} = $key"
    return lake.query(sql, [case.fact], {"key": key}).to_pylist()


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_row_whose_order_lands_later_is_held_then_placed_on_its_own_day(
    bronze_lake: tuple[Truth, Lake], gold_lake: tuple[Truth, Lake], tmp_path: Path, case: LateOrder
) -> None:
    full = gold_lake[1]  # every model built in full from the whole of bronze
    late = _latest_after_its_order(full, case)
    # After its order's day: a window of the order's day (its lookback goes back, never forward) does not reach it.
    assert late["day"] > late["order_date"], late  # type: ignore[operator]
    order_id = str(late["id"])

    hourly = copy_lake(bronze_lake[1], tmp_path / "hourly")
    records = _records(hourly, case.records, case.records_of, order_id)
    order = _records(hourly, case.order, case.order_of, order_id)
    assert records.num_rows and order.num_rows
    if case.records == case.order:
        _without(hourly, case.records, [case.records_of, case.order_of], order_id)
    else:
        _without(hourly, case.records, [case.records_of], order_id)
        _without(hourly, case.order, [case.order_of], order_id)
    first = build_incremental(hourly)
    assert first.mode == "full" and not first.blocked

    # The hour the refund (the shipment) lands, its order not yet: held back, with the reason, not dropped unseen.
    _land(hourly, case.records, records)
    held = build_incremental(hourly)
    assert held.mode == "incremental" and not held.blocked
    held_facts, held_back = _facts(hourly, case, late["key"]), _held(hourly, case, late["key"])

    # The hour the order lands: the row is placed on its own day, weeks after the order's.
    _land(hourly, case.order, order)
    placed = build_incremental(hourly)
    assert placed.mode == "incremental" and not placed.blocked
    assert _facts(hourly, case, late["key"]) == [{case.key: late["key"], "order_date": late["order_date"]}]
    assert not any(r.whole for r in placed.runs if r.ref == case.fact), "the late order rebuilt every day"

    tables = full.tables("silver") + full.tables("gold")
    assert set(tables) == set(hourly.tables("silver") + hourly.tables("gold"))
    for ref in tables:
        expected, got = rows_without(full, ref, VOLATILE), rows_without(hourly, ref, VOLATILE)
        assert got == expected, f"{ref}: the hourly builds differ from a full build of the same bronze"
    # The row held back was released when its order landed: the quarantine holds what a full build's holds.
    for ref in {*full.tables("quarantine"), *hourly.tables("quarantine")}:
        expected, got = _held_rows(full, ref), _held_rows(hourly, ref)
        assert got == expected, f"{ref}: the hourly builds hold back other rows than a full build"
    assert held_facts == []
    assert {(r["rule"], r["reason"]) for r in held_back} == {("order_landed", "violates order_date IS NOT NULL")}


def _corrected(lake: Lake, record_key: str, sku: str) -> pa.Table:
    """The newest bronze record of a store's sale line again, its SKU corrected and landed an hour after the
    newest record the table holds: what the next export brings when a till booked the wrong item."""
    sales = TableRef("bronze", "pos_sales")
    record = lake.query(
        f"SELECT * FROM {sales} WHERE record_key = $key ORDER BY ingested_at DESC LIMIT 1", [sales], {"key": record_key}
    ).to_pylist()[0]
    newest = lake.query(f"SELECT max(ingested_at) AS t FROM {sales}", [sales]).column("t")[0].as_py()
    payload = json.loads(record["raw"])
    payload["sku"] = sku
    raw = json.dumps(payload)
    landed_at = newest + timedelta(hours=1)
    record |= {"raw": raw, "record_hash": hashlib.sha256(raw.encode()).hexdigest(), "ingested_at": landed_at}
    return pa.Table.from_pylist([record], schema=lake.dataset(sales).schema)


def test_a_refunded_line_corrected_after_its_refund_moves_the_refund_too(
    gold_lake: tuple[Truth, Lake], tmp_path: Path
) -> None:
    refunds, products, lines = TableRef("gold", "fct_refunds"), TableRef("gold", "dim_product"), LINES
    hourly = copy_lake(gold_lake[1], tmp_path / "hourly")
    refund = hourly.query(
        f"SELECT line_key, refund_date, order_date FROM {refunds} WHERE channel = 'pos' AND line_key IS NOT NULL "
        "AND refund_date > order_date ORDER BY refund_key LIMIT 1",
        [refunds],
    ).to_pylist()[0]
    sold = (
        hourly.query(
            f"SELECT coalesce(p.category, '') AS category FROM {lines} l LEFT JOIN {products} p USING (sku) "
            "WHERE l.line_key = $key",
            [lines, products],
            {"key": refund["line_key"]},
        )
        .column("category")[0]
        .as_py()
    )
    other = hourly.query(
        f"SELECT sku, category FROM {products} WHERE category IS NOT NULL AND category <> $sold ORDER BY sku LIMIT 1",
        [products],
        {"sold": sold},
    ).to_pylist()[0]
    line_key = str(refund["line_key"]).removeprefix("pos:")
    _land(hourly, TableRef("bronze", "pos_sales"), _corrected(hourly, f"{line_key}/sale", other["sku"]))
    full = copy_lake(hourly, tmp_path / "full")

    result = build_incremental(hourly)
    assert result.mode == "incremental" and not result.blocked
    # The refund now sits on the corrected item's category, on its own day, a day the line's order day is not.
    on_refund_day = hourly.query(
        f"SELECT category FROM {DAILY} WHERE day = $day AND channel = 'pos' AND refunds > 0",
        [DAILY],
        {"day": refund["refund_date"]},
    )
    assert other["category"] in on_refund_day.column("category").to_pylist()

    assert not any(r.blocked for r in build(full))
    for ref in full.tables("silver") + full.tables("gold"):
        expected, got = rows_without(full, ref, VOLATILE), rows_without(hourly, ref, VOLATILE)
        assert got == expected, f"{ref}: the hourly build differs from a full build of the same bronze"
