"""The one read layer over gold for the API and the dashboards: a number shown in both comes from one function.

Every function names the tables it reads (a DuckDB connection then sees just those) and returns plain
rows: dicts of Python values (``Decimal`` for EUR amounts, ``date``/``datetime`` in UTC). Nothing here returns
clear PII: customers and addresses are tokens; revealing them is the caller's decision (``serving.pii``).

"As of": audiences and the overdue flag are judged against the data's own clock, the newest order placed or
parcel shipped in silver (``data_as_of``), not the wall clock, so that the same lake gives the same answer on any
day; callers may pass ``as_of`` to ask about another moment. gold.mart_fulfillment judges its unshipped orders at
the same clock (its ``judged_at``).

Reads go through in-memory Arrow snapshots of those tables, each kept while its Delta version does not move:
opening a Delta table's files costs far more than the queries (see docs/benchmarks.md, API), and checking the
version on every call means a build's new commit is seen by the very next request.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from retreasure.lake.store import Lake, TableRef

GRAINS = ("day", "week", "month")
QUEUE_STATUSES = ("open", "overdue")

ORDERS = TableRef("silver", "orders")
ORDER_LINES = TableRef("silver", "order_lines")
FULFILLMENTS = TableRef("silver", "fulfillments")
SHIP_TO = TableRef("silver", "order_ship_to")
WEB_EVENTS = TableRef("silver", "web_events")
FCT_LINES = TableRef("gold", "fct_order_lines")
FCT_REFUNDS = TableRef("gold", "fct_refunds")
FCT_SESSIONS = TableRef("gold", "fct_web_sessions")
FCT_FULFILLMENTS = TableRef("gold", "fct_fulfillments")
DIM_CUSTOMER = TableRef("gold", "dim_customer")
MART_CUSTOMERS = TableRef("gold", "mart_customers")
MART_FULFILLMENT = TableRef("gold", "mart_fulfillment")
MART_MARKETING = TableRef("gold", "mart_marketing")


# The columns kept of a large table that only some questions read (all columns of the others).
SNAPSHOT_COLUMNS = {WEB_EVENTS: ["event_name", "customer_token", "event_ts"]}


@dataclass
class _Generation:
    """One DuckDB database holding a copy of each table snapshot, and the Delta versions it was made of."""

    con: duckdb.DuckDBPyConnection
    versions: dict[TableRef, int | None]  # None: the table did not exist
    tables: dict[TableRef, pa.Table]


class Snapshots:
    """In-memory Arrow snapshots of a lake's tables behind one DuckDB database, per lake.

    Each call checks the Delta version of the tables it needs (a read of the log's tail); when one moved, a new
    database is made with the changed tables reloaded, while queries already running finish on the old one.
    Queries get a cursor: a connection to the shared database, far cheaper than a database of their own.
    """

    def __init__(self) -> None:
        # One lock for all: a DeltaTable object is not meant to be refreshed from two threads at once.
        self._lock = threading.Lock()
        self._deltas: dict[str, DeltaTable] = {}
        self._generations: dict[str, _Generation] = {}

    def _version(self, lake: Lake, ref: TableRef) -> int | None:
        uri = lake.table_uri(ref)
        delta = self._deltas.get(uri)
        if delta is None:
            if not lake.exists(ref):
                return None
            delta = self._deltas[uri] = lake.delta(ref)
        else:
            delta.update_incremental()
        return delta.version()

    def cursor(self, lake: Lake, refs: list[TableRef]) -> duckdb.DuckDBPyConnection:
        with self._lock:
            old = self._generations.get(lake.uri)
            versions = {ref: self._version(lake, ref) for ref in refs}
            known = old.versions if old else {}
            stale = [ref for ref, version in versions.items() if ref not in known or known[ref] != version]
            if old is not None and not stale:
                return old.con.cursor()
            tables = {ref: t for ref, t in old.tables.items() if ref not in stale} if old else {}
            for ref in stale:
                if versions[ref] is not None:
                    tables[ref] = _load(lake, ref)
            con = duckdb.connect()
            for layer in sorted({ref.layer for ref in tables}):
                con.execute(f"CREATE SCHEMA {layer}")
            for ref, data in tables.items():
                # Copied into the database: a registered Arrow object is visible to its own connection only,
                # not to the cursors the queries run on.
                con.register("snapshot", data)
                con.execute(f"CREATE TABLE {ref} AS SELECT * FROM snapshot")
                con.unregister("snapshot")
            generation = _Generation(con, {**known, **versions}, tables)
            self._generations[lake.uri] = generation
            return con.cursor()


def _load(lake: Lake, ref: TableRef) -> pa.Table:
    """A table's rows through DuckDB (delta-rs's own Arrow readers, called twice in a process, made the
    interpreter abort at exit)."""
    columns = ", ".join(SNAPSHOT_COLUMNS.get(ref, ["*"]))
    return lake.query(f"SELECT {columns} FROM {ref}", [ref])


_snapshots = Snapshots()


def rows(lake: Lake, sql: str, refs: list[TableRef], params: dict[str, object] | None = None) -> list[dict[str, Any]]:
    """Run ``sql`` over the snapshots of ``refs``, named ``layer.name`` (a table not built yet is absent)."""
    cursor = _snapshots.cursor(lake, refs)
    try:
        return cursor.execute(sql, params).fetch_arrow_table().to_pylist()
    finally:
        cursor.close()


# The same clock as gold.mart_fulfillment's judged_at: a parcel can leave after the last order was placed.
_CLOCK_SQL = "SELECT greatest({newest}) AS at"
_NEWEST = {
    ORDERS: "(SELECT max(order_ts) FROM silver.orders)",
    FULFILLMENTS: "(SELECT max(shipped_ts) FROM silver.fulfillments)",
}
_BUILT_SQL = "SELECT table_schema || '.' || table_name AS name FROM information_schema.tables"


def data_as_of(lake: Lake) -> datetime:
    """The data's clock: the newest order placed or parcel shipped in the lake (UTC); the epoch for an empty lake."""
    cursor = _snapshots.cursor(lake, list(_NEWEST))
    try:
        # Asked of the snapshot database, which holds just the tables that exist: no extra look at the lake.
        built = {name for (name,) in cursor.execute(_BUILT_SQL).fetchall()}
        newest = [sql for ref, sql in _NEWEST.items() if str(ref) in built]
        clock_sql = _CLOCK_SQL.format(newest=", ".join(newest))
        found = cursor.execute(clock_sql).fetch_arrow_table().to_pylist()[0]["at"] if newest else None
    finally:
        cursor.close()
    return found.astimezone(UTC) if found else datetime(1970, 1, 1, tzinfo=UTC)


def as_of_moment(lake: Lake, as_of: date | datetime | None = None) -> datetime:
    """The moment a question is asked about: ``as_of`` (a day means its end), else the data's clock."""
    if as_of is None:
        return data_as_of(lake)
    if isinstance(as_of, datetime):
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    # A day means the end of that day: everything that happened on it is known.
    return datetime.combine(as_of, time.max, UTC)


# -- leadership ------------------------------------------------------------------------------------------
# Orders and shipping from silver.orders (as gold.mart_sales_daily counts them), gross sales and discounts from
# the line fact, refunds on their refund day, sessions from the web fact (the web shop only: a filter on
# another channel or on a store has none), new customers on the day and channel of their first order.
_KPI_SQL = """
WITH orders AS (
    SELECT {period:order_date} AS period, count(*) AS orders, sum(shipping_base) AS shipping
    FROM silver.orders
    WHERE order_date BETWEEN $start AND $end {filter}
    GROUP BY ALL
), lines AS (
    SELECT {period:order_date} AS period, sum(gross_base) AS gross_sales, sum(discount_base) AS discounts
    FROM gold.fct_order_lines
    WHERE order_date BETWEEN $start AND $end {filter}
    GROUP BY ALL
), refunds AS (
    SELECT {period:refund_date} AS period, sum(amount_base) AS refunds
    FROM gold.fct_refunds
    WHERE refund_date BETWEEN $start AND $end {filter}
    GROUP BY ALL
), sessions AS (
    SELECT {period:session_date} AS period, count(*) AS sessions, count(*) FILTER (WHERE converted) AS converted
    FROM gold.fct_web_sessions
    WHERE session_date BETWEEN $start AND $end AND {web}
    GROUP BY ALL
), firsts AS (
    SELECT customer_token, min(order_date) AS order_date, arg_min(channel, order_ts) AS channel,
        arg_min(store_id, order_ts) AS store_id
    FROM silver.orders
    WHERE customer_token IS NOT NULL
    GROUP BY customer_token
), new_customers AS (
    SELECT {period:order_date} AS period, count(*) AS new_customers
    FROM firsts
    WHERE order_date BETWEEN $start AND $end {filter}
    GROUP BY ALL
), periods AS (
    SELECT period FROM orders UNION SELECT period FROM refunds UNION SELECT period FROM sessions
)
SELECT
    p.period,
    coalesce(o.orders, 0) AS orders,
    coalesce(l.gross_sales, 0) AS gross_sales,
    coalesce(l.discounts, 0) AS discounts,
    coalesce(r.refunds, 0) AS refunds,
    coalesce(l.gross_sales, 0) - coalesce(l.discounts, 0) - coalesce(r.refunds, 0) AS net_revenue,
    coalesce(o.shipping, 0) AS shipping,
    CAST(round(
        (coalesce(l.gross_sales, 0) - coalesce(l.discounts, 0) + coalesce(o.shipping, 0)) / nullif(o.orders, 0), 2
    ) AS DECIMAL(18, 2)) AS aov,
    CASE WHEN {web} THEN coalesce(s.sessions, 0) END AS sessions,
    round(s.converted / nullif(s.sessions, 0), 4) AS conversion_rate,
    coalesce(n.new_customers, 0) AS new_customers
FROM periods p
LEFT JOIN orders o USING (period)
LEFT JOIN lines l USING (period)
LEFT JOIN refunds r USING (period)
LEFT JOIN sessions s USING (period)
LEFT JOIN new_customers n USING (period)
ORDER BY p.period
"""
_KPI_REFS = [ORDERS, FCT_LINES, FCT_REFUNDS, FCT_SESSIONS]


def _kpi_sql(period: str, channel: str | None, store: str | None) -> str:
    """The KPI query with its period expression and filters; only fixed text is spliced, values are bound."""
    sql = _KPI_SQL
    for column in ("order_date", "refund_date", "session_date"):
        expr = "CAST($start AS DATE)" if period == "total" else f"CAST(date_trunc('{period}', {column}) AS DATE)"
        sql = sql.replace(f"{{period:{column}}}", expr)
    conditions = " AND channel = $channel" if channel else ""
    conditions += " AND store_id = $store" if store else ""
    web = "TRUE" if channel in (None, "shopify") and not store else "FALSE"
    return sql.replace("{filter}", conditions).replace("{web}", web)


def _kpi_params(start: date, end: date, channel: str | None, store: str | None) -> dict[str, object]:
    params: dict[str, object] = {"start": start, "end": end}
    if channel:
        params["channel"] = channel
    if store:
        params["store"] = store
    return params


def kpis(
    lake: Lake,
    start: date,
    end: date,
    grain: str = "day",
    channel: str | None = None,
    store: str | None = None,
) -> list[dict[str, Any]]:
    """The headline KPIs per day, week (from Monday) or month between ``start`` and ``end`` (inclusive), EUR.

    A period cut by the range holds only its days inside the range.
    """
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}: expected one of {', '.join(GRAINS)}")
    return rows(lake, _kpi_sql(grain, channel, store), _KPI_REFS, _kpi_params(start, end, channel, store))


def kpi_totals(
    lake: Lake, start: date, end: date, channel: str | None = None, store: str | None = None
) -> dict[str, Any]:
    """The same KPIs over the whole range (ratios recomputed from the sums, never averaged)."""
    found = rows(lake, _kpi_sql("total", channel, store), _KPI_REFS, _kpi_params(start, end, channel, store))
    if found:
        total = found[0]
    else:
        total = dict.fromkeys(["orders", "gross_sales", "discounts", "refunds", "net_revenue", "shipping"], 0)
        total |= {"aov": None, "sessions": None, "conversion_rate": None, "new_customers": 0}
    total.pop("period", None)
    return {"start": start, "end": end, **total}


# -- operations ------------------------------------------------------------------------------------------
_QUEUE_SQL = """
WITH items AS (
    SELECT order_key, sum(quantity) AS items FROM silver.order_lines GROUP BY order_key
)
SELECT
    o.order_key,
    o.channel,
    o.channel_order_id,
    o.order_ts,
    o.ship_by_ts,
    coalesce(o.ship_by_ts < $as_of, FALSE) AS overdue,
    CAST(coalesce(i.items, 0) AS BIGINT) AS items,
    o.ship_country,
    a.name_token AS ship_to_name,
    a.street_token AS ship_to_street,
    a.street2_token AS ship_to_street2,
    a.city AS ship_to_city,
    a.region AS ship_to_region,
    a.postal_code AS ship_to_postal_code
FROM silver.orders o
LEFT JOIN silver.order_ship_to a USING (order_key)
LEFT JOIN items i USING (order_key)
WHERE o.channel <> 'pos'
    AND o.order_ts <= $as_of
    AND NOT EXISTS (
        SELECT 1 FROM silver.fulfillments f WHERE f.order_key = o.order_key AND f.shipped_ts <= $as_of
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
    return rows(lake, sql, [ORDERS, ORDER_LINES, FULFILLMENTS, SHIP_TO], params)


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
        max(judged_at) AS judged_at
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
    round(c.orders_shipped / nullif(c.orders_to_ship, 0), 4) AS fulfillment_rate,
    t.median_hours_to_ship,
    t.avg_hours_to_ship,
    CAST(c.orders_with_ship_by AS BIGINT) AS orders_with_ship_by,
    CAST(c.shipped_on_time AS BIGINT) AS shipped_on_time,
    CAST(c.shipped_late AS BIGINT) AS shipped_late,
    CAST(c.overdue_unshipped AS BIGINT) AS overdue_unshipped,
    CAST(c.late_orders AS BIGINT) AS late_orders,
    CAST(c.orders_pending AS BIGINT) AS orders_pending,
    round(c.shipped_on_time / nullif(c.shipped_on_time + c.late_orders, 0), 4) AS on_time_rate,
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
    return _FULFILLMENT_METRICS_SQL.replace("{key}", key).replace("{filter}", where)


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
    return rows(lake, sql, [MART_FULFILLMENT, FCT_FULFILLMENTS], _fulfillment_params(start, end, channels))


def fulfillment_totals(lake: Lake, start: date, end: date, channels: Sequence[str] = ()) -> dict[str, Any] | None:
    """The same metrics over ``channels`` (or all) together, by the same query; None when no order is in range."""
    sql = _fulfillment_sql(False, channels)
    found = rows(lake, sql, [MART_FULFILLMENT, FCT_FULFILLMENTS], _fulfillment_params(start, end, channels))
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
    round(sum(orders) / nullif(sum(sessions), 0), 4) AS conversion_rate,
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
    return rows(lake, _CAMPAIGNS_SQL, [MART_MARKETING], {"start": start, "end": end})


@dataclass(frozen=True)
class Audience:
    """A marketing segment: who is in it (SQL over gold yielding customer_token), judged as of a moment."""

    name: str
    description: str
    members_sql: str


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
        f"SELECT e.customer_token FROM silver.web_events e WHERE e.event_name = 'product_added' "
        f"AND e.customer_token IS NOT NULL AND e.event_ts BETWEEN $as_of - INTERVAL {CART_DAYS} DAY AND $as_of "
        f"AND NOT EXISTS (SELECT 1 FROM silver.orders o WHERE o.customer_token = e.customer_token "
        f"AND o.order_ts >= e.event_ts AND o.order_ts <= $as_of)",
    ),
)
_AUDIENCE_REFS = [MART_CUSTOMERS, DIM_CUSTOMER, WEB_EVENTS, ORDERS]
# Only consent makes a member: gold.dim_customer carries the shop account's e-mail marketing consent, and a
# customer the shop never asked (marketplace and store buyers) has not accepted.
_CONSENTED = "SELECT customer_token FROM gold.dim_customer WHERE accepts_marketing"


def audience(name: str) -> Audience:
    for found in AUDIENCES:
        if found.name == name:
            return found
    raise KeyError(name)


def audiences(lake: Lake, as_of: date | datetime | None = None) -> list[dict[str, Any]]:
    """Every segment with its description and size (customers in it who accepted marketing)."""
    parts = [
        f"SELECT '{a.name}' AS name, count(DISTINCT customer_token) AS size FROM ({a.members_sql}) "
        f"WHERE customer_token IN ({_CONSENTED})"
        for a in AUDIENCES
    ]
    sizes = {r["name"]: r["size"] for r in rows(lake, " UNION ALL ".join(parts), _AUDIENCE_REFS, _params(lake, as_of))}
    return [{"name": a.name, "description": a.description, "size": sizes[a.name]} for a in AUDIENCES]


def audience_members(lake: Lake, name: str, as_of: date | datetime | None = None) -> list[str]:
    """The e-mail tokens of a segment's consenting members, sorted; KeyError for an unknown segment."""
    sql = (
        f"SELECT DISTINCT customer_token FROM ({audience(name).members_sql}) "
        f"WHERE customer_token IN ({_CONSENTED}) ORDER BY customer_token"
    )
    return [r["customer_token"] for r in rows(lake, sql, _AUDIENCE_REFS, _params(lake, as_of))]


def _params(lake: Lake, as_of: date | datetime | None) -> dict[str, object]:
    return {"as_of": as_of_moment(lake, as_of)}
