"""The stores' POS exports: one sales and one inventory CSV per store per opening hour, in store-local time.

Receipts carry the sold lines, and refunds as negative lines in the hour they happened. Anything that happens
while a store is closed (goods bought in at dawn, a refund booked at night, the opening stock) is in the file
of the next opening hour, as a till syncs when it is switched on.
"""

from __future__ import annotations

import bisect
import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from retreasure_sim.files.drop import Dropper, amount, csv_doc, days, plain, spoil_csv
from retreasure_sim.model import BASE_CURRENCY, Order, OrderLine, Store, Truth

SALES_HEADER = [
    "type",
    "receipt_id",
    "line_no",
    "sold_at",
    "store_id",
    "sku",
    "title",
    "quantity",
    "unit_price",
    "discount",
    "tax",
    "tax_rate",
    "currency",
    "discount_code",
    "payment_method",
    "loyalty_email",
    "loyalty_phone",
]
# unit_cost: the item's purchase cost per unit in EUR, as the stores' ERP books it when goods are bought in
# (on acquired movements only; empty otherwise).
INVENTORY_HEADER = [
    "movement_id",
    "at",
    "store_id",
    "sku",
    "change",
    "reason",
    "on_hand_after",
    "receipt_id",
    "unit_cost",
]
PAYMENT_METHODS = ("card", "card", "contactless", "cash")
DRIFT = {"sales": "cashier_id", "inventory": "bin_location"}  # the column a till update adds


class Hours:
    """A store's opening hours over the simulated days, and which hour's file an instant belongs in."""

    def __init__(self, store: Store, start: date, end: date) -> None:
        self.tz = ZoneInfo(store.timezone)
        self.slots: list[tuple[date, int]] = []
        ends: list[datetime] = []
        for day in days(start, end):
            for hour in range(store.opens_hour, store.closes_hour):
                self.slots.append((day, hour))
                ends.append(datetime.combine(day, time(hour), self.tz).astimezone(UTC) + timedelta(hours=1))
        self.ends = ends

    def slot(self, at: datetime) -> int:
        """The opening hour containing ``at``, else the next one (the last one for instants past the end)."""
        return min(bisect.bisect_right(self.ends, at), len(self.slots) - 1)

    def local(self, at: datetime) -> str:
        return at.astimezone(self.tz).isoformat()


def render(truth: Truth, dropper: Dropper) -> None:
    """Write every store's hourly sales and inventory files for the truth's days."""
    for store in truth["stores"]:
        StoreFiles(truth, store).drop(dropper)


class StoreFiles:
    """One store's receipt lines and stock movements, sorted into the opening hours' files."""

    def __init__(self, truth: Truth, store: Store) -> None:
        self.store = store
        self.hours = Hours(store, truth.start, truth.end)
        self.customers = {c.customer_id: c for c in truth["customers"]}
        self.titles = {p.product_id: p.title for p in truth["products"]}
        self.costs = {p.product_id: p.cost for p in truth["products"]}
        orders = {o.order_id: o for o in truth["orders"] if o.channel == "pos" and o.store_id == store.store_id}
        self.sales: dict[int, list[tuple[datetime, list[str]]]] = defaultdict(list)
        self.stock: dict[int, list[tuple[datetime, list[str]]]] = defaultdict(list)
        for order in orders.values():
            for line in order.lines:
                cur = order.currency
                cells = [str(line.quantity), amount(line.unit_price, cur), amount(line.discount, cur)]
                self.sale(order, "sale", order.created_at, line.line_no, [*cells, amount(line.tax, cur)])
        for refund in truth["refunds"]:
            order = orders.get(refund.order_id)  # type: ignore[assignment]
            if order is None:
                continue
            line, cur = _line(order, refund.line_no), order.currency
            # Negative quantity and amounts, so that quantity * unit_price - discount is minus the refund.
            discount = line.unit_price * refund.quantity - refund.amount
            cells = [str(-refund.quantity), amount(line.unit_price, cur), amount(-discount, cur)]
            self.sale(order, "refund", refund.created_at, refund.line_no, [*cells, amount(-refund.tax, cur)])
        for move in truth["inventory_movements"]:
            if move.location_id != store.store_id:
                continue
            receipt = orders[move.order_id].channel_order_id if move.order_id in orders else ""
            cost = amount(self.costs[move.product_id], BASE_CURRENCY) if move.reason == "acquired" else ""
            cells = [move.sku, str(move.change), move.reason, str(move.on_hand_after), receipt, cost]
            row = [move.movement_id, self.hours.local(move.at), store.store_id, *cells]
            self.stock[self.hours.slot(move.at)].append((move.at, row))

    def sale(self, order: Order, kind: str, at: datetime, line_no: int, amounts: list[str]) -> None:
        customer = self.customers.get(order.customer_id or "")
        line = _line(order, line_no)
        row = [
            kind,
            order.channel_order_id,
            str(line_no),
            self.hours.local(at),
            self.store.store_id,
            line.sku,
            self.titles.get(line.product_id, ""),
            *amounts,
            plain(line.tax_rate),
            order.currency,
            order.discount_code or "",
            random.Random(order.order_id).choice(PAYMENT_METHODS),
            customer.email if customer else "",
            customer.phone if customer else "",
        ]
        self.sales[self.hours.slot(at)].append((at, row))

    def drop(self, dropper: Dropper) -> None:
        for n, (day, hour) in enumerate(self.hours.slots):
            folder = f"{self.store.store_id}/{day.isoformat()}"
            _drop(dropper, "sales", f"pos/sales/{folder}/sales_{hour:02d}.csv", SALES_HEADER, self.sales[n])
            _drop(
                dropper,
                "inventory",
                f"pos/inventory/{folder}/inventory_{hour:02d}.csv",
                INVENTORY_HEADER,
                self.stock[n],
            )


def _line(order: Order, line_no: int) -> OrderLine:
    return next(line for line in order.lines if line.line_no == line_no)


def _drop(
    dropper: Dropper, entity: str, relative: str, header: list[str], rows: list[tuple[datetime, list[str]]]
) -> None:
    ordered = [row for _, row in sorted(rows, key=lambda r: (r[0], r[1][:3]))]
    extra = DRIFT[entity]
    drift = (extra, lambda n: f"{extra[:3].upper()}-{n + 1:03d}") if dropper.drifts(relative) else None
    dropper.drop("pos", entity, relative, csv_doc(header, ordered, drift), spoil_csv)


def expected(truth: Truth, as_of: datetime | None = None) -> dict[str, int]:
    """Distinct receipt lines (sales and refunds) and store stock movements up to ``as_of``."""

    def seen(at: datetime) -> bool:
        return as_of is None or at <= as_of

    stores = {s.store_id for s in truth["stores"]}
    pos = {o.order_id: o for o in truth["orders"] if o.channel == "pos"}
    lines = sum(len(o.lines) for o in pos.values() if seen(o.created_at))
    refunds = {(r.order_id, r.line_no) for r in truth["refunds"] if r.order_id in pos and seen(r.created_at)}
    moves = sum(1 for m in truth["inventory_movements"] if m.location_id in stores and seen(m.at))
    return {"pos_sales": lines + len(refunds), "pos_inventory": moves}
