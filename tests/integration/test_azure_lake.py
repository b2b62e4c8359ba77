"""A lake on Azure storage (Azurite on loopback) behaves as a lake in a folder: every write mode, the application
transactions of a stream, the listing of its tables, the serving layer's copies renewed by version, a protocol every
reader of the platform reads."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from retreasure.lake import Lake, TableRef
from retreasure.lake.protocol import UnreadableTable, table_protocol, unreadable_tables
from retreasure.serving import read
from retreasure.settings import Settings
from tests.azure_fixtures import CONTAINER, Azurite

pytestmark = pytest.mark.azure

ORDERS = TableRef("bronze", "orders")
CUSTOMERS = TableRef("silver", "customers")
DAILY = TableRef("gold", "daily")
OFFSETS = TableRef("bronze", "clicks")


def _settings(lake_uri: str, **storage: object) -> Settings:
    return Settings(_env_file=None, lake_uri=lake_uri, storage=storage)  # type: ignore[call-arg]


def _remote(azurite: Azurite, name: str) -> Lake:
    return Lake.from_settings(_settings(azurite.fresh_lake_uri(name), **azurite.storage_settings()))


def _orders(day: date, ids: list[int]) -> pa.Table:
    amounts = [i * 10 for i in ids]
    return pa.table({"id": pa.array(ids, pa.int64()), "amount": pa.array(amounts, pa.int64()), "day": [day] * len(ids)})


def _every_write_mode(lake: Lake) -> dict[str, object]:
    """The same writes in every mode the platform uses, and what a reader then sees."""
    first, second = date(2025, 3, 1), date(2025, 3, 2)
    landed = [
        lake.insert_new(ORDERS, _orders(first, [1, 2, 3]), ["id"], "day"),
        lake.insert_new(ORDERS, _orders(first, [2, 3, 4]), ["id"], "day"),  # two already there: one new
    ]
    lake.append(ORDERS, _orders(second, [5, 6]), ["day"])
    lake.merge(CUSTOMERS, pa.table({"id": [1, 2], "name": ["ann", "bob"]}), ["id"])
    merged = lake.merge(CUSTOMERS, pa.table({"id": [2, 3], "name": ["bea", "cy"]}), ["id"])
    daily = lake.query(f"SELECT day, sum(amount) AS amount FROM {ORDERS} GROUP BY day ORDER BY day", [ORDERS])
    lake.overwrite(DAILY, daily, partition_by=["day"])
    lake.overwrite(DAILY, pa.table({"day": [second], "amount": [999]}), predicate=f"day = '{second}'")
    once = [
        lake.append_once(OFFSETS, pa.table({"n": [1]}), "clicks-0", 7),
        lake.append_once(OFFSETS, pa.table({"n": [1]}), "clicks-0", 7),  # the same batch again: refused
    ]
    lake.append(OFFSETS, pa.table({"n": pa.array([], pa.int64())}), txns=[("clicks-1", 3)])  # offsets only
    return {
        "landed": landed,
        "inserted_on_merge": merged["num_target_rows_inserted"],
        "updated_on_merge": merged["num_target_rows_updated"],
        "orders": lake.query(f"SELECT * FROM {ORDERS} ORDER BY id", [ORDERS]).to_pylist(),
        "customers": lake.query(f"SELECT * FROM {CUSTOMERS} ORDER BY id", [CUSTOMERS]).to_pylist(),
        "daily": lake.query(f"SELECT * FROM {DAILY} ORDER BY day", [DAILY]).to_pylist(),
        "once": once,
        "offsets": [lake.txn_version(OFFSETS, "clicks-0"), lake.txn_version(OFFSETS, "clicks-1")],
        "counts": {str(ref): lake.count(ref) for ref in (ORDERS, CUSTOMERS, DAILY, OFFSETS)},
        "versions": {str(ref): lake.version(ref) for ref in (ORDERS, CUSTOMERS, DAILY, OFFSETS)},
        "tables": lake.tables(),
        "bronze": lake.tables("bronze"),
        "partitions": lake.delta(DAILY).metadata().partition_columns,
    }


def test_every_write_mode_on_azure_storage_as_on_local_disk(azurite: Azurite, tmp_path: Path) -> None:
    remote = _remote(azurite, "write-modes")
    assert not remote.is_local
    seen = _every_write_mode(remote)
    assert seen == _every_write_mode(Lake(tmp_path / "lake"))
    assert seen["landed"] == [3, 1] and seen["once"] == [True, False] and seen["offsets"] == [7, 3]
    assert seen["daily"] == [{"day": date(2025, 3, 1), "amount": 100}, {"day": date(2025, 3, 2), "amount": 999}]
    # The tables are in the emulator's storage, partitioned as on disk, and nothing was written to a local folder.
    prefix = remote.uri.split(".core.windows.net/", 1)[1]
    blobs = azurite.blob_names(CONTAINER, prefix)
    assert f"{prefix}/gold/daily/_delta_log/00000000000000000000.json" in blobs
    assert any(name.startswith(f"{prefix}/gold/daily/day=2025-03-02/") for name in blobs)
    assert not list(Path.cwd().glob("abfss*")) and not Path(remote.uri).exists()


def test_an_az_uri_reaches_the_same_tables(azurite: Azurite) -> None:
    abfss = _remote(azurite, "both-schemes")
    abfss.append(ORDERS, _orders(date(2025, 3, 1), [1, 2]), ["day"])
    path = abfss.uri.split(".core.windows.net/", 1)[1]
    az = Lake.from_settings(_settings(f"az://{CONTAINER}/{path}", account_name="devstoreaccount1", use_emulator=True))
    assert az.tables() == [ORDERS]
    assert az.query(f"SELECT sum(amount) AS s FROM {ORDERS}", [ORDERS]).to_pylist() == [{"s": 30}]
    az.append(ORDERS, _orders(date(2025, 3, 1), [3]))
    assert abfss.count(ORDERS) == 3 and abfss.version(ORDERS) == 1


def test_serving_copies_follow_commits_made_elsewhere(azurite: Azurite) -> None:
    """The read layer keeps one copy per Delta version: a commit by another writer (another process in
    production, another Lake object here) is seen by the very next read, and only then copied again."""
    server = _remote(azurite, "serving")
    writer = Lake(server.uri, server.storage_options)
    writer.append(ORDERS, _orders(date(2025, 3, 1), [1, 2]), ["day"])
    sql = f"SELECT count(*) AS n, sum(amount) AS amount FROM {ORDERS}"
    assert read.rows(server, sql, [ORDERS]) == [{"n": 2, "amount": 30}]
    writer.append(ORDERS, _orders(date(2025, 3, 2), [3]))
    assert read.rows(server, sql, [ORDERS]) == [{"n": 3, "amount": 60}]
    assert read.built(server, [ORDERS, DAILY]) == {ORDERS}
    with pytest.raises(read.NotBuilt):
        read.rows(server, f"SELECT * FROM {DAILY}", [DAILY])


def test_the_tables_keep_a_protocol_every_reader_reads(azurite: Azurite, tmp_path: Path) -> None:
    remote = _remote(azurite, "protocol")
    _every_write_mode(remote)
    assert unreadable_tables(remote) == {}
    protocol = table_protocol(remote, DAILY)
    assert (protocol.min_reader_version, protocol.required_reader_features) == (1, ())
    # A table another engine wrote with deletion vectors or column mapping switched on is caught.
    local = Lake(tmp_path / "lake")
    vectors, mapped = TableRef("silver", "vectors"), TableRef("silver", "mapped")
    one_row = pa.table({"a": [1]})
    write_deltalake(local.table_uri(vectors), one_row, configuration={"delta.enableDeletionVectors": "true"})
    write_deltalake(local.table_uri(mapped), one_row, configuration={"delta.columnMapping.mode": "name"})
    found = unreadable_tables(local)
    assert set(found) == {vectors, mapped}
    assert "reader feature deletionVectors" in found[vectors] and "delta.enableDeletionVectors=true" in found[vectors]
    assert found[mapped] == ["reader feature columnMapping", "delta.columnMapping.mode=name"]
    # and the lake refuses to read it rather than return deleted rows or NULL columns without a word.
    for ref in (vectors, mapped):
        with pytest.raises(UnreadableTable, match="deletion vectors and column mapping off"):
            local.query(f"SELECT * FROM {ref}", [ref])


def test_concurrent_writers_lose_no_commit(azurite: Azurite) -> None:
    """Two writers appending to one table at once: each commit is a conditional create of its log file on the
    storage, so neither overwrites the other's (a plain PUT would lose rows without an error)."""
    settings = _settings(azurite.fresh_lake_uri("concurrent"), **azurite.storage_settings())
    Lake.from_settings(settings).append(OFFSETS, pa.table({"n": [0]}))

    def append_ten(writer: int) -> None:
        lake = Lake.from_settings(settings)
        for batch in range(10):
            lake.append(OFFSETS, pa.table({"n": [writer * 100 + batch]}))

    threads = [threading.Thread(target=append_ten, args=(writer,)) for writer in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lake = Lake.from_settings(settings)
    assert lake.version(OFFSETS) == 20
    assert sorted(lake.query(f"SELECT n FROM {OFFSETS}", [OFFSETS]).column("n").to_pylist()) == [0] + [
        writer * 100 + batch for writer in (1, 2) for batch in range(10)
    ]
