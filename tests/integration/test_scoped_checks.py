"""Table checks of a windowed run judge the partitions it wrote, not the table's history: a bad row in an older
partition is the business of the build that wrote it (and of every full build), not of the hourly run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from retreasure.contracts.model import Contract
from retreasure.engine.models import Model
from retreasure.engine.runner import run_model
from retreasure.lake import Lake, TableRef
from retreasure.quality.checks import CheckResult, run_table_checks

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
