"""The simulated business's ground truth: what really happened, before any channel's wire format.

Every table here is the simulator's memory; renderers (fake servers, file drops) derive what each channel
shows from it, and reconciliation tests compare gold KPIs with it. Money is ``Decimal`` in the order's
currency, rounded to that currency's minor unit; times are aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

BASE_CURRENCY = "EUR"
MINOR_UNITS = {"EUR": 2, "USD": 2, "GBP": 2, "SEK": 2, "CHF": 2, "JPY": 0}
CHANNELS = ("shopify", "ebay", "etsy", "pos")


def money(value: Decimal | int | str, currency: str) -> Decimal:
    """Round to the currency's minor unit, half to even (banker's rounding, as payment systems do)."""
    exponent = Decimal(1).scaleb(-MINOR_UNITS[currency])
    return Decimal(value).quantize(exponent, rounding=ROUND_HALF_EVEN)


@dataclass(slots=True)
class Store:
    store_id: str  # "BER"
    name: str
    city: str
    country: str
    currency: str
    timezone: str
    opens_hour: int
    closes_hour: int


@dataclass(slots=True)
class Product:
    product_id: str  # "P000001"
    sku: str
    title: str
    category: str
    era: str
    material: str
    condition: str
    unique: bool  # one-of-a-kind (quantity 1) or multi-quantity vintage goods
    initial_quantity: int
    cost: Decimal  # per unit, EUR
    list_price: Decimal  # per unit, EUR; channels show it in the buyer's currency
    acquired_at: datetime
    location_id: str  # "WH" (online warehouse) or a store id
    channels: list[str]  # where it is listed
    shopify_product_id: int
    shopify_variant_id: int
    ebay_item_id: str
    etsy_listing_id: int


@dataclass(slots=True)
class Customer:
    customer_id: str  # "C000001": one real person
    email: str
    first_name: str
    last_name: str
    phone: str
    street: str
    city: str
    region: str  # US state code or ""
    postal_code: str
    country: str
    currency: str
    lat: float
    lon: float
    accepts_marketing: bool
    created_at: datetime
    shopify_customer_id: int
    ebay_username: str
    etsy_user_id: int


@dataclass(slots=True)
class OrderLine:
    order_id: str
    line_no: int
    line_id: int  # the channel's line item id
    product_id: str
    sku: str
    quantity: int
    unit_price: Decimal  # order currency, before discount and tax
    discount: Decimal  # order currency, for the whole line
    tax: Decimal  # order currency, tax on (unit_price * quantity - discount)
    tax_rate: Decimal


@dataclass(slots=True)
class Order:
    order_id: str  # truth id "O0000001"
    channel: str  # shopify | ebay | etsy | pos
    channel_order_id: str  # what the channel calls it
    store_id: str | None  # POS only
    customer_id: str | None  # None: anonymous walk-in
    session_id: str | None  # the web session that converted (Shopify)
    campaign: str | None  # utm_campaign of that session
    created_at: datetime
    currency: str
    subtotal: Decimal  # sum of unit_price * quantity
    discount: Decimal  # sum of line discounts
    shipping: Decimal
    shipping_tax: Decimal
    tax: Decimal  # lines' tax + shipping tax
    total: Decimal  # subtotal - discount + shipping + tax
    tax_party: str  # seller | marketplace: who files and remits the tax
    tax_country: str
    tax_region: str
    discount_code: str | None
    ship_by: datetime | None  # None: handed over in store
    ship_country: str | None
    updated_at: datetime  # last change the channel would show (shipping, refunds, edits)
    lines: list[OrderLine] = field(default_factory=list)


@dataclass(slots=True)
class Refund:
    refund_id: str
    channel_refund_id: int
    order_id: str
    line_no: int
    created_at: datetime
    quantity: int
    amount: Decimal  # line value refunded, before tax (order currency)
    tax: Decimal  # tax refunded with it
    restocked: bool


@dataclass(slots=True)
class Fulfillment:
    fulfillment_id: str
    channel_fulfillment_id: int
    order_id: str
    shipped_at: datetime
    delivered_at: datetime | None  # None: still in transit when the simulation ends
    carrier: str
    tracking_number: str


@dataclass(slots=True)
class InventoryMovement:
    movement_id: str
    product_id: str
    sku: str
    location_id: str
    at: datetime
    change: int
    reason: str  # acquired | sold | restocked
    on_hand_after: int
    order_id: str | None


@dataclass(slots=True)
class FxRate:
    date: date
    currency: str
    rate: Decimal  # units of currency per 1 EUR, as the ECB publishes it


@dataclass(slots=True)
class Campaign:
    campaign_id: str
    platform: str  # google_ads | meta_ads
    utm_source: str
    utm_medium: str
    utm_campaign: str
    currency: str
    starts: date
    ends: date


@dataclass(slots=True)
class AdSpend:
    platform: str
    campaign_id: str
    utm_campaign: str
    date: date
    spend: Decimal
    currency: str
    clicks: int
    impressions: int


@dataclass(slots=True)
class Session:
    session_id: str
    anonymous_id: str
    customer_id: str | None
    started_at: datetime
    ended_at: datetime
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    device: str
    events: int
    converted: bool
    order_id: str | None


@dataclass(slots=True)
class WebEvent:
    event_id: str
    session_id: str
    name: str  # page_view | product_viewed | product_added | checkout_started | order_completed
    at: datetime
    product_id: str | None
    order_id: str | None


@dataclass(slots=True)
class Payment:
    """An online-transaction event: what the payment gateway said about a web order."""

    transaction_id: str
    order_id: str
    status: str  # authorized | captured | refunded
    amount: Decimal
    currency: str
    at: datetime


@dataclass(slots=True)
class DeliveryZone:
    zone_id: str
    name: str
    fee: Decimal
    currency: str
    # A ring of (lon, lat) points, first == last, as GeoJSON wants it.
    ring: list[list[float]]
    valid_from: date


@dataclass(slots=True)
class Fault:
    """A fault the simulator injected on purpose, so tests can look for it downstream."""

    source: str
    entity: str
    record_key: str
    kind: str  # duplicate | late_update | malformed | schema_drift | truncated
    detail: str


@dataclass(slots=True)
class CustomerTaste:
    """A person's latent taste (``taste.py``): what they tend to look at and buy. Never on any wire."""

    customer_id: str
    categories: list[str]
    eras: list[str]
    materials: list[str]
    price_band: str  # one of taste.PRICE_BANDS' names


ROW_TYPES: dict[str, type] = {
    "stores": Store,
    "products": Product,
    "customers": Customer,
    "orders": Order,
    "order_lines": OrderLine,
    "refunds": Refund,
    "fulfillments": Fulfillment,
    "inventory_movements": InventoryMovement,
    "fx_rates": FxRate,
    "campaigns": Campaign,
    "ad_spend": AdSpend,
    "sessions": Session,
    "web_events": WebEvent,
    "payments": Payment,
    "delivery_zones": DeliveryZone,
    "faults": Fault,
    "customer_tastes": CustomerTaste,
}

_ARROW = {
    "str": pa.string(),
    "str | None": pa.string(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "float": pa.float64(),
    "Decimal": pa.decimal128(18, 2),
    "datetime": pa.timestamp("us", tz="UTC"),
    "datetime | None": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "list[str]": pa.list_(pa.string()),
    "list[list[float]]": pa.list_(pa.list_(pa.float64())),
}


def schema_of(row_type: type) -> pa.Schema:
    fields = []
    for f in dataclasses.fields(row_type):
        if f.name == "lines":
            continue
        # Rates keep their published precision; amounts are in minor units of at most 2 decimals.
        arrow = pa.decimal128(18, 6) if f.name in ("rate", "tax_rate") else _ARROW[str(f.type)]
        fields.append(pa.field(f.name, arrow))
    return pa.schema(fields)


@dataclass
class Truth:
    """Everything the simulator decided, table by table."""

    start: date
    end: date  # inclusive last day
    seed: int
    scale: float
    tables: dict[str, list[Any]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> list[Any]:
        return self.tables.setdefault(name, [])

    def arrow(self, name: str) -> pa.Table:
        row_type = ROW_TYPES[name]
        schema = schema_of(row_type)
        columns = {f.name: [getattr(r, f.name) for r in self[name]] for f in schema}
        return pa.Table.from_pydict(columns, schema=schema)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ROW_TYPES:
            pq.write_table(self.arrow(name), folder / f"{name}.parquet")
        meta = pa.table({"start": [self.start], "end": [self.end], "seed": [self.seed], "scale": [self.scale]})
        pq.write_table(meta, folder / "_meta.parquet")

    @classmethod
    def load(cls, folder: Path, only: tuple[str, ...] | None = None) -> Truth:
        if not (folder / "_meta.parquet").exists():
            raise FileNotFoundError(f"no simulation at {folder}: run `retreasure sim` first")
        meta = pq.read_table(folder / "_meta.parquet").to_pylist()[0]
        truth = cls(**meta)
        for name, row_type in ROW_TYPES.items():
            if only is not None and name not in only and not (name == "order_lines" and "orders" in only):
                continue
            rows = pq.read_table(folder / f"{name}.parquet").to_pylist()
            truth.tables[name] = [row_type(**row) for row in rows]
        by_order: dict[str, Order] = {o.order_id: o for o in truth["orders"]}
        for line in truth["order_lines"] if by_order else ():
            by_order[line.order_id].lines.append(line)
        return truth
