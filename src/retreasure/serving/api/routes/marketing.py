"""Marketing: audiences for the ad platforms' customer lists, campaign performance, and each customer's
recommended items."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from retreasure.serving import pii, queries, read, recommendations
from retreasure.serving.api import deps
from retreasure.serving.api.problems import Problem, invalid_parameter
from retreasure.serving.api.security import require

router = APIRouter(prefix="/v1/marketing", tags=["marketing"], dependencies=[Depends(require("marketing"))])


@router.get("/audiences", summary="The segments, with their size in consenting customers")
def audiences(
    page: deps.PageDep,
    lake: deps.LakeDep,
    as_of: deps.AsOf = None,
) -> dict[str, Any]:
    moment = deps.as_of(lake, as_of)
    return page.page(queries.audiences(lake, moment), as_of=moment)


@router.get("/audiences/{name}/members", summary="A segment's members as SHA-256 of their normalised e-mail")
def members(
    name: str,
    page: deps.PageDep,
    lake: deps.LakeDep,
    settings: deps.SettingsDep,
    as_of: deps.AsOf = None,
) -> dict[str, Any]:
    """Only customers who accepted e-mail marketing. The e-mail is hashed here and never leaves the server."""
    moment = deps.as_of(lake, as_of)
    try:
        tokens = queries.audience_members(lake, name, moment)
    except KeyError:
        known = ", ".join(a.name for a in queries.all_audiences(lake))
        raise Problem(404, f"no audience by that name; known: {known}", "unknown-audience") from None
    body = page.page(tokens, audience=name, as_of=moment, hash="sha256(lower(trim(email)))")
    clear = pii.reveal(lake, settings, body["items"])
    # A token missing from the vault (never expected) is left out rather than sent as a hash of nothing.
    body["items"] = [{"email_sha256": pii.hashed_email(clear[t])} for t in body["items"] if t in clear]
    return body


@router.get("/campaigns", summary="Sessions, conversion, revenue, ad spend, ROI, ROAS and engagement by campaign")
def campaigns(
    page: deps.PageDep,
    lake: deps.LakeDep,
    start: deps.From = None,
    end: deps.To = None,
) -> dict[str, Any]:
    start, end = deps.date_range(lake, start, end)
    return page.page(queries.campaigns(lake, start, end), **{"from": start, "to": end})


@router.get(
    "/recommendations/{customer}",
    summary="A customer's recommended items for sale (SKUs, best first), from the weekly recommendation model",
)
def customer_recommendations(
    customer: str,
    lake: deps.LakeDep,
    top: Annotated[int, Query(ge=1, le=recommendations.TOP_N, description="How many items, best first.")] = 10,
) -> dict[str, Any]:
    """``customer`` is the customer's e-mail token (``pii:email:...``, as gold names customers). ``method`` says
    whether the list is personal (from their history) or a cold start (their country and channel's taste)."""
    if not recommendations.CUSTOMER_TOKEN.fullmatch(customer):
        raise invalid_parameter("customer", "not a customer token (pii:email: and 32 hex digits)", "path")
    try:
        found = recommendations.for_customer(lake, customer, top)
    except read.NotBuilt as missing:
        raise Problem(503, str(missing), "not-built") from None
    except recommendations.Unknown:
        raise Problem(
            404, "no recommendations for that customer (unknown, or new since the last run)", "unknown-customer"
        ) from None
    return {"customer": customer, **found}
