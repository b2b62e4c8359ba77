"""Real time: the web shop's day so far, and how fresh the data behind it is."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from retreasure.serving import queries, read
from retreasure.serving.api import deps
from retreasure.serving.api.cache import wall_clock
from retreasure.serving.api.problems import Problem
from retreasure.serving.api.security import require

router = APIRouter(prefix="/v1/realtime", tags=["realtime"], dependencies=[Depends(require("realtime"))])
MAX_TOP = 50
# How long an answer is kept: its freshness is measured when it is made (its generated_at), not when it is sent.
KEPT_SECONDS = 1.0


@router.get("/overview", summary="Today so far: web orders, revenue, sessions, conversion, top products, freshness")
@wall_clock(KEPT_SECONDS)
def overview(
    lake: deps.LakeDep,
    day: Annotated[
        date | None,
        Query(
            description=f"The UTC day, {deps.SUPPORTED_DAYS} (default: the day of the newest event in the lake).",
            examples=["2025-03-21"],
        ),
    ] = None,
    top: Annotated[int, Query(ge=1, le=MAX_TOP, description="How many products to rank by views.")] = 10,
) -> dict[str, Any]:
    """Revenue is the day's web orders' net sales (before tax and shipping) in EUR; products are ranked by views.
    ``freshness_seconds`` is the time from the newest web event or payment in the lake to this answer."""
    if day is not None:
        deps.supported_day("day", day)
    try:
        return queries.realtime_overview(lake, day, top)
    except read.NotBuilt as missing:
        raise Problem(503, str(missing), "not-built") from None
