"""Model SQL: every model loads with its contract, transpiles to Spark, and converts money exactly."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pytest
import sqlglot

from retreasure.engine.contract import Contract
from retreasure.engine.models import Model, load_models
from retreasure.lake import TableRef

MODELS = load_models()


def test_models_are_found_with_their_contracts_and_inputs() -> None:
    assert TableRef("silver", "fx_rates") in MODELS
    assert MODELS[TableRef("silver", "fx_rates")].inputs == (TableRef("bronze", "ecb_fx_rates"),)
    for ref, model in MODELS.items():
        assert model.contract.description, f"{ref} has no description"
        assert set(model.contract.columns), f"{ref} documents no columns"


@pytest.mark.parametrize("ref", list(MODELS), ids=str)
def test_every_model_transpiles_to_spark(ref: TableRef) -> None:
    spark = MODELS[ref].spark_sql()
    assert "@" not in spark.replace("@@", "")  # every placeholder was bound
    sqlglot.parse_one(spark, read="spark")  # and Spark's own grammar reads it back


# Reads the evening before its window to tell whether a session began before midnight: context, not a lookback.
CONTEXT_BEFORE_WINDOW = {TableRef("silver", "sessions")}


@pytest.mark.parametrize("ref", [r for r in MODELS if r not in CONTEXT_BEFORE_WINDOW], ids=str)
def test_no_model_moves_its_window_back_itself(ref: TableRef) -> None:
    # The engine widens every window by the contract's lookback_days; SQL doing it too would apply it twice.
    assert not re.search(r"@start_date\s*-\s*INTERVAL", MODELS[ref].sql)


# One case a line: amount, currency units per EUR, EUR expected (half away from zero to the cent).
TO_BASE = [
    ("100.00", "1.000000", "100.00"),
    ("10.00", "1.083600", "9.23"),
    ("-12.34", "1.083600", "-11.39"),
    ("0.05", "2.000000", "0.03"),
    ("-0.05", "2.000000", "-0.03"),
    ("0.00", "0.857460", "0.00"),
    ("23600.00", "162.500000", "145.23"),
    ("99999999.99", "0.500000", "199999999.98"),
]


@pytest.mark.parametrize(("amount", "rate", "expected"), TO_BASE)
def test_to_base_is_exact_decimal_rounding(amount: str, rate: str, expected: str) -> None:
    model = Model(TableRef("gold", "probe"), None, "SELECT @to_base(a, r) AS v FROM t", None)  # type: ignore[arg-type]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT CAST(? AS DECIMAL(18,2)) AS a, CAST(? AS DECIMAL(18,6)) AS r", [amount, rate])
    value = con.execute(model.render()).fetchone()[0]
    assert value == Decimal(expected) == (Decimal(amount) / Decimal(rate)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def test_a_contract_that_cannot_work_is_refused(tmp_path) -> None:
    bad = tmp_path / "x.yml"
    bad.write_text("description: d\ngrain: g\nkeys: [k]\nwrite_mode: upsert\n")
    with pytest.raises(ValueError, match="needs partition_by"):
        Contract.load(bad)
    bad.write_text("description: d\ngrain: g\nkeys: [k]\nwrite_mode: full\nchecks: [{check: nonsense}]\n")
    with pytest.raises(ValueError, match=r"x\.yml"):
        Contract.load(bad)


def test_the_committed_data_dictionary_is_current() -> None:
    from pathlib import Path

    from retreasure.engine.dictionary import render

    committed = Path(__file__).resolve().parents[2] / "docs" / "data-dictionary.md"
    assert committed.read_text() == render(), "run `retreasure dictionary` and commit docs/data-dictionary.md"
