"""What a channel can see of the truth at a moment: each order's state and each product's stock, as of a clock.

The fake servers share this, so that "updated since" filters, fulfillments and refunds appear exactly when
they happened, an incremental reader sees an order change over time as it would in production, and every
channel listing a product reports the same stock for it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from retreasure_sim.model import Customer, Fulfillment, Order, Product, Refund, Truth


@dataclass(slots=True)
class OrderState:
    """An order as a channel shows it at ``as_of``."""

    order: Order
    updated_at: datetime
    fulfillments: list[Fulfillment] = field(default_factory=list)
    delivered: dict[str, datetime] = field(default_factory=dict)  # fulfillment_id -> delivered_at
    refunds: list[Refund] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class Stock:
    """A product's stock as a channel shows it at some moment."""

    on_hand: int
    moved_at: datetime  # its latest movement
    state_since: datetime  # when it last came into stock or sold out (its first movement if never)


@dataclass(slots=True)
class StockHistory:
    """One product's stock over time: its movements' changes summed in time order."""

    at: list[datetime] = field(default_factory=list)
    on_hand: list[int] = field(default_factory=list)
    since: list[datetime] = field(default_factory=list)

    def add(self, at: datetime, change: int) -> None:
        """Append a movement; movements must come in (at, movement_id) order."""
        before = self.on_hand[-1] if self.on_hand else 0
        after = before + change
        same_state = bool(self.on_hand) and (before > 0) == (after > 0)
        self.at.append(at)
        self.on_hand.append(after)
        self.since.append(self.since[-1] if same_state else at)

    def as_of(self, clock: datetime) -> Stock | None:
        """The stock at the clock; None before the product's first movement (not yet bought in)."""
        i = bisect.bisect_right(self.at, clock)
        if i == 0:
            return None
        return Stock(self.on_hand[i - 1], self.at[i - 1], self.since[i - 1])


def stock_histories(truth: Truth, channel: str) -> dict[str, StockHistory]:
    """Stock histories of the products listed on a channel, by product id."""
    listed = {p.product_id for p in truth["products"] if channel in p.channels}
    histories: dict[str, StockHistory] = defaultdict(StockHistory)
    for move in sorted(truth["inventory_movements"], key=lambda m: (m.at, m.movement_id)):
        if move.product_id in listed:
            histories[move.product_id].add(move.at, move.change)
    return dict(histories)


class Timeline:
    """Indexes over the truth for fast "what changed in this window, as of now" questions."""

    def __init__(self, truth: Truth) -> None:
        self.truth = truth
        self.customers: dict[str, Customer] = {c.customer_id: c for c in truth["customers"]}
        self.products: dict[str, Product] = {p.product_id: p for p in truth["products"]}
        self.fulfillments: dict[str, list[Fulfillment]] = defaultdict(list)
        for f in truth["fulfillments"]:
            self.fulfillments[f.order_id].append(f)
        self.refunds: dict[str, list[Refund]] = defaultdict(list)
        for r in truth["refunds"]:
            self.refunds[r.order_id].append(r)
        self.late: dict[str, datetime] = {}
        self.fault_kinds: dict[tuple[str, str], set[str]] = defaultdict(set)
        for fault in truth["faults"]:
            self.fault_kinds[(fault.source, fault.record_key)].add(fault.kind)
            if fault.kind == "late_update":
                self.late[fault.record_key] = datetime.fromisoformat(fault.detail)
        self.by_channel: dict[str, list[Order]] = defaultdict(list)
        for order in sorted(truth["orders"], key=lambda o: o.created_at):
            self.by_channel[order.channel].append(order)

    def faults(self, order: Order) -> set[str]:
        """Wire faults the simulator chose for this order: duplicate, malformed, schema_drift, late_update."""
        return self.fault_kinds.get((order.channel, order.channel_order_id), set())

    def state(self, order: Order, as_of: datetime) -> OrderState | None:
        if order.created_at > as_of:
            return None
        state = OrderState(order, order.created_at)
        for f in self.fulfillments.get(order.order_id, ()):
            if f.shipped_at <= as_of:
                state.fulfillments.append(f)
                state.updated_at = max(state.updated_at, f.shipped_at)
                if f.delivered_at is not None and f.delivered_at <= as_of:
                    state.delivered[f.fulfillment_id] = f.delivered_at
                    state.updated_at = max(state.updated_at, f.delivered_at)
        for r in self.refunds.get(order.order_id, ()):
            if r.created_at <= as_of:
                state.refunds.append(r)
                state.updated_at = max(state.updated_at, r.created_at)
        late = self.late.get(order.channel_order_id)
        if late is not None and late <= as_of:
            state.updated_at = max(state.updated_at, late)
        return state

    def changed(
        self, channel: str, as_of: datetime, since: datetime | None = None, until: datetime | None = None
    ) -> list[OrderState]:
        """Orders of a channel whose last visible change lies in [since, until], oldest change first."""
        states = []
        for order in self.by_channel.get(channel, ()):
            state = self.state(order, as_of)
            if state is None:
                break  # orders are sorted by creation: the rest are in the future
            if (since is None or state.updated_at >= since) and (until is None or state.updated_at <= until):
                states.append(state)
        states.sort(key=lambda s: (s.updated_at, s.order.order_id))
        return states
