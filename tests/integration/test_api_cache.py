"""The API's kept answers on a real server over a real lake: never sent after a commit to a table they were made
from, revalidated with ETags, kept apart per role, and never a way around the keys and roles."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow as pa
import pytest

from retreasure.lake import Lake, TableRef
from retreasure.serving import auth
from retreasure.settings import Settings
from retreasure_sim.model import Truth
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.integration.test_api import serving

SALES = TableRef("gold", "mart_sales_daily")
ORDERS = TableRef("gold", "fct_orders")
KPIS = "/v1/kpis"
QUEUE = "/v1/fulfillment/orders"


@dataclass
class Served:
    url: str
    lake: Lake
    keys: dict[str, str]

    def get(self, path: str, role: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
        sent = {"Authorization": f"Bearer {self.keys[role]}", **(headers or {})}
        return httpx.get(self.url + path, headers=sent, params=params, timeout=60)

    def json(self, path: str, role: str, **params: Any) -> dict[str, Any]:
        response = self.get(path, role, **params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def served(gold_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The API over a private copy of the gold lake: the tests commit rows into it."""
    _, gold = gold_lake
    lake = Lake(shutil.copytree(gold.uri, tmp_path_factory.mktemp("api-cache") / "lake"))
    settings = Settings(_env_file=None, lake_uri=lake.uri, pii_hmac_key=HMAC_KEY, pii_vault_key=VAULT_KEY)  # type: ignore[call-arg]
    keys = {role: auth.create_key(lake, role, f"cache {role}") for role in ("operations", "admin", "leadership")}
    keys["marketing"] = auth.create_key(lake, "marketing", "cache marketing")
    with serving(settings) as url:
        yield Served(url, lake, keys)


def _commit_sales(served: Served) -> dict[str, Any]:
    """Commit one more row of gold.mart_sales_daily (a copy of a row with orders, on the last day the KPIs cover by
    default); that row."""
    end = served.json(KPIS, "leadership")["to"]
    sql = f"SELECT * FROM {SALES} WHERE day <= $end AND orders > 0 ORDER BY day DESC, orders DESC LIMIT 1"
    row = served.lake.query(sql, [SALES], {"end": end})
    served.lake.append(SALES, row)
    return row.to_pylist()[0]


def test_an_answer_kept_before_a_commit_is_never_sent_after_it(served: Served) -> None:
    before = served.get(KPIS, "leadership", grain="month")
    again = served.get(KPIS, "leadership", grain="month")
    assert before.status_code == again.status_code == 200
    assert again.headers["etag"] == before.headers["etag"] and again.content == before.content
    orders = before.json()["totals"]["orders"]
    # Commit after commit, each asked about at once: every answer is the new one, none the kept one.
    for _ in range(5):
        row = _commit_sales(served)
        after = served.get(KPIS, "leadership", grain="month")
        assert after.status_code == 200, after.text
        assert after.json()["totals"]["orders"] == orders + row["orders"]
        assert after.headers["etag"] != before.headers["etag"]
        orders, before = orders + row["orders"], after


def test_requests_waiting_on_one_computation_all_get_the_new_answer(served: Served) -> None:
    served.json(KPIS, "leadership", grain="week")  # kept
    orders = served.json(KPIS, "leadership", grain="week")["totals"]["orders"]
    row = _commit_sales(served)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: served.json(KPIS, "leadership", grain="week"), range(16)))
    assert {a["totals"]["orders"] for a in answers} == {orders + row["orders"]}


def test_etag_and_304(served: Served) -> None:
    first = served.get(KPIS, "leadership", grain="day")
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"] == "private, no-cache"
    unchanged = served.get(KPIS, "leadership", {"If-None-Match": etag}, grain="day")
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    assert served.get(KPIS, "leadership", {"If-None-Match": f'W/"x", {etag}'}, grain="day").status_code == 304
    other = served.get(KPIS, "leadership", {"If-None-Match": '"not-it"'}, grain="day")
    assert other.status_code == 200 and other.content == first.content
    # Another question's answer has its own tag.
    assert served.get(KPIS, "leadership", {"If-None-Match": etag}, grain="month").status_code == 200
    _commit_sales(served)
    changed = served.get(KPIS, "leadership", {"If-None-Match": etag}, grain="day")
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["totals"]["orders"] > first.json()["totals"]["orders"]


def test_a_role_never_gets_another_roles_kept_answer(served: Served) -> None:
    clear = served.json(QUEUE, "operations", limit=50)
    tokens = served.json(QUEUE, "admin", limit=50)
    assert clear["ship_to"] == "clear" and tokens["ship_to"] == "tokens"
    assert all(r["ship_to_name"].startswith("pii:name:") for r in tokens["items"])
    assert not any(r["ship_to_name"].startswith("pii:") for r in clear["items"])
    # Kept for both now; asked again in the other order, each still gets its own.
    assert served.json(QUEUE, "admin", limit=50) == tokens
    assert served.json(QUEUE, "operations", limit=50) == clear
    # An operations answer is kept: an ETag from it tells an admin nothing.
    etag = served.get(QUEUE, "operations", limit=50).headers["etag"]
    assert served.get(QUEUE, "admin", {"If-None-Match": etag}, limit=50).status_code == 200


def test_keys_and_roles_are_checked_before_a_kept_answer(served: Served) -> None:
    assert served.get(QUEUE, "operations", limit=20).status_code == 200  # kept
    assert served.get(QUEUE, "marketing", limit=20).status_code == 403
    assert httpx.get(served.url + QUEUE, params={"limit": 20}).status_code == 401
    wrong = {"Authorization": f"Bearer {served.keys['operations']}x"}
    assert httpx.get(served.url + QUEUE, params={"limit": 20}, headers=wrong).status_code == 401
    # A key revoked after its answer was kept is refused on its next request.
    key = auth.create_key(served.lake, "operations", "revoked soon")
    headers = {"X-API-Key": key}
    assert httpx.get(served.url + QUEUE, params={"limit": 20}, headers=headers).status_code == 200
    assert auth.revoke_key(served.lake, auth.key_id_of(key) or "")
    assert httpx.get(served.url + QUEUE, params={"limit": 20}, headers=headers).status_code == 401


def test_a_commit_to_a_table_of_the_queue_renews_it(served: Served) -> None:
    """The queue reads gold.fct_orders: a new unshipped order committed there is in the next answer."""
    before = served.json(QUEUE, "admin", limit=1000, as_of="2100-01-01")
    sql = f"SELECT * FROM {ORDERS} WHERE channel <> 'pos' ORDER BY order_ts DESC, order_key DESC LIMIT 1"
    newest = served.lake.query(sql, [ORDERS]).to_pylist()[0]
    new = {**newest, "order_key": newest["order_key"] + ":new", "channel_order_id": "cache-test"}
    schema = served.lake.dataset(ORDERS).schema
    served.lake.append(ORDERS, pa.Table.from_pylist([new], schema=schema))
    after = served.json(QUEUE, "admin", limit=1000, as_of="2100-01-01")
    assert [r["order_key"] for r in after["items"]] == [r["order_key"] for r in before["items"]] + [new["order_key"]]
