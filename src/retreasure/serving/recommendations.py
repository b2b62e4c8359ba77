"""What the recommendation model published to gold, asked per customer and per listing: the items to show a
customer, and the items like a listing. Only what a promoted run wrote is here (a run that did not beat the
popularity baseline leaves the previous one in place)."""

from __future__ import annotations

import re
from typing import Any

from retreasure.lake.store import Lake, TableRef
from retreasure.serving import read

RECOMMENDATIONS = TableRef("gold", "ml_recommendations")
SIMILAR = TableRef("gold", "ml_similar_items")
DIM_PRODUCT = TableRef("gold", "dim_product")
# A customer is named by the token of their e-mail, as in every gold table; nothing else is accepted.
CUSTOMER_TOKEN = re.compile(r"pii:email:[0-9a-f]{32}")
# A SKU as the catalogue writes them: letters, digits and dashes.
TOP_N = 10  # the model publishes ten per customer and per listing
SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Unknown(LookupError):
    """Nothing published for that customer or listing."""


def for_customer(lake: Lake, customer_token: str, top: int = TOP_N) -> dict[str, Any]:
    """The customer's ranked items for sale, with the run and how they were chosen (personal or cold start)."""
    rows = read.rows(
        lake,
        "SELECT run_id, method, rank, sku, score FROM gold.ml_recommendations WHERE customer_token = $token "
        "AND rank <= $top ORDER BY rank",
        [RECOMMENDATIONS],
        {"token": customer_token, "top": top},
    )
    if not rows:
        raise Unknown(customer_token)
    return {
        "run_id": rows[0]["run_id"],
        "method": rows[0]["method"],
        "items": [{"rank": r["rank"], "sku": r["sku"], "score": r["score"]} for r in rows],
    }


def similar_to(lake: Lake, sku: str, top: int = TOP_N) -> dict[str, Any]:
    """The items for sale most like a listing, ranked, with their titles."""
    rows = read.rows(
        lake,
        "SELECT s.run_id, s.rank, s.similar_sku AS sku, p.title, p.category, p.era, s.score "
        "FROM gold.ml_similar_items s LEFT JOIN gold.dim_product p ON p.sku = s.similar_sku "
        "WHERE s.sku = $sku AND s.rank <= $top ORDER BY s.rank",
        [SIMILAR, DIM_PRODUCT],
        {"sku": sku, "top": top},
    )
    if not rows:
        raise Unknown(sku)
    return {"run_id": rows[0]["run_id"], "items": [{k: v for k, v in r.items() if k != "run_id"} for r in rows]}
