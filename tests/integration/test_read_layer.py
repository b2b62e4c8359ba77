"""Serving's one read layer on real Delta tables: a commit is seen by the next read, a missing table is named,
and every KPI means the same in the summary and in the API's totals."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from retreasure.lake import Lake, TableRef
from retreasure.serving import kpis, read
from retreasure_sim.model import Truth

DAYS = TableRef("gold", "days")


def test_a_commit_is_read_at_once_and_a_deleted_table_is_not_built(lake: Lake) -> None:
    lake.append(DAYS, pa.table({"day": [date(2025, 3, 1)], "orders": [3]}))
    sql = "SELECT count(*) AS n, sum(orders) AS orders FROM gold.days"
    assert read.rows(lake, sql, [DAYS]) == [{"n": 1, "orders": 3}]
    lake.append(DAYS, pa.table({"day": [date(2025, 3, 2)], "orders": [4]}))
    assert read.rows(lake, sql, [DAYS]) == [{"n": 2, "orders": 7}]
    # Another lake object on the same tables shares nothing it could hold stale.
    assert read.rows(Lake(lake.uri), sql, [DAYS]) == [{"n": 2, "orders": 7}]
    shutil.rmtree(Path(lake.table_uri(DAYS)))
    with pytest.raises(read.NotBuilt, match=r"gold\.days is not built yet"):
        read.rows(lake, sql, [DAYS])


def test_the_summary_of_an_empty_lake_says_not_built_instead_of_failing(lake: Lake) -> None:
    got = kpis.summary(lake)
    assert [label for label, _ in got] == [kpis.kpi(n).label for n in kpis.SUMMARY] + ["Rows in quarantine"]
    assert all(value is None for _, value in got[:-1]) and got[-1][1] == 0


def test_a_kpi_is_the_same_in_the_summary_and_in_the_api_totals(gold_lake: tuple[Truth, Lake]) -> None:
    _, lake = gold_lake
    summary = dict(kpis.summary(lake))
    assert all(value is not None for value in summary.values())
    # The whole of the lake's history: the API's totals over it are the summary's figures.
    totals = kpis.kpi_totals(lake, date(2000, 1, 1), date(2100, 12, 31))
    for name in ("orders", "gross_sales", "net_revenue", "refunds", "aov", "conversion_rate"):
        assert totals[name] == summary[kpis.kpi(name).label], name
    assert totals["orders"] > 0 and totals["net_revenue"] > 0
