"""The headline KPIs, each defined once: the gold table it is read from and how that table's rows add up to it.

The CLI's summary (``retreasure kpis``, the demo), the API's /v1/kpis, the dashboards and the area queries of
``serving.queries`` all take a KPI's aggregate from :data:`KPIS`, so a figure cannot mean one thing in one place
and another elsewhere. Ratios are recomputed from the sums of the rows they cover, never averaged over rows.
What each figure means in business terms is in docs/kpis.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from retreasure.lake.store import Lake, TableRef
from retreasure.serving import read

SALES = TableRef("gold", "mart_sales_daily")
FINANCE = TableRef("gold", "mart_finance")
INVENTORY = TableRef("gold", "mart_inventory")
MARKETING = TableRef("gold", "mart_marketing")
CUSTOMERS = TableRef("gold", "mart_customers")
FULFILLMENT = TableRef("gold", "mart_fulfillment")
FULFILLMENTS = TableRef("gold", "fct_fulfillments")
TAX = TableRef("gold", "mart_tax_liability")
ORDERS = TableRef("gold", "fct_orders")
WEB_DAILY = TableRef("gold", "mart_web_daily")
DQ_RESULTS = TableRef("ops", "dq_results")

GRAINS = ("day", "week", "month")


@dataclass(frozen=True)
class Kpi:
    """One figure: the aggregate ``expression`` over the rows of ``source`` (those matching ``where``)."""

    name: str
    label: str
    source: TableRef
    expression: str
    where: str = ""

    def sql(self) -> str:
        """The figure over the whole table, as column ``v``."""
        return f"SELECT {self.expression} AS v FROM {self.source}" + (f" WHERE {self.where}" if self.where else "")


def ratio(numerator: str, denominator: str, places: int = 4) -> str:
    """A ratio of two sums, rounded; empty where the denominator is 0."""
    return f"round(({numerator}) / nullif({denominator}, 0), {places})"


_LATEST_CHECKS = "run_id = (SELECT arg_max(run_id, checked_at) FROM ops.dq_results)"
_SALES_PER_ORDER = ratio("sum(gross_sales) - sum(discounts) + sum(shipping)", "sum(orders)", 2)
# Turnover over the whole period: cost of goods / average end-of-day stock value at cost.
_TURNOVER = ratio("sum(cost_of_goods)", "sum(value_on_hand) / count(DISTINCT day)")
# Every parcel the carrier reported delivered (the fulfillment metrics take each order's first parcel).
_DELIVERY_DAYS = "round(median(epoch(delivered_ts - shipped_ts) / 86400), 1)"

KPIS: tuple[Kpi, ...] = (
    Kpi("orders", "Orders", SALES, "CAST(sum(orders) AS BIGINT)"),
    Kpi("gross_sales", "Gross sales (EUR)", SALES, "sum(gross_sales)"),
    Kpi("discounts", "Discounts (EUR)", SALES, "sum(discounts)"),
    Kpi("net_revenue", "Net revenue (EUR)", SALES, "sum(net_revenue)"),
    Kpi("refunds", "Refunds (EUR)", SALES, "sum(refunds)"),
    Kpi("shipping", "Shipping (EUR)", SALES, "sum(shipping)"),
    Kpi("aov", "Average order value (EUR)", SALES, f"CAST({_SALES_PER_ORDER} AS DECIMAL(18, 2))"),
    Kpi("gross_margin", "Gross margin (EUR)", FINANCE, "sum(gross_margin)"),
    Kpi("gross_margin_pct", "Gross margin (%)", FINANCE, ratio("100 * sum(gross_margin)", "sum(net_revenue)", 2)),
    Kpi("inventory_turnover", "Inventory turnover", INVENTORY, _TURNOVER),
    Kpi("sessions", "Sessions", MARKETING, "CAST(sum(sessions) AS BIGINT)"),
    Kpi("conversion_rate", "Conversion rate", MARKETING, ratio("sum(orders)", "sum(sessions)")),
    Kpi("avg_ltv", "Average lifetime value (EUR)", CUSTOMERS, "round(avg(lifetime_value), 2)"),
    Kpi("fulfillment_rate", "Fulfillment rate", FULFILLMENT, ratio("sum(orders_shipped)", "sum(orders_to_ship)")),
    # Overdue orders not shipped are late; pending ones are not judged yet.
    Kpi(
        "on_time_rate",
        "On-time rate",
        FULFILLMENT,
        ratio("sum(shipped_on_time)", "sum(shipped_on_time) + sum(late_orders)"),
    ),
    Kpi("median_delivery_days", "Median delivery days", FULFILLMENTS, _DELIVERY_DAYS, "delivered_ts IS NOT NULL"),
    Kpi("tax_owed", "Tax owed by us (EUR)", TAX, "sum(tax_liability)", "tax_party = 'seller'"),
    Kpi("tax_remitted", "Tax remitted by marketplaces (EUR)", TAX, "sum(tax_liability)", "tax_party = 'marketplace'"),
    # The web shop's day as its events tell it (real-time serving: /v1/realtime/overview, the live tile).
    Kpi("web_orders", "Web orders", WEB_DAILY, "CAST(sum(orders) AS BIGINT)"),
    Kpi("web_revenue", "Web revenue (EUR)", WEB_DAILY, "sum(revenue)"),
    Kpi("web_sessions", "Web sessions", WEB_DAILY, "CAST(sum(sessions) AS BIGINT)"),
    Kpi("web_conversion_rate", "Web conversion rate", WEB_DAILY, ratio("sum(converted_sessions)", "sum(sessions)")),
    Kpi(
        "dq_passed", "DQ checks passed", DQ_RESULTS, ratio("count(*) FILTER (WHERE passed)", "count(*)"), _LATEST_CHECKS
    ),
)
_BY_NAME = {k.name: k for k in KPIS}

# The summary's figures, in the order it shows them.
SUMMARY = (
    "orders",
    "gross_sales",
    "net_revenue",
    "refunds",
    "aov",
    "gross_margin",
    "gross_margin_pct",
    "inventory_turnover",
    "conversion_rate",
    "avg_ltv",
    "fulfillment_rate",
    "on_time_rate",
    "median_delivery_days",
    "tax_owed",
    "tax_remitted",
    "dq_passed",
)


def kpi(name: str) -> Kpi:
    return _BY_NAME[name]


def expression(name: str) -> str:
    """The aggregate of KPI ``name``, for a query that groups its source's rows its own way."""
    return _BY_NAME[name].expression


def summary(lake: Lake) -> list[tuple[str, Decimal | float | int | None]]:
    """(label, value) for each headline KPI over everything in gold; None where its table is not built."""
    out: list[tuple[str, Decimal | float | int | None]] = []
    for name in SUMMARY:
        figure = _BY_NAME[name]
        try:
            value = read.rows(lake, figure.sql(), [figure.source])[0]["v"]
        except read.NotBuilt:  # the summary says so instead of failing
            value = None
        out.append((figure.label, value))
    quarantined = sum(lake.count(ref) for ref in lake.tables("quarantine"))
    out.append(("Rows in quarantine", quarantined))
    return out


# -- per period -------------------------------------------------------------------------------------------
# Sales from gold.mart_sales_daily (orders and their lines on the order day, refunds on the refund day), sessions
# from gold.mart_marketing (the web shop only: a filter on another channel or on a store has none), new customers
# on the day, channel and store of their first order.
_SALES = ("orders", "gross_sales", "discounts", "refunds", "net_revenue", "shipping", "aov")
_PERIOD_SQL = """
WITH sales AS (
    SELECT {period:day} AS period, {sales}
    FROM gold.mart_sales_daily
    WHERE day BETWEEN $start AND $end {filter}
    GROUP BY ALL
), web AS (
    SELECT {period:day} AS period, {sessions} AS sessions, {conversion_rate} AS conversion_rate
    FROM gold.mart_marketing
    WHERE day BETWEEN $start AND $end AND {web}
    GROUP BY ALL
    HAVING sum(sessions) > 0
), firsts AS (
    SELECT customer_token, min(order_date) AS day, arg_min(channel, order_ts) AS channel,
        arg_min(store_id, order_ts) AS store_id
    FROM gold.fct_orders
    WHERE customer_token IS NOT NULL
    GROUP BY customer_token
), new_customers AS (
    SELECT {period:day} AS period, count(*) AS new_customers
    FROM firsts
    WHERE day BETWEEN $start AND $end {filter}
    GROUP BY ALL
), periods AS (
    SELECT period FROM sales UNION SELECT period FROM web
)
SELECT
    p.period,
    {coalesced},
    s.aov,
    CASE WHEN {web} THEN coalesce(w.sessions, 0) END AS sessions,
    w.conversion_rate,
    coalesce(n.new_customers, 0) AS new_customers
FROM periods p
LEFT JOIN sales s USING (period)
LEFT JOIN web w USING (period)
LEFT JOIN new_customers n USING (period)
ORDER BY p.period
"""
_PERIOD_REFS = [SALES, MARKETING, ORDERS]


def _period_sql(period: str, channels: Sequence[str], store: str | None) -> str:
    """The KPI query with its period expression and filters; only fixed text is spliced, values are bound."""
    expr = "CAST($start AS DATE)" if period == "total" else f"CAST(date_trunc('{period}', day) AS DATE)"
    conditions = " AND list_contains($channels, channel)" if channels else ""
    conditions += " AND store_id = $store" if store else ""
    web = "TRUE" if (not channels or "shopify" in channels) and not store else "FALSE"
    additive = [n for n in _SALES if n != "aov"]
    return (
        _PERIOD_SQL.replace("{period:day}", expr)
        .replace("{sales}", ", ".join(f"{expression(n)} AS {n}" for n in _SALES))
        .replace("{coalesced}", ", ".join(f"coalesce(s.{n}, 0) AS {n}" for n in additive))
        .replace("{sessions}", expression("sessions"))
        .replace("{conversion_rate}", expression("conversion_rate"))
        .replace("{filter}", conditions)
        .replace("{web}", web)
    )


def _params(start: date, end: date, channels: Sequence[str], store: str | None) -> dict[str, object]:
    params: dict[str, object] = {"start": start, "end": end}
    if channels:
        params["channels"] = list(channels)
    if store:
        params["store"] = store
    return params


def kpis(
    lake: Lake,
    start: date,
    end: date,
    grain: str = "day",
    channels: Sequence[str] = (),
    store: str | None = None,
) -> list[dict[str, Any]]:
    """The headline KPIs per day, week (from Monday) or month between ``start`` and ``end`` (inclusive), EUR, of
    ``channels`` together (all without) and one ``store``.

    A period cut by the range holds only its days inside the range. Sessions are the web shop's: empty unless it
    is among the channels and no store is chosen.
    """
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}: expected one of {', '.join(GRAINS)}")
    return read.rows(lake, _period_sql(grain, channels, store), _PERIOD_REFS, _params(start, end, channels, store))


def kpi_totals(
    lake: Lake, start: date, end: date, channels: Sequence[str] = (), store: str | None = None
) -> dict[str, Any]:
    """The same KPIs over the whole range (ratios recomputed from the sums, never averaged)."""
    found = read.rows(lake, _period_sql("total", channels, store), _PERIOD_REFS, _params(start, end, channels, store))
    if found:
        total = found[0]
    else:
        total = dict.fromkeys(["orders", "gross_sales", "discounts", "refunds", "net_revenue", "shipping"], 0)
        total |= {"aov": None, "sessions": None, "conversion_rate": None, "new_customers": 0}
    total.pop("period", None)
    return {"start": start, "end": end, **total}
