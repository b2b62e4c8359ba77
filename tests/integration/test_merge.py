"""Write mode ``merge``: a small table kept whole, newest version per key, into which a window's run merges the
versions that landed in its days; what it placed leaves the quarantine (real Delta tables, the real runner)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from retreasure.contracts.model import Contract
from retreasure.engine.build import build
from retreasure.engine.models import Model
from retreasure.engine.runner import run_model
from retreasure.lake import Lake, TableRef
from retreasure.quality.checks import quarantine_of

VERSIONS = TableRef("silver", "price_versions")  # stands in for bronze: every version of every SKU, by landing day
PRICES = TableRef("silver", "prices")
D1, D2 = date(2025, 3, 1), date(2025, 3, 2)
SQL = "SELECT sku, price, updated FROM silver.price_versions WHERE landed BETWEEN @start_date AND @end_date"
CONTRACT = {
    "description": "The newest price of each SKU.",
    "grain": "One row per SKU.",
    "keys": ["sku"],
    "write_mode": "merge",
    "version_column": "updated",
    "checks": [{"check": "not_null", "columns": ["price"]}, {"check": "unique", "columns": ["sku"]}],
}


def _land(lake: Lake, rows: list[tuple[str, float | None, int, date]]) -> None:
    columns = [("sku", pa.string()), ("price", pa.float64()), ("updated", pa.int64()), ("landed", pa.date32())]
    schema = pa.schema(columns)
    lake.overwrite(VERSIONS, pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema))


def _prices(lake: Lake) -> list[tuple[str, float, int]]:
    rows = lake.query(f"SELECT sku, price, updated FROM {PRICES} ORDER BY sku", [PRICES]).to_pylist()
    return [(r["sku"], r["price"], r["updated"]) for r in rows]


def _held(lake: Lake) -> list[str]:
    held = quarantine_of(PRICES)
    sql = f"SELECT json_extract_string(row_json, '$.sku') AS sku FROM {held} ORDER BY sku"
    return lake.query(sql, [held]).column("sku").to_pylist()


def test_a_window_merges_its_versions_into_the_whole_table(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    model = Model(PRICES, tmp_path / "prices.sql", SQL, Contract.model_validate(CONTRACT))
    first = [("a", 1.0, 1, D1), ("b", None, 1, D1), ("c", 3.0, 2, D1)]
    _land(lake, first)
    run_model(lake, model, run_id="full")
    assert _prices(lake) == [("a", 1.0, 1), ("c", 3.0, 2)]
    assert _held(lake) == ["b"]

    # The second day: a newer a, b's price at last, an older c that landed late, a new d without a price.
    second = [("a", 5.0, 3, D2), ("b", 2.0, 2, D2), ("c", 9.0, 1, D2), ("d", None, 1, D2)]
    _land(lake, first + second)
    run = run_model(lake, model, D2, D2, run_id="hour")
    assert run.rows == 3 and run.quarantined == 1 and not run.blocked
    # Rows of keys the window did not hold stay; each key keeps its newest version, whichever landed last.
    assert _prices(lake) == [("a", 5.0, 3), ("b", 2.0, 2), ("c", 3.0, 2)]
    assert _held(lake) == ["d"]  # b placed and released, d held

    # The same window again changes nothing: what a re-run after a crash does.
    version = lake.version(PRICES)
    run_model(lake, model, D2, D2, run_id="again")
    assert _prices(lake) == [("a", 5.0, 3), ("b", 2.0, 2), ("c", 3.0, 2)] and _held(lake) == ["d"]
    assert lake.version(PRICES) == version + 1  # rewritten whole, as a merge always is


def test_a_build_of_some_days_runs_a_merge_whole(tmp_path: Path) -> None:
    """A backfill of some days: a merge's days are those its versions landed, not its rows' days, so it is rebuilt
    from every version (a SKU that landed before the days asked stays)."""
    lake = Lake(tmp_path / "lake")
    model = Model(PRICES, tmp_path / "prices.sql", SQL, Contract.model_validate(CONTRACT))
    _land(lake, [("a", 1.0, 1, D1), ("c", 3.0, 2, D1), ("c", 4.0, 3, D2)])
    runs = build(lake, start=D2, end=D2, models={PRICES: model})
    assert [r.whole for r in runs] == [True]
    assert _prices(lake) == [("a", 1.0, 1), ("c", 4.0, 3)]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"partition_by": "sku"}, "keeps no partitions"),
        ({"version_column": None}, "needs version_column"),
        ({"keys": []}, "needs keys"),
    ],
)
def test_a_merge_contract_says_what_it_lacks(change: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Contract.model_validate(CONTRACT | change)
