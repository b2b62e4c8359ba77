"""The simulator's own books: headline figures computed straight from the truth, with the rules that
docs/kpis.md writes down. Reconciliation tests compare gold with these, to the cent.

This is the test oracle, written independently of the SQL models on purpose: it walks the truth in Python.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from retreasure_sim.model import Order, Refund, Truth

CENT = Decimal("0.01")


class Rates:
    """ECB rates per EUR, with a closed day's rate carried forward from the last business day."""

    def __init__(self, truth: Truth) -> None:
        self.published: dict[tuple[date, str], Decimal] = {(r.date, r.currency): r.rate for r in truth["fx_rates"]}
        self.first = min(r.date for r in truth["fx_rates"])

    def rate(self, day: date, currency: str) -> Decimal:
        if currency == "EUR":
            return Decimal(1)
        probe = day
        while probe >= self.first:
            found = self.published.get((probe, currency))
            if found is not None:
                return found
            probe -= timedelta(days=1)
        raise KeyError(f"no {currency} rate on or before {day}")

    def to_base(self, amount: Decimal, currency: str, day: date) -> Decimal:
        """EUR at the day's rate, rounded half away from zero to the cent (per money field, per row)."""
        return (amount / self.rate(day, currency)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class StockDay:
    """A location's stock at the end of a day, and that day's outflow, at the products' unit cost."""

    units: int = 0
    value: Decimal = Decimal(0)  # units on hand x unit cost, EUR
    unique_on_hand: int = 0  # one-of-a-kind items on hand
    unique_sold: int = 0  # one-of-a-kind items sold that day, less those restocked
    cost_of_goods: Decimal = Decimal(0)  # (units sold - units restocked) x unit cost, that day


@dataclass
class Promises:
    """The online orders of a channel and day that carry a promised dispatch time, judged at a clock.

    Each order is in exactly one bucket: shipped (by its first parcel) on time or late; not shipped and past its
    promise (overdue: late too); not shipped and still within it (pending: not judged yet).
    """

    on_time: int = 0
    shipped_late: int = 0
    overdue_unshipped: int = 0
    pending: int = 0

    @property
    def late(self) -> int:
        return self.shipped_late + self.overdue_unshipped

    @property
    def judged(self) -> int:
        return self.on_time + self.late

    @property
    def on_time_rate(self) -> Decimal | None:
        """On time / judged; None while every promise is pending."""
        return Decimal(self.on_time) / Decimal(self.judged) if self.judged else None


def data_clock(truth: Truth) -> datetime:
    """The data's own clock: the newest order placed or parcel shipped."""
    return max([o.created_at for o in truth["orders"]] + [f.shipped_at for f in truth["fulfillments"]])


def promises(truth: Truth, clock: datetime | None = None) -> dict[tuple[str, date], Promises]:
    """Per (channel, order day): the promises of the orders placed by ``clock`` (default: the data's clock),
    judged with what had happened by then."""
    at = clock or data_clock(truth)
    first_parcel: dict[str, datetime] = {}
    for f in truth["fulfillments"]:
        if f.shipped_at <= at:
            first_parcel[f.order_id] = min(f.shipped_at, first_parcel.get(f.order_id, f.shipped_at))
    out: dict[tuple[str, date], Promises] = defaultdict(Promises)
    for order in truth["orders"]:
        if order.ship_by is None or order.created_at > at:
            continue
        day = out[(order.channel, order.created_at.date())]
        shipped = first_parcel.get(order.order_id)
        if shipped is not None:
            if shipped > order.ship_by:
                day.shipped_late += 1
            else:
                day.on_time += 1
        elif order.ship_by < at:
            day.overdue_unshipped += 1
        else:
            day.pending += 1
    return dict(out)


def names_its_line(order: Order, refund: Refund) -> bool:
    """Whether the channel's refund says which line came back. Etsy's refund is one tax-inclusive amount, which
    names a line only when exactly one line of the receipt is worth that much; every other channel names it."""
    if order.channel != "etsy":
        return True
    worth = [line.unit_price * line.quantity - line.discount + line.tax for line in order.lines]
    return worth.count(refund.amount + refund.tax) == 1


@dataclass
class Books:
    orders: int = 0
    orders_by_channel: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    gross: Decimal = Decimal(0)  # lines' price x quantity, EUR
    discounts: Decimal = Decimal(0)
    shipping: Decimal = Decimal(0)
    refunds: Decimal = Decimal(0)  # value refunded before tax, EUR at the refund date
    tax_by_party: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))  # net of refunds
    gross_by_day_channel: dict[tuple[date, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    sessions: int = 0
    converted_sessions: int = 0
    orders_to_ship: int = 0
    orders_shipped: int = 0
    # Ship-by promises per (channel, order day), judged at the data's clock.
    promises_by_channel_day: dict[tuple[str, date], Promises] = field(default_factory=dict)
    # Cost of goods, EUR: booked in the order's month, reversed in the refund's month for returned (restocked)
    # goods when the refund names its line on the wire.
    cost_of_goods_by_month_channel: dict[tuple[date, str], Decimal] = field(
        default_factory=lambda: defaultdict(Decimal)
    )
    net_revenue_by_month_channel: dict[tuple[date, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    # Stock per (day, location id) at the end of each day from the first sale to the last simulated day.
    stock: dict[tuple[date, str], StockDay] = field(default_factory=dict)

    @property
    def cost_of_goods(self) -> Decimal:
        return sum(self.cost_of_goods_by_month_channel.values(), Decimal(0))

    @property
    def gross_margin(self) -> Decimal:
        """Net revenue less cost of goods."""
        return self.net_revenue - self.cost_of_goods

    @property
    def net_revenue(self) -> Decimal:
        """Gross sales less discounts and refunds, before tax and shipping."""
        return self.gross - self.discounts - self.refunds

    @property
    def conversion_rate(self) -> Decimal:
        return Decimal(self.converted_sessions) / Decimal(self.sessions) if self.sessions else Decimal(0)

    @property
    def fulfillment_rate(self) -> Decimal:
        return Decimal(self.orders_shipped) / Decimal(self.orders_to_ship) if self.orders_to_ship else Decimal(0)

    @property
    def promises_kept(self) -> Promises:
        """Every channel and day's promises together."""
        total = Promises()
        for day in self.promises_by_channel_day.values():
            total.on_time += day.on_time
            total.shipped_late += day.shipped_late
            total.overdue_unshipped += day.overdue_unshipped
            total.pending += day.pending
        return total


def books(truth: Truth) -> Books:
    """Every headline figure, from the truth alone."""
    rates = Rates(truth)
    out = Books()
    orders = {o.order_id: o for o in truth["orders"]}
    shipped = {f.order_id for f in truth["fulfillments"]}
    for order in orders.values():
        day, cur = order.created_at.date(), order.currency
        out.orders += 1
        out.orders_by_channel[order.channel] += 1
        for line in order.lines:
            gross = rates.to_base(line.unit_price * line.quantity, cur, day)
            out.gross += gross
            out.gross_by_day_channel[(day, order.channel)] += gross
            out.discounts += rates.to_base(line.discount, cur, day)
        out.shipping += rates.to_base(order.shipping, cur, day)
        out.tax_by_party[order.tax_party] += rates.to_base(order.tax, cur, day)
        if order.channel != "pos":
            out.orders_to_ship += 1
            out.orders_shipped += order.order_id in shipped
    for refund in truth["refunds"]:
        order = orders[refund.order_id]
        day = refund.created_at.date()
        out.refunds += rates.to_base(refund.amount, order.currency, day)
        out.tax_by_party[order.tax_party] -= rates.to_base(refund.tax, order.currency, day)
    out.sessions = len(truth["sessions"])
    out.converted_sessions = sum(s.converted for s in truth["sessions"])
    out.promises_by_channel_day = promises(truth)
    _margins(truth, rates, out)
    out.stock = stock_by_day(truth)
    return out


def _margins(truth: Truth, rates: Rates, out: Books) -> None:
    """Net revenue and cost of goods per month and channel."""
    cost = {p.product_id: p.cost for p in truth["products"]}
    orders = {o.order_id: o for o in truth["orders"]}
    for order in orders.values():
        day, cur = order.created_at.date(), order.currency
        key = (day.replace(day=1), order.channel)
        for line in order.lines:
            out.net_revenue_by_month_channel[key] += rates.to_base(line.unit_price * line.quantity, cur, day)
            out.net_revenue_by_month_channel[key] -= rates.to_base(line.discount, cur, day)
            out.cost_of_goods_by_month_channel[key] += cost[line.product_id] * line.quantity
    for refund in truth["refunds"]:
        order = orders[refund.order_id]
        day = refund.created_at.date()
        key = (day.replace(day=1), order.channel)
        out.net_revenue_by_month_channel[key] -= rates.to_base(refund.amount, order.currency, day)
        if names_its_line(order, refund):
            line = next(x for x in order.lines if x.line_no == refund.line_no)
            out.cost_of_goods_by_month_channel[key] -= cost[line.product_id] * refund.quantity


def stock_by_day(truth: Truth) -> dict[tuple[date, str], StockDay]:
    """Each location's end-of-day stock from the first sale to the last simulated day, from the movements."""
    products = {p.product_id: p for p in truth["products"]}
    moves = sorted(truth["inventory_movements"], key=lambda m: m.at)
    locations = {p.location_id for p in products.values()}
    first = min(o.created_at.date() for o in truth["orders"])
    on_hand: dict[str, int] = defaultdict(int)
    out: dict[tuple[date, str], StockDay] = {}
    i, day = 0, first
    while day <= truth.end:
        days = {loc: StockDay() for loc in locations}
        while i < len(moves) and moves[i].at.date() <= day:
            move, i = moves[i], i + 1
            on_hand[move.product_id] += move.change
            product = products[move.product_id]
            if move.at.date() == day and move.reason in ("sold", "restocked"):
                days[product.location_id].cost_of_goods -= product.cost * move.change
                days[product.location_id].unique_sold -= move.change if product.unique else 0
        for pid, units in on_hand.items():
            product, today = products[pid], days[products[pid].location_id]
            today.units += units
            today.value += units * product.cost
            today.unique_on_hand += units if product.unique else 0
        out.update({(day, loc): today for loc, today in days.items()})
        day += timedelta(days=1)
    return out
