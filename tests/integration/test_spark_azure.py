"""The scale path end to end on Azure storage: the faulty bronze landed in a lake on ``abfss://`` (Azurite), silver
and gold built there by the Spark engine configured from the settings' storage section alone (ABFS through
hadoop-azure), then read back by delta-rs and DuckDB: every table Spark wrote keeps a protocol they read, holds the
same rows as a DuckDB build of the same bronze, and still counts the simulator's sessions.

Kept small for two shared cores: the models behind two gold tables (web and inventory), one Spark session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retreasure.engine.build import build_models
from retreasure.engine.engines import model_engine
from retreasure.engine.models import Model, load_models, relationship_targets
from retreasure.engine.runner import DUCKDB, ModelEngine
from retreasure.lake import Lake, TableRef
from retreasure.lake.protocol import unreadable_tables
from retreasure.settings import Settings
from retreasure_sim.ledger import books
from retreasure_sim.model import Truth
from tests.azure_fixtures import CONTAINER, Azurite
from tests.integration.test_spark_parity import rows_apart
from tests.spark_fixtures import SPARK_JARS

pytestmark = [pytest.mark.spark, pytest.mark.azure, pytest.mark.timeout(1800)]

TARGETS = (TableRef("gold", "mart_web_daily"), TableRef("gold", "fct_inventory_daily"))


def upstream(models: dict[TableRef, Model], roots: tuple[TableRef, ...]) -> dict[TableRef, Model]:
    """``roots`` and every model they need, in build order."""
    needed, waiting = set(), list(roots)
    while waiting:
        ref = waiting.pop()
        if ref in models and ref not in needed:
            needed.add(ref)
            waiting += [*models[ref].inputs, *relationship_targets(models[ref])]
    return {ref: model for ref, model in models.items() if ref in needed}


@pytest.fixture(scope="module")
def lakes(
    bronze_lake: tuple[Truth, Lake],
    azurite: Azurite,
    spark_engine: ModelEngine,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Lake, Lake, ModelEngine]:
    """(DuckDB's lake on local disk, Spark's lake on Azurite, the Spark engine), built from the same bronze.
    ``spark_engine`` is asked for so that the session's one Spark is stopped at the end."""
    source = bronze_lake[1]
    models = upstream(load_models(), TARGETS)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        lake_uri=azurite.fresh_lake_uri("spark"),
        storage=azurite.storage_settings(),
        spark={"jars_dir": SPARK_JARS, "shuffle_partitions": 2},
    )
    remote = Lake.from_settings(settings)
    read = {ref for model in models.values() for ref in model.inputs if ref.layer == "bronze"}
    for ref in sorted(read & set(source.tables("bronze")), key=str):
        remote.overwrite(ref, source.query(f"SELECT * FROM {ref}", [ref]), partition_by=partition_columns(source, ref))
    spark = model_engine("spark", settings)
    built = build_models(remote, models, engine=spark)
    assert [str(r.ref) for r in built.runs if r.blocked] == []
    assert {r.ref for r in built.runs} == set(models)

    local = Lake(shutil.copytree(source.uri, tmp_path_factory.mktemp("spark-azure") / "lake"))
    assert [str(r.ref) for r in build_models(local, models, engine=DUCKDB).runs if r.blocked] == []
    return local, remote, spark


def partition_columns(lake: Lake, ref: TableRef) -> list[str]:
    return list(lake.delta(ref).metadata().partition_columns)


def model_tables(lake: Lake) -> list[TableRef]:
    return [ref for layer in ("silver", "gold", "quarantine") for ref in lake.tables(layer)]


def test_spark_writes_the_lake_on_azure_storage(lakes: tuple[Lake, Lake, ModelEngine], azurite: Azurite) -> None:
    _, remote, spark = lakes
    prefix = remote.uri.split(".core.windows.net/", 1)[1]
    blobs = azurite.blob_names(CONTAINER, f"{prefix}/gold/mart_web_daily/")
    assert f"{prefix}/gold/mart_web_daily/_delta_log/00000000000000000000.json" in blobs
    assert any(name.endswith(".parquet") for name in blobs)
    assert not list(Path.cwd().glob("abfs*")), "nothing of the lake on local disk"
    assert "Eby8vdM02" not in repr(spark), "no storage credential in the engine's repr"


def test_every_table_spark_wrote_is_readable_by_delta_rs_and_duckdb(lakes: tuple[Lake, Lake, ModelEngine]) -> None:
    remote = lakes[1]
    assert set(TARGETS) <= set(model_tables(remote))
    assert unreadable_tables(remote) == {}


def test_spark_on_azure_equals_duckdb_on_disk_row_for_row(lakes: tuple[Lake, Lake, ModelEngine]) -> None:
    local, remote, _ = lakes
    models = upstream(load_models(), TARGETS)
    # The models' own quarantine tables (the local lake, a copy of the ingested one, also holds the ingest's).
    quarantine = {TableRef("quarantine", f"{ref.layer}_{ref.name}") for ref in models}
    built = model_tables(remote)
    assert built == [ref for ref in model_tables(local) if ref in set(models) | quarantine]
    differences = {str(ref): rows_apart(local, remote, ref, columns(local, ref)) for ref in built}
    assert {ref: diff for ref, diff in differences.items() if diff} == {}


def columns(lake: Lake, ref: TableRef) -> list[str]:
    """The columns that say what a row holds (not when or in which run it was written)."""
    return [c for c in lake.delta(ref).schema().to_arrow().names if c not in {"run_id", "quarantined_at"}]


def test_sessions_built_by_spark_on_azure_equal_the_simulator(
    bronze_lake: tuple[Truth, Lake], lakes: tuple[Lake, Lake, ModelEngine]
) -> None:
    truth, remote = books(bronze_lake[0]), lakes[1]
    sessions = TableRef("silver", "sessions")
    sql = f"SELECT count(*) AS n, count(*) FILTER (WHERE converted) AS c FROM {sessions}"
    row = remote.query(sql, [sessions]).to_pylist()[0]
    assert (row["n"], row["c"]) == (truth.sessions, truth.converted_sessions)
