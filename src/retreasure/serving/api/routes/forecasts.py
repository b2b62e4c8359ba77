"""Demand forecasts for leadership and operations: a category's weekly units and net sales for the next
quarter, with prediction intervals, beside the weeks it sold."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from retreasure.serving import forecasts, read
from retreasure.serving.api import deps
from retreasure.serving.api.problems import Problem, invalid_parameter
from retreasure.serving.api.security import require

router = APIRouter(prefix="/v1/forecasts", tags=["forecasts"], dependencies=[Depends(require("forecasts"))])


@router.get("/demand", summary="Weekly units and net sales forecast of a category on a channel or in a store")
def demand(
    lake: deps.LakeDep,
    category: Annotated[str, Query(min_length=1, max_length=64, description="A product category (Lighting).")],
    channel: deps.SalesChannel,
    store: Annotated[
        str | None, Query(max_length=16, description="A store id (BER, LON, NYC), for channel pos: that store only.")
    ] = None,
) -> dict[str, Any]:
    """The promoted forecast (``gold.ml_demand_forecast``): per week the expected units and net sales (EUR) with
    their 80% and 95% intervals, the run that made it, and the last 26 whole weeks of sales."""
    name = deps.channel_name(channel)
    try:
        known = forecasts.choices(lake)
    except read.NotBuilt as missing:
        raise Problem(503, f"{missing} Run the demand forecast (`retreasure ml forecast`).", "not-built") from None
    if store is not None and name != "pos":
        raise invalid_parameter("store", "only channel pos has stores")
    if not any(c["category"] == category for c in known):
        categories = sorted({c["category"] for c in known})
        raise invalid_parameter("category", f"not a forecast category; one of {', '.join(categories)}")
    if not any(c["category"] == category and c["channel"] == name and c["store_id"] == store for c in known):
        raise Problem(404, f"no forecast for this category on channel {name}" + (" in that store" if store else ""))
    return forecasts.demand(lake, category, str(name), store)
