"""Finance reports for one accounting month: revenue, margin and tax, read from gold.

The accountants' view of gold: one query per report, rows in a fixed order, amounts as EUR decimals, no
totals row (rows are imported as they are; the export manifest carries the totals). The API, the dashboards and
the period exports all call :func:`finance_report`, so a number is the same wherever it is shown.
"""

from __future__ import annotations

import re
from datetime import date

import pyarrow as pa

from retreasure.lake import Lake, TableRef
from retreasure.serving import read

REPORTS = ("revenue", "margin", "tax")
PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

FINANCE = TableRef("gold", "mart_finance")
TAX = TableRef("gold", "mart_tax_liability")
MARGIN_COLUMNS = ("cost_of_goods", "gross_margin", "gross_margin_pct")

# The gold table each report reads (the export manifest records their Delta versions).
SOURCES: dict[str, TableRef] = {"revenue": FINANCE, "margin": FINANCE, "tax": TAX}

_REVENUE_SQL = """
SELECT channel, orders, gross_sales, discounts, revenue, refunds, net_revenue, fx_effect
FROM gold.mart_finance
WHERE month = $month
ORDER BY channel
"""

_MARGIN_SQL = """
SELECT channel, net_revenue, cost_of_goods, gross_margin, gross_margin_pct
FROM gold.mart_finance
WHERE month = $month
ORDER BY channel
"""

# NULLS FIRST is spelled out: engines disagree on where a missing region sorts, and the order must not move.
_TAX_SQL = """
SELECT tax_party, tax_country, tax_region, tax_collected, tax_refunded, tax_liability
FROM gold.mart_tax_liability
WHERE month = $month
ORDER BY tax_party, tax_country NULLS FIRST, tax_region NULLS FIRST
"""

_SQL = {"revenue": _REVENUE_SQL, "margin": _MARGIN_SQL, "tax": _TAX_SQL}


def parse_period(period: str) -> date:
    """The first day of an accounting month given as ``YYYY-MM``; ValueError for anything else.

    Checked before the period becomes a path segment or a query value, so ``../x`` or ``2025-1`` go nowhere.
    """
    if not isinstance(period, str) or not PERIOD_PATTERN.fullmatch(period):
        raise ValueError(f"invalid period {period!r}: expected YYYY-MM with a month 01-12")
    return date(int(period[:4]), int(period[5:]), 1)


def check_report(report: str) -> str:
    if report not in REPORTS:
        raise ValueError(f"unknown report {report!r}: expected one of {', '.join(REPORTS)}")
    return report


def has_margin(lake: Lake) -> bool:
    """Whether gold.mart_finance carries the cost-of-goods columns the margin report needs."""
    if not lake.exists(FINANCE):
        return False
    names = set(lake.delta(FINANCE).schema().to_arrow().names)
    return all(column in names for column in MARGIN_COLUMNS)


def finance_report(lake: Lake, report: str, period: str) -> pa.Table:
    """One report's rows for the month ``period`` (YYYY-MM): per channel, or per tax party and jurisdiction.

    Raises ValueError for a bad period or report name, and for the margin report while gold has no cost of
    goods yet. A month without activity gives an empty table with the report's columns.
    """
    month = parse_period(period)
    check_report(report)
    source = SOURCES[report]
    if report == "margin" and not has_margin(lake):
        raise ValueError("the margin report needs cost_of_goods in gold.mart_finance: build the gold models")
    if not lake.exists(source):
        raise ValueError(f"{source} does not exist yet: build the gold models first")
    return read.table(lake, _SQL[report], [source], {"month": month})
