"""The on-time rate over generated businesses: orders with and without a promise, shipped on time, late, in several
parcels or not at all, promises falling exactly on a parcel or on the data's clock. Each variant is written as
silver Delta tables, gold.mart_fulfillment is built from them, and every (channel, day) must equal the
simulator's books (``sim.ledger.promises``), which judge the same orders in Python."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from retreasure.engine.build import build
from retreasure.lake import Lake, TableRef
from retreasure_sim.ledger import Promises, data_clock, promises
from retreasure_sim.model import Fulfillment, Order, Truth

MART = TableRef("gold", "mart_fulfillment")
ORDERS, FULFILLMENTS = TableRef("silver", "orders"), TableRef("silver", "fulfillments")
START = datetime(2025, 3, 1, tzinfo=UTC)
# Whole hours over a few days: coarse on purpose, so that promises, parcels and the clock often coincide.
HOURS = st.integers(min_value=0, max_value=96)


@dataclass(frozen=True)
class Planned:
    channel: str
    placed: int  # hours after START
    promise: int | None  # hours after placing; None: no promise on the wire
    parcels: tuple[int, ...]  # hours after placing


PLANNED = st.builds(
    Planned,
    channel=st.sampled_from(["shopify", "ebay", "etsy", "pos"]),
    placed=HOURS,
    promise=st.none() | st.integers(min_value=0, max_value=72),
    parcels=st.lists(st.integers(min_value=0, max_value=96), max_size=3).map(tuple),
)


def _order(n: int, plan: Planned) -> Order:
    placed = START + timedelta(hours=plan.placed)
    store = plan.channel == "pos"
    ship_by = None if store or plan.promise is None else placed + timedelta(hours=plan.promise)
    zero = Decimal(0)
    return Order(
        f"O{n:07d}", plan.channel, str(n), "S1" if store else None, None, None, None, placed, "EUR",
        zero, zero, zero, zero, zero, zero, "seller", "DE", "", None, ship_by, None if store else "DE", placed,
    )  # fmt: skip


def _truth(plans: list[Planned]) -> Truth:
    truth = Truth(START.date(), START.date() + timedelta(days=8), 0, 1.0)
    for n, plan in enumerate(plans, start=1):
        order = _order(n, plan)
        truth["orders"].append(order)
        if plan.channel == "pos":
            continue  # handed over at the till
        for k, hours in enumerate(plan.parcels):
            shipped = order.created_at + timedelta(hours=hours)
            truth["fulfillments"].append(Fulfillment(f"F{n:05d}{k}", n * 10 + k, order.order_id, shipped, None, "", ""))
    return truth


def _silver(lake: Lake, truth: Truth) -> None:
    """The columns of silver.orders and silver.fulfillments the mart reads, as silver types them."""
    orders = truth["orders"]
    lake.overwrite(
        ORDERS,
        pa.table(
            {
                "order_key": [f"{o.channel}:{o.channel_order_id}" for o in orders],
                "channel": [o.channel for o in orders],
                "order_ts": pa.array([o.created_at for o in orders], pa.timestamp("us", tz="UTC")),
                "order_date": pa.array([o.created_at.date() for o in orders], pa.date32()),
                "ship_by_ts": pa.array([o.ship_by for o in orders], pa.timestamp("us", tz="UTC")),
            }
        ),
        partition_by=["order_date"],
    )
    key = {o.order_id: f"{o.channel}:{o.channel_order_id}" for o in orders}
    parcels = truth["fulfillments"]
    lake.overwrite(
        FULFILLMENTS,
        pa.table(
            {
                "fulfillment_key": [f.fulfillment_id for f in parcels],
                "order_key": pa.array([key[f.order_id] for f in parcels], pa.string()),
                "shipped_ts": pa.array([f.shipped_at for f in parcels], pa.timestamp("us", tz="UTC")),
                "shipped_date": pa.array([f.shipped_at.date() for f in parcels], pa.date32()),
                "delivered_ts": pa.array([None] * len(parcels), pa.timestamp("us", tz="UTC")),
            }
        ),
        partition_by=["shipped_date"],
    )


def _mart(truth: Truth) -> tuple[dict[tuple[str, date], Promises], set[datetime], list[dict]]:
    with tempfile.TemporaryDirectory() as root:
        lake = Lake(root)
        _silver(lake, truth)
        runs = build(lake, select={MART})
        assert [str(r.ref) for r in runs if r.blocked] == []
        mart = lake.query(f"SELECT * FROM {MART}", [MART]).to_pylist()
    got = {
        (r["channel"], r["order_date"]): Promises(
            r["shipped_on_time"], r["shipped_late"], r["overdue_unshipped"], r["orders_pending"]
        )
        for r in mart
    }
    return got, {r["judged_at"] for r in mart}, mart


@given(st.lists(PLANNED, min_size=1, max_size=25).filter(lambda plans: any(p.channel != "pos" for p in plans)))
def test_every_promise_is_judged_as_the_books_judge_it(plans: list[Planned]) -> None:
    truth = _truth(plans)
    expected = {k: p for k, p in promises(truth).items() if k[0] != "pos"}
    got, clocks, mart = _mart(truth)
    assert clocks == {data_clock(truth)}
    # A (channel, day) whose orders all lack a promise is in the mart with every count at zero.
    assert {k: p for k, p in got.items() if p != Promises()} == {k: p for k, p in expected.items() if p != Promises()}
    for r in mart:
        day = expected.get((r["channel"], r["order_date"]), Promises())
        rate = day.on_time_rate
        assert r["on_time_rate"] == (None if rate is None else round(rate, 4))
        assert r["late_orders"] == day.late
        # Overdue orders not shipped make a day less than perfect, whatever its shipped orders did.
        if day.overdue_unshipped:
            assert r["on_time_rate"] is not None and r["on_time_rate"] < 1


def test_an_order_shipped_on_its_promise_is_on_time_and_one_due_at_the_clock_is_pending() -> None:
    """The two edges: a parcel leaving exactly at ship-by keeps the promise; a promise that falls exactly on the
    data's clock is not broken yet."""
    plans = [
        Planned("ebay", placed=0, promise=24, parcels=(24,)),  # on time, to the second
        Planned("etsy", placed=0, promise=48, parcels=()),  # due at the clock below: pending
        Planned("shopify", placed=0, promise=12, parcels=()),  # overdue: late
        Planned("shopify", placed=48, promise=None, parcels=()),  # the newest order: the clock, 48 h after START
    ]
    got, clocks, _ = _mart(_truth(plans))
    assert clocks == {START + timedelta(hours=48)}
    day = START.date()
    assert got[("ebay", day)] == Promises(on_time=1)
    assert got[("etsy", day)] == Promises(pending=1)
    assert got[("shopify", day)] == Promises(overdue_unshipped=1)
