"""Cost of goods, gross margin, the inventory marts and the sales marts by store and category equal the
simulator's books, with every fault switched on. Expected figures come from the truth (retreasure_sim/ledger.py and the
Python below), never from the SQL."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from retreasure.engine.build import build
from retreasure.lake import Lake, TableRef
from retreasure.serving.kpis import summary
from retreasure_sim.ledger import Books, Rates, books
from retreasure_sim.model import Truth

CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def ledger(gold_lake: tuple[Truth, Lake]) -> Books:
    return books(gold_lake[0])


def rows(lake: Lake, sql: str) -> list[dict[str, Any]]:
    return lake.query(sql).to_pylist()


def location_key(location_id: str) -> str:
    """The sim's location as gold names it: the stores by code, the warehouse by its Shopify location."""
    return "shopify:1" if location_id == "WH" else f"pos:{location_id}"


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """100 * part / whole to 2 decimals, half away from zero (ROUND_HALF_UP rounds magnitudes)."""
    return None if whole == 0 else (100 * part / whole).quantize(CENT, rounding=ROUND_HALF_UP)


def test_cost_of_goods_and_gross_margin_per_month_equal_the_books(gold_lake: tuple[Truth, Lake], ledger: Books) -> None:
    truth, lake = gold_lake
    mart = {(r["month"], r["channel"]): r for r in rows(lake, "SELECT * FROM gold.mart_finance")}
    assert {k: r["cost_of_goods"] for k, r in mart.items()} == dict(ledger.cost_of_goods_by_month_channel)
    margin = {
        k: ledger.net_revenue_by_month_channel[k] - cost for k, cost in ledger.cost_of_goods_by_month_channel.items()
    }
    assert {k: r["gross_margin"] for k, r in mart.items()} == margin
    assert {k: r["gross_margin_pct"] for k, r in mart.items()} == {
        k: percent(m, ledger.net_revenue_by_month_channel[k]) for k, m in margin.items()
    }
    assert sum(r["gross_margin"] for r in mart.values()) == ledger.gross_margin
    assert all(r["lines_without_cost"] == 0 for r in mart.values())
    # Returns were restocked in the books, so some cost came back: the reversal is exercised.
    cost = {p.sku: p.cost for p in truth["products"]}
    assert ledger.cost_of_goods < sum(line.quantity * cost[line.sku] for line in truth["order_lines"])


def test_every_sold_line_carries_its_unit_cost_from_a_wire(gold_lake: tuple[Truth, Lake]) -> None:
    truth, lake = gold_lake
    products = {p.sku: p for p in truth["products"]}
    dim = {r["sku"]: r for r in rows(lake, "SELECT sku, unit_cost, cost_source FROM gold.dim_product")}
    assert {sku: r["unit_cost"] for sku, r in dim.items()} == {sku: p.cost for sku, p in products.items()}
    # Warehouse goods' cost comes from Shopify's inventory item, store-only goods' from the stores' ERP export.
    assert {sku: r["cost_source"] for sku, r in dim.items()} == {
        sku: "shopify" if p.location_id == "WH" else "pos" for sku, p in products.items()
    }
    lines = rows(
        lake,
        "SELECT channel, sum(cost_of_goods) AS c, count(cost_of_goods) AS n FROM gold.fct_order_lines GROUP BY ALL",
    )
    orders = {o.order_id: o.channel for o in truth["orders"]}
    want: dict[str, Decimal] = defaultdict(Decimal)
    for line in truth["order_lines"]:
        want[orders[line.order_id]] += products[line.sku].cost * line.quantity
    assert {r["channel"]: r["c"] for r in lines} == dict(want)
    assert sum(r["n"] for r in lines) == len(truth["order_lines"])


def test_inventory_per_day_and_location_equals_the_books(gold_lake: tuple[Truth, Lake], ledger: Books) -> None:
    _, lake = gold_lake
    mart = {(r["day"], r["location_key"]): r for r in rows(lake, "SELECT * FROM gold.mart_inventory")}
    want = {(day, location_key(loc)): s for (day, loc), s in ledger.stock.items()}
    assert set(mart) == set(want)
    for key, s in want.items():
        r = mart[key]
        got = (r["units_on_hand"], r["value_on_hand"], r["cost_of_goods"], r["unique_items_on_hand"])
        assert got == (s.units, s.value, s.cost_of_goods, s.unique_on_hand), key
        assert r["unique_items_sold"] == s.unique_sold, key
    # The trailing-30-day ratios, recomputed from the books with the definitions of the contract.
    for loc in {k[1] for k in want}:
        days = sorted(d for d, k in want if k == loc)
        for i, day in enumerate(days):
            window = [want[(d, loc)] for d in days[max(0, i - 29) : i + 1]]
            cogs = sum((s.cost_of_goods for s in window), Decimal(0))
            avg_value = sum((s.value for s in window), Decimal(0)) / len(window)
            sold = sum(s.unique_sold for s in window)
            r = mart[(day, loc)]
            assert r["cost_of_goods_30d"] == cogs
            # Exact, rounded half away from zero: the same on every engine (no average of doubles).
            assert r["avg_value_30d"] == avg_value.quantize(Decimal("0.01"), ROUND_HALF_UP)
            if avg_value:
                turnover = (cogs * len(window) / sum((s.value for s in window), Decimal(0))).quantize(
                    Decimal("0.0001"), ROUND_HALF_UP
                )
                assert r["inventory_turnover_30d"] == turnover
            else:
                assert r["inventory_turnover_30d"] is None
            if cogs > 0:
                assert abs(r["days_on_hand"] - want[(day, loc)].value * len(window) / cogs) <= Decimal("0.05")
            through = Decimal(sold) / (sold + want[(day, loc)].unique_on_hand)
            assert abs(r["unique_sell_through_30d"] - through) <= Decimal("0.00005") + Decimal("1e-9")
    # The same cost of goods as the finance mart, counted from the stock side.
    total = rows(lake, "SELECT sum(cost_of_goods) AS v FROM gold.mart_inventory")[0]["v"]
    assert total == ledger.cost_of_goods


def test_aged_stock_buckets_follow_the_buying_in_day(gold_lake: tuple[Truth, Lake]) -> None:
    truth, lake = gold_lake
    mart = rows(lake, "SELECT * FROM gold.mart_inventory")
    last = max(r["day"] for r in mart)
    products = {p.product_id: p for p in truth["products"]}
    on_hand: dict[str, int] = defaultdict(int)
    for m in truth["inventory_movements"]:
        if m.at.date() <= last:
            on_hand[m.product_id] += m.change
    buckets: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for pid, units in on_hand.items():
        p = products[pid]
        age = (last - p.acquired_at.date()).days
        buckets[location_key(p.location_id)][(age > 30) + (age > 90) + (age > 180)] += units
    got = {
        r["location_key"]: [
            r["units_aged_0_30"],
            r["units_aged_31_90"],
            r["units_aged_91_180"],
            r["units_aged_over_180"],
        ]
        for r in mart
        if r["day"] == last
    }
    assert got == dict(buckets)
    assert all(sum(b) > 0 for b in buckets.values()) and any(b[3] for b in buckets.values())


def test_stock_aging_lists_what_is_on_hand_with_its_last_sale(gold_lake: tuple[Truth, Lake]) -> None:
    truth, lake = gold_lake
    aging = {(r["location_key"], r["sku"]): r for r in rows(lake, "SELECT * FROM gold.mart_stock_aging")}
    as_of = {r["as_of_date"] for r in aging.values()}
    assert len(as_of) == 1
    day = as_of.pop()
    on_hand: dict[str, int] = defaultdict(int)
    for m in truth["inventory_movements"]:
        if m.at.date() <= day:
            on_hand[m.product_id] += m.change
    last_sale: dict[str, date] = {}
    for o in truth["orders"]:
        for line in o.lines:
            last_sale[line.sku] = max(last_sale.get(line.sku, o.created_at.date()), o.created_at.date())
    want = {}
    for p in truth["products"]:
        if on_hand[p.product_id] > 0:
            idle = (day - last_sale.get(p.sku, p.acquired_at.date())).days
            want[(location_key(p.location_id), p.sku)] = (
                on_hand[p.product_id],
                on_hand[p.product_id] * p.cost,
                (day - p.acquired_at.date()).days,
                last_sale.get(p.sku),
                "no_sale_90d" if idle > 90 else None,
            )
    got = {
        k: (r["on_hand"], r["value_at_cost"], r["age_days"], r["last_sold_date"], r["relist_reason"])
        for k, r in aging.items()
    }
    assert got == want
    assert any(v[4] for v in want.values()) and any(v[4] is None for v in want.values())


def test_sales_by_store_and_category_add_up_to_the_books(gold_lake: tuple[Truth, Lake], ledger: Books) -> None:
    truth, lake = gold_lake
    rates = Rates(truth)
    category = {p.sku: p.category if p.location_id == "WH" else "uncategorised" for p in truth["products"]}
    gross: dict[tuple[date, str, str | None, str], Decimal] = defaultdict(Decimal)
    orders: dict[tuple[date, str, str | None], int] = defaultdict(int)
    shipping: dict[tuple[date, str, str | None], Decimal] = defaultdict(Decimal)
    for o in truth["orders"]:
        day = o.created_at.date()
        orders[(day, o.channel, o.store_id)] += 1
        shipping[(day, o.channel, o.store_id)] += rates.to_base(o.shipping, o.currency, day)
        for line in o.lines:
            gross[(day, o.channel, o.store_id, category[line.sku])] += rates.to_base(
                line.unit_price * line.quantity, o.currency, day
            )
    mart = rows(lake, "SELECT * FROM gold.mart_sales_daily")
    assert {
        (r["day"], r["channel"], r["store_id"], r["category"]): r["gross_sales"] for r in mart if r["gross_sales"]
    } == dict(gross)
    per_store = rows(
        lake,
        "SELECT day, channel, store_id, sum(orders) AS orders, sum(shipping) AS shipping FROM gold.mart_sales_daily "
        "GROUP BY ALL HAVING sum(orders) > 0",
    )
    assert {(r["day"], r["channel"], r["store_id"]): r["orders"] for r in per_store} == dict(orders)
    assert {(r["day"], r["channel"], r["store_id"]): r["shipping"] for r in per_store} == dict(shipping)
    assert sum(r["net_revenue"] for r in mart) == ledger.net_revenue
    assert len({r["store_id"] for r in mart}) == 1 + len(truth["stores"]) and len({r["category"] for r in mart}) > 3
    for r in mart:
        if r["orders"]:
            sales = r["net_sales"] + r["shipping"]
            assert r["aov"] == (sales / r["orders"]).quantize(CENT, rounding=ROUND_HALF_UP)


def test_monthly_sales_are_the_daily_sums(gold_lake: tuple[Truth, Lake], ledger: Books) -> None:
    _, lake = gold_lake
    monthly = rows(lake, "SELECT * FROM gold.mart_sales_monthly")
    assert sum(r["orders"] for r in monthly) == ledger.orders
    assert sum(r["net_revenue"] for r in monthly) == ledger.net_revenue
    assert {(r["month"], r["channel"]): r["net_revenue"] for r in monthly} == dict(ledger.net_revenue_by_month_channel)


def test_growth_compares_each_month_with_the_calendar_month_before(tmp_path: Path) -> None:
    """mart_sales_monthly over a hand-made daily mart spanning three months, one channel missing a month."""
    lake = Lake(tmp_path / "lake")
    days = {
        (date(2025, 1, 5), "shopify"): ("100.00", 2),
        (date(2025, 1, 20), "ebay"): ("80.01", 1),
        (date(2025, 2, 3), "shopify"): ("150.00", 3),
        (date(2025, 2, 28), "shopify"): ("-30.00", 0),
        (date(2025, 3, 1), "shopify"): ("0.10", 1),
        (date(2025, 3, 9), "ebay"): ("40.00", 1),
    }
    table = {name: [] for name in ("day", "channel", "orders", "units", "gross_sales", "discounts", "refunds")}
    table |= {"net_revenue": [], "shipping": []}
    for (day, channel), (net, n) in days.items():
        value = Decimal(net)
        for name, v in zip(
            table,
            (day, channel, n, n, max(value, Decimal(0)), Decimal(0), max(-value, Decimal(0)), value, Decimal("4.95")),
            strict=True,
        ):
            table[name].append(v)
    money = pa.decimal128(18, 2)
    schema = pa.schema(
        [("day", pa.date32()), ("channel", pa.string()), ("orders", pa.int32()), ("units", pa.int64())]
        + [(name, money) for name in ("gross_sales", "discounts", "refunds", "net_revenue", "shipping")]
    )
    lake.overwrite(TableRef("gold", "mart_sales_daily"), pa.Table.from_pydict(table, schema=schema))
    runs = build(lake, select={TableRef("gold", "mart_sales_monthly")})
    assert [str(r.ref) for r in runs if r.blocked] == []

    net: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for (day, channel), (value, _) in days.items():
        net[(day.replace(day=1), channel)] += Decimal(value)
    want = {}
    for (month, channel), value in net.items():
        before = net.get(((month - timedelta(days=1)).replace(day=1), channel))
        growth = None if not before else (100 * (value - before) / abs(before)).quantize(CENT, rounding=ROUND_HALF_UP)
        want[(month, channel)] = (value, before, growth)
    got = {
        (r["month"], r["channel"]): (r["net_revenue"], r["net_revenue_prev_month"], r["growth_pct"])
        for r in rows(lake, "SELECT * FROM gold.mart_sales_monthly")
    }
    assert got == want
    assert got[(date(2025, 3, 1), "ebay")][1] is None  # no sales in February: no base, no growth


def test_summary_reports_margin_and_turnover_from_the_marts(gold_lake: tuple[Truth, Lake], ledger: Books) -> None:
    _, lake = gold_lake
    got = dict(summary(lake))
    assert got["Gross margin (EUR)"] == ledger.gross_margin
    assert Decimal(str(got["Gross margin (%)"])) == percent(ledger.gross_margin, ledger.net_revenue)
    days = {day for day, _ in ledger.stock}
    average = sum((s.value for s in ledger.stock.values()), Decimal(0)) / len(days)
    turnover = sum((s.cost_of_goods for s in ledger.stock.values()), Decimal(0)) / average
    assert abs(Decimal(str(got["Inventory turnover"])) - turnover) <= Decimal("0.00005") + Decimal("1e-9")
