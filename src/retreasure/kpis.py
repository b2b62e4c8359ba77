"""The headline KPIs as one summary, read from the gold marts (the ops tables for data quality)."""

from __future__ import annotations

from decimal import Decimal

import duckdb

from retreasure.lake.store import Lake

SUMMARY_SQL = {
    "Orders": "SELECT sum(orders) AS v FROM gold.mart_sales_daily",
    "Gross sales (EUR)": "SELECT sum(gross_sales) AS v FROM gold.mart_sales_daily",
    "Net revenue (EUR)": "SELECT sum(net_revenue) AS v FROM gold.mart_sales_daily",
    "Refunds (EUR)": "SELECT sum(refunds) AS v FROM gold.mart_sales_daily",
    "Average order value (EUR)": (
        "SELECT round(sum(gross_sales - discounts + shipping) / nullif(sum(orders), 0), 2) AS v "
        "FROM gold.mart_sales_daily"
    ),
    "Gross margin (EUR)": "SELECT sum(gross_margin) AS v FROM gold.mart_finance",
    "Gross margin (%)": (
        "SELECT round(100 * sum(gross_margin) / nullif(sum(net_revenue), 0), 2) AS v FROM gold.mart_finance"
    ),
    # Turnover over the whole period: cost of goods / average end-of-day stock value at cost (docs/kpis.md).
    "Inventory turnover": (
        "SELECT round(sum(cost_of_goods) / nullif(sum(value_on_hand) / count(DISTINCT day), 0), 4) AS v "
        "FROM gold.mart_inventory"
    ),
    # Ratios are recomputed from the marts' counts, never averaged over their rows.
    "Conversion rate": "SELECT round(sum(orders) / nullif(sum(sessions), 0), 4) AS v FROM gold.mart_marketing",
    "Average lifetime value (EUR)": "SELECT round(avg(lifetime_value), 2) AS v FROM gold.mart_customers",
    "Fulfillment rate": (
        "SELECT round(sum(orders_shipped) / nullif(sum(orders_to_ship), 0), 4) AS v FROM gold.mart_fulfillment"
    ),
    # Overdue orders not shipped are late; pending ones are not judged yet (docs/kpis.md, Fulfillment).
    "On-time rate": (
        "SELECT round(sum(shipped_on_time) / nullif(sum(shipped_on_time + late_orders), 0), 4) AS v "
        "FROM gold.mart_fulfillment"
    ),
    "Median delivery days": (
        "SELECT round(median(epoch(delivered_ts - shipped_ts) / 86400), 1) AS v FROM gold.fct_fulfillments "
        "WHERE delivered_ts IS NOT NULL"
    ),
    "Tax owed by us (EUR)": "SELECT sum(tax_liability) AS v FROM gold.mart_tax_liability WHERE tax_party = 'seller'",
    "Tax remitted by marketplaces (EUR)": (
        "SELECT sum(tax_liability) AS v FROM gold.mart_tax_liability WHERE tax_party = 'marketplace'"
    ),
    "DQ checks passed": (
        "SELECT round(count(*) FILTER (WHERE passed) / nullif(count(*), 0), 4) AS v FROM ops.dq_results "
        "WHERE run_id = (SELECT arg_max(run_id, checked_at) FROM ops.dq_results)"
    ),
}


def summary(lake: Lake) -> list[tuple[str, Decimal | float | int | None]]:
    """(label, value) for each headline KPI; None where its table is not built."""
    out = []
    con = lake.connect()
    try:
        for label, sql in SUMMARY_SQL.items():
            try:
                out.append((label, con.execute(sql).fetchone()[0]))  # type: ignore[index]
            except duckdb.CatalogException:  # a table not built yet: the summary says so instead of failing
                out.append((label, None))
    finally:
        con.close()
    quarantined = sum(lake.count(ref) for ref in lake.tables("quarantine"))
    out.append(("Rows in quarantine", quarantined))
    return out
