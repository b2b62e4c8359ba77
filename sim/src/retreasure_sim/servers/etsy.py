"""A fake Etsy Open API v3: the shop's receipts and listings as ``/v3/application`` shows them.

What it imitates, because the connector must cope with it: two credentials on every call (``x-api-key`` and an
OAuth bearer token), offset paging with a total and no next link, Money objects (integer amount and divisor),
epoch-second timestamps, a real per-second request window and a daily quota announced in ``x-*`` headers,
``{"error": ...}`` bodies, and the wire faults the simulator chose (a receipt sent twice, a broken extra copy,
a drifted shape). Field names and types follow Etsy's published OpenAPI schemas (ShopReceipt, ShopListing...).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from retreasure_sim.config import Faults
from retreasure_sim.model import MINOR_UNITS, Order, OrderLine, Product, Truth
from retreasure_sim.servers.base import FakeServer, Request, Response
from retreasure_sim.timeline import OrderState, stock_histories

BASE = "/v3/application"
SHOP_CURRENCY = "EUR"  # listings are priced in the shop's currency; receipts in the buyer's
SELLER_USER_ID = 612_000_001
DAY_S = 86_400
LISTING_STATES = ("active", "sold_out", "inactive")
# Our eras as Etsy's `when_made` vocabulary.
WHEN_MADE = {
    "Georgian": "1700s",
    "Victorian": "1800s",
    "Edwardian": "1900s",
    "Art Nouveau": "1900s",
    "Art Deco": "1920s",
    "Mid-Century": "1950s",
    "1970s": "1970s",
    "1980s": "1980s",
}
# What a seller fills in per category: a typical shipping weight in grams, and a gift occasion (the 2021
# schema lists no null among the occasions, so every listing names one).
CATEGORY_DETAILS = {
    "Furniture": (25_000, "housewarming"),
    "Lighting": (3_000, "housewarming"),
    "Ceramics": (800, "birthday"),
    "Glassware": (600, "wedding"),
    "Jewellery": (30, "anniversary"),
    "Clocks": (2_000, "retirement"),
    "Art": (1_500, "housewarming"),
    "Textiles": (1_200, "housewarming"),
    "Books": (900, "graduation"),
    "Silverware": (1_000, "wedding"),
}
RECEIPT_SORTS: dict[str, Callable[[OrderState], Any]] = {
    "created": lambda s: (s.order.created_at, int(s.order.channel_order_id)),
    "updated": lambda s: (s.updated_at, int(s.order.channel_order_id)),
    "receipt_id": lambda s: int(s.order.channel_order_id),
}


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def money(value: Decimal, currency: str) -> dict[str, Any]:
    """Etsy's Money: the value in minor units and the divisor that renders it (1 for yen)."""
    divisor = 10 ** MINOR_UNITS[currency]
    amount = value * divisor
    if amount != amount.to_integral_value():
        raise ValueError(f"{value} {currency} has more decimals than the currency")
    return {"amount": int(amount), "divisor": divisor, "currency_code": currency}


class RateLimiter:
    """Etsy's budgets per API key: requests in any rolling second, and requests per day (here: since the
    server started, as a fake's life is shorter than a day)."""

    def __init__(self, per_second: int, per_day: int) -> None:
        self.per_second = per_second
        self.per_day = per_day
        self.used_today = 0
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self) -> tuple[str | None, dict[str, str]]:
        """Admit one request, or say which budget refuses it ("second" or "day"); with the headers to send."""
        with self._lock:
            now = time.monotonic()
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            refused: str | None = None
            if self.used_today >= self.per_day:
                refused = "day"
            elif len(self._recent) >= self.per_second:
                refused = "second"
            else:
                self._recent.append(now)
                self.used_today += 1
            headers = {
                "x-limit-per-second": str(self.per_second),
                "x-remaining-this-second": str(max(0, self.per_second - len(self._recent))),
                "x-limit-per-day": str(self.per_day),
                "x-remaining-today": str(max(0, self.per_day - self.used_today)),
            }
        return refused, headers


@dataclass(slots=True)
class ListingState:
    """A listing as Etsy shows it at some moment."""

    product: Product
    quantity: int
    state: str
    updated_at: datetime
    state_at: datetime


class EtsyServer(FakeServer):
    """Etsy Open API v3 for one shop: receipts (orders) and listings, as of the server's clock."""

    name: ClassVar[str] = "etsy"

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
        qps: int = 10,
        per_day: int = 10_000,
        shop_id: int = 1,
    ) -> None:
        self.limiter = RateLimiter(qps, per_day)
        self.shop_id = shop_id
        super().__init__(truth, credentials, faults, seed, clock, host, port)
        self.receipts: dict[str, Order] = {o.channel_order_id: o for o in self.timeline.by_channel.get("etsy", ())}
        self.stock = stock_histories(truth, "etsy")

    # -- FakeServer hooks ------------------------------------------------------------------------
    def routes(self) -> None:
        shop = rf"{BASE}/shops/(?P<shop_id>\d+)"
        self.route("GET", rf"{shop}/receipts", self.list_receipts)
        self.route("GET", rf"{shop}/receipts/(?P<receipt_id>\d+)", self.get_receipt)
        self.route("GET", rf"{shop}/listings", self.list_listings)

    def api_key_ok(self, request: Request) -> bool:
        key = self.credentials["api_key"]
        accepted = {key, f"{key}:{self.credentials['shared_secret']}"} if "shared_secret" in self.credentials else {key}
        return request.headers.get("x-api-key") in accepted

    def token_ok(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.credentials['access_token']}"

    def authorised(self, request: Request) -> bool:
        return self.api_key_ok(request) and self.token_ok(request)

    def throttled(self) -> Response:
        return Response(429, {"error": "Exceeded per second rate limit"}, {"x-remaining-this-second": "0"})

    def server_error(self, status: int) -> Response:
        return Response(status, {"error": "Internal server error"})

    def dispatch(self, request: Request) -> Response:
        refusal, headers = self.refusal(request)
        if refusal is None:
            response = super().dispatch(request)
        else:
            with self._lock:
                self.requests += 1
            response = refusal
        response.headers = {**headers, **response.headers}
        return response

    def refusal(self, request: Request) -> tuple[Response | None, dict[str, str]]:
        """Etsy's order of checks: which key is calling, then that key's budgets (reported in headers).

        A request with an unknown key is charged to no budget, so its refusal carries no budget headers.
        """
        if not self.api_key_ok(request):
            return Response(401, {"error": "Invalid API key"}), {}
        if not self.token_ok(request):
            return Response(401, {"error": "Invalid access token"}), {}
        refused, headers = self.limiter.take()
        if refused == "day":
            return Response(429, {"error": "Exceeded daily rate limit"}, {"retry-after": str(DAY_S)}), headers
        if refused == "second":
            return Response(429, {"error": "Exceeded per second rate limit"}), headers
        return None, headers

    # -- routes ----------------------------------------------------------------------------------
    def _check_shop(self, request: Request) -> Response | None:
        if int(request.match["shop_id"]) != self.shop_id:
            return Response(403, {"error": f"The token does not grant access to shop {request.match['shop_id']}"})
        return None

    def list_receipts(self, request: Request) -> Response:
        denied = self._check_shop(request)
        if denied:
            return denied
        q = request.query
        limit, offset = _int(q, "limit", 25, 1, 100), _int(q, "offset", 0, 0, None)
        sort_on = _choice(q, "sort_on", "created", tuple(RECEIPT_SORTS))
        descending = _choice(q, "sort_order", "desc", ("asc", "desc", "up", "down")) in ("desc", "down")
        states = self.timeline.changed("etsy", self.clock, _time(q, "min_last_modified"), _time(q, "max_last_modified"))
        min_created, max_created = _time(q, "min_created"), _time(q, "max_created")
        was_paid, was_shipped = _bool(q, "was_paid"), _bool(q, "was_shipped")
        states = [
            s
            for s in states
            if (min_created is None or s.order.created_at >= min_created)
            and (max_created is None or s.order.created_at <= max_created)
            and was_paid in (None, True)  # every receipt here is paid
            and (was_shipped is None or was_shipped == bool(s.fulfillments))
        ]
        states.sort(key=RECEIPT_SORTS[sort_on], reverse=descending)
        rows = [row for state in states for row in self.on_the_wire(state)]
        return Response(200, {"count": len(rows), "results": rows[offset : offset + limit]})

    def get_receipt(self, request: Request) -> Response:
        denied = self._check_shop(request)
        if denied:
            return denied
        order = self.receipts.get(request.match["receipt_id"])
        state = self.timeline.state(order, self.clock) if order else None
        if state is None:
            return Response(404, {"error": f"Receipt {request.match['receipt_id']} not found"})
        return Response(200, self.on_the_wire(state)[0])

    def list_listings(self, request: Request) -> Response:
        denied = self._check_shop(request)
        if denied:
            return denied
        q = request.query
        limit, offset = _int(q, "limit", 25, 1, 100), _int(q, "offset", 0, 0, None)
        wanted = _choice(q, "state", "active", LISTING_STATES)
        sort_on = _choice(q, "sort_on", "created", ("created", "updated"))
        descending = _choice(q, "sort_order", "desc", ("asc", "desc", "up", "down")) in ("desc", "down")
        found = [s for s in self.listings(self.clock) if s.state == wanted]
        if sort_on == "created":
            found.sort(key=lambda s: (s.product.acquired_at, s.product.etsy_listing_id), reverse=descending)
        else:
            found.sort(key=lambda s: (s.updated_at, s.product.etsy_listing_id), reverse=descending)
        rows = [self.listing(s) for s in found[offset : offset + limit]]
        return Response(200, {"count": len(found), "results": rows})

    # -- what the channel shows ------------------------------------------------------------------
    def on_the_wire(self, state: OrderState) -> list[dict[str, Any]]:
        """The receipt as sent, followed by any copy the simulator's wire faults add."""
        receipt = self.receipt(state)
        faults = self.timeline.faults(state.order)
        if "schema_drift" in faults:
            receipt.pop("created_timestamp")  # optional in the schema: clients must not depend on it
            receipt["expected_ship_timestamp"] = receipt["create_timestamp"] + 3 * DAY_S
        rows = [receipt]
        if "duplicate" in faults:
            rows.append(dict(receipt))
        if "malformed" in faults:
            broken = dict(receipt)
            if receipt["receipt_id"] % 2:
                broken["updated_timestamp"] = "soon"
            else:
                del broken["receipt_id"]
            rows.append(broken)
        return rows

    def receipt(self, state: OrderState) -> dict[str, Any]:
        order, cur = state.order, state.order.currency
        customer = self.timeline.customers[order.customer_id or ""]  # an Etsy buyer always has an account
        receipt_id, created, updated = int(order.channel_order_id), epoch(order.created_at), epoch(state.updated_at)
        name = f"{customer.first_name} {customer.last_name}"
        # Etsy splits the tax it shows: US sales tax in total_tax_cost, VAT elsewhere in total_vat_cost.
        sales_tax = order.tax if customer.country == "US" else Decimal(0)
        vat = order.tax - sales_tax
        refunds = [
            {
                # What went back to the buyer: the line's value and the tax on it.
                "amount": money(r.amount + r.tax, cur),
                "created_timestamp": epoch(r.created_at),
                "reason": "Item returned",
                "note_from_issuer": None,
                "status": "Refunded",
            }
            for r in state.refunds
        ]
        return {
            "receipt_id": receipt_id,
            "receipt_type": 0,
            "seller_user_id": SELLER_USER_ID,
            "buyer_user_id": customer.etsy_user_id,
            "buyer_email": customer.email,
            "name": name,
            "first_line": customer.street,
            "second_line": None,
            "city": customer.city,
            "state": customer.region,
            "zip": customer.postal_code,
            "formatted_address": "\n".join(
                (
                    name,
                    customer.street,
                    f"{customer.postal_code} {customer.city} {customer.region}".strip(),
                    customer.country,
                )
            ),
            "country_iso": customer.country,
            "status": "completed" if state.fulfillments else "paid",
            "payment_method": "cc",
            "payment_email": "",
            "message_from_seller": None,
            "message_from_buyer": None,
            "message_from_payment": None,
            "is_paid": True,
            "is_shipped": bool(state.fulfillments),
            "create_timestamp": created,
            "created_timestamp": created,
            "update_timestamp": updated,
            "updated_timestamp": updated,
            "is_gift": False,
            "gift_message": "",
            "grandtotal": money(order.total, cur),
            "subtotal": money(order.subtotal - order.discount, cur),
            "total_price": money(order.subtotal, cur),
            "total_shipping_cost": money(order.shipping, cur),
            "total_tax_cost": money(sales_tax, cur),
            "total_vat_cost": money(vat, cur),
            "discount_amt": money(order.discount, cur),
            "gift_wrap_price": money(Decimal(0), cur),
            "shipments": [
                {
                    "receipt_shipping_id": f.channel_fulfillment_id,
                    "shipment_notification_timestamp": epoch(f.shipped_at),
                    "carrier_name": f.carrier,
                    "tracking_code": f.tracking_number,
                }
                for f in state.fulfillments
            ],
            "transactions": [self.transaction(state, line, customer.etsy_user_id) for line in order.lines],
            "refunds": refunds,
        }

    def transaction(self, state: OrderState, line: OrderLine, buyer_user_id: int) -> dict[str, Any]:
        """One purchased listing of a receipt."""
        order, product = state.order, self.timeline.products[line.product_id]
        created = epoch(order.created_at)
        shipped = min((f.shipped_at for f in state.fulfillments), default=None)
        # The order's shipping is charged on its first transaction.
        shipping = order.shipping if line.line_no == order.lines[0].line_no else Decimal(0)
        return {
            "transaction_id": line.line_id,
            "title": product.title,
            "description": f"{product.condition} {product.material} {product.category.lower()}.",
            "seller_user_id": SELLER_USER_ID,
            "buyer_user_id": buyer_user_id,
            "create_timestamp": created,
            "created_timestamp": created,
            "paid_timestamp": created,
            "shipped_timestamp": epoch(shipped) if shipped else None,
            "quantity": line.quantity,
            "listing_image_id": None,
            "receipt_id": int(order.channel_order_id),
            "is_digital": False,
            "file_data": "",
            "listing_id": product.etsy_listing_id,
            "transaction_type": "listing",
            "product_id": product_id(product),
            "sku": line.sku,
            "price": money(line.unit_price, order.currency),
            "shipping_cost": money(shipping, order.currency),
            "variations": [],
        }

    def listings(self, as_of: datetime) -> list[ListingState]:
        """Every listing of the shop at ``as_of``: products listed on Etsy that were acquired by then."""
        found = []
        for pid, history in self.stock.items():
            stock = history.as_of(as_of)
            if stock is None:
                continue
            state = "active" if stock.on_hand > 0 else "sold_out"
            product = self.timeline.products[pid]
            found.append(ListingState(product, stock.on_hand, state, stock.moved_at, stock.state_since))
        return found

    def listing(self, s: ListingState) -> dict[str, Any]:
        p, created = s.product, epoch(s.product.acquired_at)
        weight, occasion = CATEGORY_DETAILS.get(p.category, (1_000, "birthday"))
        return {
            "listing_id": p.etsy_listing_id,
            "user_id": SELLER_USER_ID,
            "shop_id": self.shop_id,
            "title": p.title,
            "description": f"{p.title}. {p.era}, {p.material}. Condition: {p.condition}.",
            "state": s.state,
            "creation_timestamp": created,
            "created_timestamp": created,
            "ending_timestamp": created + 120 * DAY_S,
            "original_creation_timestamp": created,
            "last_modified_timestamp": epoch(s.updated_at),
            "updated_timestamp": epoch(s.updated_at),
            "state_timestamp": epoch(s.state_at),
            "quantity": s.quantity,
            "shop_section_id": None,
            "featured_rank": -1,
            "url": f"https://www.etsy.com/listing/{p.etsy_listing_id}",
            "views": 0,
            "num_favorers": 0,
            "non_taxable": False,
            "is_customizable": False,
            "listing_type": "physical",
            "tags": [p.category.lower(), p.era.lower(), p.material],
            "materials": [p.material],
            "shipping_template_id": None,
            "processing_min": 1,
            "processing_max": 3,
            "who_made": "someone_else",
            "when_made": WHEN_MADE.get(p.era, "before_2002"),
            "item_weight": float(weight),
            "item_weight_unit": "g",
            "item_length": None,
            "item_width": None,
            "item_height": None,
            "item_dimensions_unit": "cm",
            "is_private": False,
            "recipient": "not_specified",
            "occasion": occasion,
            "style": [],
            "file_data": "",
            "has_variations": False,
            "should_auto_renew": True,
            "language": "en",
            "price": money(p.list_price, SHOP_CURRENCY),
            "skus": [p.sku],
        }


def product_id(product: Product) -> int:
    """Etsy's id of the listing's single ListingProduct."""
    return 20_000_000_000 + int(product.product_id[1:])


def _int(query: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    value = int(query[name]) if query.get(name, "") != "" else default
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"Expected int {name} to be {bound}, got {value}")
    return value


def _time(query: dict[str, str], name: str) -> datetime | None:
    if query.get(name, "") == "":
        return None
    return datetime.fromtimestamp(_int(query, name, 0, 946_684_800, None), UTC)


def _bool(query: dict[str, str], name: str) -> bool | None:
    value = query.get(name, "").lower()
    if value == "":
        return None
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"Expected bool {name}, got {value!r}")
    return value in ("true", "1")


def _choice(query: dict[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = query.get(name) or default
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def expected_counts(truth: Truth, as_of: datetime | None = None) -> dict[str, int]:
    """Distinct well-formed business keys a complete ingest of this fake lands, per bronze table."""
    clock = as_of or datetime.combine(truth.end, datetime.max.time(), UTC).replace(microsecond=0)
    receipts = {o.channel_order_id for o in truth["orders"] if o.channel == "etsy" and o.created_at <= clock}
    listings = {p.etsy_listing_id for p in truth["products"] if "etsy" in p.channels and p.acquired_at <= clock}
    return {"etsy_receipts": len(receipts), "etsy_listings": len(listings)}
