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

Here: what the shop holds at a moment and the server; ``graphql`` reads queries, search strings and cursors,
``cost`` charges and throttles them, ``render`` gives the nodes.
"""

from __future__ import annotations

import bisect
import hmac
import math
import re
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from retreasure_sim.config import Faults
from retreasure_sim.model import BASE_CURRENCY, Customer, Order, Product, Truth
from retreasure_sim.servers.base import FakeServer, Request, Response
from retreasure_sim.servers.shopify.cost import MAX_QUERY_COST, LeakyBucket, nested_objects, requested_cost
from retreasure_sim.servers.shopify.graphql import (
    CONNECTIONS,
    MAX_PAGE,
    SORT_KEYS,
    SORT_TYPES,
    Call,
    GraphQLError,
    Row,
    decode_cursor,
    encode_cursor,
    parse_call,
    parse_search,
)
from retreasure_sim.servers.shopify.render import (
    CHANNEL,
    LOCATION_GID,
    LOCATION_ID,
    SHOP_GID,
    FxTable,
    amount,
    faulty,
    gid,
    inventory_item_id,
    iso,
    mailing_address,
    order_node,
    shop_amount,
)
from retreasure_sim.timeline import OrderState, Stock, stock_histories

API_PATH = r"/admin/api/(?P<version>\d{4}-\d{2}|unstable)/graphql\.json"
AUTH_REFUSED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"


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
