"""Bronze landing on real Delta tables: raw kept, PII tokenised, malformed quarantined, re-runs add nothing."""

from __future__ import annotations

import json
from datetime import date

import pytest

from retreasure.bronze.landing import UNDATED, BronzeWriter, bronze_table, quarantine_table
from retreasure.bronze.pii import VAULT, PiiMasker
from retreasure.connectors.base import Entity, RawRecord
from retreasure.lake import Lake
from retreasure.records.pii import PiiSpec
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.pii_scan import clear_values_in_parquet

ORDERS = Entity("orders", key="id", updated_at="updatedAt", pii=PiiSpec({"email": "email", "shipTo.name": "name"}))


def land(lake: Lake, records: list[RawRecord]) -> BronzeWriter:
    writer = BronzeWriter(lake, PiiMasker(HMAC_KEY, VAULT_KEY), "shop", ORDERS, batch_id="b1")
    for record in records:
        writer.add(record)
    writer.flush()
    return writer


def order(n: int, updated: str = "2025-03-01T10:00:00Z", **extra: object) -> RawRecord:
    payload = {"id": n, "updatedAt": updated, "email": f"buyer{n}@example.com", "shipTo": {"name": "Ann Lee"}}
    return RawRecord({**payload, **extra}, origin="http://127.0.0.1/orders?page=1")


def test_records_land_raw_with_metadata_and_a_rerun_adds_nothing(lake: Lake) -> None:
    first = land(lake, [order(1), order(2), order(2)])
    assert first.stats.records == 3 and first.stats.new_records == 2
    again = land(lake, [order(1), order(2)])
    assert again.stats.new_records == 0
    rows = lake.query(f"SELECT * FROM {bronze_table('shop', ORDERS)} ORDER BY record_key").to_pylist()
    assert [r["record_key"] for r in rows] == ["1", "2"]
    assert rows[0]["partition_date"] == date(2025, 3, 1) and rows[0]["error"] is None
    raw = json.loads(rows[0]["raw"])
    assert raw["id"] == 1 and raw["email"].startswith("pii:email:") and raw["shipTo"]["name"].startswith("pii:name:")


def test_a_new_version_of_a_record_is_a_new_bronze_row(lake: Lake) -> None:
    land(lake, [order(1)])
    land(lake, [order(1, updated="2025-03-05T08:00:00Z", note="gift wrap")])
    versions = lake.query(f"SELECT record_updated_at FROM {bronze_table('shop', ORDERS)}").num_rows
    assert versions == 2


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (RawRecord({"updatedAt": "2025-03-01T00:00:00Z"}, "o"), "no business key at 'id'"),
        (order(7, updated="not-a-date"), "change time at 'updatedAt' does not parse"),
        (order(8, updated=""), "no change time at 'updatedAt'"),
        (RawRecord('{"id": 9, "email": "x@example.com"', "o", error="invalid JSON: truncated"), "invalid JSON"),
    ],
)
def test_malformed_records_are_kept_raw_and_quarantined_with_the_reason(
    lake: Lake, record: RawRecord, reason: str
) -> None:
    writer = land(lake, [order(1), record])
    assert writer.stats.malformed == 1
    bronze = lake.query(f"SELECT * FROM {bronze_table('shop', ORDERS)} WHERE error IS NOT NULL").to_pylist()
    quarantined = lake.query(f"SELECT * FROM {quarantine_table('shop', ORDERS)}").to_pylist()
    assert len(bronze) == 1 and len(quarantined) == 1
    assert reason in quarantined[0]["reason"] and quarantined[0]["record_hash"] == bronze[0]["record_hash"]
    assert "x@example.com" not in bronze[0]["raw"]
    assert bronze[0]["partition_date"] in (UNDATED, date(2025, 3, 1))
    assert land(lake, [record]).stats.new_malformed == 0, "re-landing does not quarantine twice"


def test_no_clear_pii_in_any_parquet_file_and_the_vault_has_it_encrypted(lake: Lake, tmp_path) -> None:
    land(lake, [order(n) for n in range(20)])
    leaks = clear_values_in_parquet(tmp_path / "lake" / "bronze", ["buyer3@example.com", "Ann Lee"])
    assert leaks == []
    assert lake.count(VAULT) == 21  # 20 e-mail addresses and one name


def test_the_parquet_scan_does_find_a_clear_value(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"raw": ['{"email":"buyer3@example.com"}']}), tmp_path / "leak.parquet")
    assert clear_values_in_parquet(tmp_path, ["buyer3@example.com"]) == ["leak.parquet: buyer3@example.com"]
