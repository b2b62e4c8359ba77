"""The Shopify connector against the fake Shopify GraphQL Admin API, over real HTTP on loopback."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from math import ceil
from pathlib import Path
from typing import Any

import httpx
import pytest

from retreasure.bronze.ingest import run_ingest
from retreasure.connectors.base import Window, load_sources
from retreasure.connectors.shopify import QUERIES, ShopifySource
from retreasure.http.client import AuthError
from retreasure.lake import Lake, TableRef
from retreasure.records.instants import parse_instant
from retreasure.settings import Settings
from retreasure_sim.business import simulate
from retreasure_sim.config import Faults, SimConfig
from retreasure_sim.model import Order, Truth, money
from retreasure_sim.servers.shopify import ShopifyServer, expected_counts
from retreasure_sim.timeline import Timeline
from tests.conftest import SMALL
from tests.helpers import ALL_TIME, extract, stop_together
from tests.pii_scan import clear_values_in_parquet

TOKEN = "shpat_fake_0123456789abcdef"
GRAPHQL = "/admin/api/2025-10/graphql.json"
FAST = 1_000_000.0  # restore rate (points/s) where throttling is not what a test is about
FIXTURES = Path(__file__).parents[1] / "fixtures" / "shopify"

Serve = Callable[..., ShopifyServer]
Connect = Callable[..., ShopifySource]


@pytest.fixture(scope="module")
def running() -> Iterator[list[ShopifyServer]]:
    """Every server this module starts, stopped together at the end (each stop waits for a poll tick)."""
    started: list[ShopifyServer] = []
    yield started
    stop_together(started)


@pytest.fixture
def serve(running: list[ShopifyServer]) -> Serve:
    """Starts a fake Shopify, with a bucket that refills at once unless told otherwise."""

    def start(truth: Truth, **options: Any) -> ShopifyServer:
        options.setdefault("restore_rate", FAST)
        server = ShopifyServer(truth, {"access_token": options.pop("token", TOKEN)}, **options).start()
        running.append(server)
        return server

    return start


@pytest.fixture
def connect(make_settings: Callable[..., Settings]) -> Iterator[Connect]:
    """A Shopify connector pointed at a server; keywords override its settings section (``http`` the client)."""
    sources: list[ShopifySource] = []

    def make(server: ShopifyServer, http: dict[str, Any] | None = None, **shopify: Any) -> ShopifySource:
        values = {"base_url": server.url, "access_token": TOKEN, **shopify}
        overrides: dict[str, Any] = {"shopify": values}
        if http:
            overrides["http"] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "retry_after_max_s": 5, **http}
        source = ShopifySource(make_settings(**overrides))
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.close()


@pytest.fixture(scope="module")
def faulty_wire() -> Truth:
    """Ten days in which a third of the orders are sent twice, broken or drifted."""
    return simulate(SimConfig(SMALL.seed, SMALL.start, 10, SMALL.scale, Faults(0.3, 0.0, 0.3, 0.3)))


def shopify_orders(truth: Truth, as_of: datetime | None = None) -> dict[str, Order]:
    return {
        o.channel_order_id: o
        for o in truth["orders"]
        if o.channel == "shopify" and (as_of is None or o.created_at <= as_of)
    }


def rate_on(truth: Truth, currency: str, day: date) -> Decimal:
    """The ECB rate of the day or the last business day before it (the first one before any was published)."""
    rates = sorted((fx.date, fx.rate) for fx in truth["fx_rates"] if fx.currency == currency)
    earlier = [rate for d, rate in rates if d <= day]
    return earlier[-1] if earlier else rates[0][1]


def money_of(node: dict[str, Any], field: str, side: str = "presentmentMoney") -> Decimal:
    text = node[field][side]["amount"]
    assert isinstance(text, str), f"{field} must be a decimal string, got {text!r}"
    return Decimal(text)


def gql(server: ShopifyServer, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(
        server.url + GRAPHQL,
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": TOKEN},
    )


def test_registered_with_its_entities() -> None:
    source = load_sources()["shopify"]
    assert source is ShopifySource and source.incremental and source.system == "Shopify"
    assert {(e.name, e.key, e.updated_at) for e in source.entities} == {
        ("orders", "id", "updatedAt"),
        ("products", "id", "updatedAt"),
        ("customers", "id", "updatedAt"),
        ("inventory_levels", "id", "updatedAt"),
    }
    orders, _, customers, _ = source.entities
    assert {"email", "phone", "customer.email", "shippingAddress.address1", "billingAddress.lastName"} <= set(
        orders.pii.paths
    )
    assert {"email", "phone", "firstName", "lastName", "defaultAddress.address1"} <= set(customers.pii.paths)


def test_orders_equal_the_truth(clean_truth: Truth, serve: Serve, connect: Connect) -> None:
    server = serve(clean_truth)
    source = connect(server)
    records = extract(source, "orders")
    orders = shopify_orders(clean_truth)
    ids = [r.payload["legacyResourceId"] for r in records]
    assert sorted(ids) == sorted(orders) and len(ids) == len(set(ids))
    assert len(records) == expected_counts(clean_truth)["shopify_orders"]
    updated = [parse_instant(r.payload["updatedAt"]) for r in records]
    assert updated == sorted(updated)  # sortKey UPDATED_AT

    timeline = Timeline(clean_truth)
    currencies: Counter[str] = Counter()
    for record in records:
        node, order = record.payload, orders[record.payload["legacyResourceId"]]
        state = timeline.state(order, server.clock)
        assert state is not None
        cur = order.currency
        currencies[cur] += 1
        assert node["id"] == f"gid://shopify/Order/{order.channel_order_id}"
        assert node["presentmentCurrencyCode"] == cur and node["currencyCode"] == "EUR"
        assert node["totalPriceSet"]["presentmentMoney"]["amount"] == format(money(order.total, cur), "f")
        assert money_of(node, "totalPriceSet") == order.total
        assert money_of(node, "totalTaxSet") == order.tax
        assert money_of(node, "totalDiscountsSet") == order.discount
        assert money_of(node, "totalShippingPriceSet") == order.shipping
        assert money_of(node, "subtotalPriceSet") == order.subtotal - order.discount  # Shopify: after discounts
        rate = rate_on(clean_truth, cur, order.created_at.date()) if cur != "EUR" else Decimal(1)
        assert money_of(node, "totalPriceSet", "shopMoney") == money(order.total / rate, "EUR")
        assert parse_instant(node["createdAt"]) == order.created_at and node["createdAt"].endswith("Z")
        assert parse_instant(node["updatedAt"]) == state.updated_at
        assert node["taxesIncluded"] is False and node["sourceName"] == "web"
        assert node["email"] == node["customer"]["email"]
        attributes = {a["key"]: a["value"] for a in node["customAttributes"]}
        assert attributes.get("session_id") == order.session_id and attributes.get("utm_campaign") == order.campaign
        assert node["discountCodes"] == ([order.discount_code] if order.discount_code else [])
        lines = node["lineItems"]["nodes"]
        assert [(li["sku"], li["quantity"]) for li in lines] == [(ln.sku, ln.quantity) for ln in order.lines]
        assert [money_of(li, "originalUnitPriceSet") for li in lines] == [ln.unit_price for ln in order.lines]
        assert [money_of(li, "totalDiscountSet") for li in lines] == [ln.discount for ln in order.lines]
        assert sum(money_of(t, "priceSet") for li in lines for t in li["taxLines"]) == order.tax - order.shipping_tax
        assert all(t["channelLiable"] is False for t in node["taxLines"])
        assert money_of(node["shippingLine"], "originalPriceSet") == order.shipping
        assert len(node["fulfillments"]) == len(state.fulfillments)
        delivered = [f["deliveredAt"] for f in node["fulfillments"] if f["deliveredAt"]]
        assert len(delivered) == len(state.delivered)
        promises = node["fulfillmentOrders"]["nodes"]
        assert [parse_instant(f["fulfillBy"]) for f in promises] == [order.ship_by]
        assert [f["status"] for f in promises] == ["CLOSED" if state.fulfillments else "OPEN"]
        assert [money_of(r, "totalRefundedSet") for r in node["refunds"]] == [r.amount + r.tax for r in state.refunds]
    assert currencies["EUR"] and currencies["JPY"] and len(currencies) >= 3


def test_products_customers_and_stock_equal_the_truth(clean_truth: Truth, serve: Serve, connect: Connect) -> None:
    server = serve(clean_truth)
    source = connect(server)
    expected = expected_counts(clean_truth)
    listed = {p.shopify_product_id: p for p in clean_truth["products"] if "shopify" in p.channels}
    stock: dict[str, int] = defaultdict(int)
    for move in clean_truth["inventory_movements"]:
        if move.at <= server.clock:
            stock[move.product_id] += move.change

    products = [r.payload for r in extract(source, "products")]
    assert len(products) == len({p["id"] for p in products}) == expected["shopify_products"] == len(listed)
    for node in products:
        p = listed[int(node["legacyResourceId"])]
        (variant,) = node["variants"]["nodes"]
        assert variant["sku"] == p.sku and Decimal(variant["price"]) == p.list_price
        assert variant["inventoryQuantity"] == stock[p.product_id]
        assert node["status"] == ("ACTIVE" if stock[p.product_id] > 0 else "ARCHIVED")
        assert node["productType"] == p.category and f"era:{p.era}" in node["tags"]
    assert {p["status"] for p in products} == {"ACTIVE", "ARCHIVED"}

    customers = [r.payload for r in extract(source, "customers")]
    orders = sorted(shopify_orders(clean_truth).values(), key=lambda o: o.created_at)
    first_order: dict[str, datetime] = {}
    for order in orders:
        first_order.setdefault(order.customer_id or "", order.created_at)
    people = {c.shopify_customer_id: c for c in clean_truth["customers"] if c.customer_id in first_order}
    assert len(customers) == expected["shopify_customers"] == len(people)
    for node in customers:
        person = people[int(node["legacyResourceId"])]
        assert node["email"] == person.email and node["lastName"] == person.last_name
        assert parse_instant(node["createdAt"]) == first_order[person.customer_id]

    levels = [r.payload for r in extract(source, "inventory_levels")]
    assert len(levels) == len({lv["id"] for lv in levels}) == expected["shopify_inventory_levels"]
    by_sku = {p.sku: p for p in listed.values()}
    for level in levels:
        assert level["location"]["id"] == "gid://shopify/Location/1"
        assert level["quantities"] == [
            {"name": "available", "quantity": stock[by_sku[level["item"]["sku"]].product_id]}
        ]
        # The item's cost travels with each of its levels: bronze keeps what cost of goods is computed from.
        assert Decimal(level["item"]["unitCost"]["amount"]) == by_sku[level["item"]["sku"]].cost
        assert level["item"]["unitCost"]["currencyCode"] == "EUR"


def test_incremental_windows_with_lookback_lose_nothing(clean_truth: Truth, serve: Serve, connect: Connect) -> None:
    timeline = Timeline(clean_truth)
    mid = datetime.combine(clean_truth.start + timedelta(days=10), datetime.min.time(), UTC)
    end = datetime.combine(clean_truth.end + timedelta(days=1), datetime.min.time(), UTC)
    server = serve(clean_truth, clock=mid)
    source = connect(server, page_size=10)

    first = extract(source, "orders", ALL_TIME, mid)
    before = {r.payload["legacyResourceId"]: parse_instant(r.payload["updatedAt"]) for r in first}
    assert set(before) == set(shopify_orders(clean_truth, mid))

    narrow = Window(mid - timedelta(days=3), mid - timedelta(days=2))
    got = {r.payload["legacyResourceId"] for r in source.extract(source.entity("orders"), narrow)}
    assert got == {
        s.order.channel_order_id for s in timeline.changed("shopify", mid) if narrow.start <= s.updated_at < narrow.end
    }
    assert got and got < set(before)

    server.clock = end  # time passes; the next run starts at the last end less the lookback
    since = mid - timedelta(minutes=60)
    second = extract(source, "orders", since, end)
    after = {r.payload["legacyResourceId"]: parse_instant(r.payload["updatedAt"]) for r in second}
    assert set(after) == {s.order.channel_order_id for s in timeline.changed("shopify", end, since=since)}
    assert set(before) | set(after) == set(shopify_orders(clean_truth))
    moved = {oid for oid in set(before) & set(after) if after[oid] > before[oid]}
    assert moved, "orders shipped or delivered after the first run come again, with a later updatedAt"
    assert all(after[oid] >= since for oid in after)


def test_pages_follow_cursors(clean_truth: Truth, serve: Serve, connect: Connect) -> None:
    server = serve(clean_truth)
    source = connect(server, page_size=7)
    assert source.page_size(QUERIES["orders"]) == 7
    requests_before = server.requests
    records = extract(source, "orders")
    assert sorted(r.payload["legacyResourceId"] for r in records) == sorted(shopify_orders(clean_truth))
    assert server.requests - requests_before == ceil(len(records) / 7)
    assert all(r.origin.endswith(GRAPHQL) for r in records)


def test_page_size_is_the_largest_the_cost_cap_allows(clean_truth: Truth, serve: Serve, connect: Connect) -> None:
    server = serve(clean_truth)
    source = connect(server)
    sizes = {name: source.page_size(query) for name, query in QUERIES.items()}
    assert sizes["customers"] == 250
    for name, query in QUERIES.items():
        assert 1 + sizes[name] * query.node_cost <= 1000
        assert sizes[name] == 250 or 1 + (sizes[name] + 1) * query.node_cost > 1000
    extract(source, "orders")
    assert server.throttled_answers == 0


def test_pacing_keeps_a_small_bucket_from_throttling(clean_truth: Truth, serve: Serve, connect: Connect) -> None:
    server = serve(clean_truth, bucket_size=150, restore_rate=3000)
    source = connect(server)
    orders = extract(source, "orders")
    products = extract(source, "products")
    assert len(orders) == len(shopify_orders(clean_truth))
    assert len(products) == expected_counts(clean_truth)["shopify_products"]
    assert server.throttled_answers == 0 and source.stats.retries == 0
    assert source.stats.waited_s > 0, "the bucket is smaller than the data: the connector must have waited"
    assert source.page_size(QUERIES["orders"]) == 149 // QUERIES["orders"].node_cost


@pytest.mark.parametrize("status", [200, 429])
def test_throttled_answers_are_retried_after_the_refill(
    clean_truth: Truth, serve: Serve, connect: Connect, status: int
) -> None:
    server = serve(clean_truth, bucket_size=60, restore_rate=150, throttle_status=status)
    source = connect(server)
    source.page_size(QUERIES["orders"])  # the connector now believes the bucket is full...
    drain = gql(server, "{ products(first: 59) { nodes { id } } }")  # ...and another client spends it all
    assert drain.json()["extensions"]["cost"]["actualQueryCost"] == 60
    orders = extract(source, "orders")
    assert sorted(r.payload["legacyResourceId"] for r in orders) == sorted(shopify_orders(clean_truth))
    assert server.throttled_answers >= 1 and server.statuses.get(status, 0) >= 1
    assert source.stats.retries >= 1
    assert source.stats.waited_s >= 0.2, "waited for the refill the cost numbers asked for"


def test_a_storm_of_429_and_5xx_loses_nothing(clean_truth: Truth, serve: Serve, connect: Connect) -> None:
    server = serve(clean_truth, faults=Faults(http_429=0.2, http_5xx=0.1), throttle_status=429, seed=4)
    source = connect(server, page_size=5)
    orders = extract(source, "orders")
    customers = extract(source, "customers")
    assert sorted(r.payload["legacyResourceId"] for r in orders) == sorted(shopify_orders(clean_truth))
    assert len(customers) == expected_counts(clean_truth)["shopify_customers"]
    assert source.stats.retries > 0 and server.statuses.get(429, 0) > 0
    assert sum(n for code, n in server.statuses.items() if code >= 500) > 0


def test_fault_answers_look_like_shopify(clean_truth: Truth, serve: Serve) -> None:
    server = serve(clean_truth, faults=Faults(http_429=0.3, http_5xx=0.7), seed=5)  # a failure burst after each success
    seen: dict[object, httpx.Response] = {}
    with httpx.Client(base_url=server.url, headers={"X-Shopify-Access-Token": TOKEN}) as client:
        for _ in range(60):
            response = client.post(GRAPHQL, json={"query": "{ customers(first: 2) { nodes { id } } }"})
            throttled = response.status_code == 200 and "errors" in response.json()
            seen.setdefault("THROTTLED" if throttled else response.status_code, response)
    assert {"THROTTLED", 200, 500} <= set(seen) and {502, 503} & set(seen)
    body = seen["THROTTLED"].json()  # Shopify's GraphQL throttle: HTTP 200 with a THROTTLED error
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in body
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert body["extensions"]["cost"]["requestedQueryCost"] == 3
    assert body["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 1000
    assert seen[500].json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    gateway = seen.get(502) or seen[503]
    assert gateway.headers["content-type"].startswith("text/html") and b"<html>" in gateway.content
    assert server.throttled_answers > 0


def test_wrong_token_is_refused_clearly(clean_truth: Truth, serve: Serve, connect: Connect) -> None:
    server = serve(clean_truth)
    wrong = "shpat_wrong_token_42424242"
    source = connect(server, access_token=wrong)
    with pytest.raises(AuthError) as refused:
        extract(source, "orders")
    message = str(refused.value)
    assert "shopify" in message and "401" in message and "Invalid API key or access token" in message
    assert wrong not in message and TOKEN not in message
    assert server.statuses.get(401) == 1 and source.stats.retries == 0


def test_wire_faults_are_yielded_as_received(faulty_wire: Truth, serve: Serve, connect: Connect) -> None:
    server = serve(faulty_wire)
    source = connect(server, page_size=5)
    records = extract(source, "orders")
    kinds: dict[str, set[str]] = defaultdict(set)
    for fault in faulty_wire["faults"]:
        if fault.source == "shopify":
            kinds[fault.kind].add(fault.record_key)
    assert kinds["duplicate"] and kinds["malformed"] and kinds["schema_drift"]

    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_order[record.payload["legacyResourceId"]].append(record.payload)
    assert set(by_order) == set(shopify_orders(faulty_wire))
    for oid, nodes in by_order.items():
        good = [n for n in nodes if "id" in n and n["updatedAt"] != "not-a-date"]
        broken = [n for n in nodes if n not in good]
        assert len(good) == 1 + (oid in kinds["duplicate"]), oid
        assert len(broken) == (oid in kinds["malformed"]), oid
        for node in good:
            drifted = oid in kinds["schema_drift"]
            assert ("phone" not in node) == drifted and ("channelInformationV2" in node) == drifted
    assert expected_counts(faulty_wire)["shopify_orders"] == len(by_order)


def test_graphql_errors_like_shopify(clean_truth: Truth, serve: Serve) -> None:
    server = serve(clean_truth)
    too_many = gql(server, "{ orders(first: 251) { nodes { id } } }").json()
    assert "250" in too_many["errors"][0]["message"] and "data" not in too_many
    costly = gql(server, "{ orders(first: 100) { nodes { lineItems(first: 50) { nodes { id } } } } }").json()
    assert costly["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert costly["extensions"]["cost"]["requestedQueryCost"] == 1 + 100 * 51
    unknown = gql(server, "{ draftOrders(first: 1) { nodes { id } } }").json()
    assert "doesn't exist on type 'QueryRoot'" in unknown["errors"][0]["message"]
    bad_cursor = gql(server, '{ orders(first: 1, after: "bm9wZQ") { nodes { id } } }').json()
    assert "cursor" in bad_cursor["errors"][0]["message"]
    warned = gql(server, '{ orders(first: 1, query: "colour:red") { nodes { id } } }').json()
    assert warned["extensions"]["search"][0]["warnings"][0]["field"] == "colour"
    assert len(warned["data"]["orders"]["nodes"]) == 1
    strict = gql(
        server,
        "query($q: String) { orders(first: 250, query: $q, sortKey: CREATED_AT) { edges { node { id } } } }",
        {"q": "created_at:>'2025-03-10T00:00:00Z' AND created_at:<='2025-03-12T00:00:00Z'"},
    ).json()
    expected = [
        o
        for o in shopify_orders(clean_truth).values()
        if datetime(2025, 3, 10, tzinfo=UTC) < o.created_at <= datetime(2025, 3, 12, tzinfo=UTC)
    ]
    assert len(strict["data"]["orders"]["edges"]) == len(expected) > 0
    cost = strict["extensions"]["cost"]
    timeline = Timeline(clean_truth)
    states = [timeline.state(o, server.clock) for o in expected]
    refund_lines = sum(len(state.refunds) for state in states if state)
    # Each node and its nested nodes: its lines and its one fulfillment order.
    returned = sum(1 + len(o.lines) + 1 for o in expected) + refund_lines
    assert cost["requestedQueryCost"] == 251 and cost["actualQueryCost"] == 1 + returned
    assert gql(server, "{ shop { id } }").json()["data"]["shop"]["id"] == "gid://shopify/Shop/1"


def test_ingest_lands_bronze_with_pii_masked(faulty_wire: Truth, serve: Serve, make_settings, tmp_path: Path) -> None:
    server = serve(faulty_wire, faults=Faults(http_429=0.05, http_5xx=0.05), seed=9)
    settings = make_settings(shopify={"base_url": server.url, "access_token": TOKEN})
    lake = Lake.from_settings(settings)
    runs = run_ingest(settings, lake, sources=["shopify"], since=ALL_TIME)
    assert {r.entity: r.status for r in runs} == dict.fromkeys(
        ("orders", "products", "customers", "inventory_levels"), "success"
    )
    for table, count in expected_counts(faulty_wire).items():
        ref = TableRef("bronze", table)
        rows = lake.query(f"SELECT count(DISTINCT record_key) AS n FROM {ref} WHERE error IS NULL", [ref])
        assert rows.to_pylist()[0]["n"] == count, table
    malformed = sum(1 for f in faulty_wire["faults"] if f.source == "shopify" and f.kind == "malformed")
    assert lake.count(TableRef("quarantine", "shopify_orders")) == malformed > 0
    people = [
        c
        for c in faulty_wire["customers"]
        if any(o.customer_id == c.customer_id for o in faulty_wire["orders"] if o.channel == "shopify")
    ]
    needles = [c.email for c in people] + [c.phone for c in people] + [c.street for c in people]
    assert clear_values_in_parquet(tmp_path / "lake" / "bronze", needles) == []
    again = run_ingest(settings, lake, sources=["shopify"], since=ALL_TIME)
    assert sum(r.new_records for r in again) == 0


def test_real_rest_samples_parse_with_our_rules() -> None:
    """Shopify's own fixtures: money strings are exact decimals, offsets are instants, ids exceed 32 bits."""
    order = json.loads((FIXTURES / "order.json").read_text())["order"]
    assert (
        Decimal(order["subtotal_price"]) + Decimal(order["total_tax"])
        == Decimal(order["total_price"])
        == Decimal("409.94")
    )
    assert parse_instant(order["created_at"]) == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert sum(Decimal(t["price"]) for t in order["tax_lines"]) == Decimal("11.94")
    orders = json.loads((FIXTURES / "orders.json").read_text())["orders"]
    bag = orders[0]["total_discounts_set"]
    assert bag["shop_money"]["amount"] == "10.00" and bag["presentment_money"]["currency_code"] == "USD"
    refund = json.loads((FIXTURES / "refund.json").read_text())["refund"]
    assert parse_instant(refund["created_at"]) == datetime(2016, 6, 20, 17, 35, 6, tzinfo=UTC)
    assert Decimal(refund["transactions"][0]["amount"]) == Decimal("209.00")
    levels = json.loads((FIXTURES / "inventory_levels.json").read_text())["inventory_levels"]
    assert {parse_instant(lv["updated_at"]) for lv in levels} == {datetime(2018, 5, 7, 19, 33, 38, tzinfo=UTC)}
    assert sum(lv["available"] for lv in levels) == 40
    # Ids are JSON integers (64-bit at Shopify today); the GraphQL GID carries the same number as text.
    assert isinstance(order["id"], int) and f"gid://shopify/Order/{order['id']}".rsplit("/", 1)[1] == "450789469"
