"""Shopify staging models against the simulator's truth, to the cent.

Two lakes: the session's faulty business (every source, one ingest at the end of the period), and a longer,
faultier Shopify-only business ingested twice (at mid-period, then incrementally at the end), so that bronze
holds stale versions, late updates, refunds and deliveries that arrived after the first read.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlglot

from retreasure.bronze.ingest import run_ingest
from retreasure.bronze.pii import PiiMasker
from retreasure.contracts.model import Contract
from retreasure.engine.models import MODELS_DIR, Model
from retreasure.engine.runner import ModelRun, run_model
from retreasure.lake import Lake, TableRef
from retreasure.settings import Settings
from retreasure_sim.business import simulate
from retreasure_sim.config import Faults, SimConfig
from retreasure_sim.model import Truth
from retreasure_sim.servers.shopify import ShopifyServer, default_clock, shopify_orders, shopify_products
from retreasure_sim.timeline import Timeline
from tests.conftest import HMAC_KEY, SMALL, VAULT_KEY
from tests.helpers import copy_lake, order_amounts, ordered_rows

ORDER_MODELS = ("stg_shopify_orders", "stg_shopify_order_lines", "stg_shopify_refunds", "stg_shopify_fulfillments")
DIMENSIONS = ("stg_shopify_products", "stg_shopify_customers", "stg_shopify_inventory_levels")
MODELS = ORDER_MODELS + DIMENSIONS
KEYS = {
    "stg_shopify_orders": "order_key",
    "stg_shopify_order_lines": "line_key",
    "stg_shopify_refunds": "refund_key",
    "stg_shopify_fulfillments": "fulfillment_key",
    "stg_shopify_products": "product_key",
    "stg_shopify_customers": "customer_key",
    "stg_shopify_inventory_levels": "sku",
}
TOKEN = "shpat_silver_history"
# Sixty days in which a third of the Shopify orders are sent twice, broken, drifted or touched again later.
HISTORY = SimConfig(SMALL.seed, SMALL.start, 60, 0.3, Faults(0.3, 0.3, 0.2, 0.3))


# -- building ------------------------------------------------------------------------------------


def models() -> dict[str, Model]:
    """fx_rates and the Shopify models, read as ``load_models`` reads them; none reads another, so any order does.

    Only these files are loaded, so that a half-written model of another channel cannot fail these tests.
    """
    found = {}
    for name in ("fx_rates", *MODELS):
        sql = MODELS_DIR / "silver" / f"{name}.sql"
        found[name] = Model(TableRef("silver", name), sql, sql.read_text(), Contract.load(sql.with_suffix(".yml")))
    return found


def build(
    lake: Lake, names: tuple[str, ...] = MODELS, start: date | None = None, end: date | None = None
) -> dict[str, ModelRun]:
    """Run the models in order (the whole of time unless a window is given); every check must pass."""
    runs = {}
    for name, model in models().items():
        if name in names:
            run = run_model(lake, model, start, end) if start and end else run_model(lake, model)
            assert not run.blocked, (name, [(c.check_name, c.detail) for c in run.checks if not c.passed])
            assert run.quarantined == 0, name
            runs[name] = run
    return runs


def table(lake: Lake, name: str) -> list[dict[str, Any]]:
    return ordered_rows(lake, TableRef("silver", name), KEYS[name])


def snapshot(lake: Lake) -> dict[str, list[dict[str, Any]]]:
    return {name: table(lake, name) for name in MODELS}


# -- the truth as Shopify shows it at a moment -----------------------------------------------------


def expected(truth: Truth, clock: datetime) -> dict[str, dict[str, dict[str, Any]]]:
    """Every row each model must hold, by key, with the columns that must equal the truth."""
    masker = PiiMasker(HMAC_KEY)
    timeline = Timeline(truth)
    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in MODELS}
    buyers: dict[str, list[datetime]] = defaultdict(list)
    for o in shopify_orders(truth, clock):
        state = timeline.state(o, clock)
        assert state is not None
        customer = timeline.customers[o.customer_id or ""]
        buyers[o.customer_id or ""].append(o.created_at)
        key = f"shopify:{o.channel_order_id}"
        out["stg_shopify_orders"][key] = {
            "channel_order_id": o.channel_order_id,
            "customer_token": masker.token("email", customer.email),
            "order_ts": o.created_at,
            "order_date": o.created_at.date(),
            "updated_ts": state.updated_at,
            **order_amounts(o),
            "discount_code": o.discount_code,
            "session_id": o.session_id,
            "campaign": o.campaign,
        }
        for line in o.lines:
            out["stg_shopify_order_lines"][f"shopify:{line.line_id}"] = {
                "order_key": key,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "gross": line.unit_price * line.quantity,
                "discount": line.discount,
                "tax": line.tax,
                "tax_rate": line.tax_rate,
                "currency": o.currency,
                "order_date": o.created_at.date(),
                "updated_ts": state.updated_at,
            }
        lines = {line.line_no: line for line in o.lines}
        for r in state.refunds:
            line_id = lines[r.line_no].line_id
            out["stg_shopify_refunds"][f"shopify:{r.channel_refund_id}/{line_id}"] = {
                "order_key": key,
                "line_key": f"shopify:{line_id}",
                "refund_ts": r.created_at,
                "refund_date": r.created_at.date(),
                "quantity": r.quantity,
                "amount": r.amount,
                "tax": r.tax,
                "currency": o.currency,
            }
        for f in state.fulfillments:
            delivered = state.delivered.get(f.fulfillment_id)
            out["stg_shopify_fulfillments"][f"shopify:{f.channel_fulfillment_id}"] = {
                "order_key": key,
                "shipped_ts": f.shipped_at,
                "shipped_date": f.shipped_at.date(),
                "delivered_ts": delivered,
                "carrier": f.carrier,
                "tracking_number": f.tracking_number,
                "updated_ts": delivered or f.shipped_at,
            }
    on_hand: dict[str, int] = defaultdict(int)
    for move in truth["inventory_movements"]:
        if move.at <= clock:
            on_hand[move.product_id] += move.change
    for p in shopify_products(truth, clock):
        out["stg_shopify_products"][p.sku] = {
            "shopify_product_id": str(p.shopify_product_id),
            "shopify_variant_id": str(p.shopify_variant_id),
            "title": p.title,
            "category": p.category,
            "era": p.era,
            "material": p.material,
            "condition": p.condition,
            "price": p.list_price,
            "currency": "EUR",
            "status": "ACTIVE" if on_hand[p.product_id] > 0 else "ARCHIVED",
            "created_ts": p.acquired_at,
        }
        out["stg_shopify_inventory_levels"][p.sku] = {"location_name": "Warehouse", "available": on_hand[p.product_id]}
    for customer_id, placed in buyers.items():
        c = timeline.customers[customer_id]
        out["stg_shopify_customers"][f"shopify:{c.shopify_customer_id}"] = {
            "channel_customer_id": str(c.shopify_customer_id),
            "customer_token": masker.token("email", c.email),
            "country": c.country,
            "city": c.city,
            "accepts_marketing": c.accepts_marketing,
            "orders_count": len(placed),
            "created_ts": min(placed),
            "updated_ts": max(placed),
        }
    return out


def assert_reconciles(lake: Lake, truth: Truth, clock: datetime, names: tuple[str, ...] = MODELS) -> dict[str, int]:
    """Each model holds exactly the truth's rows with exactly its values; returns the row count of each."""
    want = expected(truth, clock)
    for name in names:
        got = {}
        for row in table(lake, name):
            key = row[KEYS[name]]
            assert key not in got, f"{name}: {key} twice"
            got[key] = {column: row[column] for column in next(iter(want[name].values()), {})}
        assert set(got) == set(want[name]), f"{name}: keys differ"
        wrong = {key: (got[key], row) for key, row in want[name].items() if got[key] != row}
        assert not wrong, f"{name}: {len(wrong)} rows differ from the truth, e.g. {next(iter(wrong.items()))}"
    return {name: len(rows) for name, rows in want.items()}


# -- the session's faulty business ---------------------------------------------------------------


@pytest.fixture(scope="module")
def built(bronze_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Lake]:
    """The session's lake, copied, with fx_rates and every Shopify staging model built over all of time."""
    truth, source = bronze_lake
    lake = copy_lake(Path(source.uri), tmp_path_factory.mktemp("silver_shopify") / "lake")
    build(lake, ("fx_rates", *MODELS))
    return truth, lake


def test_every_model_equals_the_truth(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    counts = assert_reconciles(lake, truth, default_clock(truth))
    # This business refunds nothing in three weeks; the history below reconciles refunds.
    assert min(counts[n] for n in MODELS if n != "stg_shopify_refunds") > 0


def test_faults_in_bronze_do_not_reach_silver(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    bronze = TableRef("bronze", "shopify_orders")
    drifted = lake.query(
        f"SELECT DISTINCT json_extract_string(raw, '$.legacyResourceId') AS id FROM {bronze} "
        "WHERE error IS NULL AND json_exists(raw, '$.channelInformationV2') AND NOT json_exists(raw, '$.phone')",
        [bronze],
    ).column("id")
    faults = {(f.kind, f.record_key) for f in truth["faults"] if f.source == "shopify"}
    assert {("schema_drift", i) for i in drifted.to_pylist()} == {f for f in faults if f[0] == "schema_drift"} != set()
    broken = lake.query(f"SELECT count(*) AS n FROM {bronze} WHERE error IS NOT NULL", [bronze]).to_pylist()[0]["n"]
    assert broken == sum(1 for kind, _ in faults if kind == "malformed") > 0
    orders = {row["channel_order_id"]: row for row in table(lake, "stg_shopify_orders")}
    assert set(drifted.to_pylist()) <= set(orders), "drifted orders are read like any other"


def test_dates_are_utc_whatever_the_session_time_zone(built: tuple[Truth, Lake]) -> None:
    truth, lake = built
    placed = {o.channel_order_id: o.created_at for o in shopify_orders(truth, default_clock(truth))}
    dated = {
        "stg_shopify_orders": ("order_ts", "order_date"),
        "stg_shopify_order_lines": ("order_ts", "order_date"),
        "stg_shopify_fulfillments": ("shipped_ts", "shipped_date"),
    }
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):  # UTC+14 and UTC-11: most orders change day
        shifted = {i for i, at in placed.items() if at.astimezone(ZoneInfo(zone)).date() != at.date()}
        assert shifted, f"some orders fall on another day in {zone}, or this proves nothing"
        for name, (ts, day) in dated.items():
            model = models()[name]
            con = lake.connect(model.inputs)
            try:
                con.execute(f"SET TimeZone = '{zone}'")
                rows = con.execute(model.render()).fetch_arrow_table().to_pylist()
            finally:
                con.close()
            assert rows and all(r[day] == r[ts].astimezone(UTC).date() for r in rows), (zone, name)
            if name == "stg_shopify_orders":
                assert {r["channel_order_id"]: r[ts] for r in rows} == placed


def test_every_model_transpiles_to_spark() -> None:
    for name in MODELS:
        model = models()[name]
        spark = model.spark_sql()
        assert "@" not in spark and "unnest" not in spark.lower(), name
        sqlglot.parse_one(spark, read="spark")
        assert {str(ref) for ref in model.inputs} <= {
            "bronze.shopify_orders",
            "bronze.shopify_products",
            "bronze.shopify_customers",
            "bronze.shopify_inventory_levels",
        }, name


# -- a longer business, read twice ---------------------------------------------------------------


@dataclass(frozen=True)
class History:
    truth: Truth
    mid: datetime  # the first read's clock
    end: datetime  # the second read's clock
    at_mid: Path  # the lake as the first read left it
    at_end: Path  # the lake after the second, incremental read
    built: Path  # a copy of ``at_end`` with every model built over all of time


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    truth = simulate(HISTORY)
    root = tmp_path_factory.mktemp("shopify_history")
    mid = datetime.combine(truth.start + timedelta(days=30), datetime.min.time(), UTC)
    end = default_clock(truth)
    server = ShopifyServer(truth, {"access_token": TOKEN}, HISTORY.faults, HISTORY.seed, clock=mid, restore_rate=1e6)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        lake_uri=str(root / "lake"),
        landing_dir=root / "landing",
        pii_hmac_key=HMAC_KEY,
        pii_vault_key=VAULT_KEY,
        shopify={"base_url": server.start().url, "access_token": TOKEN},
    )
    try:
        lake = Lake.from_settings(settings)
        first = run_ingest(settings, lake, sources=["shopify"], until=mid)
        shutil.copytree(root / "lake", root / "mid")
        server.clock = end
        second = run_ingest(settings, lake, sources=["shopify"])  # from the watermark less the lookback
    finally:
        server.stop()
    assert all(r.status == "success" for r in first + second)
    build(copy_lake(root / "lake", root / "built"))
    return History(truth, mid, end, root / "mid", root / "lake", root / "built")


def test_history_equals_the_truth_at_the_end(history: History) -> None:
    counts = assert_reconciles(Lake(history.built), history.truth, history.end)
    assert counts["stg_shopify_refunds"] > 0 and counts["stg_shopify_fulfillments"] > 0
    kinds: dict[str, set[str]] = defaultdict(set)
    for f in history.truth["faults"]:
        if f.source == "shopify" and (f.kind != "late_update" or datetime.fromisoformat(f.detail) <= history.end):
            kinds[f.kind].add(f.record_key)
    assert all(kinds[k] for k in ("duplicate", "late_update", "malformed", "schema_drift")), "every fault is here"
    bronze = TableRef("bronze", "shopify_orders")
    versions = Lake(history.built).query(
        f"SELECT record_key FROM {bronze} WHERE error IS NULL GROUP BY 1 HAVING count(*) > 1", [bronze]
    )
    assert versions.num_rows > 0, "bronze must hold older versions for newest-wins to be tested"


def test_incremental_run_catches_up_with_the_end(history: History, tmp_path: Path) -> None:
    early = copy_lake(history.at_mid, tmp_path / "mid")
    build(early, ORDER_MODELS)
    assert_reconciles(early, history.truth, history.mid, ORDER_MODELS)
    lake = copy_lake(history.at_end, tmp_path / "end")
    shutil.copytree(tmp_path / "mid" / "silver", tmp_path / "end" / "silver")
    # The dimensions rebuild whole on any run; the order models must merge the window into what is there.
    runs = build(lake, ORDER_MODELS, start=history.mid.date(), end=history.end.date())
    assert runs["stg_shopify_orders"].rows < len(shopify_orders(history.truth, history.end)), "only the window"
    assert_reconciles(lake, history.truth, history.end, ORDER_MODELS)


def test_rerun_and_narrow_window_change_nothing(history: History, tmp_path: Path) -> None:
    lake = copy_lake(history.built, tmp_path / "lake")
    before = snapshot(lake)
    # The dimensions ignore the window, so the narrow run below rebuilds them whole as well.
    build(lake, ORDER_MODELS)
    assert snapshot(lake) == before, "a rebuild gives the same rows"

    start, stop = history.mid.date() - timedelta(days=3), history.mid.date() - timedelta(days=2)
    bronze = TableRef("bronze", "shopify_orders")
    stale = lake.query(
        f"SELECT count(DISTINCT record_key) AS n FROM {bronze} w WHERE error IS NULL "
        f"AND partition_date BETWEEN DATE '{start - timedelta(days=1)}' AND DATE '{stop}' AND EXISTS ("
        f"SELECT 1 FROM {bronze} b WHERE b.record_key = w.record_key AND b.record_updated_at > w.record_updated_at)",
        [bronze],
    ).to_pylist()[0]["n"]
    assert stale > 0, "the window must hold versions older than the newest, or this proves nothing"
    runs = build(lake, start=start, end=stop)
    assert runs["stg_shopify_orders"].rows > 0 and runs["stg_shopify_order_lines"].rows > 0
    assert snapshot(lake) == before, "re-reading a past window leaves every table as it was"
