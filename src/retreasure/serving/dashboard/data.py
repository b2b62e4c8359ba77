"""What the dashboards read: the area queries and the KPIs (serving/queries.py, serving/kpis.py, serving/reports.py),
plus the few dashboard-only reads below (data span, lists for the filters, operations tables, inventory).

Every number the API also serves comes from ``queries``, ``kpis`` or ``reports``; the functions here read only
what the API does not serve. All of them read through the one read layer (``serving.read``): its copies of each
table last until the table's next commit, so the dashboards keep no cache of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import streamlit as st

from retreasure.lake.ingest_log import INGEST_LOG, LATEST_RUNS_SQL
from retreasure.lake.store import Lake, TableRef
from retreasure.serving import read as read_layer
from retreasure.serving.kpis import expression
from retreasure.serving.read import NotBuilt
from retreasure.settings import Settings

__all__ = ["NotBuilt"]

T = TypeVar("T")
SALES = TableRef("gold", "mart_sales_daily")
CHANNELS = TableRef("gold", "dim_channel")
STORES = TableRef("gold", "dim_store")
CUSTOMERS = TableRef("gold", "mart_customers")
INVENTORY = TableRef("gold", "mart_inventory")
STOCK_AGING = TableRef("gold", "mart_stock_aging")
DQ_RESULTS = TableRef("ops", "dq_results")
INCIDENTS = TableRef("ops", "incidents")


@st.cache_resource
def lake() -> Lake:
    """The lake the dashboards read, as configured (RETREASURE_LAKE_URI and friends)."""
    return Lake.from_settings(Settings())


def read(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(lake, *args, **kwargs)`` over the dashboards' lake."""
    return function(lake(), *args, **kwargs)


# -- the filters' lists and defaults ----------------------------------------------------------------------------
def data_span(current: Lake) -> tuple[date, date] | None:
    """First and last day with sales: the date filter's bounds (the data's clock, not the wall clock)."""
    found = read_layer.rows(current, f"SELECT min(day) AS first, max(day) AS last FROM {SALES}", [SALES])[0]
    return (found["first"], found["last"]) if found["last"] else None


def channels(current: Lake) -> list[dict]:
    """Sales channels with the business's names for them."""
    return read_layer.rows(current, f"SELECT channel, name FROM {CHANNELS} ORDER BY orders DESC, channel", [CHANNELS])


def stores(current: Lake) -> list[dict]:
    """Stores with their city (the store select's labels)."""
    return read_layer.rows(current, f"SELECT store_id, name, city FROM {STORES} ORDER BY store_id", [STORES])


# -- leadership: what the API does not serve ----------------------------------------------------------
def customer_value(current: Lake, start: date, end: date) -> dict:
    """Customers acquired in the window (first order on any channel) and their mean lifetime value, EUR."""
    sql = f"""
        SELECT count(*) AS new_customers, {expression("avg_ltv")} AS avg_ltv,
               count(*) FILTER (WHERE customer_type = 'repeat') AS repeat_customers
        FROM {CUSTOMERS} WHERE first_order_date BETWEEN $start AND $end
    """
    return read_layer.rows(current, sql, [CUSTOMERS], {"start": start, "end": end})[0]


# -- operations: inventory (the API does not serve it) ---------------------------------------------------------
def inventory_now(current: Lake) -> list[dict]:
    """Per location, stock at the last day of gold.mart_inventory: units, value at cost, turnover and aging."""
    sql = f"""
        SELECT day, location_name, skus_on_hand, units_on_hand, value_on_hand, cost_of_goods_30d,
               inventory_turnover_30d, days_on_hand, units_aged_0_30, units_aged_31_90, units_aged_91_180,
               units_aged_over_180, unique_sell_through_30d
        FROM {INVENTORY} WHERE day = (SELECT max(day) FROM {INVENTORY}) ORDER BY location_name
    """
    return read_layer.rows(current, sql, [INVENTORY])


def stock_to_relist(current: Lake) -> list[dict]:
    """Items on hand that should be re-listed (listing ended, or no sale for 90 days), most money tied up first."""
    sql = f"""
        SELECT location_name, sku, title, category, on_hand, value_at_cost, age_days, days_without_sale, relist_reason
        FROM {STOCK_AGING} WHERE relist_reason IS NOT NULL
        ORDER BY value_at_cost DESC NULLS LAST, days_without_sale DESC, sku
    """
    return read_layer.rows(current, sql, [STOCK_AGING])


# -- data health ---------------------------------------------------------------------------------------------------
def sources(current: Lake) -> list[str]:
    """Every source system in the ingest log (the data-health page's filter)."""
    found = read_layer.rows(current, f"SELECT DISTINCT source FROM {INGEST_LOG} ORDER BY 1", [INGEST_LOG])
    return [r["source"] for r in found]


def latest_ingest(current: Lake, source: str | None = None) -> list[dict]:
    """Each source entity's latest ingest run: status, records, new, malformed, retries, when, and any error."""
    sql = f"""
        SELECT source, entity, status, records, new_records, malformed, retries, requests, files, duration_s,
               finished_at, error
        FROM ({LATEST_RUNS_SQL}) WHERE $source IS NULL OR source = $source
        ORDER BY source, entity
    """
    return read_layer.rows(current, sql, [INGEST_LOG], {"source": source})


def dq_latest(current: Lake) -> list[dict]:
    """Every check of the latest build (the newest run in ops.dq_results)."""
    sql = f"""
        SELECT table_name, check_name, kind, severity, checked, failed, passed, detail, checked_at
        FROM {DQ_RESULTS} WHERE run_id = (SELECT arg_max(run_id, checked_at) FROM {DQ_RESULTS})
        ORDER BY passed, severity, table_name, check_name
    """
    return read_layer.rows(current, sql, [DQ_RESULTS])


def quarantine(current: Lake, source: str | None = None) -> list[dict]:
    """Rows held in quarantine per table, rule and reason (never the rows themselves: they may hold PII).

    Bronze quarantine tables are named ``<source>_<entity>``; model quarantine tables ``<layer>_<model>``.
    """
    refs = [ref for ref in current.tables("quarantine") if source is None or ref.name.startswith(f"{source}_")]
    parts = [
        f"SELECT '{ref.name}' AS quarantine_table, rule, reason, count(*) AS rows, max(quarantined_at) AS latest "
        f"FROM {ref} GROUP BY ALL"
        for ref in refs
    ]
    if not parts:
        return []
    return read_layer.rows(current, " UNION ALL ".join(parts) + " ORDER BY rows DESC, quarantine_table", refs)


def incidents(current: Lake) -> list[dict]:
    """Pipeline incidents, open first, newest first (errors are stored masked)."""
    if current.version(INCIDENTS) is None:
        return []
    sql = f"""
        SELECT status, asset, "partition", occurrences, first_seen, last_seen, resolved_at, error
        FROM {INCIDENTS} ORDER BY status = 'open' DESC, last_seen DESC
    """
    return read_layer.rows(current, sql, [INCIDENTS])


def freshness(current: Lake) -> list[dict]:
    """Per table: when it was last written, its Delta version and its rows (from the Delta log, no scan)."""
    out = []
    for ref in current.tables():
        if ref.layer == "restricted":
            continue
        table = current.delta(ref)
        last = table.history(1)[0]
        actions = table.get_add_actions(flatten=True)
        rows = sum(v or 0 for v in actions.column("num_records").to_pylist()) if actions.num_rows else 0
        out.append(
            {
                "table": str(ref),
                "layer": ref.layer,
                # Delta records commit times in epoch milliseconds.
                "last_written": datetime.fromtimestamp(last["timestamp"] / 1000, UTC),
                "operation": last.get("operation"),
                "version": table.version(),
                "rows": rows,
            }
        )
    return out
