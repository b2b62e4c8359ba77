"""The scale path gives the same numbers: the same bronze (every fault on) built by DuckDB and by Spark into two
lakes, the same way (a full build, then a store's late day of sales lands and an incremental build takes it: an
upsert by MERGE and partition overwrites by replaceWhere on Spark), holds the same silver, gold and quarantine
tables row for row, decimals exact, and Spark's gold still equals the simulator's books. Spark's tables keep a
protocol delta-rs and DuckDB read."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from retreasure.engine.build import build_incremental, build_models
from retreasure.engine.runner import DUCKDB, ModelEngine
from retreasure.lake import Lake
from retreasure.lake.store import TableRef
from retreasure_sim.ledger import books
from retreasure_sim.model import Truth
from tests.conftest import FAULTY
from tests.integration import test_reconciliation as reconciliation
from tests.integration.test_dropped_versions import dropped_versions_leave_the_table

# Building every model on both engines is the setup: ~8 minutes on a busy 2-core machine, near the default limit.
pytestmark = [pytest.mark.spark, pytest.mark.timeout(1800)]

# Columns that say when or in which run a row was written, not what it holds.
RUN_COLUMNS = {"run_id", "quarantined_at"}
# What delta-rs 1.x reads; Spark must not add a reader feature beyond these (deletion vectors, column mapping).
READABLE_READER_FEATURES = {"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"}


LATE_DAY = FAULTY.start + timedelta(days=4)
LAST_DAY = FAULTY.start + timedelta(days=FAULTY.days - 1)
# A store's day of sales landing late, and the catalogue's last day (merged into silver.stg_shopify_products).
LATE = (
    f"(source = 'pos' AND partition_date = DATE '{LATE_DAY.isoformat()}') OR "
    f"(source = 'shopify' AND entity = 'products' AND partition_date = DATE '{LAST_DAY.isoformat()}')"
)


@pytest.fixture(scope="module")
def lakes(
    bronze_lake: tuple[Truth, Lake], spark_engine: ModelEngine, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Lake, Lake]:
    """(DuckDB's lake, Spark's lake), each built the same way from the same bronze."""
    root, source = tmp_path_factory.mktemp("parity"), bronze_lake[1]
    late = {ref: source.query(f"SELECT * FROM {ref} WHERE {LATE}", [ref]) for ref in source.tables("bronze")}
    late = {ref: rows for ref, rows in late.items() if rows.num_rows}
    assert late, "the faulty business has a store's day of sales to land late"
    built = []
    for name, engine in (("duckdb", DUCKDB), ("spark", spark_engine)):
        lake = Lake(shutil.copytree(source.uri, root / name))
        for ref in late:
            lake.overwrite(ref, source.query(f"SELECT * FROM {ref} WHERE NOT ({LATE})", [ref]))
        full = build_models(lake, engine=engine)
        assert [str(r.ref) for r in full.runs if r.blocked] == []
        for ref, rows in late.items():
            lake.insert_new(ref, rows, ["record_hash"], partition_by="partition_date")
        incremental = build_incremental(lake, engine=engine)
        assert incremental.mode == "incremental" and not incremental.blocked
        assert {r.ref.name for r in incremental.runs} >= {
            "stg_pos_orders",
            "orders",
            "mart_sales_daily",
            "stg_shopify_products",
        }
        assert not any(r.whole for r in incremental.runs if r.ref.name in ("stg_pos_orders", "stg_shopify_products"))
        built.append(lake)
    return built[0], built[1]


def model_tables(lake: Lake) -> list[TableRef]:
    return [ref for layer in ("silver", "gold", "quarantine") for ref in lake.tables(layer)]


def test_every_table_is_equal_row_for_row(lakes: tuple[Lake, Lake]) -> None:
    duck, spark = lakes
    assert model_tables(spark) == model_tables(duck)
    differences = {}
    for ref in model_tables(duck):
        columns = [c for c in duck.delta(ref).schema().to_arrow().names if c not in RUN_COLUMNS]
        spark_columns = [c for c in spark.delta(ref).schema().to_arrow().names if c not in RUN_COLUMNS]
        assert sorted(spark_columns) == sorted(columns), ref
        differences[str(ref)] = rows_apart(duck, spark, ref, columns)
    assert {ref: diff for ref, diff in differences.items() if diff} == {}


def rows_apart(duck: Lake, spark: Lake, ref: TableRef, columns: list[str]) -> dict[str, int]:
    """Rows of each lake the other lacks (EXCEPT ALL both ways), and both counts, compared through DuckDB."""
    con = duck.connect([ref])
    try:
        con.register("spark_rows", spark.dataset(ref))
        select = ", ".join(f'"{c}"' for c in columns)
        counts = con.execute(
            f"SELECT (SELECT count(*) FROM {ref}), (SELECT count(*) FROM spark_rows), "
            f"(SELECT count(*) FROM (SELECT {select} FROM {ref} EXCEPT ALL SELECT {select} FROM spark_rows)), "
            f"(SELECT count(*) FROM (SELECT {select} FROM spark_rows EXCEPT ALL SELECT {select} FROM {ref}))"
        ).fetchone()
    finally:
        con.close()
    assert counts is not None
    duck_rows, spark_rows, only_duck, only_spark = counts
    if duck_rows == spark_rows and only_duck == only_spark == 0:
        return {}
    return {"duckdb": duck_rows, "spark": spark_rows, "only_duckdb": only_duck, "only_spark": only_spark}


def test_decimals_keep_their_exact_type_on_spark(lakes: tuple[Lake, Lake]) -> None:
    duck, spark = lakes
    for ref in (TableRef("gold", "mart_sales_daily"), TableRef("silver", "orders")):
        duck_types = {f.name: f.type for f in duck.dataset(ref).schema}
        spark_types = {f.name: f.type for f in spark.dataset(ref).schema}
        decimals = {n for n, t in duck_types.items() if str(t).startswith("decimal")}
        assert decimals, ref
        assert all(str(spark_types[n]).startswith("decimal") for n in decimals), ref


def test_gold_built_by_spark_equals_the_books(bronze_lake: tuple[Truth, Lake], lakes: tuple[Lake, Lake]) -> None:
    built = (books(bronze_lake[0]), lakes[1])
    reconciliation.test_revenue_refunds_and_orders_equal_the_books(built)
    reconciliation.test_tax_liability_by_party_equals_the_books(built)
    reconciliation.test_conversion_and_fulfillment_rates_equal_the_books(built)


def test_every_spark_table_keeps_a_protocol_delta_rs_reads(lakes: tuple[Lake, Lake]) -> None:
    spark = lakes[1]
    for ref in model_tables(spark):
        protocol = spark.delta(ref).protocol()
        properties = spark.delta(ref).metadata().configuration
        assert protocol.min_reader_version <= 3, ref
        assert set(protocol.reader_features or ()) <= READABLE_READER_FEATURES, (ref, protocol.reader_features)
        assert "deletionVectors" not in (protocol.writer_features or ()), ref
        assert properties.get("delta.columnMapping.mode", "none") == "none", ref
        assert properties.get("delta.enableDeletionVectors", "false") == "false", ref


def test_an_incremental_build_on_spark_with_nothing_new_rebuilds_nothing(
    lakes: tuple[Lake, Lake], spark_engine: ModelEngine
) -> None:
    spark = lakes[1]
    before = {str(ref): spark.version(ref) for ref in model_tables(spark)}
    result = build_incremental(spark, engine=spark_engine)
    assert result.mode == "incremental" and result.runs == []
    assert {str(ref): spark.version(ref) for ref in model_tables(spark)} == before


@pytest.mark.parametrize("mode", ["merge", "upsert"])
def test_a_dropped_newest_version_takes_its_key_out_on_spark(
    spark_engine: ModelEngine, tmp_path: Path, mode: str
) -> None:
    """Spark's MERGE deletes a key whose newest version a rule dropped, as DuckDB's upsert leaves it out."""
    dropped_versions_leave_the_table(tmp_path, mode, spark_engine)
