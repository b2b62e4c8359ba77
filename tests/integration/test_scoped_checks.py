"""Table checks of a windowed run judge the partitions it wrote, not the table's history: a bad row in an older
partition is the business of the build that wrote it (and of every full build), not of the hourly run."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from retreasure.contracts.model import Contract
from retreasure.engine.models import Model
from retreasure.engine.runner import run_model
from retreasure.lake import Lake, TableRef
from retreasure.lake.bronze import BRONZE_SCHEMA
from retreasure.quality.checks import QUARANTINE_SCHEMA, CheckResult, quarantine_of, run_table_checks

DAYS = [date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)]
PARENTS = TableRef("silver", "parents")
CHILDREN = TableRef("silver", "children")
# Three rows a day, each pointing at a parent; ids are unique across days.
SQL = (
    "SELECT id, parent_id, day FROM (VALUES "
    + ", ".join(f"({d * 10 + i}, {i + 1}, DATE '{day.isoformat()}')" for d, day in enumerate(DAYS) for i in range(3))
    + ") t(id, parent_id, day) WHERE day BETWEEN @start_date AND @end_date"
)
CONTRACT = Contract.model_validate(
    {
        "description": "Children of parents.",
        "grain": "One row per child.",
        "keys": ["id"],
        "write_mode": "overwrite_partitions",
        "partition_by": "day",
        "checks": [
            {"check": "unique", "columns": ["id"]},
            {"check": "unique", "columns": ["day", "parent_id"]},
            {"check": "relationships", "column": "parent_id", "to": "silver.parents.id"},
            {"check": "row_count", "min": 1},
        ],
    }
)
SCHEMA = pa.schema([("id", pa.int32()), ("parent_id", pa.int32()), ("day", pa.date32())])


def _failed(checks: list[CheckResult]) -> dict[str, int]:
    return {c.check_name: c.failed for c in checks if c.kind == "table" and c.failed}


def _plant(lake: Lake, rows: list[tuple[int, int, date]]) -> None:
    lake.append(CHILDREN, pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], schema=SCHEMA))


def test_a_windowed_run_checks_the_partitions_it_wrote_and_a_full_check_the_table(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.overwrite(PARENTS, pa.table({"id": pa.array([1, 2, 3], pa.int32())}))
    model = Model(CHILDREN, tmp_path / "children.sql", SQL, CONTRACT)
    assert not _failed(run_model(lake, model).checks)

    # An older day gains a second row for a key of its own and a reference to a parent that does not exist.
    old, new = DAYS[0], DAYS[-1]
    _plant(lake, [(0, 99, old)])
    windowed = run_model(lake, model, new, new)
    assert not _failed(windowed.checks)
    written = lake.query(f"SELECT count(*) AS n FROM {CHILDREN} WHERE day = $d", [CHILDREN], {"d": new})
    checked = {c.check_name: c.checked for c in windowed.checks if c.kind == "table"}
    assert checked["unique(id)"] == checked["relationships(parent_id -> silver.parents.id)"] == written["n"][0].as_py()
    assert checked["row_count(>= 1)"] == lake.count(CHILDREN) == len(DAYS) * 3 + 1

    # The whole table, as a full build judges it, holds both faults.
    whole = _failed(run_table_checks(lake, CHILDREN, CONTRACT, "full"))
    assert whole == {"unique(id)": 1, "relationships(parent_id -> silver.parents.id)": 1}

    # A key the window wrote that an older day holds too is a duplicate the windowed run does see.
    _plant(lake, [(20, 1, old)])
    assert _failed(run_model(lake, model, new, new).checks) == {"unique(id)": 1}


# A windowed run's checks look for the written rows' keys and values, and for its windows' bronze records, in the
# partitions the run did not rewrite too: each case below holds one fault or one match only there.
OLD_DAY, NEW_DAY = DAYS[0], DAYS[-1]
PARENTS_BY_DAY = TableRef("silver", "parents_by_day")
SPREAD = TableRef("silver", "spread_children")
SPREAD_CONTRACT = Contract.model_validate(
    {
        "description": "Children whose parents live in a day-partitioned table.",
        "grain": "One row per child.",
        "keys": ["id"],
        "write_mode": "overwrite_partitions",
        "partition_by": "day",
        "checks": [
            {"check": "unique", "columns": ["id"]},
            {"check": "relationships", "column": "parent_id", "to": "silver.parents_by_day.id"},
        ],
    }
)


def test_a_windowed_run_finds_its_keys_and_references_in_partitions_it_did_not_write(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    # Parent 1 lives only in the oldest partition of its table; parent 7 nowhere.
    parents = pa.table({"id": pa.array([1, 2], pa.int32()), "day": pa.array([OLD_DAY, NEW_DAY], pa.date32())})
    lake.append(PARENTS_BY_DAY, parents, partition_by=["day"])
    rows = [
        (10, 2, OLD_DAY),  # an older row whose id the new day writes again
        (11, 8, OLD_DAY),  # an older row pointing at no parent: not the window's business
        (10, 1, NEW_DAY),  # the new day: its parent lives in another partition of the parents
        (12, 7, NEW_DAY),  # the new day: its parent does not exist
    ]
    lake.append(SPREAD, pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], SCHEMA), ["day"])

    windowed = run_table_checks(lake, SPREAD, SPREAD_CONTRACT, "hour", written=[NEW_DAY], windows=[(NEW_DAY, NEW_DAY)])
    counts = {c.check_name: (c.checked, c.failed) for c in windowed}
    # Two keys written, one of them also in the older partition; two references written, one of them dangling.
    assert counts == {"unique(id)": (2, 1), "relationships(parent_id -> silver.parents_by_day.id)": (2, 1)}

    whole = {c.check_name: (c.checked, c.failed) for c in run_table_checks(lake, SPREAD, SPREAD_CONTRACT, "full")}
    assert whole == {"unique(id)": (3, 1), "relationships(parent_id -> silver.parents_by_day.id)": (4, 2)}


BRONZE = TableRef("bronze", "pos_inventory")  # a real bronze table's name: conservation picks its newest versions so
PLACED = TableRef("silver", "placed_moves")
NOW = datetime(2025, 3, 3, 12, tzinfo=UTC)


def _bronze_records(keys_by_day: dict[date, list[str]]) -> pa.Table:
    rows = [
        {
            "source": "pos",
            "entity": "inventory",
            "record_key": key,
            "record_updated_at": NOW,
            "raw": json.dumps({"id": key}),
            "record_hash": f"hash-{key}",
            "error": None,
            "origin": "test",
            "batch_id": "batch",
            "ingested_at": NOW,
            "partition_date": day,
        }
        for day, keys in keys_by_day.items()
        for key in keys
    ]
    return pa.Table.from_pylist(rows, schema=BRONZE_SCHEMA)


@pytest.mark.parametrize("as_list", [False, True], ids=["key", "list of keys"])
def test_a_windowed_conservation_finds_its_records_wherever_they_were_placed(tmp_path: Path, as_list: bool) -> None:
    lake = Lake(tmp_path / "lake")
    records = _bronze_records(
        {OLD_DAY: ["old", "old-lost"], NEW_DAY: ["moved", "here", "quarantined", "lost", "not-a-move", "torn"]}
    ).to_pylist()
    # A message cut short on landing, among the window's records: its error accounts for it, and the source's JSON
    # predicate, judged over the window's rows, reads it without raising.
    records[-1] |= {"raw": '{"id": "torn", "typ', "error": "malformed JSON"}
    lake.append(BRONZE, pa.Table.from_pylist(records, BRONZE_SCHEMA), partition_by=["partition_date"])
    lineage = pa.list_(pa.string()) if as_list else pa.string()
    schema = pa.schema([("id", pa.int32()), ("day", pa.date32()), ("source_record_key", lineage)])
    placed = [
        (1, OLD_DAY, "old"),
        (2, OLD_DAY, "moved"),  # a record of the new day whose row lives in an older partition
        (3, NEW_DAY, "here"),
    ]
    table = [dict(zip(schema.names, (i, d, [k] if as_list else k), strict=True)) for i, d, k in placed]
    lake.append(PLACED, pa.Table.from_pylist(table, schema), ["day"])
    quarantined = {
        "table_name": str(PLACED),
        "rule": "not_null(id)",
        "reason": "a value is missing in id",
        "row_json": json.dumps({"id": None, "source_record_key": ["quarantined"] if as_list else "quarantined"}),
        "run_id": "hour",
        "quarantined_at": NOW,
    }
    lake.append(quarantine_of(PLACED), pa.Table.from_pylist([quarantined], QUARANTINE_SCHEMA))
    contract = Contract.model_validate(
        {
            "description": "Moves, one per bronze record.",
            "grain": "One row per move.",
            "keys": ["id"],
            "write_mode": "overwrite_partitions",
            "partition_by": "day",
            # A record the model does not take is placed nowhere and missing from nothing.
            "sources": [{"table": str(BRONZE), "records": "json_extract_string(raw, '$.id') <> 'not-a-move'"}],
        }
    )

    window = [(NEW_DAY, NEW_DAY)]
    (windowed,) = run_table_checks(lake, PLACED, contract, "hour", written=[NEW_DAY], windows=window)
    # The new day's four records: one placed in an older partition, one here, one quarantined, one lost.
    assert (windowed.checked, windowed.failed) == (4, 1)

    (whole,) = run_table_checks(lake, PLACED, contract, "full")
    assert (whole.checked, whole.failed) == (6, 2)
