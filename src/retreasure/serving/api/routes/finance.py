"""Finance: the month's revenue, margin and tax reports, the same rows the period exports write."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from retreasure.serving import reports
from retreasure.serving.api import deps
from retreasure.serving.api.problems import Problem, invalid_parameter
from retreasure.serving.api.security import require

router = APIRouter(prefix="/v1/finance", tags=["finance"], dependencies=[Depends(require("finance"))])


@router.get("/reports/{report}", summary="Revenue, margin or tax liability for one accounting month (EUR)")
def report(
    report: str,
    period: Annotated[str, Query(description="The accounting month, YYYY-MM.", examples=["2025-03"])],
    page: deps.PageDep,
    lake: deps.LakeDep,
) -> dict[str, Any]:
    """revenue and margin: one row per channel; tax: per tax party (seller owes, marketplace remitted) and
    jurisdiction."""
    if report not in reports.REPORTS:
        raise Problem(404, f"no report by that name; known: {', '.join(reports.REPORTS)}", "unknown-report")
    try:
        month = reports.parse_period(period)
    except ValueError:
        raise invalid_parameter("period", "not an accounting month: expected YYYY-MM, month 01-12") from None
    deps.supported_day("period", month)
    try:
        table = reports.finance_report(lake, report, period)
    except ValueError as exc:  # the report exists but its gold table or columns are not built in this lake
        raise Problem(404, str(exc), "report-not-available") from None
    return page.page(table.to_pylist(), report=report, period=period)
