"""A fake Shopify Admin GraphQL API (``POST /admin/api/{version}/graphql.json``) for one shop.

What it imitates, because the connector must cope with it:

- Auth by ``X-Shopify-Access-Token``; a wrong token gets Shopify's 401 ``{"errors": "[API] Invalid API key..."}``.
- Four top-level fields: the connections ``orders``, ``products``, ``customers`` and ``inventoryItems`` (each
  item with its ``inventoryLevels`` at the one location, ``gid://shopify/Location/1``, the warehouse, and
  ``quantities(names: ["available"])``), plus ``shop`` (a one-point query clients use to read the throttle
  state). Arguments ``first``/``after``/``query``/``sortKey`` are read from the query text or the variables.
  There is no GraphQL engine: **the selection set is ignored** and every node comes in one fixed, complete
  shape (GraphQL camelCase, money as decimal strings in ``MoneyBag`` sets, GIDs, UTC ``Z`` times). The only
  thing read from the selection is whether the connection is asked for ``edges`` or ``nodes``.
- Search filters ``updated_at``/``created_at`` with ``:``, ``:>``, ``:>=``, ``:<``, ``:<=`` joined by ``AND``;
  unknown terms are ignored with a warning in ``extensions.search``, as Shopify does. ``sortKey`` ``ID``
  (default), ``CREATED_AT`` or ``UPDATED_AT``. Opaque keyset cursors; ``first`` above 250 is an error.
- Cost-based throttling from a real leaky bucket (default 1000 points restoring 50/s). A query costs
  ``1 + first * (1 + the sum of nested `first:` sizes)`` up front; what it really returned (one point per node
  and per nested node, plus one) is its actual cost, and the difference is given back.
  A query costing more than ``min(1000, bucket)`` gets ``MAX_COST_EXCEEDED``; one the bucket cannot afford
  gets ``THROTTLED`` (HTTP 200 by default, 429 configurable, with ``Retry-After`` from the deficit).
- The base's random fault bursts: "429"s as THROTTLED answers (with the same configurable status), 500 as a
  JSON ``INTERNAL_SERVER_ERROR``, 502/503 as the HTML pages Shopify's edge sends.
- An order's promised dispatch time is ``fulfillBy`` on its one ``fulfillmentOrders`` node (the truth's
  ``ship_by``); status ``OPEN`` until it ships, then ``CLOSED``.
- The wire faults the simulator chose per order: ``duplicate`` (the node sent twice), ``malformed`` (an extra,
  broken copy: no ``id``, or ``updatedAt`` "not-a-date") and ``schema_drift`` (an unknown extra field, no
  ``phone``).

What it shows is the truth as of the server clock: Shopify orders with their fulfillments and refunds at that
moment, products listed on Shopify (ARCHIVED while sold out; ``updatedAt`` moves when listed and when the
status flips, not on every sale, as stock changes are the inventory's), customers who bought on Shopify
(created at their first Shopify order, updated at their last), and stock from the inventory movements (an
inventory item's ``updatedAt`` is its last movement).

The shop's currency is EUR: ``shopMoney`` is the order amount converted at the truth's ECB rate of the order's
day (or the last business day before it; before the first published rate, that first rate), and
``presentmentMoney`` is the buyer's currency. Orders use one rate for all their amounts.
"""

from __future__ import annotations

import base64
import bisect
import hmac
import json
import math
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from retreasure_sim.config import Faults
from retreasure_sim.model import BASE_CURRENCY, Customer, Order, OrderLine, Product, Refund, Truth, money
from retreasure_sim.servers.base import FakeServer, Request, Response
from retreasure_sim.timeline import OrderState, Stock, stock_histories

API_PATH = r"/admin/api/(?P<version>\d{4}-\d{2}|unstable)/graphql\.json"
CHANNEL = "shopify"
MAX_PAGE = 250
MAX_QUERY_COST = 1000  # Shopify's single-query cap, whatever the bucket
LOCATION_ID = 1
LOCATION_GID = f"gid://shopify/Location/{LOCATION_ID}"
SHOP_GID = "gid://shopify/Shop/1"
# The truth has no inventory item ids; Shopify's differ from the variant's, so derive them from it.
INVENTORY_ITEM_OFFSET = 100_000_000_000_000
AUTH_REFUSED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"
CONNECTIONS = ("orders", "products", "customers", "inventoryItems")
SORT_KEYS = ("ID", "CREATED_AT", "UPDATED_AT")
SORT_TYPES = {
    "orders": "OrderSortKeys",
    "products": "ProductSortKeys",
    "customers": "CustomerSortKeys",
    "inventoryItems": "InventoryItemSortKeys",
}
DRIFT_FIELD = "channelInformationV2"  # not in Shopify's schema: what a newer API version might add


class GraphQLError(Exception):
    """A request GraphQL refuses before running it: sent as ``{"errors": [...]}`` with HTTP 200."""

    def __init__(self, message: str, code: str, **extensions: Any) -> None:
        super().__init__(message)
        self.payload = {"message": message, "extensions": {"code": code, **extensions}}


# -- throttling ----------------------------------------------------------------------------------


class LeakyBucket:
    """Shopify's cost bucket: points are taken per query and restored at a steady rate up to the maximum."""

    def __init__(self, size: float, restore_rate: float) -> None:
        self.size = size
        self.restore_rate = restore_rate
        self._available = float(size)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._available = min(self.size, self._available + (now - self._at) * self.restore_rate)
        self._at = now

    def take(self, points: float) -> bool:
        """Spend ``points`` if the bucket holds them; a refused query spends nothing."""
        with self._lock:
            self._refill()
            if self._available < points:
                return False
            self._available -= points
            return True

    def give_back(self, points: float) -> None:
        with self._lock:
            self._refill()
            self._available = min(self.size, self._available + max(0.0, points))

    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._available

    def status(self) -> dict[str, Any]:
        # Rounded down: a client pacing on it then never asks for points that are not there yet.
        return {
            "maximumAvailable": float(self.size),
            "currentlyAvailable": math.floor(self.available()),
            "restoreRate": float(self.restore_rate),
        }


# -- query text ----------------------------------------------------------------------------------


@dataclass
class Call:
    """The one top-level field a query asks for, with its arguments resolved against the variables."""

    field: str
    args: dict[str, Any]
    nested_firsts: list[int]
    shape: str  # "edges" or "nodes"


_COMMENT = re.compile(r"#[^\n]*")
_TOP_FIELD = re.compile(r"\{\s*(?:\w+\s*:\s*)?(\w+)\s*")
_ARG = re.compile(r'(\w+)\s*:\s*("(?:[^"\\]|\\.)*"|\$\w+|-?\d+|\w+)')
_NESTED_FIRST = re.compile(r"\w+\s*\([^()]*?\bfirst\s*:\s*(\$\w+|\d+)")


def _closing_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``, skipping string literals."""
    depth, i, quoted = 0, start, False
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise GraphQLError("syntax error, unexpected end of file", "parseError")


def _value(token: str, variables: dict[str, Any]) -> Any:
    if token.startswith("$"):
        return variables.get(token[1:])
    if token.startswith('"'):
        return json.loads(token)
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    return {"true": True, "false": False, "null": None}.get(token, token)


def parse_call(query: str, variables: dict[str, Any]) -> Call:
    """Read the top-level field, its arguments and the nested connection sizes from the query text."""
    text = _COMMENT.sub("", query)
    found = _TOP_FIELD.search(text)
    if not found:
        raise GraphQLError("syntax error, unexpected end of file", "parseError")
    name, rest_at, args = found.group(1), found.end(), {}
    if text[rest_at : rest_at + 1] == "(":
        close = _closing_paren(text, rest_at)
        args = {m.group(1): _value(m.group(2), variables) for m in _ARG.finditer(text[rest_at + 1 : close])}
        rest_at = close + 1
    selection = text[rest_at:]
    nested = []
    for m in _NESTED_FIRST.finditer(selection):
        size = _value(m.group(1), variables)
        nested.append(size if isinstance(size, int) else 0)
    shape = "edges" if re.search(r"\bedges\b", selection) else "nodes"
    return Call(name, args, nested, shape)


def nested_objects(node: Any) -> int:
    """Objects a node's nested connections returned: what Shopify's actual cost counts beyond the node."""
    if isinstance(node, list):
        return sum(nested_objects(item) for item in node)
    if not isinstance(node, dict):
        return 0
    inner = node.get("nodes")
    own = len(inner) if isinstance(inner, list) else 0
    return own + sum(nested_objects(value) for value in node.values())


def requested_cost(call: Call) -> int:
    """What Shopify charges up front: a point per object the query could return."""
    if call.field not in CONNECTIONS:
        return 1
    first = call.args.get("first")
    return 1 + (first if isinstance(first, int) else 0) * (1 + sum(call.nested_firsts))


@dataclass(frozen=True)
class Term:
    """One time condition of a search string, e.g. ``updated_at:>='2025-03-01T00:00:00Z'``."""

    field: str  # updated_at | created_at
    op: str  # > >= < <= =
    at: datetime

    def admits(self, value: datetime) -> bool:
        return {
            ">": value > self.at,
            ">=": value >= self.at,
            "<": value < self.at,
            "<=": value <= self.at,
            "=": value == self.at,
        }[self.op]


_TERM = re.compile(r"""(\w+):(>=|<=|>|<)?('[^']*'|"[^"]*"|\S+)""")


def parse_search(text: str | None) -> tuple[list[Term], list[dict[str, str]]]:
    """Shopify's search syntax, as far as time filters go; anything else is ignored with a warning."""
    terms: list[Term] = []
    warnings: list[dict[str, str]] = []
    for part in re.split(r"\s+AND\s+", (text or "").strip()):
        if not part:
            continue
        found = _TERM.fullmatch(part.strip())
        if not found or found.group(1) not in ("updated_at", "created_at"):
            warnings.append({"field": part.split(":", 1)[0], "message": "Invalid search field for this query."})
            continue
        raw = found.group(3).strip("'\"")
        try:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            warnings.append({"field": found.group(1), "message": f"Invalid date: {raw}"})
            continue
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        terms.append(Term(found.group(1), found.group(2) or "=", at))
    return terms, warnings


# -- rows --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One record of a connection as of the clock; ``render(copy)`` gives its node(s) lazily."""

    id: int
    created_at: datetime
    updated_at: datetime
    render: Callable[[str], dict[str, Any]]
    copies: tuple[str, ...] = ("main",)

    def sort_value(self, key: str) -> Any:
        return {"ID": self.id, "CREATED_AT": self.created_at, "UPDATED_AT": self.updated_at}[key]


def encode_cursor(sort_key: str, value: Any, row_id: int, copy: int) -> str:
    """An opaque cursor: the position of an edge in the sorted connection."""
    shown = value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([sort_key, shown, row_id, copy], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort_key: str) -> tuple[Any, int, int]:
    """The position a cursor stands for; a cursor from another sort or a forged one is refused."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key, value, row_id, copy = json.loads(base64.urlsafe_b64decode(padded))
        if key != sort_key:
            raise ValueError("sort key changed")
        if sort_key != "ID":
            value = datetime.fromisoformat(value)
        return value, int(row_id), int(copy)
    except (ValueError, TypeError) as exc:
        raise GraphQLError("Invalid cursor for current pagination sort.", "argumentLiteralsIncompatible") from exc


# -- shapes --------------------------------------------------------------------------------------


def gid(kind: str, number: int | str) -> str:
    """Shopify's global id of a resource, as GraphQL names it."""
    return f"gid://shopify/{kind}/{number}"


def iso(at: datetime | None) -> str | None:
    """A GraphQL ``DateTime``: UTC, whole seconds, ``Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else None


def amount(value: Decimal, currency: str) -> str:
    """A money amount as Shopify writes it: a decimal string in the currency's minor unit ("23600" for yen)."""
    return format(money(value, currency), "f")


class FxTable:
    """The truth's ECB reference rates, looked up for a day or the last business day before it."""

    def __init__(self, truth: Truth) -> None:
        by_day: dict[date, dict[str, Decimal]] = defaultdict(dict)
        for fx in truth["fx_rates"]:
            by_day[fx.date][fx.currency] = fx.rate
        self.days = sorted(by_day)
        self.rates = by_day

    def rate(self, currency: str, day: date) -> Decimal:
        """Units of ``currency`` per euro on ``day``."""
        if currency == BASE_CURRENCY:
            return Decimal(1)
        if not self.days:
            raise ValueError(f"no FX rates in the truth to convert {currency}")
        i = bisect.bisect_right(self.days, day) - 1
        return self.rates[self.days[max(i, 0)]][currency]


def shop_amount(value: Decimal, currency: str, rate: Decimal) -> Decimal:
    """An amount in the shop's currency (EUR), converted at ``rate`` units per euro."""
    return money(value if currency == BASE_CURRENCY else value / rate, BASE_CURRENCY)


def money_set(value: Decimal, currency: str, rate: Decimal) -> dict[str, Any]:
    """A ``MoneyBag``: the shop's EUR beside what the buyer saw."""
    return {
        "shopMoney": {
            "amount": amount(shop_amount(value, currency, rate), BASE_CURRENCY),
            "currencyCode": BASE_CURRENCY,
        },
        "presentmentMoney": {"amount": amount(value, currency), "currencyCode": currency},
    }


def tax_title(country: str, region: str) -> str:
    """The name a tax line carries in the buyer's jurisdiction."""
    return f"{region} State Tax" if country == "US" else {"JP": "Consumption Tax"}.get(country, "VAT")


def mailing_address(c: Customer) -> dict[str, Any]:
    """A customer's address as a ``MailingAddress`` (shipping, billing and default address alike)."""
    return {
        "firstName": c.first_name,
        "lastName": c.last_name,
        "name": f"{c.first_name} {c.last_name}",
        "address1": c.street,
        "address2": None,
        "city": c.city,
        "provinceCode": c.region or None,
        "zip": c.postal_code,
        "countryCode": c.country,
        "countryCodeV2": c.country,
        "phone": c.phone,
    }


def order_number(order: Order) -> int:
    """The shop's running order number, shown as the order's name ("#1001")."""
    return 1000 + int(order.channel_order_id) % 1_000_000_000


def order_node(state: OrderState, customer: Customer, products: dict[str, Product], rate: Decimal) -> dict[str, Any]:
    """An order as the Admin API shows it at the state's moment."""
    o = state.order
    cur = o.currency

    def ms(value: Decimal) -> dict[str, Any]:
        return money_set(value, cur, rate)

    def tax_lines(rate_: Decimal, price: Decimal) -> list[dict[str, Any]]:
        if not rate_:
            return []
        return [
            {
                "title": tax_title(o.tax_country, o.tax_region),
                "rate": float(rate_),
                "ratePercentage": float(rate_ * 100),
                "priceSet": ms(price),
                "channelLiable": o.tax_party == "marketplace",
            }
        ]

    lines = {line.line_no: line for line in o.lines}
    refunded_qty: dict[int, int] = defaultdict(int)
    for r in state.refunds:
        refunded_qty[r.line_no] += r.quantity
    refunded = sum((r.amount + r.tax for r in state.refunds), Decimal(0))
    rate_of_lines = o.lines[0].tax_rate if o.lines else Decimal(0)
    financial = "PAID" if not state.refunds else ("REFUNDED" if refunded >= o.total else "PARTIALLY_REFUNDED")

    def line_node(line: OrderLine) -> dict[str, Any]:
        p = products[line.product_id]
        gross = line.unit_price * line.quantity
        return {
            "id": gid("LineItem", line.line_id),
            "name": p.title,
            "title": p.title,
            "sku": line.sku,
            "quantity": line.quantity,
            "currentQuantity": line.quantity - refunded_qty[line.line_no],
            "product": {"id": gid("Product", p.shopify_product_id)},
            "variant": {"id": gid("ProductVariant", p.shopify_variant_id)},
            "originalUnitPriceSet": ms(line.unit_price),
            "originalTotalSet": ms(gross),
            "discountedTotalSet": ms(gross - line.discount),
            "totalDiscountSet": ms(line.discount),
            "discountAllocations": [{"allocatedAmountSet": ms(line.discount)}] if line.discount else [],
            "taxLines": tax_lines(line.tax_rate, line.tax),
            "requiresShipping": True,
            "taxable": bool(line.tax_rate),
        }

    def refund_node(r: Refund) -> dict[str, Any]:
        line = lines[r.line_no]
        return {
            "id": gid("Refund", r.channel_refund_id),
            "createdAt": iso(r.created_at),
            "updatedAt": iso(r.created_at),
            "note": None,
            "totalRefundedSet": ms(r.amount + r.tax),
            "refundLineItems": {
                "nodes": [
                    {
                        "lineItem": {"id": gid("LineItem", line.line_id), "sku": line.sku},
                        "quantity": r.quantity,
                        "restockType": "RETURN" if r.restocked else "NO_RESTOCK",
                        "restocked": r.restocked,
                        "priceSet": ms(line.unit_price),
                        "subtotalSet": ms(r.amount),
                        "totalTaxSet": ms(r.tax),
                    }
                ]
            },
        }

    fulfillments = [
        {
            "id": gid("Fulfillment", f.channel_fulfillment_id),
            "status": "SUCCESS",
            "displayStatus": "DELIVERED" if f.fulfillment_id in state.delivered else "IN_TRANSIT",
            "createdAt": iso(f.shipped_at),
            "updatedAt": iso(state.delivered.get(f.fulfillment_id, f.shipped_at)),
            "inTransitAt": iso(f.shipped_at),
            "deliveredAt": iso(state.delivered.get(f.fulfillment_id)),
            "totalQuantity": sum(line.quantity for line in o.lines),
            "trackingInfo": [{"company": f.carrier, "number": f.tracking_number, "url": None}],
        }
        for f in state.fulfillments
    ]
    custom = [("session_id", o.session_id), ("utm_campaign", o.campaign)]
    return {
        "id": gid("Order", o.channel_order_id),
        "legacyResourceId": o.channel_order_id,
        "name": f"#{order_number(o)}",
        "createdAt": iso(o.created_at),
        "updatedAt": iso(state.updated_at),
        "processedAt": iso(o.created_at),
        "cancelledAt": None,
        "closed": False,
        "test": False,
        "email": customer.email,
        "phone": customer.phone,
        "sourceName": "web",
        "currencyCode": BASE_CURRENCY,
        "presentmentCurrencyCode": cur,
        "taxesIncluded": False,
        "displayFinancialStatus": financial,
        "displayFulfillmentStatus": "FULFILLED" if state.fulfillments else "UNFULFILLED",
        "discountCodes": [o.discount_code] if o.discount_code else [],
        "customAttributes": [{"key": k, "value": v} for k, v in custom if v is not None],
        "tags": [],
        "note": None,
        "paymentGatewayNames": ["shopify_payments"],
        "subtotalPriceSet": ms(o.subtotal - o.discount),
        "totalDiscountsSet": ms(o.discount),
        "totalShippingPriceSet": ms(o.shipping),
        "totalTaxSet": ms(o.tax),
        "totalPriceSet": ms(o.total),
        "totalRefundedSet": ms(refunded),
        "currentTotalPriceSet": ms(o.total - refunded),
        "taxLines": tax_lines(rate_of_lines, o.tax),
        "customer": {
            "id": gid("Customer", customer.shopify_customer_id),
            "email": customer.email,
            "firstName": customer.first_name,
            "lastName": customer.last_name,
            "phone": customer.phone,
        },
        "shippingAddress": mailing_address(customer),
        "billingAddress": mailing_address(customer),
        "shippingLine": {
            "title": "Standard",
            "code": "standard",
            "source": "shopify",
            "originalPriceSet": ms(o.shipping),
            "discountedPriceSet": ms(o.shipping),
            "taxLines": tax_lines(rate_of_lines, o.shipping_tax) if o.shipping_tax else [],
        },
        "lineItems": {"nodes": [line_node(line) for line in o.lines]},
        "fulfillments": fulfillments,
        # The dispatch promise lives on the order's fulfillment order, not the order: one per order here,
        # as the shop has one location. Its id reuses the order's number (ids are unique per resource type).
        "fulfillmentOrders": {
            "nodes": [
                {
                    "id": gid("FulfillmentOrder", o.channel_order_id),
                    "status": "CLOSED" if state.fulfillments else "OPEN",
                    "fulfillBy": iso(o.ship_by),
                }
            ]
        },
        "refunds": [refund_node(r) for r in state.refunds],
    }


def faulty(node: dict[str, Any], copy: str, order: Order) -> dict[str, Any]:
    """The node as a wire fault changes it: the broken extra copy, or the drifted shape."""
    if copy == "malformed":
        broken = dict(node)
        if int(order.channel_order_id) % 2:
            broken["updatedAt"] = "not-a-date"
        else:
            del broken["id"]
        return broken
    if copy == "drift":
        drifted = {k: v for k, v in node.items() if k != "phone"}
        drifted[DRIFT_FIELD] = {"channelId": "gid://shopify/Channel/1", "displayName": "Online Store"}
        return drifted
    return node


def inventory_item_id(p: Product) -> int:
    """The inventory item behind a product's one variant."""
    return p.shopify_variant_id + INVENTORY_ITEM_OFFSET


# -- what the shop holds at a moment ---------------------------------------------------------------


def shopify_products(truth: Truth, clock: datetime) -> list[Product]:
    """Products listed on Shopify that the shop held by the clock."""
    return [p for p in truth["products"] if CHANNEL in p.channels and p.acquired_at <= clock]


def shopify_orders(truth: Truth, clock: datetime) -> list[Order]:
    """Web orders placed by the clock."""
    # Web orders always have a buyer; one without could not be rendered, so it would not be counted either.
    return [o for o in truth["orders"] if o.channel == CHANNEL and o.created_at <= clock and o.customer_id]


def default_clock(truth: Truth) -> datetime:
    """The servers' default "now": the last second of the simulated period."""
    return datetime.combine(truth.end, datetime.max.time(), UTC).replace(microsecond=0)


def expected_counts(truth: Truth, as_of: datetime | None = None) -> dict[str, int]:
    """Distinct well-formed business keys a complete ingest lands, per bronze table."""
    clock = as_of or default_clock(truth)
    orders = shopify_orders(truth, clock)
    products = shopify_products(truth, clock)
    return {
        "shopify_orders": len(orders),
        "shopify_products": len(products),
        "shopify_customers": len({o.customer_id for o in orders if o.customer_id}),
        "shopify_inventory_levels": len(products),  # one level per item, at the one location
    }


# -- the server ----------------------------------------------------------------------------------


class ShopifyServer(FakeServer):
    """Shopify's GraphQL Admin API for one shop, as of the server's clock."""

    name: ClassVar[str] = "shopify"

    def __init__(
        self,
        truth: Truth,
        credentials: dict[str, str],
        faults: Faults | None = None,
        seed: int = 7,
        clock: datetime | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bucket_size: float = 1000,
        restore_rate: float = 50,
        throttle_status: int = 200,
    ) -> None:
        self.bucket = LeakyBucket(bucket_size, restore_rate)
        self.throttle_status = throttle_status
        self.throttled_answers = 0  # THROTTLED bodies sent, from the bucket or from a fault burst
        self._local = threading.local()
        self._cache: dict[str, tuple[datetime, list[Row]]] = {}
        self._cache_lock = threading.Lock()
        self._request_ids = 0
        super().__init__(truth, credentials, faults, seed, clock, host, port)
        self.fx = FxTable(truth)
        self.stock = stock_histories(truth, CHANNEL)

    # -- FakeServer hooks ------------------------------------------------------------------------
    def routes(self) -> None:
        self.route("POST", API_PATH, self.graphql)

    def authorised(self, request: Request) -> bool:
        token = request.headers.get("x-shopify-access-token", "")
        return hmac.compare_digest(token.encode(), self.credentials["access_token"].encode())

    def unauthorised(self) -> Response:
        return Response(401, {"errors": AUTH_REFUSED})

    def dispatch(self, request: Request) -> Response:
        # Remembered so that a fault-burst THROTTLED answer can quote the cost of the query it refuses.
        self._local.request = request
        return super().dispatch(request)

    def throttled(self) -> Response:
        request: Request | None = getattr(self._local, "request", None)
        try:
            body = request.json() if request else None
            cost = requested_cost(parse_call(body["query"], body.get("variables") or {}))
        except (ValueError, TypeError, KeyError, GraphQLError):
            cost = 1
        return self._throttled(cost)

    def server_error(self, status: int) -> Response:
        with self._lock:
            self._request_ids += 1
            request_id = f"{self._request_ids:08x}-shop-fake"
        if status == 500:
            message = f"Internal error. Looks like something went wrong on our end.\nRequest ID: {request_id}"
            return Response(
                500,
                {
                    "errors": [
                        {"message": message, "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}}
                    ]
                },
                {"X-Request-Id": request_id},
            )
        title = {502: "502 Bad Gateway", 503: "503 Service Unavailable"}.get(status, f"{status} Error")
        page = f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return Response(status, page.encode(), {"Content-Type": "text/html; charset=utf-8", "X-Request-Id": request_id})

    def bad_request(self, message: str) -> Response:
        return Response(400, {"errors": {"query": "Required parameter missing or invalid"}})

    # -- GraphQL ---------------------------------------------------------------------------------
    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": self.bucket.status()}

    def _throttled(self, requested: int) -> Response:
        with self._lock:
            self.throttled_answers += 1
        headers = {}
        deficit = requested - self.bucket.available()
        if self.throttle_status == 429 and deficit > 0:
            headers["Retry-After"] = f"{math.ceil(deficit / self.bucket.restore_rate * 10) / 10:.1f}"
        body = {
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC}}],
            "extensions": {"cost": self._cost(requested, None)},
        }
        return Response(self.throttle_status, body, headers)

    def graphql(self, request: Request) -> Response:
        """One GraphQL request: validate, charge the bucket, run, give back what was not used."""
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise ValueError("a JSON body with a query is required")
        variables = body.get("variables") or {}
        try:
            call = parse_call(body["query"], variables if isinstance(variables, dict) else {})
            self._validate(call)
        except GraphQLError as exc:
            return Response(200, {"errors": [exc.payload]})
        cost = requested_cost(call)
        cap = min(MAX_QUERY_COST, self.bucket.size)
        if cost > cap:
            message = (
                f"Query cost is {cost}, which exceeds the single query max cost limit ({cap:g}).\n\n"
                f"See {RATE_LIMITS_DOC} for more information on how the cost of a query is calculated."
            )
            error = {"message": message, "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost, "maxCost": cap}}
            return Response(200, {"errors": [error], "extensions": {"cost": self._cost(cost, None)}})
        if not self.bucket.take(cost):
            return self._throttled(cost)
        try:
            data, returned, warnings = self.resolve(call)
        except GraphQLError as exc:
            self.bucket.give_back(cost - 1)
            return Response(200, {"errors": [exc.payload], "extensions": {"cost": self._cost(cost, 1)}})
        actual = min(cost, 1 + returned)
        self.bucket.give_back(cost - actual)
        extensions: dict[str, Any] = {"cost": self._cost(cost, actual)}
        if warnings:
            extensions["search"] = [{"path": [call.field], "query": call.args.get("query"), "warnings": warnings}]
        return Response(200, {"data": data, "extensions": extensions})

    def _validate(self, call: Call) -> None:
        if call.field == "shop":
            return
        if call.field not in CONNECTIONS:
            raise GraphQLError(
                f"Field '{call.field}' doesn't exist on type 'QueryRoot'", "undefinedField", typeName="QueryRoot"
            )
        first = call.args.get("first")
        if first is None:
            raise GraphQLError("you must provide one of first or last", "BAD_REQUEST")
        if not isinstance(first, int) or first < 0:
            raise GraphQLError(f"Argument 'first' on Field '{call.field}' has an invalid value.", "BAD_REQUEST")
        if first > MAX_PAGE:
            raise GraphQLError(f"The first argument must be less than or equal to {MAX_PAGE}.", "BAD_REQUEST")
        sort_key = call.args.get("sortKey", "ID")
        if sort_key not in SORT_KEYS:
            raise GraphQLError(
                f"Argument 'sortKey' on Field '{call.field}' has an invalid value ({sort_key}). "
                f"Expected type '{SORT_TYPES[call.field]}'.",
                "argumentLiteralsIncompatible",
            )

    def resolve(self, call: Call) -> tuple[dict[str, Any], int, list[dict[str, str]]]:
        """The data of one call, the objects returned (nodes and their nested nodes), and search warnings."""
        if call.field == "shop":
            shop = {"id": SHOP_GID, "name": "ReTreasure", "currencyCode": BASE_CURRENCY, "ianaTimezone": "UTC"}
            return {"shop": shop}, 0, []
        sort_key = call.args.get("sortKey", "ID")
        terms, warnings = parse_search(call.args.get("query"))
        rows = [
            r
            for r in self.rows(call.field)
            if all(t.admits(r.updated_at if t.field == "updated_at" else r.created_at) for t in terms)
        ]
        rows.sort(key=lambda r: (r.sort_value(sort_key), r.id))
        entries = [(r.sort_value(sort_key), r.id, i, r, copy) for r in rows for i, copy in enumerate(r.copies)]
        start = 0
        after = call.args.get("after")
        if after:
            position = decode_cursor(after, sort_key)
            start = bisect.bisect_right([e[:3] for e in entries], position)
        page = entries[start : start + call.args["first"]]
        edges = [
            {"cursor": encode_cursor(sort_key, value, row_id, i), "node": row.render(copy)}
            for value, row_id, i, row, copy in page
        ]
        info = {
            "hasNextPage": start + len(page) < len(entries),
            "hasPreviousPage": start > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        }
        if call.shape == "edges":
            connection: dict[str, Any] = {"edges": edges, "pageInfo": info}
        else:
            connection = {"nodes": [e["node"] for e in edges], "pageInfo": info}
        returned = sum(1 + nested_objects(e["node"]) for e in edges)
        return {call.field: connection}, returned, warnings

    def rows(self, field_name: str) -> list[Row]:
        """A connection's records as of the clock; built once per clock setting."""
        clock = self.clock
        with self._cache_lock:
            cached = self._cache.get(field_name)
            if cached is None or cached[0] != clock:
                build = {
                    "orders": self._order_rows,
                    "products": self._product_rows,
                    "customers": self._customer_rows,
                    "inventoryItems": self._inventory_rows,
                }[field_name]
                cached = (clock, build(clock))
                self._cache[field_name] = cached
            return cached[1]

    def _order_rows(self, clock: datetime) -> list[Row]:
        rows = []
        for order in shopify_orders(self.truth, clock):
            state = self.timeline.state(order, clock)
            if state is None:
                continue
            kinds = self.timeline.faults(order)
            copies = ["drift" if "schema_drift" in kinds else "main"]
            if "duplicate" in kinds:
                copies.append(copies[0])
            if "malformed" in kinds:
                copies.append("malformed")
            rows.append(
                Row(
                    int(order.channel_order_id),
                    order.created_at,
                    state.updated_at,
                    self._order_renderer(state),
                    tuple(copies),
                )
            )
        return rows

    def _order_renderer(self, state: OrderState) -> Callable[[str], dict[str, Any]]:
        order = state.order

        def render(copy: str) -> dict[str, Any]:
            customer = self.timeline.customers[order.customer_id or ""]
            rate = self.fx.rate(order.currency, order.created_at.date())
            node = order_node(state, customer, self.timeline.products, rate)
            return faulty(node, copy, order)

        return render

    def _held(self, clock: datetime) -> list[tuple[Product, Stock]]:
        """Products the shop held by the clock, with their stock then."""
        held = []
        for p in shopify_products(self.truth, clock):
            stock = self.stock[p.product_id].as_of(clock)
            if stock is not None:  # always, as a product's first movement is its buying-in
                held.append((p, stock))
        return held

    def _product_rows(self, clock: datetime) -> list[Row]:
        rows = []
        for p, stock in self._held(clock):
            # A product changes when it sells out or comes back; each sale alone changes only its inventory.
            updated = stock.state_since
            rows.append(
                Row(p.shopify_product_id, p.acquired_at, updated, self._product_renderer(p, stock.on_hand, updated))
            )
        return rows

    def _product_renderer(self, p: Product, on_hand: int, updated: datetime) -> Callable[[str], dict[str, Any]]:
        def render(copy: str) -> dict[str, Any]:
            item = inventory_item_id(p)
            handle = re.sub(r"[^a-z0-9]+", "-", p.title.lower()).strip("-")
            return {
                "id": gid("Product", p.shopify_product_id),
                "legacyResourceId": str(p.shopify_product_id),
                "title": p.title,
                "handle": f"{handle}-{p.product_id.lower()}",
                "productType": p.category,
                "vendor": "ReTreasure",
                "tags": sorted([f"era:{p.era}", f"material:{p.material}", f"condition:{p.condition}"]),
                "status": "ACTIVE" if on_hand > 0 else "ARCHIVED",
                "createdAt": iso(p.acquired_at),
                "updatedAt": iso(updated),
                "publishedAt": iso(p.acquired_at),
                "totalInventory": on_hand,
                "tracksInventory": True,
                "variants": {
                    "nodes": [
                        {
                            "id": gid("ProductVariant", p.shopify_variant_id),
                            "legacyResourceId": str(p.shopify_variant_id),
                            "title": "Default Title",
                            "sku": p.sku,
                            "price": amount(p.list_price, BASE_CURRENCY),
                            "compareAtPrice": None,
                            "inventoryQuantity": on_hand,
                            "inventoryItem": {"id": gid("InventoryItem", item)},
                            "createdAt": iso(p.acquired_at),
                            "updatedAt": iso(updated),
                        }
                    ]
                },
            }

        return render

    def _inventory_rows(self, clock: datetime) -> list[Row]:
        rows = []
        for p, stock in self._held(clock):
            updated = stock.moved_at
            rows.append(
                Row(inventory_item_id(p), p.acquired_at, updated, self._inventory_renderer(p, stock.on_hand, updated))
            )
        return rows

    def _inventory_renderer(self, p: Product, on_hand: int, updated: datetime) -> Callable[[str], dict[str, Any]]:
        def render(copy: str) -> dict[str, Any]:
            item = inventory_item_id(p)
            item_gid = gid("InventoryItem", item)
            level = {
                "id": f"gid://shopify/InventoryLevel/{LOCATION_ID}?inventory_item_id={item}",
                "item": {"id": item_gid, "sku": p.sku},
                "location": {"id": LOCATION_GID, "name": "Warehouse"},
                "quantities": [{"name": "available", "quantity": on_hand}],
                "createdAt": iso(p.acquired_at),
                "updatedAt": iso(updated),
            }
            return {
                "id": item_gid,
                "legacyResourceId": str(item),
                "sku": p.sku,
                "tracked": True,
                "createdAt": iso(p.acquired_at),
                "updatedAt": iso(updated),
                "unitCost": {"amount": amount(p.cost, BASE_CURRENCY), "currencyCode": BASE_CURRENCY},
                "variant": {"id": gid("ProductVariant", p.shopify_variant_id)},
                "inventoryLevels": {"nodes": [level]},
            }

        return render

    def _customer_rows(self, clock: datetime) -> list[Row]:
        orders: dict[str, list[Order]] = defaultdict(list)
        for order in sorted(shopify_orders(self.truth, clock), key=lambda o: o.created_at):
            if order.customer_id:
                orders[order.customer_id].append(order)
        rows = []
        for customer_id, theirs in orders.items():
            c = self.timeline.customers[customer_id]
            first, last = theirs[0].created_at, theirs[-1].created_at
            rows.append(Row(c.shopify_customer_id, first, last, self._customer_renderer(c, theirs, clock)))
        return rows

    def _customer_renderer(self, c: Customer, orders: list[Order], clock: datetime) -> Callable[[str], dict[str, Any]]:
        def render(copy: str) -> dict[str, Any]:
            spent = Decimal(0)
            for order in orders:
                state = self.timeline.state(order, clock)
                refunded = sum((r.amount + r.tax for r in state.refunds), Decimal(0)) if state else Decimal(0)
                spent += shop_amount(
                    order.total - refunded, order.currency, self.fx.rate(order.currency, order.created_at.date())
                )
            return {
                "id": gid("Customer", c.shopify_customer_id),
                "legacyResourceId": str(c.shopify_customer_id),
                "email": c.email,
                "phone": c.phone,
                "firstName": c.first_name,
                "lastName": c.last_name,
                "displayName": f"{c.first_name} {c.last_name}",
                "createdAt": iso(orders[0].created_at),
                "updatedAt": iso(orders[-1].created_at),
                "numberOfOrders": str(len(orders)),
                "amountSpent": {"amount": amount(spent, BASE_CURRENCY), "currencyCode": BASE_CURRENCY},
                "state": "ENABLED",
                "verifiedEmail": True,
                "taxExempt": False,
                "tags": [],
                "emailMarketingConsent": {
                    "marketingState": "SUBSCRIBED" if c.accepts_marketing else "NOT_SUBSCRIBED",
                    "marketingOptInLevel": "SINGLE_OPT_IN" if c.accepts_marketing else None,
                    "consentUpdatedAt": iso(orders[0].created_at) if c.accepts_marketing else None,
                },
                "defaultAddress": mailing_address(c),
            }

        return render
