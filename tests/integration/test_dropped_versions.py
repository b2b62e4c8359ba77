"""A key whose newest version breaks a row rule leaves an upsert's or a merge's table (the version held in quarantine
with its reason) until a newer good version lands, whichever way the table was built: a window's run that reads
the new version alone takes out the older row the table held, as a build over all of time, which sees every
version, leaves the key out. An older version that breaks a rule changes nothing. Real Delta tables, the real
runner (the Spark engine's MERGE runs the same case in test_spark_parity)."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from retreasure.contracts.model import Contract
from retreasure.engine.build import build_incremental, build_models
from retreasure.engine.models import Model
from retreasure.engine.runner import DUCKDB, DuckDBEngine, ModelEngine, run_model
from retreasure.lake import Lake, TableRef
from retreasure.quality.checks import quarantine_of
from retreasure_sim.model import Truth
from tests.helpers import copy_lake, rows_without

VERSIONS = TableRef("silver", "price_versions")  # stands in for bronze: every version of every SKU, by landing day
PRICES = TableRef("silver", "prices")
D1, D2, D3, D4 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3), date(2025, 3, 4)
SHELF_A, SHELF_B = date(2025, 2, 1), date(2025, 2, 2)  # the day a SKU was listed: an upsert's partition
SQL = "SELECT sku, price, updated, listed FROM silver.price_versions WHERE landed BETWEEN @start_date AND @end_date"
CONTRACT = {
    "description": "The newest price of each SKU.",
    "grain": "One row per SKU.",
    "keys": ["sku"],
    "version_column": "updated",
    "checks": [{"check": "not_null", "columns": ["price"]}, {"check": "unique", "columns": ["sku"]}],
}
MODES = {"merge": {"write_mode": "merge"}, "upsert": {"write_mode": "upsert", "partition_by": "listed"}}

# (sku, price, updated, listed, landed); a NULL price breaks the not_null rule.
FIRST = [("a", 1.0, 1, SHELF_A, D1), ("b", 2.0, 1, SHELF_B, D1), ("c", 3.0, 1, SHELF_B, D1)]
SECOND = [
    ("a", None, 2, SHELF_A, D2),  # newer and broken: a leaves (its listing day empties)
    ("b", None, 0, SHELF_B, D2),  # older and broken: b keeps its price
    ("c", 4.0, 2, SHELF_B, D2),
    ("d", None, 1, SHELF_B, D2),  # a new SKU, broken: never in the table
]
THIRD = [("a", 5.0, 3, SHELF_A, D3)]  # a's good version at last
FOURTH = [("c", None, 3, SHELF_B, D4)]  # a window whose only version is broken


def _model(mode: str, folder: Path) -> Model:
    return Model(PRICES, folder / "prices.sql", SQL, Contract.model_validate(CONTRACT | MODES[mode]))


def _land(lake: Lake, rows: list[tuple[str, float | None, int, date, date]]) -> None:
    types = {"sku": pa.string(), "price": pa.float64(), "updated": pa.int64(), "listed": pa.date32()}
    schema = pa.schema([*types.items(), ("landed", pa.date32())])
    lake.overwrite(VERSIONS, pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema))


def _prices(lake: Lake) -> list[tuple[str, float, int]]:
    rows = lake.query(f"SELECT sku, price, updated FROM {PRICES} ORDER BY sku", [PRICES]).to_pylist()
    return [(r["sku"], r["price"], r["updated"]) for r in rows]


def _held(lake: Lake) -> list[tuple[str, int]]:
    held = quarantine_of(PRICES)
    sql = (
        "SELECT json_extract_string(row_json, '$.sku') AS sku, "
        f"CAST(json_extract(row_json, '$.updated') AS BIGINT) AS v FROM {held} ORDER BY sku, v"
    )
    return [(r["sku"], r["v"]) for r in lake.query(sql, [held]).to_pylist()]


def dropped_versions_leave_the_table(tmp_path: Path, mode: str, engine: ModelEngine) -> None:
    """The case, on ``engine``: a full build of the first day, a window's run of the second, a full build of both
    days in another lake, then the third and fourth days' windows."""
    model = _model(mode, tmp_path)
    lake = Lake(tmp_path / "hourly")
    _land(lake, FIRST)
    run_model(lake, model, run_id="full", engine=engine)
    _land(lake, FIRST + SECOND)
    run = run_model(lake, model, D2, D2, run_id="hour", engine=engine)
    assert run.quarantined == 3 and not run.blocked
    assert _prices(lake) == [("b", 2.0, 1), ("c", 4.0, 2)]
    assert _held(lake) == [("a", 2), ("b", 0), ("d", 1)]
    if mode == "upsert":  # a's listing day was rewritten, and holds no row now
        assert run.partition_rows == {SHELF_A: 0, SHELF_B: 2}

    rebuilt = Lake(tmp_path / "rebuilt")
    _land(rebuilt, FIRST + SECOND)
    run_model(rebuilt, model, run_id="full", engine=engine)
    assert _prices(rebuilt) == _prices(lake)
    assert _held(rebuilt) == _held(lake)

    _land(lake, FIRST + SECOND + THIRD)
    run_model(lake, model, D3, D3, run_id="next hour", engine=engine)
    assert _prices(lake) == [("a", 5.0, 3), ("b", 2.0, 1), ("c", 4.0, 2)]
    held = _held(lake)
    assert ("d", 1) in held and "a" not in {sku for sku, _ in held}  # a placed and released

    _land(lake, FIRST + SECOND + THIRD + FOURTH)
    run_model(lake, model, D4, D4, run_id="hour after", engine=engine)
    assert _prices(lake) == [("a", 5.0, 3), ("b", 2.0, 1)]


@pytest.mark.parametrize("mode", list(MODES))
def test_a_newest_version_that_breaks_a_rule_takes_its_key_out(tmp_path: Path, mode: str) -> None:
    dropped_versions_leave_the_table(tmp_path, mode, DUCKDB)


@pytest.mark.parametrize("engine", [DUCKDB, DuckDBEngine(hold_bytes=0, batch_rows=1)], ids=["held", "streamed"])
def test_a_whole_run_keeps_a_key_out_when_its_newest_version_is_dropped(tmp_path: Path, engine: DuckDBEngine) -> None:
    """A build over all of time whose query hands over two versions of a key: the newest wins, kept or dropped
    (a streamed result then is settled held whole)."""
    lake = Lake(tmp_path / "lake")
    a_rows = [("a", 1.0, 1, SHELF_A, D1), ("a", None, 2, SHELF_A, D2)]
    _land(lake, [*a_rows, ("b", 2.0, 2, SHELF_B, D1), ("b", None, 1, SHELF_B, D2)])
    run_model(lake, _model("upsert", tmp_path), run_id="full", engine=engine)
    assert _prices(lake) == [("b", 2.0, 2)]
    assert _held(lake) == [("a", 2), ("b", 1)]


def test_an_order_whose_newest_version_breaks_a_rule_leaves_every_layer_in_an_hour_as_in_a_full_build(
    gold_lake: tuple[Truth, Lake], tmp_path: Path
) -> None:
    """The real models: a Shopify order edited again with a total that does not add up lands; the hour's build
    takes it out of staging, of the conformed orders and of gold, and leaves every table as a full build of the same
    bronze does."""
    hourly = copy_lake(gold_lake[1], tmp_path / "hourly")
    shopify = TableRef("bronze", "shopify_orders")
    newest = hourly.query(
        f"SELECT * FROM {shopify} WHERE error IS NULL "
        "QUALIFY row_number() OVER (PARTITION BY record_key ORDER BY record_updated_at DESC) = 1 ORDER BY record_key",
        [shopify],
    )
    record = newest.to_pylist()[len(newest) // 2]
    order = json.loads(record["raw"])
    edited = record["record_updated_at"] + timedelta(minutes=5)
    order["totalPriceSet"]["presentmentMoney"]["amount"] = "99999.99"  # breaks total_adds_up
    order["updatedAt"] = edited.strftime("%Y-%m-%dT%H:%M:%SZ")
    raw = json.dumps(order)
    record |= {"raw": raw, "record_updated_at": edited, "record_hash": hashlib.sha256(raw.encode()).hexdigest()}
    record["ingested_at"] += timedelta(hours=1)
    hourly.insert_new(shopify, pa.Table.from_pylist([record], newest.schema), ["record_hash"], "partition_date")
    key = f"shopify:{order['legacyResourceId']}"

    build = build_incremental(hourly)
    assert build.mode == "incremental" and not build.blocked
    for ref in (TableRef("silver", "stg_shopify_orders"), TableRef("silver", "orders"), TableRef("gold", "fct_orders")):
        assert hourly.query(f"SELECT * FROM {ref} WHERE order_key = '{key}'", [ref]).num_rows == 0, ref

    full = Lake(shutil.copytree(Path(hourly.uri) / "bronze", tmp_path / "full" / "bronze").parent)
    assert not any(run.blocked for run in build_models(full).runs)
    for ref in full.tables("silver") + full.tables("gold"):
        assert rows_without(hourly, ref, ("run_id",)) == rows_without(full, ref, ("run_id",)), ref
