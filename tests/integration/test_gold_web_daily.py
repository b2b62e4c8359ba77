"""The web shop by day (gold.mart_web_daily, gold.mart_web_products_daily: what real-time serving reads) equals the
simulator's truth, every fault switched on. The truth side walks the Truth object in Python; only the ECB rate
lookup (``Rates``) is shared with the simulator's books."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

import pytest

from retreasure.lake import Lake
from retreasure_sim.ledger import Rates
from retreasure_sim.model import Truth


def _day_of(at: datetime) -> date:
    return at.date()


def truth_days(truth: Truth) -> dict[date, dict[str, object]]:
    """Per UTC day: sessions started and converted, orders completed (by their order_completed event) and their
    net sales in EUR at that day's rate, the funnel's events, payments, and the newest event."""
    rates = Rates(truth)
    orders = {o.order_id: o for o in truth["orders"]}
    days: dict[date, dict[str, object]] = defaultdict(
        lambda: {
            "sessions": 0,
            "converted_sessions": 0,
            "orders": 0,
            "revenue": Decimal("0.00"),
            "events": 0,
            "page_views": 0,
            "product_views": 0,
            "carts": 0,
            "checkouts": 0,
            "transactions": 0,
            "newest_event_ts": None,
        }
    )
    counted = {"page_view": "page_views", "product_viewed": "product_views", "product_added": "carts"}
    counted["checkout_started"] = "checkouts"
    for s in truth["sessions"]:
        day = days[_day_of(s.started_at)]
        day["sessions"] += 1  # type: ignore[operator]
        day["converted_sessions"] += s.converted  # type: ignore[operator]
    for e in truth["web_events"]:
        day = days[_day_of(e.at)]
        day["events"] += 1  # type: ignore[operator]
        if e.name in counted:
            day[counted[e.name]] += 1  # type: ignore[operator]
        if e.name == "order_completed":
            order = orders[e.order_id or ""]
            day["orders"] += 1  # type: ignore[operator]
            net = order.subtotal - order.discount
            day["revenue"] += rates.to_base(net, order.currency, _day_of(e.at))  # type: ignore[operator]
        day["newest_event_ts"] = max(e.at, day["newest_event_ts"] or e.at)  # type: ignore[type-var]
    for p in truth["payments"]:
        day = days[_day_of(p.at)]
        day["transactions"] += 1  # type: ignore[operator]
        day["newest_event_ts"] = max(p.at, day["newest_event_ts"] or p.at)  # type: ignore[type-var]
    return dict(days)


COLUMNS = ("sessions", "converted_sessions", "orders", "revenue", "events", "page_views", "product_views", "carts")
COLUMNS += ("checkouts", "transactions", "newest_event_ts")


def test_every_day_equals_the_truth(gold_lake: tuple[Truth, Lake]) -> None:
    truth, lake = gold_lake
    expected = truth_days(truth)
    mart = {r["day"]: r for r in lake.query("SELECT * FROM gold.mart_web_daily").to_pylist()}
    assert set(mart) == set(expected)
    for column in COLUMNS:
        assert {d: r[column] for d, r in mart.items()} == {d: e[column] for d, e in expected.items()}, column
    assert sum(r["orders"] for r in mart.values()) > 10 and len({r["revenue"] for r in mart.values()}) > 5
    for r in mart.values():
        rate = round(Decimal(r["converted_sessions"]) / r["sessions"], 4) if r["sessions"] else None
        assert r["conversion_rate"] == rate


def test_the_real_time_clock_is_the_newest_web_event_or_payment(gold_lake: tuple[Truth, Lake]) -> None:
    truth, lake = gold_lake
    newest = max([e.at for e in truth["web_events"]] + [p.at for p in truth["payments"]])
    assert lake.query("SELECT max(newest_event_ts) AS at FROM gold.mart_web_daily").to_pylist()[0]["at"] == newest


def test_product_views_and_carts_per_day_equal_the_truth(gold_lake: tuple[Truth, Lake]) -> None:
    truth, lake = gold_lake
    sku = {p.product_id: p.sku for p in truth["products"]}
    views: dict[tuple[date, str], int] = defaultdict(int)
    carts: dict[tuple[date, str], int] = defaultdict(int)
    for e in truth["web_events"]:
        if e.name == "product_viewed":
            views[(_day_of(e.at), sku[e.product_id or ""])] += 1
        elif e.name == "product_added":
            carts[(_day_of(e.at), sku[e.product_id or ""])] += 1
    mart = lake.query("SELECT day, product_sku, product_views, carts FROM gold.mart_web_products_daily").to_pylist()
    assert {(r["day"], r["product_sku"]): r["product_views"] for r in mart if r["product_views"]} == dict(views)
    assert {(r["day"], r["product_sku"]): r["carts"] for r in mart if r["carts"]} == dict(carts)


@pytest.mark.parametrize("name", ["mart_web_daily", "mart_web_products_daily"])
def test_a_day_rebuilt_alone_equals_the_full_build(gold_lake: tuple[Truth, Lake], tmp_path, name: str) -> None:
    """The micro-build's case: one day's partition rebuilt on its own gives the rows the full build gave."""
    import shutil

    from retreasure.engine.build import build
    from retreasure.lake import TableRef

    ref = TableRef("gold", name)
    lake = Lake(shutil.copytree(gold_lake[1].uri, tmp_path / "lake"))
    day = lake.query(f"SELECT max(day) AS d FROM {ref}").to_pylist()[0]["d"]
    sql = f"SELECT * FROM {ref} WHERE day = $day ORDER BY ALL"
    before = lake.query(sql, params={"day": day}).to_pylist()
    runs = build(lake, select=[ref], start=day, end=day)
    assert [r.partitions for r in runs] == [[day]]
    assert lake.query(sql, params={"day": day}).to_pylist() == before and before
