"""The gold dimensions and facts equal the simulator's truth exactly, with every fault switched on.

The expected figures are computed here from the truth in Python (the ledger's rates and rounding, nothing from
the SQL), so a wrong join, a lost duplicate or a mis-rounded conversion shows as a difference.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from retreasure.bronze.pii import PiiMasker
from retreasure.engine.build import build
from retreasure.engine.models import load_models
from retreasure.lake import Lake
from retreasure.lake.store import TableRef
from retreasure_sim.ledger import Rates, books
from retreasure_sim.model import Truth
from tests.conftest import HMAC_KEY

MINE = (
    "dim_date",
    "dim_channel",
    "dim_store",
    "dim_currency",
    "dim_product",
    "dim_customer",
    "dim_geo",
    "fct_fulfillments",
    "fct_web_sessions",
    "fct_inventory_daily",
    "fct_orders",
    "fct_cart_additions",
)


@pytest.fixture(scope="module")
def built(bronze_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Lake]:
    """One full build for the whole module (a build takes ~15 s): the same private copy ``lake_copy`` makes,
    at module scope so that every test reads the same built lake."""
    target = tmp_path_factory.mktemp("gold_dims") / "lake"
    shutil.copytree(Path(bronze_lake[1].uri), target)
    lake = Lake(target)
    runs = build(lake)
    assert [str(r.ref) for r in runs if r.blocked] == []
    return bronze_lake[0], lake


def rows(lake: Lake, sql: str) -> list[dict[str, Any]]:
    return lake.query(sql).to_pylist()


def order_key(order: Any) -> str:
    return f"{order.channel}:{order.channel_order_id}"


def test_every_model_transpiles_to_spark() -> None:
    models = load_models()
    for name in MINE:
        assert models[TableRef("gold", name)].spark_sql().strip()


def test_dim_date_is_the_rate_calendar(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    published = {r.date for r in truth["fx_rates"]}
    first, last = min(published), max(published) + timedelta(days=10)
    expected = {first + timedelta(days=i) for i in range((last - first).days + 1)}
    got = rows(lake, "SELECT date_day, is_ecb_business_day, is_weekend, iso_week FROM gold.dim_date")
    assert len(got) == len(expected)
    assert {r["date_day"] for r in got} == expected
    assert {r["date_day"] for r in got if r["is_ecb_business_day"]} == published
    assert all(r["is_weekend"] == (r["date_day"].isoweekday() >= 6) for r in got)
    assert all(r["iso_week"] == r["date_day"].isocalendar().week for r in got)


def test_dim_currency_has_every_rate_and_derives_cross_rates(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    rates = Rates(truth)
    currencies = {r.currency for r in truth["fx_rates"]} | {"EUR"}
    days = {r["date_day"] for r in rows(lake, "SELECT date_day FROM gold.dim_date")}
    got = {
        (r["rate_date"], r["currency"]): r["rate_per_eur"]
        for r in rows(lake, "SELECT rate_date, currency, rate_per_eur FROM gold.dim_currency")
    }
    assert len(got) == len(days) * len(currencies)
    assert got == {(d, c): rates.rate(d, c) for d in days for c in currencies}
    # The documented cross rate: units of B per unit of A = rate_B / rate_A on the same day.
    cross = rows(
        lake,
        "SELECT a.rate_date, b.rate_per_eur / a.rate_per_eur AS usd_per_gbp FROM gold.dim_currency a "
        "JOIN gold.dim_currency b ON a.rate_date = b.rate_date AND a.currency = 'GBP' AND b.currency = 'USD'",
    )
    assert len(cross) == len(days)
    for r in cross:
        exact = rates.rate(r["rate_date"], "USD") / rates.rate(r["rate_date"], "GBP")
        assert abs(Decimal(str(r["usd_per_gbp"])) - exact) < Decimal("1e-6")


def test_dim_channel_and_dim_store_count_the_orders(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    ledger = books(truth)
    channels = {r["channel"]: r for r in rows(lake, "SELECT * FROM gold.dim_channel")}
    assert set(channels) == {"shopify", "ebay", "etsy", "pos"}
    assert {c: r["orders"] for c, r in channels.items()} == dict(ledger.orders_by_channel)
    for channel, r in channels.items():
        days = [o.created_at.date() for o in truth["orders"] if o.channel == channel]
        assert (r["first_order_date"], r["last_order_date"]) == (min(days), max(days))
    assert {c for c, r in channels.items() if r["is_marketplace"]} == {"ebay", "etsy"}

    stores = {r["store_id"]: r for r in rows(lake, "SELECT * FROM gold.dim_store")}
    assert {s: (r["name"], r["city"], r["country"], r["currency"], r["timezone"]) for s, r in stores.items()} == {
        s.store_id: (s.name, s.city, s.country, s.currency, s.timezone) for s in truth["stores"]
    }
    per_store: dict[str, int] = defaultdict(int)
    for o in truth["orders"]:
        if o.channel == "pos":
            per_store[o.store_id] += 1
    assert {s: r["orders"] for s, r in stores.items()} == dict(per_store)


def test_dim_product_is_every_sku_with_its_attributes(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    got = {r["sku"]: r for r in rows(lake, "SELECT * FROM gold.dim_product")}
    products = {p.sku: p for p in truth["products"]}
    assert set(got) == set(products)
    sold: dict[str, int] = defaultdict(int)
    sold_on: dict[str, set[str]] = defaultdict(set)
    orders = {o.order_id: o for o in truth["orders"]}
    for line in truth["order_lines"]:
        sold[line.sku] += line.quantity
        sold_on[line.sku].add(orders[line.order_id].channel)
    for sku, p in products.items():
        r = got[sku]
        assert r["home_location"] == p.location_id, sku
        assert r["on_shopify"] == ("shopify" in p.channels), sku
        assert r["on_etsy"] == ("etsy" in p.channels), sku
        assert r["units_sold"] == sold[sku], sku
        assert r["sold_on"] == sorted(sold_on[sku]), sku
        if "shopify" in p.channels:
            attributes = (r["title"], r["category"], r["era"], r["material"], r["condition"], r["list_price"])
            assert attributes == (p.title, p.category, p.era, p.material, p.condition, p.list_price), sku
        else:
            assert (r["category"], r["era"], r["material"], r["condition"]) == (None, None, None, None), sku
    # Warehouse goods' cost comes from Shopify's inventory item, store-only goods' from the stores' ERP export.
    assert {sku: (r["unit_cost"], r["cost_source"]) for sku, r in got.items()} == {
        sku: (p.cost, "shopify" if p.location_id == "WH" else "pos") for sku, p in products.items()
    }


def test_dim_customer_resolves_identity_across_channels(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    rates = Rates(truth)
    masker = PiiMasker(HMAC_KEY)
    people = {c.customer_id: c for c in truth["customers"]}
    token_of = {cid: masker.token("email", c.email) for cid, c in people.items()}
    expected: dict[str, dict[str, Any]] = {}
    for o in sorted(truth["orders"], key=lambda o: o.created_at):
        if o.customer_id is None:
            continue
        e = expected.setdefault(
            token_of[o.customer_id],
            {"first": o.created_at.date(), "channels": set(), "orders": 0, "spent": Decimal(0), "cid": o.customer_id},
        )
        e["last"] = o.created_at.date()
        e["channels"].add(o.channel)
        e["orders"] += 1
        e["spent"] += rates.to_base(o.total, o.currency, o.created_at.date())
    got = {r["customer_token"]: r for r in rows(lake, "SELECT * FROM gold.dim_customer")}
    assert set(got) >= set(expected)
    for token, e in expected.items():
        r = got[token]
        assert (r["first_order_date"], r["last_order_date"], r["orders"]) == (e["first"], e["last"], e["orders"])
        assert r["channels"] == sorted(e["channels"])
        assert r["total_spent_base"] == e["spent"]
    # Everyone else is a shop account without orders; no row is a stranger.
    cid_of = {t: cid for cid, t in token_of.items()}
    assert set(got) <= set(cid_of)
    for token, r in got.items():
        person = people[cid_of[token]]
        if token not in expected:
            assert r["orders"] == 0 and r["shopify_customer_id"] is not None
        if r["shopify_customer_id"] is not None:
            assert r["shopify_customer_id"] == str(person.shopify_customer_id)
            assert r["accepts_marketing"] in (person.accepts_marketing, None)
        if r["country"] is not None:
            assert r["country"] == person.country, token
    assert sum(r["country"] is None for r in got.values()) == sum(
        e["channels"] == {"pos"} and got[t]["shopify_customer_id"] is None for t, e in expected.items()
    )


def _inside(lon: float, lat: float, ring: list[list[float]]) -> bool:
    """Even-odd rule, the same test a GIS makes for a point in a simple polygon."""
    inside = False
    for (x1, y1), (x2, y2) in pairwise(ring):
        if (y1 > lat) != (y2 > lat) and lon < (x2 - x1) * (lat - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def test_dim_geo_places_each_customer_in_its_zone(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    got = {r["customer_id"]: r for r in rows(lake, "SELECT * FROM gold.dim_geo")}
    assert set(got) == {c.customer_id for c in truth["customers"]}
    zones = truth["delivery_zones"]
    for c in truth["customers"]:
        r = got[c.customer_id]
        assert (r["country"], r["city"], r["postal_code"]) == (c.country, c.city, c.postal_code)
        day = r["located_date"]
        current: dict[str, Any] = {}
        for z in sorted(zones, key=lambda z: z.valid_from):
            if z.valid_from <= day:
                current[z.zone_id] = z
        hits = [z for z in current.values() if _inside(c.lon, c.lat, z.ring)]
        assert r["zones_matched"] == len(hits), c.customer_id
        if len(hits) == 1:
            z = hits[0]
            assert (r["zone_id"], r["zone_name"], r["zone_fee"], r["zone_currency"]) == (
                z.zone_id,
                z.name,
                z.fee,
                z.currency,
            ), c.customer_id
            assert r["is_deliverable"]
        if not hits:
            assert r["zone_id"] is None and not r["is_deliverable"]


def test_fct_fulfillments_measures_each_shipment(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    orders = {o.order_id: o for o in truth["orders"]}
    expected = []
    for f in truth["fulfillments"]:
        o = orders[f.order_id]
        promised = o.ship_by is not None  # every online channel puts its dispatch promise on the wire
        expected.append(
            (
                order_key(o),
                f.shipped_at,
                o.created_at.date(),
                (f.shipped_at.date() - o.created_at.date()).days,
                o.ship_by if promised else None,
                (f.shipped_at > o.ship_by) if promised else None,
                f.delivered_at if o.channel == "shopify" else None,
                (f.delivered_at.date() - f.shipped_at.date()).days
                if o.channel == "shopify" and f.delivered_at
                else None,
                f.tracking_number,
            )
        )
    got = [
        tuple(r.values())
        for r in rows(
            lake,
            "SELECT order_key, shipped_ts, order_date, days_to_ship, ship_by_ts, is_late, delivered_ts, "
            "delivery_days, tracking_number FROM gold.fct_fulfillments",
        )
    ]
    assert len(got) == len(truth["fulfillments"])
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert len({r["fulfillment_key"] for r in rows(lake, "SELECT fulfillment_key FROM gold.fct_fulfillments")}) == len(
        got
    )


def test_fct_orders_is_every_order_with_its_items_amounts_promise_and_ship_to(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    rates = Rates(truth)
    masker = PiiMasker(HMAC_KEY)
    people = {c.customer_id: c for c in truth["customers"]}
    got = {r["order_key"]: r for r in rows(lake, "SELECT * FROM gold.fct_orders")}
    assert set(got) == {order_key(o) for o in truth["orders"]}
    for o in truth["orders"]:
        r, day = got[order_key(o)], o.created_at.date()
        placed = (o.channel, o.store_id, o.created_at, day)
        assert (r["channel"], r["store_id"], r["order_ts"], r["order_date"]) == placed, order_key(o)
        assert r["items"] == sum(line.quantity for line in o.lines), order_key(o)
        assert r["shipping_base"] == rates.to_base(o.shipping, o.currency, day), order_key(o)
        assert r["total_base"] == rates.to_base(o.total, o.currency, day), order_key(o)
        assert (r["ship_by_ts"], r["ship_country"]) == (o.ship_by, o.ship_country), order_key(o)
        if r["customer_token"] is not None:
            assert r["customer_token"] == masker.token("email", people[o.customer_id].email), order_key(o)
        if o.channel == "pos":
            assert r["ship_to_name_token"] is None and r["ship_to_postal_code"] is None
            continue
        person = people[o.customer_id]
        assert (r["ship_to_city"], r["ship_to_postal_code"]) == (person.city, person.postal_code), order_key(o)
        assert r["ship_to_name_token"].startswith("pii:name:") and r["ship_to_street_token"].startswith("pii:street:")
    online = [o for o in truth["orders"] if o.channel != "pos"]
    assert online and all(got[order_key(o)]["customer_token"] for o in online)


def test_fct_cart_additions_is_every_product_put_in_the_cart(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    masker = PiiMasker(HMAC_KEY)
    people = {c.customer_id: c for c in truth["customers"]}
    sessions = {s.session_id: s for s in truth["sessions"]}
    added = {e.event_id: e for e in truth["web_events"] if e.name == "product_added"}
    got = {r["event_id"]: r for r in rows(lake, "SELECT * FROM gold.fct_cart_additions")}
    assert added and set(got) == set(added)
    known = 0
    for event_id, e in added.items():
        r = got[event_id]
        assert (r["event_ts"], r["event_date"]) == (e.at, e.at.date()), event_id
        if r["customer_token"] is not None:
            # A visitor becomes known by the e-mail of the session's customer, never anyone else's.
            customer = sessions[e.session_id].customer_id
            assert customer is not None and r["customer_token"] == masker.token("email", people[customer].email)
            known += 1
    assert known, "no known visitor put anything in the cart"


def test_fct_web_sessions_values_conversions_in_eur(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    rates = Rates(truth)
    ledger = books(truth)
    orders = {o.order_id: o for o in truth["orders"]}
    row = rows(
        lake,
        "SELECT count(*) AS n, count(*) FILTER (WHERE converted) AS c, count(*) FILTER (WHERE order_found) AS f, "
        "sum(order_total_base) AS total, sum(order_net_sales_base) AS net FROM gold.fct_web_sessions",
    )[0]
    converted = [s for s in truth["sessions"] if s.converted]
    assert (row["n"], row["c"], row["f"]) == (ledger.sessions, ledger.converted_sessions, len(converted))
    total = net = Decimal(0)
    for s in converted:
        o = orders[s.order_id]
        day = o.created_at.date()
        total += rates.to_base(o.total, o.currency, day)
        # The order's subtotal and discount, each converted once per order as silver.orders does.
        net += rates.to_base(o.subtotal, o.currency, day) - rates.to_base(o.discount, o.currency, day)
    assert (row["total"], row["net"]) == (total, net)
    keys = {r["order_key"] for r in rows(lake, "SELECT order_key FROM gold.fct_web_sessions WHERE converted")}
    assert keys == {order_key(orders[s.order_id]) for s in converted}


def test_fct_inventory_daily_matches_the_stock_movements(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    days: dict[tuple[str, str, date], list[Any]] = defaultdict(list)
    last_wh: dict[str, Any] = {}
    for m in sorted(truth["inventory_movements"], key=lambda m: (m.at, m.movement_id)):
        if m.location_id == "WH":
            last_wh[m.sku] = m
        else:
            days[(f"pos:{m.location_id}", m.sku, m.at.date())].append(m)
    expected = {
        key: (
            len(ms),
            sum(m.change for m in ms if m.reason == "acquired"),
            -sum(m.change for m in ms if m.reason == "sold"),
            sum(m.change for m in ms if m.reason == "restocked"),
            sum(m.change for m in ms),
            ms[-1].on_hand_after,
        )
        for key, ms in days.items()
    }
    store = {
        (r["location_key"], r["sku"], r["day"]): (
            r["movements"],
            r["units_acquired"],
            r["units_sold"],
            r["units_restocked"],
            r["net_change"],
            r["on_hand_end"],
        )
        for r in rows(lake, "SELECT * FROM gold.fct_inventory_daily WHERE source = 'pos'")
    }
    assert store == expected
    warehouse = {
        r["sku"]: (r["day"], r["on_hand_end"])
        for r in rows(lake, "SELECT sku, day, on_hand_end FROM gold.fct_inventory_daily WHERE source = 'shopify'")
    }
    assert set(warehouse) == {p.sku for p in truth["products"] if p.location_id == "WH"}
    # Shopify reports the balance at each product's latest movement; add it up from the changes independently.
    balance: dict[str, int] = defaultdict(int)
    for m in truth["inventory_movements"]:
        if m.location_id == "WH":
            balance[m.sku] += m.change
    assert warehouse == {sku: (m.at.date(), balance[sku]) for sku, m in last_wh.items()}


def test_truth_timestamps_are_utc(built: tuple[Truth, Lake]) -> None:
    """The day arithmetic above takes the truth's dates as UTC dates; make that assumption fail loudly."""
    truth, _ = built
    sample: datetime = truth["orders"][0].created_at
    assert sample.utcoffset() == timedelta(0)
