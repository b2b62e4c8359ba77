"""The questions of each business area the API and the dashboards ask of gold: a number shown in both comes from
one function here, read through the one read layer (``serving.read``) with the KPIs' aggregates taken from
``serving.kpis``.

Every function names the gold tables it reads and returns plain rows: dicts of Python values (``Decimal`` for EUR
amounts, ``date``/``datetime`` in UTC). Nothing here returns clear PII: customers and addresses are tokens;
revealing them is the caller's decision (``serving.pii``).

"As of": audiences and the overdue flag are judged against the data's own clock (``data_as_of``), the moment
gold.mart_fulfillment judged its unshipped orders at (its ``judged_at``: the newest order placed or parcel
shipped), not the wall clock, so that the same lake gives the same answer on any day; callers may pass ``as_of``
to ask about another moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from retreasure.lake.store import Lake, TableRef
from retreasure.serving import read
from retreasure.serving.kpis import expression

QUEUE_STATUSES = ("open", "overdue")

FCT_ORDERS = TableRef("gold", "fct_orders")
FCT_FULFILLMENTS = TableRef("gold", "fct_fulfillments")
FCT_CART_ADDITIONS = TableRef("gold", "fct_cart_additions")
DIM_CUSTOMER = TableRef("gold", "dim_customer")
MART_CUSTOMERS = TableRef("gold", "mart_customers")
MART_FULFILLMENT = TableRef("gold", "mart_fulfillment")
MART_MARKETING = TableRef("gold", "mart_marketing")


# The moment gold.mart_fulfillment judged at (the newest order or parcel when it was built) and the newest order
# and parcel in gold: one moment after a build, and still a clock where the mart is not built.
_NEWEST = {
    MART_FULFILLMENT: "(SELECT max(judged_at) FROM gold.mart_fulfillment)",
    FCT_ORDERS: "(SELECT max(order_ts) FROM gold.fct_orders)",
    FCT_FULFILLMENTS: "(SELECT max(shipped_ts) FROM gold.fct_fulfillments)",
}


def data_as_of(lake: Lake) -> datetime:
    """The data's clock: the newest order placed or parcel shipped in the lake (UTC); the epoch for an empty lake."""
    built = read.built(lake, list(_NEWEST))
    newest = [sql for ref, sql in _NEWEST.items() if ref in built]
    found = read.rows(lake, f"SELECT greatest({', '.join(newest)}) AS at", list(built))[0]["at"] if newest else None
    return found.astimezone(UTC) if found else datetime(1970, 1, 1, tzinfo=UTC)


def as_of_moment(lake: Lake, as_of: date | datetime | None = None) -> datetime:
    """The moment a question is asked about: ``as_of`` (a day means its end), else the data's clock."""
    if as_of is None:
        return data_as_of(lake)
    if isinstance(as_of, datetime):
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    # A day means the end of that day: everything that happened on it is known.
    return datetime.combine(as_of, time.max, UTC)


# -- operations ------------------------------------------------------------------------------------------
_QUEUE_SQL = """
SELECT
    o.order_key,
    o.channel,
    o.channel_order_id,
    o.order_ts,
    o.ship_by_ts,
    coalesce(o.ship_by_ts < $as_of, FALSE) AS overdue,
    o.items,
    o.ship_country,
    o.ship_to_name_token AS ship_to_name,
    o.ship_to_street_token AS ship_to_street,
    o.ship_to_street2_token AS ship_to_street2,
    o.ship_to_city,
    o.ship_to_region,
    o.ship_to_postal_code
FROM gold.fct_orders o
WHERE o.channel <> 'pos'
    AND o.order_ts <= $as_of
    AND NOT EXISTS (
        SELECT 1 FROM gold.fct_fulfillments f WHERE f.order_key = o.order_key AND f.shipped_ts <= $as_of
    )
    {filter}
ORDER BY o.order_ts, o.order_key
"""
# The columns of a queue row that hold PII tokens, for whoever may reveal them.
SHIP_TO_TOKENS = ("ship_to_name", "ship_to_street", "ship_to_street2")


def fulfillment_queue(
    lake: Lake, status: str = "open", channel: str | None = None, as_of: date | datetime | None = None
) -> list[dict[str, Any]]:
    """Online orders not shipped as of ``as_of`` (every channel in one shape), oldest first; ship-to as tokens.

    ``overdue``: the promised dispatch time (``ship_by_ts``) has passed; an order whose channel sent no promise
    has an empty ``ship_by_ts`` and is never overdue. ``status=overdue`` keeps the overdue ones only.
    """
    if status not in QUEUE_STATUSES:
        raise ValueError(f"unknown status {status!r}: expected one of {', '.join(QUEUE_STATUSES)}")
    params: dict[str, object] = {"as_of": as_of_moment(lake, as_of)}
    conditions = ""
    if channel:
        conditions += " AND o.channel = $channel"
        params["channel"] = channel
    if status == "overdue":
        conditions += " AND o.ship_by_ts < $as_of"
    sql = _QUEUE_SQL.replace("{filter}", conditions)
    return read.rows(lake, sql, [FCT_ORDERS, FCT_FULFILLMENTS], params)


_FULFILLMENT_METRICS_SQL = """
WITH counts AS (
    SELECT
        {key} AS channel,
        sum(orders_to_ship) AS orders_to_ship,
        sum(orders_shipped) AS orders_shipped,
        sum(orders_with_ship_by) AS orders_with_ship_by,
        sum(shipped_on_time) AS shipped_on_time,
        sum(shipped_late) AS shipped_late,
        sum(overdue_unshipped) AS overdue_unshipped,
        sum(late_orders) AS late_orders,
        sum(orders_pending) AS orders_pending,
        sum(orders_delivered) AS orders_delivered,
        max(judged_at) AS judged_at,
        {fulfillment_rate} AS fulfillment_rate,
        {on_time_rate} AS on_time_rate
    FROM gold.mart_fulfillment
    WHERE order_date BETWEEN $start AND $end {filter}
    GROUP BY ALL
), first_parcels AS (
    SELECT
        channel,
        order_key,
        date_diff('second', min(order_ts), min(shipped_ts)) / 3600.0 AS hours_to_ship,
        date_diff('second', min(shipped_ts), arg_min(delivered_ts, shipped_ts)) / 86400.0 AS delivery_days
    FROM gold.fct_fulfillments
    WHERE order_date BETWEEN $start AND $end {filter}
    GROUP BY channel, order_key
), times AS (
    SELECT
        {key} AS channel,
        round(median(hours_to_ship), 2) AS median_hours_to_ship,
        round(avg(hours_to_ship), 2) AS avg_hours_to_ship,
        round(median(delivery_days), 2) AS median_delivery_days
    FROM first_parcels
    GROUP BY ALL
)
SELECT
    c.channel,
    CAST(c.orders_to_ship AS BIGINT) AS orders_to_ship,
    CAST(c.orders_shipped AS BIGINT) AS orders_shipped,
    c.fulfillment_rate,
    t.median_hours_to_ship,
    t.avg_hours_to_ship,
    CAST(c.orders_with_ship_by AS BIGINT) AS orders_with_ship_by,
    CAST(c.shipped_on_time AS BIGINT) AS shipped_on_time,
    CAST(c.shipped_late AS BIGINT) AS shipped_late,
    CAST(c.overdue_unshipped AS BIGINT) AS overdue_unshipped,
    CAST(c.late_orders AS BIGINT) AS late_orders,
    CAST(c.orders_pending AS BIGINT) AS orders_pending,
    c.on_time_rate,
    CAST(c.orders_delivered AS BIGINT) AS orders_delivered,
    t.median_delivery_days,
    c.judged_at
FROM counts c
LEFT JOIN times t USING (channel)
ORDER BY c.channel
"""


def _fulfillment_sql(by_channel: bool, channels: Sequence[str]) -> str:
    """The metrics query per channel or over the channels together; only fixed text is spliced."""
    key = "channel" if by_channel else "'all'"
    where = " AND list_contains($channels, channel)" if channels else ""
    return (
        _FULFILLMENT_METRICS_SQL.replace("{key}", key)
        .replace("{filter}", where)
        .replace("{fulfillment_rate}", expression("fulfillment_rate"))
        .replace("{on_time_rate}", expression("on_time_rate"))
    )


def _fulfillment_params(start: date, end: date, channels: Sequence[str]) -> dict[str, object]:
    params: dict[str, object] = {"start": start, "end": end}
    if channels:
        params["channels"] = list(channels)
    return params


def fulfillment_metrics(lake: Lake, start: date, end: date, channels: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per online channel (``channels``, or all), for orders placed between ``start`` and ``end``: rate, time to
    ship, lateness, delivery.

    Counts are sums of gold.mart_fulfillment's days, promises judged at its ``judged_at`` (the data's clock): an
    order not shipped and past its promise is late, one still within it is pending and not judged. The on-time
    rate is over the judged orders (on time + late), recomputed from the sums; times are recomputed over the
    range's first parcels (medians cannot be summed).
    """
    sql = _fulfillment_sql(True, channels)
    return read.rows(lake, sql, [MART_FULFILLMENT, FCT_FULFILLMENTS], _fulfillment_params(start, end, channels))


def fulfillment_totals(lake: Lake, start: date, end: date, channels: Sequence[str] = ()) -> dict[str, Any] | None:
    """The same metrics over ``channels`` (or all) together, by the same query; None when no order is in range."""
    sql = _fulfillment_sql(False, channels)
    found = read.rows(lake, sql, [MART_FULFILLMENT, FCT_FULFILLMENTS], _fulfillment_params(start, end, channels))
    if not found:
        return None
    total = found[0]
    total.pop("channel")
    return total


# -- marketing -------------------------------------------------------------------------------------------
_CAMPAIGNS_SQL = """
SELECT
    campaign,
    CAST(sum(sessions) AS BIGINT) AS sessions,
    CAST(sum(page_views) AS BIGINT) AS page_views,
    CAST(sum(product_views) AS BIGINT) AS product_views,
    CAST(sum(carts) AS BIGINT) AS carts,
    CAST(sum(checkouts) AS BIGINT) AS checkouts,
    CAST(sum(orders) AS BIGINT) AS orders,
    {conversion_rate} AS conversion_rate,
    sum(revenue) AS revenue,
    sum(ad_spend) AS ad_spend,
    round((sum(revenue) - sum(ad_spend)) / nullif(sum(ad_spend), 0), 4) AS roi,
    round(sum(revenue) / nullif(sum(ad_spend), 0), 4) AS roas,
    round(sum(events) / nullif(sum(sessions), 0), 2) AS events_per_session,
    round(sum(avg_session_seconds * sessions) / nullif(sum(sessions), 0), 1) AS avg_session_seconds
FROM gold.mart_marketing
WHERE day BETWEEN $start AND $end
GROUP BY campaign
ORDER BY campaign
"""


def campaigns(lake: Lake, start: date, end: date) -> list[dict[str, Any]]:
    """Per landing campaign between ``start`` and ``end``: funnel, conversion, revenue, spend, ROI, ROAS, engagement.

    Ratios are recomputed from the range's sums (ROI and ROAS are empty for a campaign without spend).
    """
    sql = _CAMPAIGNS_SQL.replace("{conversion_rate}", expression("conversion_rate"))
    return read.rows(lake, sql, [MART_MARKETING], {"start": start, "end": end})


@dataclass(frozen=True)
class Audience:
    """A marketing segment: who is in it (SQL over gold yielding customer_token), judged as of a moment."""

    name: str
    description: str
    members_sql: str
    params: tuple[tuple[str, str], ...] = ()  # values its SQL binds besides $as_of


# Windows of the segments, in days before the as-of moment.
LAPSED_DAYS = 90
NEW_DAYS = 30
CART_DAYS = 14

AUDIENCES: tuple[Audience, ...] = (
    Audience(
        "subscribers",
        "Every customer who accepted e-mail marketing.",
        "SELECT customer_token FROM gold.mart_customers WHERE first_order_date <= CAST($as_of AS DATE)",
    ),
    Audience(
        "high_value",
        "The top tenth of customers by lifetime value (net revenue to date, EUR).",
        "WITH known AS (SELECT * FROM gold.mart_customers WHERE first_order_date <= CAST($as_of AS DATE)) "
        "SELECT customer_token FROM known "
        "WHERE lifetime_value >= (SELECT quantile_disc(lifetime_value, 0.9) FROM known)",
    ),
    Audience(
        "new_customers",
        f"Customers whose first order was in the last {NEW_DAYS} days.",
        f"SELECT customer_token FROM gold.mart_customers WHERE first_order_date "
        f"BETWEEN CAST($as_of AS DATE) - {NEW_DAYS} AND CAST($as_of AS DATE)",
    ),
    Audience(
        "lapsed",
        f"Customers with no order in the last {LAPSED_DAYS} days.",
        f"SELECT customer_token FROM gold.mart_customers WHERE last_order_date < CAST($as_of AS DATE) - {LAPSED_DAYS}",
    ),
    Audience(
        "cart_abandoners",
        f"Known visitors who put something in the cart in the last {CART_DAYS} days and have not ordered since.",
        f"SELECT e.customer_token FROM gold.fct_cart_additions e "
        f"WHERE e.customer_token IS NOT NULL AND e.event_ts BETWEEN $as_of - INTERVAL {CART_DAYS} DAY AND $as_of "
        f"AND NOT EXISTS (SELECT 1 FROM gold.fct_orders o WHERE o.customer_token = e.customer_token "
        f"AND o.order_ts >= e.event_ts AND o.order_ts <= $as_of)",
    ),
)
_AUDIENCE_REFS = [MART_CUSTOMERS, DIM_CUSTOMER, FCT_CART_ADDITIONS, FCT_ORDERS]
# Only consent makes a member: gold.dim_customer carries the shop account's e-mail marketing consent, and a
# customer the shop never asked (marketplace and store buyers) has not accepted.
_CONSENTED = "SELECT customer_token FROM gold.dim_customer WHERE accepts_marketing"


# Audiences of predicted affinity: the recommendation model's ranking of each customer's categories and eras
# (gold.ml_customer_affinity). "likely_buyers:lighting" is everyone whose top two categories include Lighting;
# "likely_buyers:lighting:mid-century" also has Mid-Century among their top two eras. The model scores customers
# as of its run, so these ignore as_of.
ML_CUSTOMER_AFFINITY = TableRef("gold", "ml_customer_affinity")
AFFINITY_PREFIX = "likely_buyers:"
AFFINITY_TOP = 2
_AFFINITY_SQL = (
    "SELECT customer_token FROM gold.ml_customer_affinity WHERE kind = 'category' AND value = $category "
    f"AND rank <= {AFFINITY_TOP}"
)
_AFFINITY_ERA_SQL = (
    f"{_AFFINITY_SQL} INTERSECT SELECT customer_token FROM gold.ml_customer_affinity "
    f"WHERE kind = 'era' AND value = $era AND rank <= {AFFINITY_TOP}"
)


def slug(value: str) -> str:
    """A category or era as it appears in an audience's name: lower case, words joined by dashes."""
    return "-".join("".join(c if c.isalnum() else " " for c in value.lower()).split())


def _affinity_values(lake: Lake) -> dict[str, dict[str, str]]:
    """The categories and eras the model ranks, by slug; none before its first promoted run."""
    if ML_CUSTOMER_AFFINITY not in read.built(lake, [ML_CUSTOMER_AFFINITY]):
        return {}
    found: dict[str, dict[str, str]] = {"category": {}, "era": {}}
    sql = "SELECT DISTINCT kind, value FROM gold.ml_customer_affinity WHERE kind IN ('category', 'era') ORDER BY ALL"
    for row in read.rows(lake, sql, [ML_CUSTOMER_AFFINITY]):
        found[row["kind"]][slug(row["value"])] = row["value"]
    return found


def affinity_audience(lake: Lake, name: str) -> Audience:
    """The affinity audience a name asks for; KeyError when its category or era is not one the model ranks."""
    category_slug, _, era_slug = name.removeprefix(AFFINITY_PREFIX).partition(":")
    values = _affinity_values(lake)
    category = values.get("category", {})[category_slug]
    if not era_slug:
        return Audience(
            name,
            f"Customers whose predicted affinity ranks {category} among their top {AFFINITY_TOP} categories.",
            _AFFINITY_SQL,
            (("category", category),),
        )
    era = values["era"][era_slug]
    return Audience(
        name,
        f"Customers whose predicted affinity ranks {category} among their top {AFFINITY_TOP} categories and "
        f"{era} among their top {AFFINITY_TOP} eras.",
        _AFFINITY_ERA_SQL,
        (("category", category), ("era", era)),
    )


def audience(name: str, lake: Lake | None = None) -> Audience:
    for found in AUDIENCES:
        if found.name == name:
            return found
    if lake is not None and name.startswith(AFFINITY_PREFIX):
        return affinity_audience(lake, name)
    raise KeyError(name)


def all_audiences(lake: Lake) -> list[Audience]:
    """The fixed segments, then one affinity audience per category the model ranks."""
    categories = _affinity_values(lake).get("category", {})
    return [*AUDIENCES, *(affinity_audience(lake, AFFINITY_PREFIX + s) for s in sorted(categories))]


def _refs(segments: Sequence[Audience]) -> list[TableRef]:
    affinity = any(a.name.startswith(AFFINITY_PREFIX) for a in segments)
    return [*_AUDIENCE_REFS, ML_CUSTOMER_AFFINITY] if affinity else _AUDIENCE_REFS


def audiences(lake: Lake, as_of: date | datetime | None = None) -> list[dict[str, Any]]:
    """Every segment with its description and size (customers in it who accepted marketing)."""
    segments = all_audiences(lake)
    # Each segment's own parameters are bound under a name of its own, so that one query can count them all.
    parts, params = [], _params(lake, as_of)
    for n, a in enumerate(segments):
        sql = a.members_sql
        for key, value in a.params:
            sql = sql.replace(f"${key}", f"${key}_{n}")
            params[f"{key}_{n}"] = value
        parts.append(
            f"SELECT '{a.name}' AS name, count(DISTINCT customer_token) AS size FROM ({sql}) "
            f"WHERE customer_token IN ({_CONSENTED})"
        )
    found = read.rows(lake, " UNION ALL ".join(parts), _refs(segments), params)
    sizes = {r["name"]: r["size"] for r in found}
    return [{"name": a.name, "description": a.description, "size": sizes[a.name]} for a in segments]


def audience_members(lake: Lake, name: str, as_of: date | datetime | None = None) -> list[str]:
    """The e-mail tokens of a segment's consenting members, sorted; KeyError for an unknown segment."""
    segment = audience(name, lake)
    sql = (
        f"SELECT DISTINCT customer_token FROM ({segment.members_sql}) "
        f"WHERE customer_token IN ({_CONSENTED}) ORDER BY customer_token"
    )
    # Bind only what the segment's SQL names: DuckDB refuses a parameter a statement does not use.
    params = {k: v for k, v in {**_params(lake, as_of), **dict(segment.params)}.items() if f"${k}" in sql}
    return [r["customer_token"] for r in read.rows(lake, sql, _refs([segment]), params)]


def _params(lake: Lake, as_of: date | datetime | None) -> dict[str, object]:
    return {"as_of": as_of_moment(lake, as_of)}


# -- real time -------------------------------------------------------------------------------------------
# The stream's clock: the newest web event or payment in gold, which its micro-builds move within seconds.
WEB_DAILY = TableRef("gold", "mart_web_daily")
WEB_PRODUCTS = TableRef("gold", "mart_web_products_daily")
DIM_PRODUCT = TableRef("gold", "dim_product")
TOP_PRODUCTS_BY = "product_views"
_LIVE_DAY_SQL = """
SELECT
    coalesce({web_orders}, 0) AS orders,
    coalesce({web_revenue}, 0) AS revenue,
    coalesce({web_sessions}, 0) AS sessions,
    coalesce(CAST(sum(converted_sessions) AS BIGINT), 0) AS converted_sessions,
    {web_conversion_rate} AS conversion_rate
FROM gold.mart_web_daily
WHERE day = $day
"""
_TOP_PRODUCTS_SQL = """
SELECT p.product_sku AS sku, {title} AS title, p.product_views, p.carts, p.viewers
FROM gold.mart_web_products_daily p {join}
WHERE p.day = $day
ORDER BY p.product_views DESC, p.carts DESC, p.product_sku
LIMIT $top
"""


def live_clock(lake: Lake) -> datetime | None:
    """The newest web event or payment in gold (UTC); None while there is none."""
    found = read.rows(lake, "SELECT max(newest_event_ts) AS at FROM gold.mart_web_daily", [WEB_DAILY])[0]["at"]
    return found.astimezone(UTC) if found else None


def realtime_overview(
    lake: Lake, day: date | None = None, top: int = 10, now: datetime | None = None
) -> dict[str, Any]:
    """The web shop's day so far: orders, revenue (EUR), sessions, conversion and the top products by views, with
    the newest event in gold and its age in seconds at ``now`` (the wall clock: how fresh the data is).

    ``day`` defaults to the UTC day of the newest event (the data's clock, not the wall clock), so a replayed
    or delayed stream still shows its own latest day.
    """
    newest = live_clock(lake)
    day = day or (newest.date() if newest else None)
    now = now or datetime.now(UTC)
    body: dict[str, Any] = {
        "day": day,
        "newest_event_ts": newest,
        "freshness_seconds": round((now - newest).total_seconds(), 1) if newest else None,
        "generated_at": now,
    }
    if day is None:  # gold holds no web event yet: nothing to count
        empty = {"orders": 0, "revenue": Decimal(0), "sessions": 0, "converted_sessions": 0, "conversion_rate": None}
        return body | empty | {"top_products_by": TOP_PRODUCTS_BY, "top_products": []}
    figures = read.rows(lake, _live_sql(), [WEB_DAILY], {"day": day})[0]
    titled = DIM_PRODUCT in read.built(lake, [DIM_PRODUCT])
    sql = _TOP_PRODUCTS_SQL.replace("{title}", "d.title" if titled else "CAST(NULL AS VARCHAR)").replace(
        "{join}", "LEFT JOIN gold.dim_product d ON d.sku = p.product_sku" if titled else ""
    )
    refs = [WEB_PRODUCTS, DIM_PRODUCT] if titled else [WEB_PRODUCTS]
    products = read.rows(lake, sql, refs, {"day": day, "top": top})
    return body | figures | {"top_products_by": TOP_PRODUCTS_BY, "top_products": products}


def _live_sql() -> str:
    sql = _LIVE_DAY_SQL
    for name in ("web_orders", "web_revenue", "web_sessions", "web_conversion_rate"):
        sql = sql.replace("{" + name + "}", expression(name))
    return sql
