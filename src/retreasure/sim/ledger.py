"""The simulator's own books: headline figures computed straight from the truth, with the rules that
docs/kpis.md writes down. Reconciliation tests compare gold with these, to the cent.

This is the test oracle, written independently of the SQL models on purpose: it walks the truth in Python.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from retreasure.sim.model import Truth

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
    return out
