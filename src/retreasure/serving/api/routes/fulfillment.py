"""Operations: the queue of orders to ship, and how well shipping went."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from retreasure.lake.store import Lake
from retreasure.serving import pii, queries
from retreasure.serving.api import deps
from retreasure.serving.api.security import CLEAR_PII_ROLES, require
from retreasure.settings import Settings

router = APIRouter(prefix="/v1/fulfillment", tags=["fulfillment"], dependencies=[Depends(require("fulfillment"))])


def _reveal_ship_to(lake: Lake, settings: Settings, items: list[dict[str, Any]]) -> None:
    """Put the clear name and street lines in place of their tokens, for the rows of one page only."""
    tokens = [row[column] for row in items for column in queries.SHIP_TO_TOKENS]
    clear = pii.reveal(lake, settings, [t for t in tokens if t])
    for row in items:
        for column in queries.SHIP_TO_TOKENS:
            if row[column]:
                row[column] = clear.get(row[column])


@router.get("/orders", summary="Online orders waiting to be shipped, every channel in one shape")
def orders(
    request: Request,
    page: deps.PageDep,
    lake: deps.LakeDep,
    settings: deps.SettingsDep,
    status: Annotated[
        Literal["open", "overdue"], Query(description="open: not shipped; overdue: also past its ship-by time.")
    ] = "open",
    channel: deps.OnlineChannel | None = None,
    as_of: deps.AsOf = None,
) -> dict[str, Any]:
    """Oldest first. Ship-to name and street lines are clear for operations keys and PII tokens for any other."""
    moment = deps.as_of(lake, as_of)
    body = page.page(queries.fulfillment_queue(lake, status, deps.channel_name(channel), moment), as_of=moment)
    clear = request.state.principal.role in CLEAR_PII_ROLES
    if clear:
        _reveal_ship_to(lake, settings, body["items"])
    body["ship_to"] = "clear" if clear else "tokens"
    return body


@router.get("/metrics", summary="Fulfillment rate, time to ship, on-time rate and delivery time by channel")
def metrics(
    page: deps.PageDep,
    lake: deps.LakeDep,
    start: deps.From = None,
    end: deps.To = None,
) -> dict[str, Any]:
    """For the online orders placed between from and to (inclusive); store sales are handed over, not shipped."""
    start, end = deps.date_range(lake, start, end)
    return page.page(queries.fulfillment_metrics(lake, start, end), **{"from": start, "to": end})
