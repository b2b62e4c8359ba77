"""A model's quarantine holds what its runs hold back now, not every row ever held: a run over all of time replaces it,
a windowed run releases what it placed, and a row held again keeps when it was first held (real Delta tables)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from retreasure.contracts.model import Contract
from retreasure.engine.models import Model
from retreasure.engine.runner import run_model
from retreasure.lake import Lake, TableRef
from retreasure.quality.checks import quarantine_of

READINGS = TableRef("silver", "readings")  # the model's input, rewritten between runs as a source would change
PRICES = TableRef("silver", "prices")
HELD = quarantine_of(PRICES)
D1, D2 = date(2025, 3, 1), date(2025, 3, 2)
SQL = "SELECT sku, day, price, note FROM silver.readings WHERE day BETWEEN @start_date AND @end_date"


def _contract(write_mode: str) -> Contract:
    partitioned = {"partition_by": "day"} if write_mode != "full" else {}
    return Contract.model_validate(
        {
            "description": "Prices by SKU and day.",
            "grain": "One row per SKU and day.",
            "keys": ["sku", "day"],
            "write_mode": write_mode,
            **partitioned,
            "checks": [{"check": "not_null", "columns": ["price"]}],
        }
    )


def _readings(lake: Lake, rows: list[tuple[str, date, float | None]], note: str = "first reading") -> None:
    schema = pa.schema([("sku", pa.string()), ("day", pa.date32()), ("price", pa.float64()), ("note", pa.string())])
    table = [dict(zip(schema.names, (*r, note), strict=True)) for r in rows]
    lake.overwrite(READINGS, pa.Table.from_pylist(table, schema))


def _held(lake: Lake) -> list[tuple[str, str]]:
    """(SKU, run) of every row held back, in SKU order."""
    sql = f"SELECT json_extract_string(row_json, '$.sku') AS sku, run_id FROM {HELD} ORDER BY sku"
    return [(r["sku"], r["run_id"]) for r in lake.query(sql, [HELD]).to_pylist()]


def test_a_model_rebuilt_whole_holds_back_only_what_its_last_run_held(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    model = Model(PRICES, tmp_path / "prices.sql", SQL, _contract("full"))
    _readings(lake, [("a", D1, None), ("b", D1, None), ("c", D1, 3.0)])
    run_model(lake, model, run_id="first")
    assert _held(lake) == [("a", "first"), ("b", "first")]

    _readings(lake, [("a", D1, 1.0), ("b", D1, None), ("c", D1, 3.0)])  # a's price came
    version = lake.version(HELD)
    run_model(lake, model, run_id="second")
    # a is released; b, held again as it was, keeps its first run (and time).
    assert _held(lake) == [("b", "first")]
    run_model(lake, model, run_id="third")
    assert lake.version(HELD) == version + 1, "holding the same rows back again rewrote the quarantine"

    _readings(lake, [("a", D1, 1.0), ("b", D1, 2.0), ("c", D1, 3.0)])
    run_model(lake, model, run_id="fourth")
    assert _held(lake) == [] and lake.count(PRICES) == 3


def test_a_windowed_run_releases_the_rows_it_placed_and_keeps_the_rest(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    model = Model(PRICES, tmp_path / "prices.sql", SQL, _contract("overwrite_partitions"))
    _readings(lake, [("a", D1, None), ("b", D2, None), ("c", D2, None), ("d", D2, 4.0)])
    run_model(lake, model, run_id="full")
    assert _held(lake) == [("a", "full"), ("b", "full"), ("c", "full")]

    # The second day's b gets its price; c a new reading still without one. The first day is outside the window.
    _readings(lake, [("a", D1, None), ("b", D2, 2.0), ("c", D2, None), ("d", D2, 4.0)])
    run_model(lake, model, D2, D2, run_id="hour")
    assert _held(lake) == [("a", "full"), ("c", "full")]
    placed = lake.query(f"SELECT sku FROM {PRICES} WHERE day = $d ORDER BY sku", [PRICES], {"d": D2})
    assert placed.column("sku").to_pylist() == ["b", "d"]

    # Another reading of c, without a price again: the row held now replaces the one held before.
    _readings(lake, [("a", D1, None), ("b", D2, 2.0), ("c", D2, None), ("d", D2, 4.0)], note="second reading")
    run_model(lake, model, D2, D2, run_id="next hour")
    assert _held(lake) == [("a", "full"), ("c", "next hour")]
