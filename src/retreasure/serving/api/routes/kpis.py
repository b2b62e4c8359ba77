"""Leadership: the headline KPIs per day, week or month, with the range's totals."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from retreasure.serving import kpis as definitions
from retreasure.serving.api import deps
from retreasure.serving.api.security import require

router = APIRouter(prefix="/v1", tags=["kpis"], dependencies=[Depends(require("kpis"))])


@router.get("/kpis", summary="Orders, sales, refunds, net revenue, AOV, sessions, conversion and new customers")
def kpis(
    page: deps.PageDep,
    lake: deps.LakeDep,
    start: deps.From = None,
    end: deps.To = None,
    grain: Literal["day", "week", "month"] = "day",
    channel: deps.SalesChannel | None = None,
    store: Annotated[str | None, Query(description="A store id (BER, LON, NYC): its till sales only.")] = None,
) -> dict[str, Any]:
    """EUR amounts; a week starts on Monday; a period cut by the range holds only its days inside it."""
    start, end = deps.date_range(lake, start, end)
    name = deps.channel_name(channel)
    channels = [name] if name else []
    totals = definitions.kpi_totals(lake, start, end, channels, store)
    rows = definitions.kpis(lake, start, end, grain, channels, store)
    return page.page(rows, **{"from": start, "to": end, "grain": grain}, totals=totals)
