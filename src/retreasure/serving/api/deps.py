"""What a route needs besides its caller: the lake, the settings, and the default date range."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Query, Request

from retreasure.connectors.base import sales_channels
from retreasure.lake.store import Lake
from retreasure.serving import queries
from retreasure.serving.api.paging import PageRequest, page_request
from retreasure.serving.api.problems import invalid_parameter
from retreasure.settings import Settings

DEFAULT_DAYS = 30
# The days a request may name. The lake's own days are inside; far outside, date arithmetic overflows (a range
# ending on 0001-01-01 has no 30 days before it), so such days are refused instead of answered.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2100, 12, 31)
SUPPORTED_DAYS = f"{FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"


def lake(request: Request) -> Lake:
    return request.app.state.lake


def settings(request: Request) -> Settings:
    return request.app.state.settings


def supported_day(name: str, day: date) -> date:
    """``day`` when the API answers for it; a 422 naming the parameter ``name`` and the range otherwise."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise invalid_parameter(name, f"outside the supported days, {SUPPORTED_DAYS}", error_type="out_of_range")
    return day


def date_range(lake: Lake, start: date | None, end: date | None) -> tuple[date, date]:
    """``from``/``to`` as given; by default the last 30 days of data (ending on the day of the data's clock)."""
    if start is not None:
        supported_day("from", start)
    end = supported_day("to", end) if end is not None else queries.data_as_of(lake).date()
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise invalid_parameter("from", "after to: the range is empty", error_type="range_empty")
    return start, end


# The channel filters offer the registered connectors' sales channels: a new marketplace adds none by hand.
SalesChannel = StrEnum("SalesChannel", {name: name for name in sales_channels()})  # type: ignore[misc]
OnlineChannel = StrEnum("OnlineChannel", {name: name for name in sales_channels("online")})  # type: ignore[misc]


def channel_name(channel: StrEnum | None) -> str | None:
    """The plain name the read layer filters on."""
    return channel.value if channel is not None else None


# Parameter types shared by the routes (FastAPI reads the Depends/Query inside the annotation).
LakeDep = Annotated[Lake, Depends(lake)]
SettingsDep = Annotated[Settings, Depends(settings)]
PageDep = Annotated[PageRequest, Depends(page_request)]
From = Annotated[
    date | None,
    Query(alias="from", description=f"First day, inclusive, {SUPPORTED_DAYS} (default: 29 days before to)."),
]
To = Annotated[
    date | None,
    Query(alias="to", description=f"Last day, inclusive, {SUPPORTED_DAYS} (default: the day of the data's clock)."),
]
AsOf = Annotated[
    str | None,
    Query(
        description="Judge at this moment: YYYY-MM-DD (the end of that day, UTC) or an ISO 8601 time, on a day "
        f"from {SUPPORTED_DAYS} (default: the data's clock, the newest order placed or parcel shipped).",
        examples=["2025-03-21", "2025-03-21T12:00:00Z"],
    ),
]


def as_of(lake: Lake, value: str | None) -> datetime:
    """The moment an ``as_of`` parameter names; a bare day means its end, so that day's events count."""
    try:
        parsed: date | datetime | None = None
        if value:
            parsed = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise invalid_parameter("as_of", "not a day (YYYY-MM-DD) or an ISO 8601 time") from None
    if parsed is not None:
        supported_day("as_of", parsed if not isinstance(parsed, datetime) else parsed.date())
    return queries.as_of_moment(lake, parsed)
