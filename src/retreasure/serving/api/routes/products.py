"""Products: the items like a listing, for the shop's product pages and for merchandising."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from retreasure.serving import read, recommendations
from retreasure.serving.api import deps
from retreasure.serving.api.problems import Problem, invalid_parameter
from retreasure.serving.api.security import require

router = APIRouter(prefix="/v1/products", tags=["products"], dependencies=[Depends(require("products"))])


@router.get("/{sku}/similar", summary="The items for sale most like a listing (SKUs, best first)")
def similar(
    sku: str,
    lake: deps.LakeDep,
    top: Annotated[int, Query(ge=1, le=recommendations.TOP_N, description="How many items, best first.")] = 10,
) -> dict[str, Any]:
    """Similar by attributes (category, era, material, condition, price band) and by the people who looked at or
    bought both; never an item that has sold out."""
    if not recommendations.SKU.fullmatch(sku):
        raise invalid_parameter("sku", "not a SKU (letters, digits, dots, dashes and underscores)", "path")
    try:
        found = recommendations.similar_to(lake, sku, top)
    except read.NotBuilt as missing:
        raise Problem(503, str(missing), "not-built") from None
    except recommendations.Unknown:
        raise Problem(404, "no similar items for that SKU (not an online listing)", "unknown-product") from None
    return {"sku": sku, **found}
