"""A fake eBay Sell Fulfillment API: ``getOrders``, ``getOrder`` and ``getShippingFulfillments``.

What it imitates, because the connector must cope with it (wire-formats.md §2): an OAuth bearer token, a
``filter`` of ``lastmodifieddate:[A..B]`` or ``creationdate:[A..B]`` (inclusive, UTC with milliseconds),
offset paging whose ``next``/``prev`` are full URIs present only when that page exists, results sorted by
creation date although filtered on change date, Amount objects with decimal strings, eBay's error bodies
(``{"errors": [{errorId, domain, category, message...}]}``), and the wire faults the simulator chose (an order
sent twice, a broken extra copy, a drifted shape). Field names and types follow eBay's published OpenAPI
schemas (OrderSearchPagedCollection, Order, ShippingFulfillmentPagedCollection).

Tax eBay collects and remits (marketplace-facilitator countries) is flagged with ``ebayCollectAndRemitTax``
and ``lineItems[].ebayCollectAndRemitTaxes``. As the spec says, it is counted in ``pricingSummary.total`` and
``lineItems[].total`` only when ``fieldGroups=TAX_BREAKDOWN`` is asked for, and always in ``totalDueSeller``.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from retreasure_sim import world
from retreasure_sim.model import Customer, Fulfillment, Order, Truth, money
from retreasure_sim.servers.base import FakeServer, Handler, Request, Response
from retreasure_sim.timeline import OrderState, Timeline

BASE = "/sell/fulfillment/v1"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_ORDER_IDS = 50
DEFAULT_LOOKBACK = timedelta(days=90)  # what getOrders shows when no date filter is given
MAX_RANGE = timedelta(days=2 * 365)  # longest filter range eBay accepts (error 30830)
SELLER_ID = "retreasure_vintage"
FINAL_VALUE_FEE = Decimal("0.129")  # eBay's fee on the order total, tax included
# The buyer's eBay site; buyers from countries without one buy on the seller's home site (Berlin).
MARKETPLACES = {"US": "EBAY_US", "GB": "EBAY_GB", "DE": "EBAY_DE", "FR": "EBAY_FR", "IT": "EBAY_IT", "NL": "EBAY_NL"}
HOME_MARKETPLACE = "EBAY_DE"
FILTER_NAMES = ("creationdate", "lastmodifieddate", "orderfulfillmentstatus")
# The only two status sets eBay accepts in orderfulfillmentstatus.
STATUS_SETS = (frozenset({"NOT_STARTED", "IN_PROGRESS"}), frozenset({"FULFILLED", "IN_PROGRESS"}))
_RANGE = re.compile(r"^\[(?P<start>.*?)\.\.(?P<end>.*)\]$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
_STATUSES = re.compile(r"^\{(?P<values>[A-Z_|]+)\}$")


def timestamp(at: datetime) -> str:
    """eBay's timestamp: UTC, milliseconds, 'Z' (``2015-08-04T19:09:02.768Z``)."""
    at = at.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"


def amount(value: Decimal, currency: str) -> dict[str, str]:
    """eBay's Amount: a decimal string in the currency's minor unit, never a float."""
    return {"value": f"{money(value, currency):f}", "currency": currency}


def carrier_code(carrier: str) -> str:
    """Our carrier names as eBay's ShippingCarrierCodeType ("Royal Mail" -> "RoyalMail")."""
    return carrier.replace(" ", "")


def default_clock(truth: Truth) -> datetime:
    """The moment a server shows by default: the last second of the simulation."""
    return datetime.combine(truth.end, time.max, UTC).replace(microsecond=0)


def expected_counts(truth: Truth, as_of: datetime | None = None) -> dict[str, int]:
    """Distinct well-formed keys a complete ingest lands: every eBay order placed, every parcel shipped."""
    clock = as_of or default_clock(truth)
    timeline = Timeline(truth)
    states = [s for s in (timeline.state(o, clock) for o in timeline.by_channel.get("ebay", ())) if s is not None]
    return {
        "ebay_orders": len(states),
        "ebay_shipping_fulfillments": sum(len(s.fulfillments) for s in states),
    }


class EbayApiError(Exception):
    """A request eBay refuses; carries its documented errorId."""

    def __init__(
        self,
        error_id: int,
        message: str,
        status: int = 400,
        parameters: dict[str, str] | None = None,
        category: str = "REQUEST",
        domain: str = "API_FULFILLMENT",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(error_id, domain, category, message, parameters)


def error_body(
    error_id: int, domain: str, category: str, message: str, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """eBay's error envelope: ``{"errors": [{errorId, domain, category, message, longMessage, parameters}]}``."""
    error: dict[str, Any] = {
        "errorId": error_id,
        "domain": domain,
        "category": category,
        "message": message,
        "longMessage": message,
    }
    if parameters:
        error["parameters"] = [{"name": k, "value": v} for k, v in parameters.items()]
    return {"errors": [error]}


@dataclass(frozen=True)
class Search:
    """A parsed ``filter``: which date field, its inclusive range, and the fulfillment statuses wanted."""

    field: str  # creationdate | lastmodifieddate
    start: datetime
    end: datetime
    statuses: frozenset[str] | None


def parse_filter(text: str, clock: datetime) -> Search:
    """eBay's filter grammar, with its error codes; no date criterion means the last 90 days created."""
    criteria: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")) if text.strip() else ():
        name, _, value = part.partition(":")
        if name not in FILTER_NAMES:
            raise EbayApiError(30700, f"Invalid filter name: {name}", parameters={"fieldname": name})
        criteria[name] = value
    statuses = None
    if "orderfulfillmentstatus" in criteria:
        value = criteria["orderfulfillmentstatus"]
        found = _STATUSES.match(value)
        statuses = frozenset(found["values"].split("|")) if found else None
        if statuses not in STATUS_SETS:
            raise EbayApiError(
                30800,
                f"Invalid filter value {value} for filter orderfulfillmentstatus",
                parameters={"fieldvalue": value, "fieldname": "orderfulfillmentstatus"},
            )
    # creationdate wins: eBay ignores lastmodifieddate when both are given.
    field = next((f for f in ("creationdate", "lastmodifieddate") if f in criteria), None)
    if field is None:
        return Search("creationdate", clock - DEFAULT_LOOKBACK, clock, statuses)
    value = criteria[field]
    found = _RANGE.match(value)
    if not found:
        raise EbayApiError(
            30800,
            f"Invalid filter value {value} for filter {field}",
            parameters={"fieldvalue": value, "fieldname": field},
        )
    if not found["start"]:
        raise EbayApiError(30820, "Start date is missing")
    start = _date(found["start"])
    end = _date(found["end"]) if found["end"] else clock
    if start > end:
        raise EbayApiError(30840, "Start date should be before end date")
    if end - start > MAX_RANGE:
        raise EbayApiError(30830, "Time range between start date and end date must be within '2' years.")
    return Search(field, start, end, statuses)


def _date(text: str) -> datetime:
    if not _DATE.match(text):
        raise EbayApiError(30810, "Invalid date format", parameters={"date": text})
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:  # right shape, impossible date (month 13)
        raise EbayApiError(30810, "Invalid date format", parameters={"date": text}) from None


def _int_param(request: Request, name: str, default: int, low: int, high: int, error_id: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise EbayApiError(error_id, f"Invalid {name}: {text}", parameters={f"{name}value": text})
    return value


class EbayServer(FakeServer):
    """eBay's Fulfillment API over the eBay channel's truth orders, as they stand at ``self.clock``."""

    name: ClassVar[str] = "ebay"

    def routes(self) -> None:
        self.route("GET", f"{BASE}/order", self._guard(self.get_orders))
        self.route("GET", f"{BASE}/order/(?P<order_id>[^/]+)", self._guard(self.get_order))
        self.route("GET", f"{BASE}/order/(?P<order_id>[^/]+)/shipping_fulfillment", self._guard(self.get_fulfillments))
        self.route(
            "GET",
            f"{BASE}/order/(?P<order_id>[^/]+)/shipping_fulfillment/(?P<fulfillment_id>[^/]+)",
            self._guard(self.get_fulfillment),
        )

    # -- credentials and failures, as eBay answers them ----------------------------------------
    def authorised(self, request: Request) -> bool:
        token = self.credentials.get("access_token")
        return bool(token) and request.headers.get("authorization") == f"Bearer {token}"

    def unauthorised(self) -> Response:
        body = error_body(1001, "OAuth", "REQUEST", "Invalid access token")
        body["errors"][0]["longMessage"] = (
            "Invalid access token. Check the value of the Authorization HTTP request header."
        )
        return Response(401, body)

    def throttled(self) -> Response:
        # eBay's quota refusal names no wait: the client backs off on its own.
        return Response(429, error_body(2001, "ACCESS", "REQUEST", "Too many requests"))

    def server_error(self, status: int) -> Response:
        return Response(status, error_body(30500, "API_FULFILLMENT", "APPLICATION", "System error"))

    def bad_request(self, message: str) -> Response:
        return Response(400, error_body(2004, "ACCESS", "REQUEST", f"Invalid request: {message}"))

    def _guard(self, handler: Handler) -> Handler:
        def guarded(request: Request) -> Response:
            try:
                return handler(request)
            except EbayApiError as exc:
                return Response(exc.status, exc.body)

        return guarded

    # -- routes ----------------------------------------------------------------------------------
    def get_orders(self, request: Request) -> Response:
        """getOrders: a page of orders matching the filter, or the orders named by ``orderIds``."""
        breakdown = self._field_groups(request)
        if "orderIds" in request.query:
            return self._by_ids(request.query["orderIds"], breakdown)
        search = parse_filter(request.query.get("filter", ""), self.clock)
        limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, 31100)
        offset = _int_param(request, "offset", 0, 0, 2**31 - 1, 31000)
        entries = self._entries(self._matching(search), limit)
        body: dict[str, Any] = {
            "href": self._href(request, offset),
            "limit": limit,
            "offset": offset,
            "total": len(entries),
            "orders": [self._render(state, variant, breakdown) for state, variant in entries[offset : offset + limit]],
        }
        if offset + limit < len(entries):
            body["next"] = self._href(request, offset + limit)
        if offset > 0:
            body["prev"] = self._href(request, max(0, offset - limit))
        return Response(200, body)

    def get_order(self, request: Request) -> Response:
        """getOrder: one order by its id."""
        breakdown = self._field_groups(request)
        return Response(200, self._render(self._state(request.match["order_id"]), "good", breakdown))

    def get_fulfillments(self, request: Request) -> Response:
        """getShippingFulfillments: every parcel shipped for the order so far."""
        state = self._state(request.match["order_id"])
        fulfillments = [self._fulfillment(state.order, f) for f in state.fulfillments]
        return Response(200, {"fulfillments": fulfillments, "total": len(fulfillments)})

    def get_fulfillment(self, request: Request) -> Response:
        """getShippingFulfillment: one parcel, as ``fulfillmentHrefs`` points to it."""
        state = self._state(request.match["order_id"])
        wanted = request.match["fulfillment_id"]
        for f in state.fulfillments:
            if str(f.channel_fulfillment_id) == wanted:
                return Response(200, self._fulfillment(state.order, f))
        raise EbayApiError(32200, f"Invalid fulfillment ID: {wanted}", status=404)

    # -- selection -------------------------------------------------------------------------------
    @cached_property
    def _orders(self) -> dict[str, Order]:
        return {o.channel_order_id: o for o in self.timeline.by_channel.get("ebay", ())}

    def _state(self, order_id: str) -> OrderState:
        order = self._orders.get(order_id)
        state = self.timeline.state(order, self.clock) if order else None
        if state is None:
            raise EbayApiError(32100, f"Invalid order ID: {order_id}", status=404, parameters={"orderId": order_id})
        return state

    def _matching(self, search: Search) -> list[OrderState]:
        states: list[OrderState] = []
        for order in self.timeline.by_channel.get("ebay", ()):
            state = self.timeline.state(order, self.clock)
            if state is None:
                break  # sorted by creation: the rest are in the future
            moment = order.created_at if search.field == "creationdate" else state.updated_at
            if not search.start <= moment <= search.end:
                continue
            if search.statuses is not None and _fulfillment_status(state) not in search.statuses:
                continue
            states.append(state)
        states.sort(key=lambda s: (s.order.created_at, s.order.channel_order_id))
        return states

    def _entries(self, states: list[OrderState], limit: int) -> list[tuple[OrderState, str]]:
        """The result list as the wire sends it: broken copies beside their order, and a duplicate one page
        further on (as when an order moves while a client pages)."""
        entries: list[tuple[OrderState, str]] = []
        for state in states:
            entries.append((state, "good"))
            if "malformed" in self.timeline.faults(state.order):
                entries.append((state, "broken"))
        duplicates = [
            (min(i + limit, len(entries)), state)
            for i, (state, variant) in enumerate(entries)
            if variant == "good" and "duplicate" in self.timeline.faults(state.order)
        ]
        for position, state in reversed(duplicates):
            entries.insert(position, (state, "good"))
        return entries

    def _by_ids(self, text: str, breakdown: bool) -> Response:
        ids = [i.strip() for i in text.split(",") if i.strip()]
        if len(ids) > MAX_ORDER_IDS:
            raise EbayApiError(30900, "Exceeded maximum number of order IDs (the current limit is 50)")
        orders, warnings = [], []
        for order_id in ids:
            try:
                orders.append(self._render(self._state(order_id), "good", breakdown))
            except EbayApiError as exc:
                warnings.extend(exc.body["errors"])
        body: dict[str, Any] = {
            "href": f"{self.url}{BASE}/order?orderIds={quote(','.join(ids), safe=',')}",
            "limit": len(ids),
            "offset": 0,
            "total": len(orders),
            "orders": orders,
        }
        if warnings:
            body["warnings"] = warnings
        return Response(200, body)

    def _field_groups(self, request: Request) -> bool:
        groups = request.query.get("fieldGroups")
        if groups is not None and groups != "TAX_BREAKDOWN":
            raise EbayApiError(32800, f"Invalid field group: {groups}", parameters={"fieldGroup": groups})
        return groups == "TAX_BREAKDOWN"

    def _href(self, request: Request, offset: int) -> str:
        params = {k: v for k, v in request.query.items() if k != "offset"}
        params["limit"] = params.get("limit", str(DEFAULT_LIMIT))
        params["offset"] = str(offset)
        # Brackets percent-encoded, as eBay requires of the filter and sends back in its links.
        return f"{self.url}{BASE}/order?{urlencode(params, quote_via=quote, safe=':,')}"

    # -- rendering -------------------------------------------------------------------------------
    def _render(self, state: OrderState, variant: str, breakdown: bool) -> dict[str, Any]:
        order = self._order(state, breakdown)
        key = state.order.channel_order_id
        faults = self.timeline.faults(state.order)
        if "schema_drift" in faults:
            order["orderRiskLevel"] = "LOW"  # a field this API version does not document
            del order["legacyOrderId"]  # documented as always returned, yet missing
        if variant == "broken":  # a fresh render each time, so the good copy is untouched
            if zlib.crc32(key.encode()) % 2:
                del order["orderId"]
            else:
                order["lastModifiedDate"] = "not-a-date"
        return order

    def _order(self, state: OrderState, breakdown: bool) -> dict[str, Any]:
        o = state.order
        customer = self.timeline.customers[o.customer_id or ""]
        cur = o.currency
        remit = o.tax_party == "marketplace"
        # Collect-and-remit tax is in the totals only with TAX_BREAKDOWN (the spec's note on `total`).
        counted_tax = o.tax if breakdown or not remit else Decimal(0)
        refunded = sum((r.amount + r.tax for r in state.refunds), Decimal(0))
        refunded_lines = {r.line_no for r in state.refunds}
        payment_status = "PAID"
        if refunded_lines:
            every_line = refunded_lines >= {line.line_no for line in o.lines}
            payment_status = "FULLY_REFUNDED" if every_line else "PARTIALLY_REFUNDED"
        status = _fulfillment_status(state)
        low, high = world.TRANSIT_DAYS[o.ship_country or customer.country]
        ship_by = o.ship_by or o.created_at
        earliest, latest = timestamp(ship_by + timedelta(days=low)), timestamp(ship_by + timedelta(days=high))
        pricing: dict[str, Any] = {
            "priceSubtotal": amount(o.subtotal, cur),
            "deliveryCost": amount(o.shipping, cur),
        }
        if o.discount:
            pricing["priceDiscount"] = amount(-o.discount, cur)  # eBay shows reductions as negative amounts
        if counted_tax:
            pricing["tax"] = amount(counted_tax, cur)
        pricing["total"] = amount(o.total - o.tax + counted_tax, cur)
        first = self.timeline.products[o.lines[0].product_id]
        body: dict[str, Any] = {
            "orderId": o.channel_order_id,
            "legacyOrderId": f"{first.ebay_item_id}-{o.lines[0].line_id}",
            "creationDate": timestamp(o.created_at),
            "lastModifiedDate": timestamp(state.updated_at),
            "orderFulfillmentStatus": status,
            "orderPaymentStatus": payment_status,
            "sellerId": SELLER_ID,
            "buyer": {"username": customer.ebay_username, "taxAddress": _place(customer)},
            "pricingSummary": pricing,
            "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
            "paymentSummary": {
                "payments": [
                    {
                        "paymentMethod": "EBAY",
                        "paymentDate": timestamp(o.created_at),
                        "amount": amount(o.total, cur),
                        "paymentStatus": "PAID",
                    }
                ],
                "refunds": [
                    {
                        "refundId": str(r.channel_refund_id),
                        "refundReferenceId": f"RR{r.channel_refund_id}",
                        "refundDate": timestamp(r.created_at),
                        "amount": amount(r.amount + r.tax, cur),
                        "refundStatus": "REFUNDED",
                    }
                    for r in state.refunds
                ],
                # As eBay documents it: collect-and-remit tax included, refunds taken off.
                "totalDueSeller": amount(o.total - refunded, cur),
            },
            "fulfillmentStartInstructions": [
                {
                    "fulfillmentInstructionsType": "SHIP_TO",
                    "minEstimatedDeliveryDate": earliest,
                    "maxEstimatedDeliveryDate": latest,
                    "shippingStep": {
                        "shippingCarrierCode": carrier_code(world.CARRIERS[o.ship_country or customer.country]),
                        "shipTo": {
                            "fullName": f"{customer.first_name} {customer.last_name}",
                            "contactAddress": {"addressLine1": customer.street, **_place(customer)},
                            "primaryPhone": {"phoneNumber": customer.phone},
                            "email": customer.email,
                        },
                    },
                }
            ],
            "fulfillmentHrefs": [
                f"{self.url}{BASE}/order/{o.channel_order_id}/shipping_fulfillment/{f.channel_fulfillment_id}"
                for f in state.fulfillments
            ],
            "lineItems": [
                self._line(state, i, breakdown, status, (earliest, latest), customer.country)
                for i in range(len(o.lines))
            ],
            "totalFeeBasisAmount": amount(o.total, cur),
            "totalMarketplaceFee": amount(o.total * FINAL_VALUE_FEE, cur),
        }
        if remit:
            body["ebayCollectAndRemitTax"] = True  # only ever sent when true
        return body

    def _line(
        self,
        state: OrderState,
        index: int,
        breakdown: bool,
        status: str,
        delivery: tuple[str, str],
        country: str,
    ) -> dict[str, Any]:
        o, line = state.order, state.order.lines[index]
        product = self.timeline.products[line.product_id]
        cur = o.currency
        remit = o.tax_party == "marketplace"
        # The order's shipping (and the tax on it) rides on its first line, so lines add up to the order.
        shipping = o.shipping if index == 0 else Decimal(0)
        tax = line.tax + (o.shipping_tax if index == 0 else Decimal(0))
        counted_tax = tax if breakdown or not remit else Decimal(0)
        tax_type = "STATE_SALES_TAX" if o.tax_country == "US" else "VAT"
        cost = line.unit_price * line.quantity
        marketplace = MARKETPLACES.get(country, HOME_MARKETPLACE)
        taxes: list[dict[str, Any]] = []
        if tax:
            taxes.append({"amount": amount(tax, cur), **({"taxType": tax_type} if breakdown else {})})
        item: dict[str, Any] = {
            "lineItemId": str(line.line_id),
            "legacyItemId": product.ebay_item_id,
            "sku": line.sku,
            "title": product.title,
            "quantity": line.quantity,
            "soldFormat": "FIXED_PRICE",
            "listingMarketplaceId": marketplace,
            "purchaseMarketplaceId": marketplace,
            "lineItemFulfillmentStatus": status,
            "lineItemCost": amount(cost, cur),
            "discountedLineItemCost": amount(cost - line.discount, cur),
            "deliveryCost": {"shippingCost": amount(shipping, cur)},
            "taxes": taxes,
            "total": amount(cost - line.discount + shipping + counted_tax, cur),
            "refunds": [
                {
                    "refundId": str(r.channel_refund_id),
                    "refundDate": timestamp(r.created_at),
                    "amount": amount(r.amount + r.tax, cur),
                }
                for r in state.refunds
                if r.line_no == line.line_no
            ],
            "lineItemFulfillmentInstructions": {
                "shipByDate": timestamp(o.ship_by or o.created_at),
                "minEstimatedDeliveryDate": delivery[0],
                "maxEstimatedDeliveryDate": delivery[1],
                "guaranteedDelivery": False,
            },
        }
        if remit and tax:
            item["ebayCollectAndRemitTaxes"] = [
                {"taxType": tax_type, "amount": amount(tax, cur), "collectionMethod": "NET"}
            ]
        return item

    def _fulfillment(self, order: Order, f: Fulfillment) -> dict[str, Any]:
        return {
            "fulfillmentId": str(f.channel_fulfillment_id),
            "shippedDate": timestamp(f.shipped_at),
            "shippingCarrierCode": carrier_code(f.carrier),
            "shipmentTrackingNumber": f.tracking_number,
            "lineItems": [{"lineItemId": str(line.line_id), "quantity": line.quantity} for line in order.lines],
        }


def _fulfillment_status(state: OrderState) -> str:
    return "FULFILLED" if state.fulfillments else "NOT_STARTED"


def _place(customer: Customer) -> dict[str, str]:
    """City, state, postal code and country: the tax address, and the tail of the postal one."""
    place = {"city": customer.city, "postalCode": customer.postal_code, "countryCode": customer.country}
    if customer.region:
        place["stateOrProvince"] = customer.region
    return place
