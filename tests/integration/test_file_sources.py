"""File sources end to end: the simulator's drops, read back by each connector, checked against the truth.

Drops are rendered from the faulty truth twice: with a heavy share of file faults ("heavy") and with every
fault on every file at once ("every"); in both, every true record must come out well-formed, and every
injected fault must be visible where the simulator says it put it.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from defusedxml.ElementTree import fromstring

from retreasure.bronze.ingest import run_ingest
from retreasure.connectors.base import RawRecord, Source, load_sources
from retreasure.lake import Lake
from retreasure.lake.store import TableRef
from retreasure.records.instants import parse_instant
from retreasure.records.paths import dig
from retreasure.settings import Settings
from retreasure_sim.config import Faults
from retreasure_sim.files import expected_counts, render_files
from retreasure_sim.files.drop import renamed
from retreasure_sim.model import Fault, Truth, money

PROFILES = {
    "heavy": Faults(duplicates=0.2, malformed=0.2, schema_drift=0.2, truncated_files=0.2),
    "every": Faults(duplicates=1.0, malformed=1.0, schema_drift=1.0, truncated_files=1.0),
}
ENTITIES = [
    ("pos", "sales"),
    ("pos", "inventory"),
    ("geo", "customer_locations"),
    ("geo", "delivery_zones"),
    ("ecb", "fx_rates"),
    ("ads", "spend"),
    ("web", "clickstream"),
    ("web", "transactions"),
]
DRIFT_MARKS: dict[tuple[str, str], Callable[[Any], bool]] = {
    ("pos", "sales"): lambda p: "cashier_id" in p,
    ("pos", "inventory"): lambda p: "bin_location" in p,
    ("geo", "customer_locations"): lambda p: "geocoder" in p["properties"],
    ("geo", "delivery_zones"): lambda p: "carrier_service" in p["properties"],
    ("ecb", "fx_rates"): lambda p: "published=" in p,
    ("ads", "spend"): lambda p: "conversions" in p or "reach" in p,
    ("web", "clickstream"): lambda p: p.get("channel") == "browser",
    ("web", "transactions"): lambda p: "gateway" in p,
}


@dataclass
class Drops:
    """One rendering of the drops, and what the connectors read from it."""

    profile: str
    truth: Truth
    landing: Path
    faults: list[Fault]
    settings: Settings
    _read: dict[tuple[str, str], list[RawRecord]] = field(default_factory=dict)

    def source(self, name: str) -> Source:
        return load_sources()[name](self.settings)

    def read(self, source_name: str, entity_name: str) -> list[RawRecord]:
        if (source_name, entity_name) not in self._read:
            source = self.source(source_name)
            entity = source.entity(entity_name)  # type: ignore[attr-defined]
            records = [r for path in source.files(entity) for r in source.read(entity, path)]  # type: ignore[attr-defined]
            self._read[(source_name, entity_name)] = records
        return self._read[(source_name, entity_name)]

    def good(self, source_name: str, entity_name: str) -> dict[str, list[Any]]:
        """Well-formed payloads by the key landing would give them."""
        entity = self.source(source_name).entity(entity_name)
        found: dict[str, list[Any]] = defaultdict(list)
        for r in self.read(source_name, entity_name):
            if r.error is None:
                key = r.key if r.key is not None else dig(r.payload, entity.key)
                assert key not in (None, ""), r
                found[str(key)].append(r.payload)
        return found

    def from_file(self, source_name: str, entity_name: str, relative: str) -> list[RawRecord]:
        return [r for r in self.read(source_name, entity_name) if r.origin == relative]


@pytest.fixture(scope="module", params=list(PROFILES))
def drops(request: pytest.FixtureRequest, faulty_truth: Truth, tmp_path_factory: pytest.TempPathFactory) -> Drops:
    landing = tmp_path_factory.mktemp(f"landing-{request.param}")
    faults = render_files(faulty_truth, landing, PROFILES[request.param], faulty_truth.seed)
    return Drops(request.param, faulty_truth, landing, faults, Settings(_env_file=None, landing_dir=landing))  # type: ignore[call-arg]


def table(source: str, entity: str) -> str:
    return f"{source}_{entity}"


# -- every true record, as the truth has it ---------------------------------------------------------------


def test_pos_sales_every_line_and_refund(drops: Drops) -> None:
    truth = drops.truth
    good = drops.good("pos", "sales")
    customers = {c.customer_id: c for c in truth["customers"]}
    stores = {s.store_id: s for s in truth["stores"]}
    pos = {o.order_id: o for o in truth["orders"] if o.channel == "pos"}
    expected: set[str] = set()
    for order in pos.values():
        customer = customers.get(order.customer_id or "")
        for line in order.lines:
            key = f"{order.channel_order_id}/{line.line_no}/sale"
            expected.add(key)
            assert good[key], f"sale line {key} missing"
            for row in good[key]:
                assert datetime.fromisoformat(row["sold_at"]) == order.created_at
                assert row["store_id"] == order.store_id and row["sku"] == line.sku
                assert int(row["quantity"]) == line.quantity
                assert Decimal(row["unit_price"]) == line.unit_price and row["unit_price"] == str(line.unit_price)
                assert Decimal(row["discount"]) == line.discount and Decimal(row["tax"]) == line.tax
                assert row["currency"] == order.currency == stores[row["store_id"]].currency
                assert row["loyalty_email"] == (customer.email if customer else "")
                assert row["loyalty_phone"] == (customer.phone if customer else "")
    for refund in truth["refunds"]:
        if refund.order_id not in pos:
            continue
        order = pos[refund.order_id]
        key = f"{order.channel_order_id}/{refund.line_no}/refund"
        expected.add(key)
        assert good[key], f"refund {key} missing"
        for row in good[key]:
            assert datetime.fromisoformat(row["sold_at"]) == refund.created_at
            assert int(row["quantity"]) == -refund.quantity
            net = Decimal(row["quantity"]) * Decimal(row["unit_price"]) - Decimal(row["discount"])
            assert net == -refund.amount and Decimal(row["tax"]) == -refund.tax
    assert set(good) == expected
    assert len(good) == expected_counts(truth)["pos_sales"]


def test_pos_rows_sit_in_their_local_hour_file(drops: Drops) -> None:
    """A sale is in the file of the store-local hour it was rung up in; its partition is that local day."""
    records = [r for r in drops.read("pos", "sales") if r.error is None]
    assert records
    for r in records:
        local = datetime.fromisoformat(r.payload["sold_at"])
        assert r.partition_date == local.date()
        store, day, name = r.origin.split("/")[2:5]
        assert store == r.payload["store_id"]
        if r.payload["type"] == "sale":
            assert day == local.date().isoformat() and name.startswith(f"sales_{local.hour:02d}.")


def test_pos_inventory_every_movement(drops: Drops) -> None:
    truth = drops.truth
    good = drops.good("pos", "inventory")
    stores = {s.store_id: s for s in truth["stores"]}
    moves = [m for m in truth["inventory_movements"] if m.location_id in stores]
    assert {m.movement_id for m in moves} == set(good)
    assert len(good) == expected_counts(truth)["pos_inventory"]
    first_file = {
        f"pos/inventory/{s}/{truth.start.isoformat()}/inventory_{stores[s].opens_hour:02d}.csv" for s in stores
    }
    origins = defaultdict(set)
    for r in drops.read("pos", "inventory"):
        if r.error is None:
            origins[r.payload["movement_id"]].add(r.origin.replace(".resent.", ".").replace(".dup.", "."))
    for m in moves:
        for row in good[m.movement_id]:
            assert (row["sku"], int(row["change"]), row["reason"]) == (m.sku, m.change, m.reason)
            assert int(row["on_hand_after"]) == m.on_hand_after and row["store_id"] == m.location_id
            assert datetime.fromisoformat(row["at"]) == m.at
        if m.at.date() < truth.start:  # the opening stock arrives with the first hour's file
            assert origins[m.movement_id] & first_file


def test_geo_every_customer_and_zone(drops: Drops) -> None:
    truth = drops.truth
    customers = drops.good("geo", "customer_locations")
    assert set(customers) == {c.customer_id for c in truth["customers"]}
    for c in truth["customers"]:
        for feature in customers[c.customer_id]:
            assert feature["geometry"] == {"type": "Point", "coordinates": [c.lon, c.lat]}  # RFC 7946: lon first
            props = feature["properties"]
            assert (props["postal_code"], props["country_code"], props["city"]) == (c.postal_code, c.country, c.city)
    zones = drops.good("geo", "delivery_zones")
    assert set(zones) == {f"{z.zone_id}/{z.valid_from.isoformat()}" for z in truth["delivery_zones"]}
    for z in truth["delivery_zones"]:
        for feature in zones[f"{z.zone_id}/{z.valid_from.isoformat()}"]:
            assert feature["geometry"]["coordinates"] == [z.ring]
            assert feature["properties"]["fee"] == str(money(z.fee, z.currency))
            assert feature["properties"]["currency"] == z.currency
    counts = expected_counts(truth)
    assert (len(customers), len(zones)) == (counts["geo_customer_locations"], counts["geo_delivery_zones"])
    days = {r.partition_date for r in drops.read("geo", "customer_locations") if r.error is None}
    assert days == {c.created_at.date() for c in truth["customers"]}


def test_ecb_every_rate_and_day(drops: Drops) -> None:
    truth = drops.truth
    good = drops.good("ecb", "fx_rates")
    published = {f"{fx.date.isoformat()}/{fx.currency}": fx.rate for fx in truth["fx_rates"]}
    assert set(good) == set(published)  # one record per currency and day
    assert len(good) == expected_counts(truth)["ecb_fx_rates"]
    for key, payloads in good.items():
        for text in payloads:
            cube = fromstring(text)
            (entry,) = list(cube)
            assert f"{cube.get('time')}/{entry.get('currency')}" == key
            assert Decimal(entry.get("rate")) == published[key]
    for r in drops.read("ecb", "fx_rates"):
        if r.error is None:
            assert r.partition_date == date.fromisoformat(r.key[:10])  # type: ignore[index]
    # The daily layout and the history layout of the same rate land as the same text (so once).
    assert all(len(set(payloads)) == 1 or any("published=" in p for p in payloads) for payloads in good.values())


def test_ads_every_spend_row(drops: Drops) -> None:
    truth = drops.truth
    good = drops.good("ads", "spend")
    assert set(good) == {f"{s.platform}/{s.campaign_id}/{s.date.isoformat()}" for s in truth["ad_spend"]}
    assert len(good) == expected_counts(truth)["ads_spend"]
    for s in truth["ad_spend"]:
        for row in good[f"{s.platform}/{s.campaign_id}/{s.date.isoformat()}"]:
            spend = row.get("spend", row.get("cost"))
            currency = row.get("currency_code", row.get("account_currency"))
            assert (Decimal(spend), currency, row["campaign_name"]) == (s.spend, s.currency, s.utm_campaign)
            assert (int(row["clicks"]), int(row["impressions"])) == (s.clicks, s.impressions)


def test_web_every_event(drops: Drops) -> None:
    truth = drops.truth
    good = drops.good("web", "clickstream")
    sessions = {s.session_id: s for s in truth["sessions"]}
    customers = {c.customer_id: c for c in truth["customers"]}
    orders = {o.order_id: o for o in truth["orders"]}
    assert set(good) == {e.event_id for e in truth["web_events"]}
    assert len(good) == expected_counts(truth)["web_clickstream"]
    names = {"product_viewed": "Product Viewed", "product_added": "Product Added"}
    names |= {"checkout_started": "Checkout Started", "order_completed": "Order Completed"}
    for event in truth["web_events"]:
        session = sessions[event.session_id]
        for m in good[event.event_id]:
            assert parse_instant(m["timestamp"]) == event.at
            # Segment's clock-skew correction gives back the true time.
            skew = parse_instant(m["sentAt"]) - parse_instant(m["originalTimestamp"])  # type: ignore[operator]
            assert parse_instant(m["receivedAt"]) - skew == event.at  # type: ignore[operator]
            assert m["anonymousId"] == session.anonymous_id
            assert m["properties"]["session_id"] == session.session_id
            if event.name == "page_view":
                assert m["type"] == "page"
            else:
                assert (m["type"], m["event"]) == ("track", names[event.name])
            campaign = m["context"].get("campaign", {})
            assert campaign.get("name") == session.utm_campaign and campaign.get("source") == session.utm_source
            customer = customers.get(session.customer_id or "")
            assert m["context"].get("traits", {}).get("email") == (customer.email if customer else None)
            assert ("userId" in m) == (customer is not None)
            assert m["context"]["ip"] and m["context"]["userAgent"]
            if event.name == "order_completed":
                order = orders[event.order_id]  # type: ignore[index]
                props = m["properties"]
                assert (props["order_id"], props["currency"]) == (order.channel_order_id, order.currency)
                assert props["total"] == str(money(order.total, order.currency))
                assert Decimal(props["revenue"]) == order.subtotal - order.discount
                assert (Decimal(props["tax"]), Decimal(props["shipping"])) == (order.tax, order.shipping)


def test_web_every_payment(drops: Drops) -> None:
    truth = drops.truth
    good = drops.good("web", "transactions")
    orders = {o.order_id: o for o in truth["orders"]}
    assert set(good) == {p.transaction_id for p in truth["payments"]}
    assert len(good) == expected_counts(truth)["web_transactions"]
    for p in truth["payments"]:
        for row in good[p.transaction_id]:
            assert (row["status"], row["currency"], parse_instant(row["occurred_at"])) == (p.status, p.currency, p.at)
            assert row["amount"] == str(money(p.amount, p.currency))
            assert row["order_id"] == orders[p.order_id].channel_order_id


# -- every injected fault, where the simulator says it is ------------------------------------------------------


def test_every_source_gets_every_fault(drops: Drops) -> None:
    kinds = defaultdict(set)
    for f in drops.faults:
        kinds[(f.source, f.entity)].add(f.kind)
        assert (drops.landing / f.record_key).is_file() and f.detail
    wanted = {"duplicate", "malformed", "schema_drift", "truncated"}
    # Three weeks have a single zones file: only "every" is sure to hit it.
    pairs = ENTITIES if drops.profile == "every" else [p for p in ENTITIES if p != ("geo", "delivery_zones")]
    assert {p: kinds[p] for p in pairs} == {p: wanted for p in pairs}


def test_malformed_records_come_out_with_an_error(drops: Drops) -> None:
    for f in (f for f in drops.faults if f.kind == "malformed"):
        resent = renamed(f.record_key, "resent")
        # If the file was also cut, its whole copy is where the broken record is sure to be.
        where = resent if (drops.landing / resent).exists() else f.record_key
        errors = [r.error for r in drops.from_file(f.source, f.entity, where) if r.error]
        assert any(not e.startswith("truncated") for e in errors), (f, errors)


def test_truncated_files_report_the_cut_and_the_resent_copy_brings_the_rest(drops: Drops) -> None:
    for f in (f for f in drops.faults if f.kind == "truncated"):
        cut = drops.from_file(f.source, f.entity, f.record_key)
        whole = drops.from_file(f.source, f.entity, renamed(f.record_key, "resent"))
        assert cut and cut[-1].error and cut[-1].error.startswith("truncated"), f
        assert sum(1 for r in cut if (r.error or "").startswith("truncated")) == 1
        assert not any((r.error or "").startswith("truncated") for r in whole)
        # Record for record the same up to the cut; what the cut one reports, the whole one lands.
        before = len(cut) - 1
        assert [(r.payload, r.error) for r in cut[:-1]] == [(r.payload, r.error) for r in whole[:before]], f
        if f.source == "ecb":  # the cut day is one report; whole, it is one record per rate of that day
            assert len(whole) > before and {r.partition_date for r in whole[before:]} == {cut[-1].partition_date}, f
        else:
            assert len(cut) == len(whole), f


def test_duplicate_files_repeat_the_whole_file(drops: Drops) -> None:
    for f in (f for f in drops.faults if f.kind == "duplicate"):
        resent = renamed(f.record_key, "resent")
        original = resent if (drops.landing / resent).exists() else f.record_key
        copy = renamed(f.record_key, "dup")
        assert (drops.landing / copy).read_bytes() == (drops.landing / original).read_bytes()
        first = [(r.payload, r.error) for r in drops.from_file(f.source, f.entity, original)]
        assert first == [(r.payload, r.error) for r in drops.from_file(f.source, f.entity, copy)], f


def test_schema_drift_records_are_yielded_as_received(drops: Drops) -> None:
    seen = 0
    for f in (f for f in drops.faults if f.kind == "schema_drift"):
        records = [r for r in drops.from_file(f.source, f.entity, f.record_key) if r.error is None]
        assert all(DRIFT_MARKS[(f.source, f.entity)](r.payload) for r in records), f
        seen += len(records)
    assert seen > 0


def test_rendering_is_deterministic(faulty_truth: Truth, tmp_path: Path) -> None:
    def digest(folder: Path) -> dict[str, str]:
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    faults = PROFILES["heavy"]
    first = render_files(faulty_truth, tmp_path / "a", faults, 5, sources=["pos", "ecb"])
    second = render_files(faulty_truth, tmp_path / "b", faults, 5, sources=["pos", "ecb"])
    other = render_files(faulty_truth, tmp_path / "c", faults, 6, sources=["pos", "ecb"])
    assert first == second and digest(tmp_path / "a") == digest(tmp_path / "b")
    assert [(f.record_key, f.kind) for f in first] != [(f.record_key, f.kind) for f in other]


def test_expected_counts_as_of(faulty_truth: Truth) -> None:
    midway = datetime(2025, 3, 10, tzinfo=UTC)
    full, part = expected_counts(faulty_truth), expected_counts(faulty_truth, midway)
    assert set(full) == {table(s, e) for s, e in ENTITIES}
    assert all(0 < part[t] <= full[t] for t in full)
    assert part["web_clickstream"] == sum(1 for e in faulty_truth["web_events"] if e.at <= midway)
    assert part["ecb_fx_rates"] < full["ecb_fx_rates"]


def test_store_hours_use_local_time_across_dst(faulty_truth: Truth, tmp_path: Path) -> None:
    """New York moves its clocks on 2025-03-09: its files still cover 11:00-19:59 local, and offsets change."""
    render_files(faulty_truth, tmp_path, Faults(), 1, sources=["pos"])
    for day in ("2025-03-08", "2025-03-09", "2025-03-10"):
        names = sorted(p.name for p in (tmp_path / "pos/sales/NYC" / day).iterdir())
        assert names == [f"sales_{h:02d}.csv" for h in range(11, 20)]
    offsets = defaultdict(set)
    for path in (tmp_path / "pos/inventory/NYC").glob("2025-03-*/*.csv"):
        for row in csv.DictReader(path.open(encoding="utf-8")):
            if row["at"][:10] >= "2025-03-01" and row["at"][:10] != "2025-03-09":  # it switches at 2 a.m.
                offsets[row["at"][:10] < "2025-03-09"].add(row["at"][-6:])
    assert offsets == {True: {"-05:00"}, False: {"-04:00"}}


# -- end to end into bronze -------------------------------------------------------------------------------


def test_ingest_lands_every_true_record_once(faulty_truth: Truth, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    lake = Lake.from_settings(settings)
    faults = render_files(faulty_truth, settings.landing_dir, Faults.on(), faulty_truth.seed)
    names = sorted({s for s, _ in ENTITIES})
    runs = run_ingest(settings, lake, sources=names)
    assert {(r.source, r.entity): r.status for r in runs} == {pair: "success" for pair in ENTITIES}
    for (source, entity), count in ((pair, expected_counts(faulty_truth)[table(*pair)]) for pair in ENTITIES):
        ref = TableRef("bronze", table(source, entity))
        sql = f"SELECT count(DISTINCT record_key) AS n FROM {ref} WHERE error IS NULL"
        assert lake.query(sql, [ref]).column("n")[0].as_py() == count, ref
        broken = sum(
            1 for f in faults if (f.source, f.entity) == (source, entity) and f.kind in ("malformed", "truncated")
        )
        assert lake.count(TableRef("quarantine", table(source, entity))) >= broken
    sales = TableRef("bronze", "pos_sales")
    raw = "\n".join(lake.query(f"SELECT raw FROM {sales}", [sales]).column("raw").to_pylist())
    emails = [c.email for c in faulty_truth["customers"]]
    assert '"loyalty_email":"pii:email:' in raw and not any(e in raw for e in emails)
    clicks = TableRef("bronze", "web_clickstream")
    raw = "\n".join(lake.query(f"SELECT raw FROM {clicks} LIMIT 500", [clicks]).column("raw").to_pylist())
    assert '"ip":"pii:ip:' in raw and '"email":"pii:email:' in raw and not any(e in raw for e in emails)
    again = run_ingest(settings, lake, sources=names)
    assert [(r.files, r.new_records) for r in again] == [(0, 0)] * len(ENTITIES)
