"""/v1/realtime/overview on a real uvicorn server over a copy of the gold test lake: the day so far equals the
simulator's truth, freshness is measured from the newest event, roles are enforced and a new commit is seen."""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from retreasure.lake import Lake, TableRef
from retreasure.serving import auth
from retreasure.settings import Settings
from retreasure_sim.model import Truth
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.integration.test_api import assert_problem, serving
from tests.integration.test_gold_web_daily import truth_days

ROUTE = "/v1/realtime/overview"
WEB_DAILY = TableRef("gold", "mart_web_daily")


@dataclass
class Live:
    url: str
    lake: Lake
    truth: Truth
    keys: dict[str, str]

    def get(self, role: str | None, **params: object) -> httpx.Response:
        headers = {"X-API-Key": self.keys[role]} if role else {}
        return httpx.get(self.url + ROUTE, headers=headers, params=params, timeout=60)

    def json(self, role: str, **params: object) -> dict:
        response = self.get(role, **params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def live(gold_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    truth, gold = gold_lake
    lake = Lake(shutil.copytree(gold.uri, tmp_path_factory.mktemp("realtime") / "lake"))
    settings = Settings(_env_file=None, lake_uri=lake.uri, pii_hmac_key=HMAC_KEY, pii_vault_key=VAULT_KEY)  # type: ignore[call-arg]
    keys = {role: auth.create_key(lake, role, f"test {role}") for role in auth.ROLES}
    with serving(settings) as url:
        yield Live(url, lake, truth, keys)


def _newest(truth: Truth) -> datetime:
    return max([e.at for e in truth["web_events"]] + [p.at for p in truth["payments"]])


def _top_by_views(truth: Truth, day: date) -> list[tuple[str, int, int]]:
    """(sku, views, adds to cart) of the day's products, most viewed first, ties by adds then SKU."""
    sku = {p.product_id: p.sku for p in truth["products"]}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in truth["web_events"]:
        if e.at.date() == day and e.name in ("product_viewed", "product_added"):
            counts[sku[e.product_id or ""]][e.name == "product_added"] += 1
    return sorted(((s, v, c) for s, (v, c) in counts.items()), key=lambda r: (-r[1], -r[2], r[0]))


def _assert_day(body: dict, truth: Truth, day: date, top_n: int = 10) -> None:
    expected = truth_days(truth)[day]
    assert body["day"] == day.isoformat()
    assert body["orders"] == expected["orders"]
    assert Decimal(str(body["revenue"])) == expected["revenue"]
    assert body["sessions"] == expected["sessions"]
    assert body["converted_sessions"] == expected["converted_sessions"]
    sessions, converted = expected["sessions"], expected["converted_sessions"]
    rate = round(Decimal(converted) / sessions, 4) if sessions else None  # type: ignore[operator, arg-type]
    assert (Decimal(str(body["conversion_rate"])) if body["conversion_rate"] is not None else None) == rate
    assert body["top_products_by"] == "product_views"
    top = [(p["sku"], p["product_views"], p["carts"]) for p in body["top_products"]]
    assert top == _top_by_views(truth, day)[:top_n] and top


def test_today_is_the_day_of_the_newest_event_and_equals_the_truth(live: Live) -> None:
    newest = _newest(live.truth)
    before = datetime.now(UTC)
    body = live.json("marketing")
    after = datetime.now(UTC)
    _assert_day(body, live.truth, newest.date())
    assert datetime.fromisoformat(body["newest_event_ts"]) == newest
    # Freshness is the age of the newest event when the server answered: between the two readings of the clock.
    earliest, latest = (before - newest).total_seconds(), (after - newest).total_seconds()
    assert earliest - 0.1 <= body["freshness_seconds"] <= latest + 0.1
    assert before <= datetime.fromisoformat(body["generated_at"]) <= after


def test_a_chosen_day_equals_the_truth(live: Live) -> None:
    days = truth_days(live.truth)
    busiest = max(days, key=lambda d: (days[d]["orders"], d))
    assert days[busiest]["orders"]
    body = live.json("leadership", day=busiest.isoformat(), top=3)
    _assert_day(body, live.truth, busiest, 3)
    assert all(p["title"] for p in body["top_products"])
    quiet = live.json("admin", day="2001-01-01")
    assert (quiet["orders"], quiet["sessions"], quiet["top_products"]) == (0, 0, [])
    assert Decimal(str(quiet["revenue"])) == 0 and quiet["conversion_rate"] is None


def test_leadership_marketing_and_admin_only(live: Live) -> None:
    for role in ("leadership", "marketing", "admin"):
        assert live.get(role).status_code == 200, role
    for role in ("operations", "finance"):
        body = assert_problem(live.get(role), 403, ROUTE)
        assert body["type"] == "urn:retreasure:problem:forbidden"
    assert_problem(live.get(None), 401, ROUTE)


def test_bad_days_and_sizes_are_problems(live: Live) -> None:
    for params in ({"day": "2000-13-01"}, {"day": "1999-12-31"}, {"day": "2101-01-01"}, {"top": 0}, {"top": 51}):
        body = assert_problem(live.get("marketing", **params), 422, ROUTE)
        name = next(iter(params))
        assert body["errors"][0]["loc"] == ["query", name] and str(params[name]) not in body["detail"]


def test_a_lake_without_the_web_marts_is_a_503_problem(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    key = auth.create_key(lake, "leadership", "no marts yet")
    settings = Settings(_env_file=None, lake_uri=lake.uri, pii_hmac_key=HMAC_KEY, pii_vault_key=VAULT_KEY)  # type: ignore[call-arg]
    with serving(settings) as url:
        response = httpx.get(url + ROUTE, headers={"X-API-Key": key}, timeout=60)
    body = assert_problem(response, 503, ROUTE)
    assert body["type"] == "urn:retreasure:problem:not-built" and "mart_web_daily" in body["detail"]


def test_a_newer_event_committed_to_gold_moves_today_and_freshness(live: Live) -> None:
    """A micro-build's commit: a new day with one order is the next request's today, seconds fresh.

    Last in the module: it writes to the module's copy of the lake."""
    newest = datetime.now(UTC) - timedelta(seconds=5)
    schema = live.lake.dataset(WEB_DAILY).schema
    row = {name: 0 for name in schema.names} | {
        "day": newest.date(),
        "sessions": 2,
        "converted_sessions": 1,
        "conversion_rate": Decimal("0.5"),
        "orders": 1,
        "revenue": Decimal("12.34"),
        "newest_web_event_ts": newest,
        "newest_transaction_ts": None,
        "newest_event_ts": newest,
    }
    live.lake.append(WEB_DAILY, pa.Table.from_pylist([row], schema=schema))
    body = live.json("leadership")
    assert body["day"] == newest.date().isoformat() and datetime.fromisoformat(body["newest_event_ts"]) == newest
    assert (body["orders"], Decimal(str(body["revenue"])), body["sessions"]) == (1, Decimal("12.34"), 2)
    assert 4.9 <= body["freshness_seconds"] < (datetime.now(UTC) - newest).total_seconds() + 0.1
