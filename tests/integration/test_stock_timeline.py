"""Stock as the simulated business holds it: bought in before it is sold, and one count on every channel.

Shopify and Etsy list the same warehouse goods; both fake servers, read over real HTTP by the connectors,
must report the stock the truth's movements add up to at the servers' clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from retreasure.connectors.etsy import EtsySource
from retreasure.connectors.shopify import ShopifySource
from retreasure.settings import Settings
from retreasure_sim.business import simulate
from retreasure_sim.config import Faults, SimConfig
from retreasure_sim.model import Truth
from retreasure_sim.servers.base import FakeServer
from retreasure_sim.servers.etsy import EtsyServer
from retreasure_sim.servers.shopify import ShopifyServer, default_clock
from tests.conftest import SMALL
from tests.helpers import extract, stop_together

SEEDS = (3, 11, 29)


@pytest.mark.parametrize("seed", SEEDS)
def test_nothing_is_sold_before_it_is_bought_in(seed: int) -> None:
    truth = simulate(SimConfig(seed, SMALL.start, 30, SMALL.scale, Faults.on()))
    acquired = {p.product_id: p.acquired_at for p in truth["products"]}
    early = [
        (o.order_id, line.sku) for o in truth["orders"] for line in o.lines if o.created_at < acquired[line.product_id]
    ]
    assert not early
    # Store goods arrive while the store is closed, so a till syncs them at its next opening hour.
    stores = {s.store_id: s for s in truth["stores"]}
    for p in truth["products"]:
        store = stores.get(p.location_id)
        if store is not None and p.acquired_at.date() >= truth.start:
            assert p.acquired_at.astimezone(ZoneInfo(store.timezone)).hour < store.opens_hour, p.product_id
    # Each movement's on-hand-after is the balance at its instant, and no balance ever goes below zero.
    balance: dict[str, int] = defaultdict(int)
    for move in sorted(truth["inventory_movements"], key=lambda m: (m.at, m.movement_id)):
        balance[move.product_id] += move.change
        assert move.on_hand_after == balance[move.product_id] >= 0, move.movement_id


@pytest.fixture(scope="module")
def running() -> Iterator[list[FakeServer]]:
    """Every server this module starts, stopped together at the end (each stop waits for a poll tick)."""
    started: list[FakeServer] = []
    yield started
    stop_together(started)


def clocks(truth: Truth) -> list[datetime]:
    """Early morning (before the old dawn buying-in), mid-afternoon, and the end of the simulated period."""
    early = datetime.combine(truth.start + timedelta(days=3), time(2, 30), UTC)
    afternoon = datetime.combine(truth.start + timedelta(days=12), time(15), UTC)
    return [early, afternoon, default_clock(truth)]


def truth_stock(truth: Truth, clock: datetime) -> dict[str, int]:
    """Units on hand per SKU at the clock, added up from the truth's movements."""
    skus = {p.product_id: p.sku for p in truth["products"] if p.acquired_at <= clock}
    stock: dict[str, int] = defaultdict(int)
    for move in truth["inventory_movements"]:
        if move.at <= clock:
            stock[skus[move.product_id]] += move.change
    return stock


@pytest.mark.parametrize("which", range(3))
def test_shopify_and_etsy_report_the_same_stock(
    faulty_truth: Truth, which: int, running: list[FakeServer], make_settings: Callable[..., Settings]
) -> None:
    clock = clocks(faulty_truth)[which]
    shopify = ShopifyServer(faulty_truth, {"access_token": "shpat_stock"}, clock=clock, restore_rate=1e6).start()
    etsy = EtsyServer(faulty_truth, {"api_key": "k", "access_token": "t"}, clock=clock, qps=200).start()
    running.extend((shopify, etsy))
    settings = make_settings(
        shopify={"base_url": shopify.url, "access_token": "shpat_stock"},
        etsy={"base_url": etsy.url, "api_key": "k", "access_token": "t", "requests_per_second": 200},
    )
    shop, market = ShopifySource(settings), EtsySource(settings)
    try:
        products = [r.payload for r in extract(shop, "products")]
        listings = [r.payload for r in extract(market, "listings")]
    finally:
        shop.close()
        market.close()
    on_shopify = {}
    for node in products:
        (variant,) = node["variants"]["nodes"]
        on_shopify[variant["sku"]] = (variant["inventoryQuantity"], node["status"] == "ACTIVE")
    on_etsy = {listing["skus"][0]: (listing["quantity"], listing["state"] == "active") for listing in listings}
    both = on_shopify.keys() & on_etsy.keys()
    assert both, "no SKU listed on both channels at this clock"
    assert {sku: on_shopify[sku] for sku in both} == {sku: on_etsy[sku] for sku in both}
    expected = truth_stock(faulty_truth, clock)
    assert {sku: on_etsy[sku][0] for sku in both} == {sku: expected[sku] for sku in both}
