"""The recommendation endpoints and the affinity audiences over HTTP: roles, problem+json on bad input, and
answers that are the published tables' (never a sold item)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from retreasure.lake import Lake
from retreasure.serving import auth
from retreasure.settings import Settings
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.integration.test_api import assert_problem, serving
from tests.ml_fixtures import RecoLake

RECOMMENDATIONS = "/v1/marketing/recommendations/{customer}"
SIMILAR = "/v1/products/{sku}/similar"
ALLOWED = {RECOMMENDATIONS: {"marketing", "admin"}, SIMILAR: {"marketing", "operations", "leadership", "admin"}}


@dataclass
class Api:
    url: str
    lake: Lake
    keys: dict[str, str]

    def get(self, path: str, role: str | None = None) -> httpx.Response:
        headers = {"X-API-Key": self.keys[role]} if role else {}
        return httpx.get(self.url + path, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def api(reco_lake: RecoLake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    lake = Lake(shutil.copytree(reco_lake.lake.uri, tmp_path_factory.mktemp("reco_api") / "lake"))
    settings = Settings(_env_file=None, lake_uri=lake.uri, pii_hmac_key=HMAC_KEY, pii_vault_key=VAULT_KEY)  # type: ignore[call-arg]
    keys = {role: auth.create_key(lake, role, f"test {role}") for role in auth.ROLES}
    with serving(settings) as url:
        yield Api(url, lake, keys)


def _one(lake: Lake, sql: str) -> dict[str, Any]:
    return lake.query(sql).to_pylist()[0]


def test_roles_reach_recommendations_and_similar_items_only_as_declared(api: Api) -> None:
    customer = _one(api.lake, "SELECT min(customer_token) AS t FROM gold.ml_recommendations")["t"]
    sku = _one(api.lake, "SELECT min(sku) AS s FROM gold.ml_similar_items")["s"]
    for route, allowed in ALLOWED.items():
        path = route.replace("{customer}", customer).replace("{sku}", sku)
        assert_problem(api.get(path), 401, route)
        for role in auth.ROLES:
            response = api.get(path, role)
            if role in allowed:
                assert response.status_code == 200, (route, role, response.text)
            else:
                assert_problem(response, 403, route)


def test_a_customer_gets_their_published_items_best_first(api: Api) -> None:
    rows = api.lake.query(
        "SELECT customer_token, rank, sku, method FROM gold.ml_recommendations "
        "WHERE customer_token = (SELECT min(customer_token) FROM gold.ml_recommendations WHERE method = 'personal') "
        "ORDER BY rank"
    ).to_pylist()
    body = api.get(RECOMMENDATIONS.replace("{customer}", rows[0]["customer_token"]), "marketing").json()
    assert body["method"] == "personal" and body["run_id"].startswith("reco-")
    assert [(i["rank"], i["sku"]) for i in body["items"]] == [(r["rank"], r["sku"]) for r in rows]
    assert len(rows) == 10


def test_bad_or_unknown_input_is_a_problem_document(api: Api) -> None:
    for bad in ("someone@example.com", "pii:email:xyz", "pii:phone:" + "0" * 32, "C000001"):
        body = assert_problem(api.get(RECOMMENDATIONS.replace("{customer}", bad), "marketing"), 422, RECOMMENDATIONS)
        assert body["errors"][0]["loc"] == ["path", "customer"] and bad not in body["detail"]
    unknown = "pii:email:" + "0" * 32
    body = assert_problem(api.get(RECOMMENDATIONS.replace("{customer}", unknown), "marketing"), 404, RECOMMENDATIONS)
    assert body["type"].endswith(":unknown-customer")
    for bad in ("a b", "-leading-dash", "x" * 65):
        assert_problem(api.get(SIMILAR.replace("{sku}", bad), "operations"), 422, SIMILAR)
    body = assert_problem(api.get(SIMILAR.replace("{sku}", "RT-999999"), "operations"), 404, SIMILAR)
    assert body["type"].endswith(":unknown-product")


def test_similar_items_are_for_sale_and_never_the_listing_itself(api: Api) -> None:
    sku = _one(api.lake, "SELECT min(sku) AS s FROM gold.ml_similar_items")["s"]
    body = api.get(SIMILAR.replace("{sku}", sku), "operations").json()
    assert body["sku"] == sku and 0 < len(body["items"]) <= 10
    assert sku not in {i["sku"] for i in body["items"]}
    assert [i["rank"] for i in body["items"]] == list(range(1, len(body["items"]) + 1))
    assert all(i["category"] for i in body["items"])


def test_affinity_audiences_are_listed_and_served_like_the_others(api: Api) -> None:
    listed = api.get("/v1/marketing/audiences?limit=100", "marketing").json()["items"]
    by_name = {a["name"]: a for a in listed}
    assert {"subscribers", "high_value"} <= set(by_name)
    affinity = sorted(name for name in by_name if name.startswith("likely_buyers:"))
    assert "likely_buyers:lighting" in affinity and len(affinity) >= 5
    assert by_name["likely_buyers:lighting"]["size"] > 0
    members = api.get("/v1/marketing/audiences/likely_buyers:lighting/members?limit=1000", "marketing").json()
    assert len(members["items"]) == by_name["likely_buyers:lighting"]["size"]
    assert all(set(m) == {"email_sha256"} for m in members["items"])
    # A category and an era: a subset of the category's audience.
    both = api.get("/v1/marketing/audiences/likely_buyers:lighting:mid-century/members?limit=1000", "marketing")
    assert both.status_code == 200, both.text
    assert {m["email_sha256"] for m in both.json()["items"]} <= {m["email_sha256"] for m in members["items"]}
    for unknown in ("likely_buyers:spaceships", "likely_buyers:lighting:stone-age", "likely_buyers:"):
        route = "/v1/marketing/audiences/{name}/members"
        body = assert_problem(api.get(route.replace("{name}", unknown), "marketing"), 404, route)
        assert "likely_buyers:lighting" in body["detail"]
    assert_problem(api.get("/v1/marketing/audiences", "operations"), 403, "/v1/marketing/audiences")
