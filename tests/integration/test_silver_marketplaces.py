"""The eBay and Etsy staging models, reconciled with the simulator's truth to the cent.

Two lakes: the session's small faulty business (``bronze_lake``), and a richer eBay + Etsy history ingested
here at two server clocks, so that bronze holds several versions of an order, with more refunds, late updates,
drifted and broken copies; on that one silver is built window by window and must still be the truth.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from retreasure.bronze.ingest import run_ingest
from retreasure.bronze.landing import BronzeWriter
from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import RawRecord, Source
from retreasure.connectors.ebay import EbaySource
from retreasure.connectors.etsy import EtsySource
from retreasure.engine.models import ALL_TIME, Model, load_models
from retreasure.engine.runner import ModelRun, run_model
from retreasure.lake import Lake
from retreasure.lake.store import TableRef
from retreasure.settings import Settings
from retreasure_sim.business import simulate
from retreasure_sim.config import Faults, SimConfig
from retreasure_sim.model import Truth
from retreasure_sim.servers.ebay import EbayServer, carrier_code, default_clock
from retreasure_sim.servers.etsy import EtsyServer
from retreasure_sim.servers.etsy import expected_counts as etsy_counts
from retreasure_sim.timeline import Timeline
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import copy_lake, order_amounts

MINE = (
    "tax_rates",
    "stg_ebay_orders",
    "stg_ebay_order_lines",
    "stg_ebay_refunds",
    "stg_ebay_fulfillments",
    "stg_etsy_listings",
    "stg_etsy_orders",
    "stg_etsy_order_lines",
    "stg_etsy_refunds",
    "stg_etsy_fulfillments",
)
KEYS = {"orders": "order_key", "order_lines": "line_key", "refunds": "refund_key", "fulfillments": "fulfillment_key"}
# More of every data fault than the session's business has, and no HTTP faults (they change nothing in bronze).
# Six weeks of late spring, Etsy's quiet season: at half scale and with a late update for a quarter of the orders
# (one lands only if it falls inside the six weeks), every channel has each fault, and Etsy refunds in several
# currencies, JPY included, for the checks below.
RICH = SimConfig(
    seed=54,
    start=date(2025, 5, 1),
    days=42,
    scale=0.5,
    faults=Faults(duplicates=0.05, late_updates=0.25, malformed=0.03, schema_drift=0.1),
)


# -- building -----------------------------------------------------------------------------------------
@cache
def models() -> dict[TableRef, Model]:
    return load_models()


def build(lake: Lake, start: date = ALL_TIME[0], end: date = ALL_TIME[1]) -> dict[str, ModelRun]:
    """fx_rates (when there are rates to read) and the eBay and Etsy models, in dependency order."""
    runs = {}
    for ref, model in models().items():
        wanted = ref.name in MINE or (ref.name == "fx_rates" and lake.exists(TableRef("bronze", "ecb_fx_rates")))
        if ref.layer == "silver" and wanted:
            # A merge's window is the days its versions landed (a listing listed before the first window is in
            # none): a build of some days runs it whole (engine/build.py), as here.
            merge = model.contract.write_mode == "merge"
            runs[ref.name] = run_model(lake, model, *(ALL_TIME if merge else (start, end)))
    assert set(MINE) <= set(runs)
    return runs


def assert_clean(runs: dict[str, ModelRun]) -> None:
    """Every check of every model passed and nothing went to quarantine."""
    for name, run in runs.items():
        failed = [(c.check_name, c.failed, c.detail) for c in run.checks if not c.passed]
        assert not failed and run.quarantined == 0, (name, failed, run.quarantined)


def snapshot(lake: Lake) -> dict[str, list[dict[str, Any]]]:
    refs = [TableRef("silver", name) for name in MINE]
    return {ref.name: lake.query(f"SELECT * FROM {ref} ORDER BY ALL", [ref]).to_pylist() for ref in refs}


# -- what the truth says each table holds ---------------------------------------------------------
def expected(truth: Truth, channel: str, updated: dict[str, datetime] | None = None) -> dict[str, dict[str, Any]]:
    """Per conformed table, key -> columns, as the channel's server showed each order at its clock.

    ``updated`` overrides the change time of orders a test touched again (a late update it injected).
    """
    clock = default_clock(truth)
    timeline = Timeline(truth)
    masker = PiiMasker(HMAC_KEY)
    tables: dict[str, dict[str, Any]] = {name: {} for name in KEYS}
    for order in timeline.by_channel[channel]:
        state = timeline.state(order, clock)
        assert state is not None
        key = f"{channel}:{order.channel_order_id}"
        version = (updated or {}).get(key, state.updated_at)
        customer = timeline.customers[order.customer_id or ""]
        tables["orders"][key] = {
            "channel": channel,
            "channel_order_id": order.channel_order_id,
            "customer_token": masker.token("email", customer.email),
            "order_ts": order.created_at,
            "order_date": order.created_at.date(),
            "updated_ts": version,
            **order_amounts(order),
        }
        for line in order.lines:
            tables["order_lines"][f"{channel}:{line.line_id}"] = {
                "order_key": key,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "gross": line.unit_price * line.quantity,
                "discount": line.discount,
                "tax": line.tax,
                "tax_rate": line.tax_rate,
                "currency": order.currency,
                "order_ts": order.created_at,
                "updated_ts": version,
            }
        for refund in state.refunds:
            line = next(x for x in order.lines if x.line_no == refund.line_no)
            if channel == "ebay":
                refund_key, named = f"ebay:{refund.channel_refund_id}", line
            else:
                # Etsy names no line: the model names the one line worth, tax included, what went back.
                paid_back = refund.amount + refund.tax
                worth = [x for x in order.lines if x.unit_price * x.quantity - x.discount + x.tax == paid_back]
                refund_key = f"etsy:{order.channel_order_id}/{int(refund.created_at.timestamp())}"
                named = worth[0] if len(worth) == 1 else None
            tables["refunds"][refund_key] = {
                "order_key": key,
                "line_key": f"{channel}:{named.line_id}" if named else None,
                "quantity": refund.quantity if named else None,
                "refund_ts": refund.created_at,
                "refund_date": refund.created_at.date(),
                "amount": refund.amount,
                "tax": refund.tax,
                "currency": order.currency,
                "updated_ts": version,
            }
        for f in state.fulfillments:
            ebay = channel == "ebay"
            fulfillment_key = (
                f"ebay:{order.channel_order_id}/{f.channel_fulfillment_id}"
                if ebay
                else (f"etsy:{f.channel_fulfillment_id}")
            )
            tables["fulfillments"][fulfillment_key] = {
                "order_key": key,
                "shipped_ts": f.shipped_at,
                "shipped_date": f.shipped_at.date(),
                "delivered_ts": None,  # neither channel reports delivery
                "carrier": carrier_code(f.carrier) if ebay else f.carrier,
                "tracking_number": f.tracking_number,
                "updated_ts": f.shipped_at if ebay else version,
            }
    return tables


def expected_listings(truth: Truth) -> dict[str, dict[str, Any]]:
    """Each Etsy listing as the shop showed it at the clock: stock from the inventory movements."""
    clock = default_clock(truth)
    products = {p.product_id: p for p in truth["products"] if "etsy" in p.channels and p.acquired_at <= clock}
    last = {}
    for move in sorted(truth["inventory_movements"], key=lambda m: (m.at, m.movement_id)):
        if move.product_id in products and move.at <= clock:
            last[move.product_id] = move
    return {
        f"etsy:{p.etsy_listing_id}": {
            "sku": p.sku,
            "price": p.list_price,
            "currency": "EUR",
            "quantity": last[pid].on_hand_after,
            "state": "active" if last[pid].on_hand_after > 0 else "sold_out",
            "updated_ts": last[pid].at,
        }
        for pid, p in products.items()
    }


def actual(lake: Lake, channel: str, table: str, like: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rows of ``stg_<channel>_<table>`` with the columns the expectation names, by key (keys unique)."""
    key = KEYS.get(table, "listing_key")
    ref = TableRef("silver", f"stg_{channel}_{table}")
    rows = lake.query(f"SELECT * FROM {ref}", [ref]).to_pylist()
    found = {row[key]: row for row in rows}
    assert len(found) == len(rows), f"stg_{channel}_{table}: duplicate keys"
    columns = next(iter(like.values())).keys() if like else ()
    return {k: {c: row[c] for c in columns} for k, row in found.items()}


def assert_reconciles(lake: Lake, truth: Truth, updated: dict[str, datetime] | None = None) -> None:
    for channel in ("ebay", "etsy"):
        want = expected(truth, channel, updated)
        for table, rows in want.items():
            assert rows or table == "refunds", f"the truth has no {channel} {table}: the test would prove nothing"
            assert actual(lake, channel, table, rows) == rows, f"stg_{channel}_{table}"
    listings = expected_listings(truth)
    assert len(listings) == etsy_counts(truth)["etsy_listings"]
    assert actual(lake, "etsy", "listings", listings) == listings


# -- the session's small faulty business ---------------------------------------------------------
@pytest.fixture(scope="module")
def built(bronze_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Lake]:
    """The session lake copied once and built in full; tests that change it copy it again."""
    truth, lake = bronze_lake
    copy = copy_lake(lake, tmp_path_factory.mktemp("marketplaces") / "lake")
    assert_clean(build(copy))
    return truth, copy


def test_every_order_line_refund_fulfillment_and_listing_reconciles(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    assert_reconciles(lake, truth)
    # The session's business has a few marketplace refunds (which channel's depends on the seed's draws); the rich
    # lake below covers both channels' for certain.
    refunds = sum(lake.count(TableRef("silver", f"stg_{channel}_refunds")) for channel in ("ebay", "etsy"))
    assert refunds >= 1


def test_lines_refunds_and_fulfillments_belong_to_orders(built: tuple[Truth, Lake]) -> None:
    _, lake = built
    for channel in ("ebay", "etsy"):
        orders = TableRef("silver", f"stg_{channel}_orders")
        for table in ("order_lines", "refunds", "fulfillments"):
            refs = [orders, TableRef("silver", f"stg_{channel}_{table}")]
            orphans = lake.query(
                f"SELECT count(*) AS n FROM silver.stg_{channel}_{table} t "
                f"ANTI JOIN silver.stg_{channel}_orders o USING (order_key)",
                refs,
            ).to_pylist()[0]["n"]
            assert orphans == 0, f"stg_{channel}_{table}"
        # An order's lines add up to it: line values to the subtotal, line tax to at most the order's tax
        # (the rest is tax on shipping).
        off = lake.query(
            f"SELECT o.order_key FROM silver.stg_{channel}_orders o "
            f"JOIN silver.stg_{channel}_order_lines l USING (order_key) "
            "GROUP BY o.order_key, o.subtotal, o.discount, o.tax "
            "HAVING sum(l.gross) <> o.subtotal OR sum(l.discount) <> o.discount OR sum(l.tax) > o.tax",
            [orders, TableRef("silver", f"stg_{channel}_order_lines")],
        ).to_pylist()
        assert off == [], channel


def test_rebuild_and_narrow_incremental_runs_change_nothing(built: tuple[Truth, Lake], tmp_path: Path) -> None:
    truth, source = built
    lake = copy_lake(source, tmp_path / "lake")
    before = snapshot(lake)
    assert_clean(build(lake))
    assert snapshot(lake) == before
    # Two days in the middle of the business: what they read is older than or the same as what is there.
    day = truth.start + timedelta(days=9)
    runs = build(lake, day, day + timedelta(days=1))
    assert_clean(runs)
    assert runs["stg_ebay_orders"].rows and runs["stg_etsy_orders"].rows, "the window read nothing"
    assert snapshot(lake) == before


def land(lake: Lake, source: type[Source], entity: str, records: list[RawRecord]) -> None:
    """Through the real landing path: keys, change times, hashes, malformed records flagged."""
    writer = BronzeWriter(
        lake, PiiMasker(HMAC_KEY), source.name, next(e for e in source.entities if e.name == entity), "test/faults"
    )
    for record in records:
        writer.add(record)
    writer.flush()


def bronze_raw(lake: Lake, table: str, key: str) -> dict[str, Any]:
    rows = lake.query(
        f"SELECT raw FROM bronze.{table} WHERE record_key = $key AND error IS NULL "
        "ORDER BY record_updated_at DESC LIMIT 1",
        [TableRef("bronze", table)],
        params={"key": key},
    ).to_pylist()
    return json.loads(rows[0]["raw"])


def test_late_updates_stale_malformed_drifted_and_duplicate_copies_change_no_number(
    bronze_lake: tuple[Truth, Lake], lake_copy: Lake
) -> None:
    truth, _ = bronze_lake
    timeline = Timeline(truth)
    ebay, etsy = timeline.by_channel["ebay"], timeline.by_channel["etsy"]
    refunded = {r.order_id for r in truth["refunds"]}
    # A refunded order touched again late when the business has one on eBay (which it has depends on the seed's
    # draws), else the first eBay order: either way one that no other case below uses.
    late_ebay = next((o for o in ebay if o.order_id in refunded), ebay[0])
    late_etsy = etsy[0]
    stale_ebay, broken_ebay, drift_ebay = [
        o for o in ebay if o is not late_ebay and o.order_id not in refunded and o.updated_at > o.created_at
    ][:3]
    stale_etsy, broken_etsy, drift_etsy = [o for o in etsy[1:] if o.updated_at > o.created_at][:3]
    updated: dict[str, datetime] = {}

    def ebay_copy(order_id: str, **changes: Any) -> dict[str, Any]:
        raw = bronze_raw(lake_copy, "ebay_orders", order_id)
        raw.update(changes)
        return raw

    later = late_ebay.updated_at + timedelta(days=40)
    records = [
        # A late update: the same order touched again (a note), every number the same.
        RawRecord(ebay_copy(late_ebay.channel_order_id, lastModifiedDate=f"{later:%Y-%m-%dT%H:%M:%S}.000Z"), "t"),
        # An old version arriving after the new one: it must not win.
        RawRecord(
            ebay_copy(
                stale_ebay.channel_order_id,
                lastModifiedDate=f"{stale_ebay.created_at:%Y-%m-%dT%H:%M:%S}.000Z",
                pricingSummary={
                    "priceSubtotal": {"value": "1.00", "currency": stale_ebay.currency},
                    "total": {"value": "1.00", "currency": stale_ebay.currency},
                },
                fulfillmentHrefs=[],
            ),
            "t",
        ),
        # A broken copy, with a change time that does not parse and numbers that are wrong.
        RawRecord(ebay_copy(broken_ebay.channel_order_id, lastModifiedDate="not-a-date", lineItems=[]), "t"),
        # The same order again, exactly as already landed.
        RawRecord(ebay_copy(broken_ebay.channel_order_id), "t"),
    ]
    updated[f"ebay:{late_ebay.channel_order_id}"] = later
    drifted = ebay_copy(drift_ebay.channel_order_id, orderRiskLevel="LOW")
    drifted.pop("legacyOrderId")
    drift_at = drift_ebay.updated_at + timedelta(seconds=1)
    drifted["lastModifiedDate"] = f"{drift_at:%Y-%m-%dT%H:%M:%S}.000Z"
    records.append(RawRecord(drifted, "t"))
    updated[f"ebay:{drift_ebay.channel_order_id}"] = drift_at
    land(lake_copy, EbaySource, "orders", records)

    def etsy_copy(order_id: str, **changes: Any) -> dict[str, Any]:
        raw = bronze_raw(lake_copy, "etsy_receipts", order_id)
        raw.update(changes)
        return raw

    late_at = late_etsy.updated_at + timedelta(days=40)
    stale = etsy_copy(stale_etsy.channel_order_id, updated_timestamp=int(stale_etsy.created_at.timestamp()))
    stale["grandtotal"] = {**stale["grandtotal"], "amount": 100}
    stale["transactions"][0]["price"] = {**stale["transactions"][0]["price"], "amount": 100}
    stale["shipments"] = []
    drifted = etsy_copy(drift_etsy.channel_order_id, updated_timestamp=int(drift_etsy.updated_at.timestamp()) + 1)
    drifted.pop("created_timestamp")
    drifted.pop("gift_wrap_price")
    drifted["expected_ship_timestamp"] = drifted["create_timestamp"] + 3 * 86_400
    land(
        lake_copy,
        EtsySource,
        "receipts",
        [
            RawRecord(etsy_copy(late_etsy.channel_order_id, updated_timestamp=int(late_at.timestamp())), "t"),
            RawRecord(stale, "t"),
            RawRecord(etsy_copy(broken_etsy.channel_order_id, updated_timestamp="soon", transactions=[]), "t"),
            RawRecord(drifted, "t"),
        ],
    )
    updated[f"etsy:{late_etsy.channel_order_id}"] = late_at
    updated[f"etsy:{drift_etsy.channel_order_id}"] = drift_etsy.updated_at + timedelta(seconds=1)
    landed = lake_copy.query(
        "SELECT count(*) FILTER (WHERE batch_id = 'test/faults') AS n, "
        "count(*) FILTER (WHERE batch_id = 'test/faults' AND error IS NOT NULL) AS bad FROM bronze.ebay_orders",
        [TableRef("bronze", "ebay_orders")],
    ).to_pylist()[0]
    assert (landed["n"], landed["bad"]) == (4, 1), "the duplicate lands nothing, the broken copy lands as malformed"

    assert_clean(build(lake_copy))
    assert_reconciles(lake_copy, truth, updated)


def test_every_model_transpiles_to_spark() -> None:
    silver = {ref.name: model for ref, model in load_models().items() if ref.layer == "silver"}
    for name in MINE:
        spark = silver[name].spark_sql()
        sqlglot.parse_one(spark, read="spark")  # and Spark's dialect reads it back
        assert "bronze." in spark or name == "tax_rates"  # the one configuration table reads nothing


# -- a richer history: several versions per order, more refunds and faults -------------------------
@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Lake]:
    """Six weeks of eBay and Etsy, ingested at mid-term and at the end (each run landing what changed)."""
    root = tmp_path_factory.mktemp("rich")
    truth = simulate(RICH)
    start = datetime.combine(RICH.start, time(), UTC)
    clocks = (start + timedelta(days=RICH.days // 2), default_clock(truth))
    with (
        EbayServer(truth, {"access_token": "ebay-token"}, faults=RICH.faults, seed=RICH.seed) as ebay,
        EtsyServer(
            truth, {"api_key": "etsy-key", "access_token": "etsy-token"}, faults=RICH.faults, seed=RICH.seed, qps=10_000
        ) as etsy,
    ):
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            lake_uri=str(root / "lake"),
            landing_dir=root / "landing",
            pii_hmac_key=HMAC_KEY,
            pii_vault_key=VAULT_KEY,
            ebay={"base_url": ebay.url, "access_token": "ebay-token"},
            etsy={
                "base_url": etsy.url,
                "api_key": "etsy-key",
                "access_token": "etsy-token",
                "requests_per_second": 10_000,
            },
        )
        since = start - timedelta(days=1)
        for clock in clocks:
            ebay.clock = etsy.clock = clock
            runs = run_ingest(settings, Lake(root / "lake"), ["ebay", "etsy"], since=since, until=clock)
            assert all(r.status == "success" for r in runs), [r.error for r in runs]
            since = clock - timedelta(hours=1)
    return truth, Lake(root / "lake")


def test_rich_history_built_window_by_window_reconciles(rich: tuple[Truth, Lake], tmp_path: Path) -> None:
    truth, bronze = rich
    kinds = {(f.source, f.kind) for f in truth["faults"]}
    for channel in ("ebay", "etsy"):
        assert {(channel, k) for k in ("duplicate", "malformed", "schema_drift", "late_update")} <= kinds
    versions = bronze.query(
        "SELECT count(*) - count(DISTINCT record_key) AS n FROM bronze.ebay_orders WHERE error IS NULL",
        [TableRef("bronze", "ebay_orders")],
    ).to_pylist()[0]["n"]
    assert versions > 0, "no order has two versions in bronze"

    # Three weeks at a time, each run reading only the bronze partitions of its window (the first creates the
    # tables, the second replaces the versions it finds newer): the result is the truth, as a full build's is.
    lake = copy_lake(bronze, tmp_path / "lake")
    first = RICH.start
    while first <= truth.end:
        last = min(first + timedelta(days=20), truth.end)
        assert_clean(build(lake, first, last))
        first = last + timedelta(days=1)
    assert_reconciles(lake, truth)
    # Every refund reconciled above, record by record; both channels have some (how many is the seed's draws).
    for channel in ("ebay", "etsy"):
        assert lake.count(TableRef("silver", f"stg_{channel}_refunds")) >= 1
    refunds = lake.query(
        "SELECT count(*) FILTER (WHERE line_key IS NOT NULL) AS named, count(*) FILTER (WHERE currency = 'JPY') AS yen "
        "FROM silver.stg_etsy_refunds",
        [TableRef("silver", "stg_etsy_refunds")],
    ).to_pylist()[0]
    # Yen has no minor unit: however many yen refunds the seed's draws made, each is there.
    orders = {o.order_id: o for o in truth["orders"]}
    yen = sum(
        1 for r in truth["refunds"] if orders[r.order_id].channel == "etsy" and orders[r.order_id].currency == "JPY"
    )
    assert refunds["named"] > 0 and refunds["yen"] == yen
    # Etsy orders in yen (no minor unit) are among the orders reconciled above.
    assert any(o.channel == "etsy" and o.currency == "JPY" for o in orders.values())


# The conformed interface (docs/silver.md) every channel's staging model provides, with its types.
MONEY = "decimal128(18, 2)"
TS = "timestamp[us, tz=Etc/UTC]"
INTERFACE = {
    "orders": {
        **dict.fromkeys(("order_key", "channel", "channel_order_id", "store_id", "customer_token"), "string"),
        **dict.fromkeys(("currency", "tax_party", "tax_country", "tax_region", "ship_country"), "string"),
        **dict.fromkeys(("discount_code", "session_id", "campaign"), "string"),
        **dict.fromkeys(("order_ts", "updated_ts", "ship_by_ts"), TS),
        **dict.fromkeys(("subtotal", "discount", "shipping", "tax", "total"), MONEY),
        "order_date": "date32[day]",
    },
    "order_lines": {
        **dict.fromkeys(("line_key", "order_key", "channel", "sku", "currency"), "string"),
        **dict.fromkeys(("unit_price", "gross", "discount", "tax"), MONEY),
        **dict.fromkeys(("order_ts", "updated_ts"), TS),
        "quantity": "int32",
        "tax_rate": "decimal128(18, 6)",
        "order_date": "date32[day]",
    },
    "refunds": {
        **dict.fromkeys(("refund_key", "order_key", "line_key", "channel", "currency"), "string"),
        **dict.fromkeys(("refund_ts", "updated_ts"), TS),
        **dict.fromkeys(("amount", "tax"), MONEY),
        "quantity": "int32",
        "refund_date": "date32[day]",
    },
    "fulfillments": {
        **dict.fromkeys(("fulfillment_key", "order_key", "channel", "carrier", "tracking_number"), "string"),
        **dict.fromkeys(("shipped_ts", "delivered_ts", "updated_ts"), TS),
        "shipped_date": "date32[day]",
    },
}


def test_columns_and_types_follow_the_conformed_interface(built: tuple[Truth, Lake]) -> None:
    _, lake = built
    for channel in ("ebay", "etsy"):
        for table, columns in INTERFACE.items():
            ref = TableRef("silver", f"stg_{channel}_{table}")
            contract = next(m for r, m in models().items() if r == ref).contract
            # Beyond the interface, a model fed from bronze names the record each row comes from (its lineage).
            lineage = {source.lineage for source in contract.sources}
            schema = lake.query(f"SELECT * FROM {ref} LIMIT 0", [ref]).schema
            assert {f.name: str(f.type) for f in schema if f.name not in lineage} == columns, str(ref)
            assert set(contract.columns) == set(columns) | lineage, f"{ref}: every column has a description"
