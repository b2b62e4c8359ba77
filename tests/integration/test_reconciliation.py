"""Gold equals the simulator's books to the cent, with every fault switched on (duplicates, late updates,
broken records, schema drift, 429s and 5xx, truncated files)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from retreasure.engine.build import build
from retreasure.lake import Lake
from retreasure.serving.kpis import summary
from retreasure_sim.ledger import Books, books
from retreasure_sim.model import Truth


@pytest.fixture
def built(bronze_lake: tuple[Truth, Lake], lake_copy: Lake) -> tuple[Books, Lake]:
    runs = build(lake_copy)
    assert [str(r.ref) for r in runs if r.blocked] == []
    return books(bronze_lake[0]), lake_copy


def one(lake: Lake, sql: str) -> object:
    return lake.query(sql).to_pylist()[0]["v"]


def test_revenue_refunds_and_orders_equal_the_books(built: tuple[Books, Lake]) -> None:
    truth, lake = built
    assert one(lake, "SELECT sum(orders) AS v FROM gold.mart_sales_daily") == truth.orders
    by_channel = lake.query("SELECT channel, sum(orders) AS n FROM gold.mart_sales_daily GROUP BY ALL").to_pylist()
    assert {r["channel"]: r["n"] for r in by_channel} == dict(truth.orders_by_channel)
    assert one(lake, "SELECT sum(gross_sales) AS v FROM gold.mart_sales_daily") == truth.gross
    assert one(lake, "SELECT sum(discounts) AS v FROM gold.mart_sales_daily") == truth.discounts
    assert one(lake, "SELECT sum(refunds) AS v FROM gold.mart_sales_daily") == truth.refunds
    assert one(lake, "SELECT sum(net_revenue) AS v FROM gold.mart_sales_daily") == truth.net_revenue
    assert one(lake, "SELECT sum(shipping) AS v FROM gold.mart_sales_daily") == truth.shipping
    daily = lake.query(
        "SELECT day, channel, sum(gross_sales) AS gross_sales FROM gold.mart_sales_daily GROUP BY ALL "
        "HAVING sum(gross_sales) <> 0"
    )
    assert {(r["day"], r["channel"]): r["gross_sales"] for r in daily.to_pylist()} == dict(truth.gross_by_day_channel)


def test_tax_liability_by_party_equals_the_books(built: tuple[Books, Lake]) -> None:
    truth, lake = built
    rows = lake.query("SELECT tax_party, sum(tax_liability) AS v FROM gold.mart_tax_liability GROUP BY ALL")
    assert {r["tax_party"]: r["v"] for r in rows.to_pylist()} == dict(truth.tax_by_party)


def test_conversion_and_fulfillment_rates_equal_the_books(built: tuple[Books, Lake]) -> None:
    truth, lake = built
    sessions = lake.query("SELECT count(*) AS n, count(*) FILTER (WHERE converted) AS c FROM silver.sessions")
    row = sessions.to_pylist()[0]
    assert (row["n"], row["c"]) == (truth.sessions, truth.converted_sessions)
    assert Decimal(row["c"]) / Decimal(row["n"]) == truth.conversion_rate
    shipped = lake.query(
        "SELECT count(*) AS n, count(*) FILTER (WHERE order_key IN (SELECT order_key FROM silver.fulfillments)) AS s "
        "FROM silver.orders WHERE channel <> 'pos'"
    ).to_pylist()[0]
    assert (shipped["n"], shipped["s"]) == (truth.orders_to_ship, truth.orders_shipped)


def test_on_time_rate_equals_the_books(built: tuple[Books, Lake]) -> None:
    """Overdue orders not shipped count as late at the data's clock; pending ones are not judged."""
    truth, lake = built
    kept = truth.promises_kept
    assert kept.overdue_unshipped > 0 and kept.pending > 0
    row = lake.query(
        "SELECT sum(shipped_on_time) AS on_time, sum(shipped_late) AS shipped_late, "
        "sum(overdue_unshipped) AS overdue, sum(orders_pending) AS pending, sum(late_orders) AS late "
        "FROM gold.mart_fulfillment"
    ).to_pylist()[0]
    assert (row["on_time"], row["shipped_late"], row["overdue"], row["pending"]) == (
        kept.on_time,
        kept.shipped_late,
        kept.overdue_unshipped,
        kept.pending,
    )
    assert row["late"] == kept.late
    assert Decimal(row["on_time"]) / Decimal(row["on_time"] + row["late"]) == kept.on_time_rate
    assert kept.on_time_rate is not None
    shown = dict(summary(lake))["On-time rate"]
    assert Decimal(str(shown)) == kept.on_time_rate.quantize(Decimal("0.0001"), ROUND_HALF_UP)
