"""What recommendations learn from, read from the lake: the online catalogue with its attributes, what each item
has on hand, and every interaction of a person with an item (views, cart additions, purchases).

Views are read from silver.web_events, the one place the clickstream keeps who saw what; a visitor's views
before they were known (no e-mail yet) are theirs once any of their events carries their token. Everything else
is gold.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from retreasure.lake.store import Lake, TableRef

DIM_PRODUCT = TableRef("gold", "dim_product")
DIM_CUSTOMER = TableRef("gold", "dim_customer")
FCT_ORDER_LINES = TableRef("gold", "fct_order_lines")
FCT_REFUNDS = TableRef("gold", "fct_refunds")
FCT_INVENTORY_DAILY = TableRef("gold", "fct_inventory_daily")
WEB_EVENTS = TableRef("silver", "web_events")
INPUTS = (DIM_PRODUCT, DIM_CUSTOMER, FCT_ORDER_LINES, FCT_REFUNDS, FCT_INVENTORY_DAILY, WEB_EVENTS)

# Only items listed online carry attributes (the tills' exports have none) and can be bought from a recommendation.
_CATALOGUE_SQL = """
SELECT sku, category, era, material, condition, CAST(list_price AS DOUBLE) AS list_price, first_seen_date
FROM gold.dim_product
WHERE on_shopify AND category IS NOT NULL
ORDER BY sku
"""
# Units on hand now: the newest level of each item at each location.
_ON_HAND_SQL = """
SELECT sku, sum(on_hand) AS on_hand
FROM (SELECT location_key, sku, arg_max(on_hand_end, day) AS on_hand FROM gold.fct_inventory_daily GROUP BY ALL)
GROUP BY sku
"""
_STOCK_MOVES_SQL = """
SELECT sku, order_ts AS ts, -quantity AS change FROM gold.fct_order_lines
UNION ALL
SELECT l.sku, r.refund_ts, r.quantity FROM gold.fct_refunds r JOIN gold.fct_order_lines l ON l.line_key = r.line_key
"""
_INTERACTIONS_SQL = """
WITH known AS (
    SELECT anonymous_id, arg_max(customer_token, event_ts) AS customer_token
    FROM silver.web_events
    WHERE customer_token IS NOT NULL AND anonymous_id IS NOT NULL
    GROUP BY anonymous_id
)
SELECT customer_token AS who, sku, order_ts AS ts, 'purchase' AS kind
FROM gold.fct_order_lines
WHERE customer_token IS NOT NULL
UNION ALL
SELECT
    coalesce(e.customer_token, k.customer_token, 'visitor:' || e.anonymous_id) AS who,
    e.product_sku,
    e.event_ts,
    CASE e.event_name WHEN 'product_viewed' THEN 'view' ELSE 'cart' END
FROM silver.web_events e
LEFT JOIN known k USING (anonymous_id)
WHERE e.event_name IN ('product_viewed', 'product_added') AND e.product_sku IS NOT NULL
    AND coalesce(e.customer_token, k.customer_token, e.anonymous_id) IS NOT NULL
ORDER BY ts, who, sku, kind
"""
# Where a customer lives and where they mostly buy: the segment their cold start is drawn from.
_CUSTOMERS_SQL = """
WITH main_channel AS (
    SELECT customer_token, mode(channel ORDER BY channel) AS channel
    FROM gold.fct_order_lines
    WHERE customer_token IS NOT NULL
    GROUP BY customer_token
)
SELECT c.customer_token, coalesce(c.country, '') AS country, coalesce(m.channel, 'shopify') AS channel
FROM gold.dim_customer c
LEFT JOIN main_channel m USING (customer_token)
ORDER BY c.customer_token
"""


@dataclass(frozen=True)
class Interaction:
    who: str  # a customer token, or 'visitor:<cookie>' for someone never known
    sku: str
    at: datetime
    kind: str  # view | cart | purchase


@dataclass
class RecoData:
    """Everything a recommendation run reads, as of the lake's state."""

    items: list[dict[str, object]]  # the online catalogue, by sku
    on_hand: dict[str, int]
    stock_moves: dict[str, list[tuple[datetime, int]]]  # each item's sales (-) and restocks (+)
    interactions: list[Interaction]
    customers: dict[str, tuple[str, str]]  # token -> (country, main channel)
    skus: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.skus = [str(item["sku"]) for item in self.items]

    def for_sale(self, at: datetime | None = None) -> set[str]:
        """The online items with a unit on hand at ``at`` (now when None): listed by then, and not sold out.

        The stock at a past moment is today's level plus what left since, less what came back since. A unique
        item once sold (and not returned) has nothing on hand, so it is never among them.
        """
        found = set()
        for item in self.items:
            sku = str(item["sku"])
            units = self.on_hand.get(sku, 0)
            if at is not None:
                if item["first_seen_date"] is None or item["first_seen_date"] > at.date():  # type: ignore[operator]
                    continue
                units -= sum(change for moved, change in self.stock_moves.get(sku, ()) if moved > at)
            if units > 0:
                found.add(sku)
        return found


def load(lake: Lake) -> RecoData:
    """Read the catalogue, stock, interactions and customers from the lake (one DuckDB connection each)."""
    items = lake.query(_CATALOGUE_SQL, [DIM_PRODUCT]).to_pylist()
    on_hand = {r["sku"]: int(r["on_hand"] or 0) for r in lake.query(_ON_HAND_SQL, [FCT_INVENTORY_DAILY]).to_pylist()}
    moves: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for row in lake.query(_STOCK_MOVES_SQL, [FCT_ORDER_LINES, FCT_REFUNDS]).to_pylist():
        moves[row["sku"]].append((row["ts"], int(row["change"])))
    interactions = [
        Interaction(r["who"], r["sku"], r["ts"], r["kind"])
        for r in lake.query(_INTERACTIONS_SQL, [FCT_ORDER_LINES, WEB_EVENTS]).to_pylist()
    ]
    customers = {
        r["customer_token"]: (r["country"], r["channel"])
        for r in lake.query(_CUSTOMERS_SQL, [DIM_CUSTOMER, FCT_ORDER_LINES]).to_pylist()
    }
    return RecoData(items, on_hand, dict(moves), interactions, customers)
