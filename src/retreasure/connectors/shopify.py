"""Shopify GraphQL Admin API: orders, products, customers and inventory levels changed in a window.

Shopify meters GraphQL by query cost from a leaky bucket, reported in every answer's ``extensions.cost``.
The connector sizes each page to the largest that fits under the single-query cap and the bucket, paces
itself so that the next page's cost is always there when it asks (waiting ``deficit / restoreRate``), and
when a THROTTLED answer still comes (another client spent the bucket) waits exactly as long as the cost
numbers say before asking again. Everything is read with ``updated_at`` in the window, oldest change first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from retreasure.connectors.base import Entity, RawRecord, Source, SourceError, Window
from retreasure.http.client import HttpClient
from retreasure.http.paging import graphql_connection
from retreasure.records.pii import PiiSpec
from retreasure.settings import SourceSettings

if TYPE_CHECKING:  # responses are only annotated here; the client imports httpx when it is made
    import httpx

MAX_PAGE = 250
MAX_QUERY_COST = 1000  # Shopify's cap on one query's requested cost
PROBE = "query ThrottleStatus { shop { id } }"  # costs one point; tells the bucket's size and refill rate

MONEY = "shopMoney { amount currencyCode } presentmentMoney { amount currencyCode }"
TAX_LINES = f"taxLines {{ title rate ratePercentage channelLiable priceSet {{ {MONEY} }} }}"
ADDRESS = "firstName lastName name address1 address2 city provinceCode zip countryCode countryCodeV2 phone"

ORDER_FIELDS = f"""
  id legacyResourceId name createdAt updatedAt processedAt cancelledAt closed test
  email phone sourceName currencyCode presentmentCurrencyCode taxesIncluded
  displayFinancialStatus displayFulfillmentStatus discountCodes tags note paymentGatewayNames
  customAttributes {{ key value }}
  subtotalPriceSet {{ {MONEY} }} totalDiscountsSet {{ {MONEY} }} totalShippingPriceSet {{ {MONEY} }}
  totalTaxSet {{ {MONEY} }} totalPriceSet {{ {MONEY} }} totalRefundedSet {{ {MONEY} }}
  currentTotalPriceSet {{ {MONEY} }}
  {TAX_LINES}
  customer {{ id email firstName lastName phone }}
  shippingAddress {{ {ADDRESS} }}
  billingAddress {{ {ADDRESS} }}
  shippingLine {{ title code source originalPriceSet {{ {MONEY} }} discountedPriceSet {{ {MONEY} }} {TAX_LINES} }}
  lineItems(first: 20) {{
    nodes {{
      id name title sku quantity currentQuantity requiresShipping taxable
      product {{ id }} variant {{ id }}
      originalUnitPriceSet {{ {MONEY} }} originalTotalSet {{ {MONEY} }} discountedTotalSet {{ {MONEY} }}
      totalDiscountSet {{ {MONEY} }} discountAllocations {{ allocatedAmountSet {{ {MONEY} }} }}
      {TAX_LINES}
    }}
  }}
  fulfillments {{
    id status displayStatus createdAt updatedAt inTransitAt deliveredAt totalQuantity
    trackingInfo {{ company number url }}
  }}
  fulfillmentOrders(first: 5) {{ nodes {{ id status fulfillBy }} }}
  refunds {{
    id createdAt updatedAt note totalRefundedSet {{ {MONEY} }}
    refundLineItems(first: 20) {{
      nodes {{
        lineItem {{ id sku }} quantity restockType restocked
        priceSet {{ {MONEY} }} subtotalSet {{ {MONEY} }} totalTaxSet {{ {MONEY} }}
      }}
    }}
  }}
"""
PRODUCT_FIELDS = """
  id legacyResourceId title handle productType vendor tags status createdAt updatedAt publishedAt
  totalInventory tracksInventory
  variants(first: 5) {
    nodes {
      id legacyResourceId title sku price compareAtPrice inventoryQuantity inventoryItem { id } createdAt updatedAt
    }
  }
"""
CUSTOMER_FIELDS = f"""
  id legacyResourceId email phone firstName lastName displayName createdAt updatedAt numberOfOrders
  amountSpent {{ amount currencyCode }} state verifiedEmail taxExempt tags
  emailMarketingConsent {{ marketingState marketingOptInLevel consentUpdatedAt }}
  defaultAddress {{ {ADDRESS} }}
"""
INVENTORY_FIELDS = """
  id legacyResourceId sku tracked createdAt updatedAt unitCost { amount currencyCode } variant { id }
  inventoryLevels(first: 10) {
    nodes {
      id item { id sku } location { id name } quantities(names: ["available"]) { name quantity }
      createdAt updatedAt
    }
  }
"""

_ADDRESS_PII = {
    "firstName": "name",
    "lastName": "name",
    "name": "name",
    "address1": "street",
    "address2": "street",
    "phone": "phone",
}
ORDER_PII = PiiSpec(
    {
        "email": "email",
        "phone": "phone",
        "customer.email": "email",
        "customer.phone": "phone",
        "customer.firstName": "name",
        "customer.lastName": "name",
        **{f"shippingAddress.{k}": v for k, v in _ADDRESS_PII.items()},
        **{f"billingAddress.{k}": v for k, v in _ADDRESS_PII.items()},
    }
)
CUSTOMER_PII = PiiSpec(
    {
        "email": "email",
        "phone": "phone",
        "firstName": "name",
        "lastName": "name",
        "displayName": "name",
        **{f"defaultAddress.{k}": v for k, v in _ADDRESS_PII.items()},
    }
)


@dataclass(frozen=True)
class Query:
    """One entity's GraphQL read: the top-level connection and the fields asked of each node."""

    connection: str
    fields: str
    sort: bool = True  # inventoryItems takes no sortKey

    @property
    def text(self) -> str:
        sort = ", sortKey: UPDATED_AT" if self.sort else ""
        return (
            f"query Read($first: Int!, $after: String, $query: String) {{\n"
            f"  {self.connection}(first: $first, after: $after, query: $query{sort}) {{\n"
            f"    edges {{ cursor node {{ {self.fields} }} }}\n"
            f"    pageInfo {{ hasNextPage endCursor }}\n"
            f"  }}\n}}"
        )

    @property
    def node_cost(self) -> int:
        """Points one node costs: itself plus every object its nested connections could return."""
        return 1 + sum(int(n) for n in re.findall(r"\bfirst:\s*(\d+)", self.fields))


QUERIES = {
    "orders": Query("orders", ORDER_FIELDS),
    "products": Query("products", PRODUCT_FIELDS),
    "customers": Query("customers", CUSTOMER_FIELDS),
    "inventory_levels": Query("inventoryItems", INVENTORY_FIELDS, sort=False),
}


class CostBudget:
    """Shopify's cost bucket as last reported, refilled on our own clock between reports."""

    def __init__(self) -> None:
        self.maximum: float | None = None
        self.available = 0.0
        self.restore_rate = 0.0
        self.requested = 0  # the last query's requested cost: what the next page of it will cost
        self._seen = 0.0

    def update(self, cost: Mapping[str, Any]) -> None:
        """Take in an answer's ``extensions.cost``."""
        status = cost.get("throttleStatus") or {}
        try:
            self.maximum = float(status["maximumAvailable"])
            self.available = float(status["currentlyAvailable"])
            self.restore_rate = float(status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return
        self._seen = time.monotonic()
        if isinstance(cost.get("requestedQueryCost"), int | float):
            self.requested = int(cost["requestedQueryCost"])

    def now(self) -> float:
        """Points we expect the bucket to hold at this moment."""
        if self.maximum is None:
            return 0.0
        return min(self.maximum, self.available + (time.monotonic() - self._seen) * self.restore_rate)

    def delay_for(self, points: float) -> float:
        """Seconds until the bucket holds ``points``; zero when it does or when we know nothing yet."""
        if self.maximum is None or self.restore_rate <= 0:
            return 0.0
        return max(0.0, (points - self.now()) / self.restore_rate)

    def wait_for(self, points: float) -> float:
        """Sleep until the bucket should hold ``points``; returns the seconds slept."""
        delay = self.delay_for(points)
        if delay:
            time.sleep(delay)
        return delay


def _body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _throttled(body: Mapping[str, Any]) -> bool:
    errors = body.get("errors")
    return isinstance(errors, list) and any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors
    )


def _has_next_page(body: Mapping[str, Any]) -> bool:
    data = body.get("data")
    return isinstance(data, dict) and any(
        isinstance(c, dict) and (c.get("pageInfo") or {}).get("hasNextPage") for c in data.values()
    )


def search(window: Window) -> str:
    """The window as a Shopify search string; bounds in whole seconds, the end rounded up (half-open)."""
    start = window.start.astimezone(UTC).replace(microsecond=0)
    end = window.end.astimezone(UTC)
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return f"updated_at:>='{_z(start)}' AND updated_at:<'{_z(end)}'"


def _z(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class ShopifySettings(SourceSettings):
    """Where the Shopify Admin API is and how to call it: RETREASURE_SHOPIFY__<FIELD>."""

    base_url: str = "http://127.0.0.1:8701"
    api_version: str = "2025-10"
    access_token: SecretStr = SecretStr("")
    page_size: int = 250


class ShopifySource(Source):
    """The online shop on Shopify: orders, the catalogue, customers and warehouse stock."""

    name = "shopify"
    system = "Shopify"
    sells = "online"
    incremental = True
    settings_model = ShopifySettings
    config: ShopifySettings  # this source's section of the settings
    entities = (
        Entity(
            "orders",
            key="id",
            updated_at="updatedAt",
            pii=ORDER_PII,
            description="Web orders: lines, taxes, discounts, shipping, fulfillments, refunds; EUR and buyer money.",
        ),
        Entity(
            "products",
            key="id",
            updated_at="updatedAt",
            description="The catalogue on Shopify: one variant per product with SKU, EUR price and stock; status.",
        ),
        Entity(
            "customers",
            key="id",
            updated_at="updatedAt",
            pii=CUSTOMER_PII,
            description="People who bought on Shopify: contact, default address, marketing consent, spend.",
        ),
        Entity(
            "inventory_levels",
            key="id",
            updated_at="updatedAt",
            description="Available stock per inventory item and location (one InventoryLevel node per record).",
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = CostBudget()
        self._client: HttpClient | None = None

    @property
    def path(self) -> str:
        """The GraphQL endpoint of the configured API version."""
        return f"/admin/api/{self.config.api_version}/graphql.json"

    def client(self) -> HttpClient:
        """The shared HTTP client, with Shopify's token and the cost-based pacing and retry hooks."""
        if self._client is None:
            shopify = self.config
            token = shopify.access_token.get_secret_value()
            if not token:
                raise SourceError(self.name, "no access token configured (RETREASURE_SHOPIFY__ACCESS_TOKEN)")
            headers = {"X-Shopify-Access-Token": token, "Accept": "application/json"}
            self._client = self.http(shopify.base_url, headers, retry_when=self._retry_delay, after_response=self._pace)
        return self._client

    def extract(self, entity: Entity, window: Window) -> Iterator[RawRecord]:
        """Nodes changed in the window, as received; inventory items are unpacked into their levels."""
        query = QUERIES.get(entity.name)
        if query is None:
            raise ValueError(f"shopify has no entity {entity.name!r}")
        client = self.client()
        first = self.page_size(query)
        self.stats.waited_s += self.budget.wait_for(1 + first * query.node_cost)
        variables = {"first": first, "query": search(window)}
        for url, nodes, _ in graphql_connection(client, self.path, query.text, variables, query.connection):
            for node in nodes:
                if entity.name == "inventory_levels":
                    yield from _levels(node, url)
                else:
                    yield RawRecord(node, origin=url)

    def page_size(self, query: Query) -> int:
        """The largest page whose requested cost fits the single-query cap and the bucket."""
        if self.budget.maximum is None:
            self.client().post(self.path, json={"query": PROBE})
        limit = min(MAX_QUERY_COST, self.budget.maximum or MAX_QUERY_COST)
        fits = int((limit - 1) // query.node_cost)
        if fits < 1:
            raise SourceError(self.name, f"one {query.connection} node costs {query.node_cost}, over the {limit:g} cap")
        return max(1, min(self.config.page_size, MAX_PAGE, fits))

    def _pace(self, response: httpx.Response) -> float:
        """After each answer: if another page follows and the bucket cannot pay for it yet, wait until it can."""
        body = _body(response)
        if body is None:
            return 0.0
        cost = (body.get("extensions") or {}).get("cost")
        if isinstance(cost, dict):
            self.budget.update(cost)
        if not _has_next_page(body):
            return 0.0
        return self.budget.wait_for(self.budget.requested)

    def _retry_delay(self, response: httpx.Response) -> float | None:
        """A THROTTLED answer sent as 200: retry once the bucket holds the refused query's cost."""
        if b"THROTTLED" not in response.content:
            return None
        body = _body(response)
        if body is None or not _throttled(body):
            return None
        cost = (body.get("extensions") or {}).get("cost")
        if isinstance(cost, dict):
            self.budget.update(cost)
        floor = self.settings.http.backoff_base_s  # throttled with points to spare: someone else is spending
        return max(floor, self.budget.delay_for(self.budget.requested))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _levels(item: Any, url: str) -> Iterator[RawRecord]:
    """An inventory item's levels, one record each; an item without any is kept whole, marked."""
    levels = ((item.get("inventoryLevels") or {}).get("nodes") if isinstance(item, dict) else None) or []
    if not levels:
        yield RawRecord(item, origin=url, error="inventory item without inventoryLevels")
        return
    # The item's unit cost lives on the item, not the level: carry it into each level's item so that bronze
    # keeps what cost of goods is computed from.
    cost = item.get("unitCost")
    for level in levels:
        if isinstance(level, dict) and isinstance(level.get("item"), dict):
            level = {**level, "item": {**level["item"], "unitCost": cost}}
        yield RawRecord(level, origin=url)
