"""Refunds made in the month after their order's: the month-partitioned marts count a refund, and the cost of the
units it restocked, in the month the money went back, and an hourly build that lands the later month's refunds
after the earlier month was built leaves the marts as a full build does. The session's lake holds three weeks of
one month, so a business simulated across a month's end (at full scale, for refunds on every channel) is built
here. Expected figures come from the truth (retreasure_sim/ledger.py), never from the SQL."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime

import pytest

from retreasure.engine.build import build, build_incremental
from retreasure.lake import Lake, TableRef
from retreasure_sim.config import Faults, SimConfig
from retreasure_sim.ledger import books
from retreasure_sim.model import Truth
from tests.conftest import SMALL, ingest_faulty_business
from tests.helpers import rows_without

ACROSS = SimConfig(SMALL.seed, date(2025, 3, 18), 21, 1.0, Faults.on())
CUTOFF = datetime(2025, 4, 1, tzinfo=UTC)  # bronze up to April lands before the first build
# When a bronze record changed; a file record has only its day, taken as the day's last second.
CHANGED = "coalesce(record_updated_at, CAST(partition_date + INTERVAL 1 DAY AS TIMESTAMPTZ) - INTERVAL 1 SECOND)"
MONTHLY = tuple(TableRef("gold", n) for n in ("mart_finance", "mart_tax_liability", "mart_sales_monthly"))


@pytest.fixture(scope="module")
def across(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Lake, Lake]:
    """The business across March's end, ingested; built in full (one lake), and built up to April then again
    after April's records landed (another)."""
    root = tmp_path_factory.mktemp("month-end")
    truth, _ = ingest_faulty_business(root, ACROSS)
    source = Lake(root / "lake")
    later = Lake(shutil.copytree(source.uri, root / "later"))
    full = Lake(shutil.copytree(source.uri, root / "full"))
    assert not [r.ref for r in build(full) if r.blocked]
    april = {}
    for ref in source.tables("bronze"):
        rows = source.query(f"SELECT * FROM {ref} WHERE {CHANGED} < $c", [ref], {"c": CUTOFF})
        april[ref] = source.query(f"SELECT * FROM {ref} WHERE {CHANGED} >= $c", [ref], {"c": CUTOFF})
        later.overwrite(ref, rows, partition_by=["partition_date"])
    assert build_incremental(later).mode == "full"
    for ref, rows in april.items():
        if rows.num_rows:  # what an ingest run does: append the rows bronze does not hold yet
            later.insert_new(ref, rows, ["record_hash"], partition_by="partition_date")
    assert build_incremental(later).mode == "incremental"
    return truth, full, later


def test_the_truth_has_refunds_in_the_month_after_their_order(across: tuple[Truth, Lake, Lake]) -> None:
    truth = across[0]
    placed = {o.order_id: (o.created_at.date().replace(day=1), o.channel) for o in truth["orders"]}
    refunded = [(r.created_at.date().replace(day=1), *placed[r.order_id]) for r in truth["refunds"]]
    later = {channel for month, placed_in, channel in refunded if month > placed_in}
    assert later >= {"shopify", "ebay", "etsy"}, later  # what the tests below are about


def test_a_later_months_refund_takes_its_cost_back_in_that_month(across: tuple[Truth, Lake, Lake]) -> None:
    truth, full, _ = across
    ledger = books(truth)
    mart = {(r["month"], r["channel"]): r for r in full.query("SELECT * FROM gold.mart_finance").to_pylist()}
    assert {k: r["cost_of_goods"] for k, r in mart.items()} == dict(ledger.cost_of_goods_by_month_channel)
    assert {k: r["net_revenue"] for k, r in mart.items()} == dict(ledger.net_revenue_by_month_channel)
    assert {k: r["gross_margin"] for k, r in mart.items()} == {
        k: ledger.net_revenue_by_month_channel[k] - cost for k, cost in ledger.cost_of_goods_by_month_channel.items()
    }
    assert {month for month, _ in mart} == {date(2025, 3, 1), date(2025, 4, 1)}


def test_an_hourly_build_across_the_months_end_equals_a_full_build(across: tuple[Truth, Lake, Lake]) -> None:
    _, full, later = across
    for ref in (*MONTHLY, TableRef("gold", "fct_refunds"), TableRef("gold", "fct_order_lines")):
        expected, got = rows_without(full, ref, ("run_id",)), rows_without(later, ref, ("run_id",))
        assert got == expected, f"{ref}: {len(got)} rows incrementally, {len(expected)} in full"
