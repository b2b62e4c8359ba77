"""Model SQL: every model loads with its contract, transpiles to Spark, and converts money exactly."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from retreasure.contracts.model import Contract
from retreasure.engine.models import Model, load_models, tables_read
from retreasure.engine.staging import expand_newest, windowed_reads
from retreasure.lake import TableRef
from retreasure.lake.sql import on_good_rows

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


def test_a_monthly_model_runs_for_whole_months_and_the_month_after_that_reads_them() -> None:
    from retreasure.engine.build import spans_of
    from retreasure.engine.models import ALL_TIME
    from retreasure.engine.runner import widened

    finance, monthly = MODELS[TableRef("gold", "mart_finance")], MODELS[TableRef("gold", "mart_sales_monthly")]
    assert widened(finance, date(2025, 3, 15), date(2025, 3, 20)) == (date(2025, 3, 1), date(2025, 3, 31))
    assert widened(finance, date(2024, 2, 29), date(2024, 2, 29)) == (date(2024, 2, 1), date(2024, 2, 29))
    # Growth against the month before: the month after the window is rewritten too, across a year's end.
    assert widened(monthly, date(2025, 12, 31), date(2025, 12, 31)) == (date(2025, 12, 1), date(2026, 1, 31))
    assert widened(monthly, date(2025, 1, 30), date(2025, 2, 2)) == (date(2025, 1, 1), date(2025, 3, 31))
    assert widened(monthly, *ALL_TIME) == ALL_TIME
    daily = MODELS[TableRef("gold", "mart_marketing")]  # a day's table: its lookback only
    assert widened(daily, date(2025, 3, 15), date(2025, 3, 20)) == (date(2025, 3, 14), date(2025, 3, 20))
    # Touched days of one month, or of months next to each other, are one run; months apart, one run each.
    touched = frozenset({date(2025, 1, 5), date(2025, 2, 20), date(2025, 2, 27), date(2025, 4, 1), date(2025, 4, 30)})
    assert spans_of(touched, 0, "month") == [(date(2025, 1, 1), date(2025, 2, 1)), (date(2025, 4, 1), date(2025, 4, 1))]


# Read the day before their window as context, not as a lookback: sessions to tell whether a session began before
# midnight, mart_marketing the orders its window's sessions completed (the shop's clock may be seconds behind).
CONTEXT_BEFORE_WINDOW = {TableRef("silver", "sessions"), TableRef("gold", "mart_marketing")}


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


# (numerator, denominator, scale): exact half cents and halves of the last decimal, both signs, a zero denominator.
DIVIDE = [
    ("0.03", "2", 2), ("-0.03", "2", 2), ("0.01", "2", 2), ("123456.78", "30", 2), ("1000.05", "10", 2),
    ("1", "3", 4), ("2", "3", 4), ("0.0001", "2", 4), ("-7.5", "0.4", 4), ("5", "0", 2),
]  # fmt: skip


@pytest.mark.parametrize(("a", "b", "scale"), DIVIDE)
def test_divide_is_exact_and_rounds_half_away_from_zero(a: str, b: str, scale: int) -> None:
    """@divide is what both engines run for an exact average (gold.mart_inventory): no floating point in it."""
    sql = f"SELECT @divide(a, b, {scale}) AS v FROM t"
    model = Model(TableRef("gold", "probe"), None, sql, None)  # type: ignore[arg-type]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT CAST(? AS DECIMAL(18,4)) AS a, CAST(? AS DECIMAL(18,4)) AS b", [a, b])
    value = con.execute(model.render()).fetchone()[0]
    if Decimal(b) == 0:
        assert value is None
    else:
        assert value == (Decimal(a) / Decimal(b)).quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP)


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
    from retreasure.ml.catalog import documented_tables

    committed = Path(__file__).resolve().parents[2] / "docs" / "data-dictionary.md"
    written = render(documented_tables())
    assert committed.read_text() == written, "run `retreasure dictionary` and commit docs/data-dictionary.md"


# Records left out of silver on purpose, by name, in the model's SQL and its sources' predicate.
LEFT_OUT = {"bronze.web_clickstream": ["identify", "group", "alias"]}
# Shapes a record's deciding fields can take: known, unknown, garbled, missing, of the wrong type.
SHAPES = [
    {},
    {"type": None},
    {"type": "sale"},
    {"type": "refund"},
    {"type": "page"},
    {"type": "track"},
    {"type": "sa\nle"},
    {"type": ""},
    {"type": ["sale"]},
    {"type": "UNKNOWN"},
    {"lineItems": [], "lineItems.nodes": {}},
]


def test_every_bronze_record_is_claimed_by_some_model() -> None:
    """The union of the sources' predicates over each bronze table takes every record, whatever its fields hold
    (save those left out by name): a record no model claims would vanish with no check to notice."""
    claims: dict[str, list[str]] = {}
    for model in MODELS.values():
        for source in model.contract.sources:
            claims.setdefault(source.table, []).append(f"coalesce(({source.records}), false)")
    assert "bronze.pos_sales" in claims and "bronze.web_clickstream" in claims
    con = duckdb.connect()
    for table, predicates in claims.items():
        left_out = LEFT_OUT.get(table, [])
        for shape in SHAPES:
            if shape.get("type") in left_out:
                continue
            claimed = con.execute(
                f"SELECT {' OR '.join(predicates)} FROM (SELECT ? AS raw, 'k' AS record_key)", [json.dumps(shape)]
            ).fetchone()
            assert claimed == (True,), f"{table}: no model claims a record shaped {shape}"
        for kind in left_out:
            unclaimed = f"SELECT {' OR '.join(predicates)} FROM (SELECT ? AS raw)"
            assert con.execute(unclaimed, [json.dumps({"type": kind})]).fetchone() == (False,), (table, kind)


# A staging read as a model writes it, and the bronze read the engine makes of it. One case a line: the call, the
# columns read besides record_key and raw, the conditions besides error IS NULL, the order that picks the newest.
BY_CHANGE = "record_updated_at DESC NULLS LAST, ingested_at DESC, record_hash"
BY_LANDING = "ingested_at DESC, record_hash"
BY_FILE_DAY = "partition_date DESC, ingested_at DESC, record_hash"
WINDOW = " AND partition_date BETWEEN @start_date AND @end_date"
SALE = "json_extract_string(raw, '$.type') = 'sale'"
GUARDED_SALE = " AND (json_extract_string(TRY_CAST(raw AS JSON), '$.type') = 'sale')"
NEWEST = [
    ("@newest(bronze.shopify_orders)", "", WINDOW, BY_CHANGE),
    ("@newest(bronze.shopify_products)", "", WINDOW, BY_CHANGE),  # merged by key: a window reads its days
    ("@newest(bronze.ecb_fx_rates)", "", "", BY_LANDING),
    ("@newest(bronze.geo_customer_locations, partition_date)", ", partition_date", WINDOW, BY_FILE_DAY),
    ("@newest(bronze.ads_spend, ingested_at)", ", ingested_at", WINDOW, BY_CHANGE),
    ("@newest( bronze.ebay_orders , record_key )", "", WINDOW, BY_CHANGE),
    (f"@newest(bronze.pos_sales WHERE {SALE})", "", WINDOW + GUARDED_SALE, BY_CHANGE),
    (f"@newest(\n    bronze.pos_sales\n    WHERE {SALE}\n)", "", WINDOW + GUARDED_SALE, BY_CHANGE),
]


@pytest.mark.parametrize(("call", "columns", "where", "order"), NEWEST)
def test_newest_expands_to_the_declared_read_of_bronze(call: str, columns: str, where: str, order: str) -> None:
    table = re.search(r"bronze\.\w+", call).group(0)  # type: ignore[union-attr]
    expected = (
        f"(SELECT record_key, raw{columns} FROM {table} WHERE error IS NULL{where} "
        f"QUALIFY row_number() OVER (PARTITION BY record_key ORDER BY {order}) = 1)"
    )
    assert expand_newest(f"SELECT raw FROM {call} AS n") == f"SELECT raw FROM {expected} AS n"


# A predicate over raw bronze as staging guards it: raw read as NULL where it is not JSON. One case a line.
GUARDED = "TRY_CAST(raw AS JSON)"
ON_GOOD_ROWS = [
    ("json_extract_string(raw, '$.type') = 'sale'", f"json_extract_string({GUARDED}, '$.type') = 'sale'"),
    ("RAW ->> '$.a' = 'x' AND raw ->> '$.b' IS NULL", f"{GUARDED} ->> '$.a' = 'x' AND {GUARDED} ->> '$.b' IS NULL"),
    ('"raw" IS NOT NULL', f"{GUARDED} IS NOT NULL"),
    ("json_extract_string(t.raw, '$.raw') = 'raw'", "json_extract_string(t.raw, '$.raw') = 'raw'"),
    ("raw(1) > 0", "raw(1) > 0"),
    ("'it''s raw' <> raw", f"'it''s raw' <> {GUARDED}"),  # a quote inside a string does not end it
    ('"it""s" = 1 AND raw::VARCHAR LIKE \'%a%\'', f'"it""s" = 1 AND {GUARDED}::VARCHAR LIKE \'%a%\''),
    ("coalesce(raw,'') <> '' AND rawness = 1", f"coalesce({GUARDED},'') <> '' AND rawness = 1"),
    ("t .raw IS NULL", "t .raw IS NULL"),  # a qualified name's part, spaced
]


@pytest.mark.parametrize(("predicate", "guarded"), ON_GOOD_ROWS)
def test_a_predicate_reads_raw_as_null_where_it_is_not_json(predicate: str, guarded: str) -> None:
    assert on_good_rows(predicate) == guarded


def test_a_guarded_predicate_skips_a_malformed_row_on_duckdbs_own_reader(tmp_path: Path) -> None:
    """DuckDB's Parquet reader evaluates the filter it is pushed on rows ``error IS NULL`` excludes: the clickstream's
    predicate over a bronze table holding a truncated message must neither raise nor lose the good one."""
    from retreasure.lake import Lake
    from retreasure.lake.bronze import BRONZE_SCHEMA

    good = '{"type": "page", "messageId": "E1", "anonymousId": "a1", "timestamp": "2025-01-01T10:00:00Z"}'
    rows = [
        {"record_key": key, "raw": raw, "error": error, "record_hash": key, "source": "web", "entity": "clickstream"}
        | {"batch_id": "b1", "ingested_at": datetime(2025, 1, 1, tzinfo=UTC), "partition_date": date(2025, 1, 1)}
        for key, raw, error in [("k1", good, None), ("k2", good[:30], "invalid JSON: truncated")]
    ]
    lake, bronze = Lake(tmp_path), TableRef("bronze", "web_clickstream")
    lake.overwrite(bronze, pa.Table.from_pylist(rows, schema=BRONZE_SCHEMA), partition_by=["partition_date"])
    web_events = load_models()[TableRef("silver", "web_events")]
    con = lake.connect([bronze], native=True)
    found = con.execute(f"SELECT event_id, source_record_key FROM ({web_events.render()})").fetchall()
    assert found == [("E1", "k1")]
    unguarded = "SELECT record_key FROM bronze.web_clickstream WHERE error IS NULL AND (raw ->> '$.type') = 'page'"
    with pytest.raises(duckdb.InvalidInputException, match="Malformed JSON"):
        con.execute(unguarded).fetchall()  # what the guard is for: DuckDB 1.4 reads the malformed row's raw


def test_a_guarded_predicate_computed_under_qualify_skips_a_malformed_row(tmp_path: Path) -> None:
    """Conservation's shape: the predicate as a column of the newest versions, filtered after ``QUALIFY``. DuckDB 1.4
    evaluated it on the malformed version of a record there even through ``CASE WHEN json_valid(raw) ...``."""
    from retreasure.lake import Lake
    from retreasure.lake.bronze import BRONZE_SCHEMA

    day = {"ingested_at": datetime(2025, 1, 1, tzinfo=UTC), "partition_date": date(2025, 1, 1), "batch_id": "b1"}
    rows = [
        {"record_key": key, "raw": raw, "error": error, "record_hash": f"{key}{n}", "source": "pos", "entity": "sales"}
        | day
        for n, (key, raw, error) in enumerate(
            [("s1", '{"type": "sale"}', None), ("r1", '{"type": "refund"}', None), ("r1", "refund,BER-1", "bad CSV")]
        )
    ]
    lake, bronze = Lake(tmp_path), TableRef("bronze", "pos_sales")
    lake.overwrite(bronze, pa.Table.from_pylist(rows, schema=BRONZE_SCHEMA), partition_by=["partition_date"])
    con = lake.connect([bronze], native=True)

    def refunds(guarded: str) -> list[tuple[str]]:
        claimed = f"SELECT * EXCLUDE (raw), coalesce(({guarded}), false) AS c FROM {bronze} WHERE error IS NULL"
        first = "QUALIFY row_number() OVER (PARTITION BY record_key ORDER BY ingested_at) = 1"
        newest = f"SELECT * FROM ({claimed}) {first}"
        return con.execute(f"SELECT record_key FROM ({newest}) WHERE c").fetchall()

    assert refunds(on_good_rows("json_extract_string(raw, '$.type') = 'refund'")) == [("r1",)]
    with pytest.raises(duckdb.InvalidInputException, match="Malformed JSON"):  # the guard that did not hold
        refunds("json_extract_string((CASE WHEN json_valid(raw) THEN raw END), '$.type') = 'refund'")


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("FROM @newest(bronze.no_such_table)", "not declared"),
        ("FROM @newest(silver.orders)", "reads a bronze table"),
        ("FROM @newest(bronze.shopify_orders WHERE raw = ')'", "never closed"),
        ("FROM @newest(bronze.shopify_orders -- newest\n)", "no comment"),
    ],
)
def test_newest_refuses_what_it_cannot_read(sql: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        expand_newest(sql)


def test_newest_keeps_the_newest_good_version_of_each_record() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA bronze")
    con.execute(
        "CREATE TABLE bronze.shopify_orders AS SELECT * FROM (VALUES "
        # k1: the later change wins over a later landing of an older change; a version with no change time loses.
        "('k1', 'v1', NULL, TIMESTAMP '2025-01-01 10:00', TIMESTAMP '2025-01-03', DATE '2025-01-03', 'h1'),"
        "('k1', 'v2', NULL, TIMESTAMP '2025-01-02 10:00', TIMESTAMP '2025-01-02', DATE '2025-01-02', 'h2'),"
        "('k1', 'v3', NULL, NULL, TIMESTAMP '2025-01-04', DATE '2025-01-04', 'h3'),"
        # k2: a malformed newer version never hides the good one; k3 lies outside the window.
        "('k2', 'good', NULL, TIMESTAMP '2025-01-01 10:00', TIMESTAMP '2025-01-01', DATE '2025-01-01', 'h4'),"
        "('k2', 'bad', 'not JSON', TIMESTAMP '2025-01-02 10:00', TIMESTAMP '2025-01-02', DATE '2025-01-02', 'h5'),"
        "('k3', 'late', NULL, TIMESTAMP '2025-02-01 10:00', TIMESTAMP '2025-02-01', DATE '2025-02-01', 'h6')"
        ") AS t(record_key, raw, error, record_updated_at, ingested_at, partition_date, record_hash)"
    )
    model = Model(TableRef("silver", "probe"), None, "SELECT * FROM @newest(bronze.shopify_orders)", None)  # type: ignore[arg-type]
    assert model.inputs == (TableRef("bronze", "shopify_orders"),)
    rows = con.execute(model.render(date(2025, 1, 1), date(2025, 1, 31)) + " ORDER BY record_key").fetchall()
    assert rows == [("k1", "v2"), ("k2", "good")]


# The bronze tables a windowed run may read through its window's files alone. One case a line.
WINDOWED_READS = [
    ("SELECT * FROM @newest(bronze.pos_sales)", {"bronze.pos_sales"}),
    (f"SELECT * FROM @newest(bronze.pos_sales WHERE {SALE}) UNION ALL SELECT 1", {"bronze.pos_sales"}),
    ("SELECT * FROM @newest(bronze.pos_sales) UNION ALL SELECT * FROM @newest(bronze.pos_sales)", {"bronze.pos_sales"}),
    ("SELECT * FROM @newest(bronze.ecb_fx_rates)", set()),  # not windowed: the whole history is read
    ("SELECT * FROM @newest(bronze.pos_sales) JOIN bronze.pos_sales USING (record_key)", set()),  # read by hand too
    ("SELECT * FROM @newest(bronze.ebay_orders WHERE k IN (SELECT k FROM bronze.pos_sales))", {"bronze.ebay_orders"}),
    ("SELECT * FROM @newest(bronze.pos_sales WHERE k IN (SELECT k FROM bronze.pos_sales))", set()),
    ("-- bronze.pos_sales, as it was\nSELECT * FROM @newest(bronze.pos_sales)", set()),  # named aside: not narrowed
    ("SELECT * FROM @newest(bronze.pos_sales) JOIN bronze.pos_sales_daily USING (k)", {"bronze.pos_sales"}),
]


@pytest.mark.parametrize(("sql", "tables"), WINDOWED_READS)
def test_windowed_reads_are_the_bronze_tables_read_only_through_a_windowed_newest(sql: str, tables: set[str]) -> None:
    assert windowed_reads(sql) == tables


def test_models_read_bronze_only_through_newest() -> None:
    for ref, model in MODELS.items():
        sql = re.sub(r"--[^\n]*", "", model.sql)
        assert len(re.findall(r"\bbronze\.", sql)) == sql.count("@newest("), f"{ref} reads bronze by hand"


def test_inputs_come_from_the_parse_cache_per_version_of_the_sql(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from retreasure.engine import models

    monkeypatch.setattr(models, "_INPUTS_CACHE", tmp_path)
    sql = "WITH x AS (SELECT * FROM silver.orders) SELECT * FROM x JOIN bronze.pos_sales USING (k)"
    expected = (TableRef("bronze", "pos_sales"), TableRef("silver", "orders"))
    assert models._inputs.__wrapped__(sql) == expected  # parsed, then kept on disk
    assert len(list(tmp_path.glob("*.json"))) == 1
    # A later process reads the answer back rather than parsing: a kept answer is what it returns.
    (kept,) = tmp_path.glob("*.json")
    kept.write_text(json.dumps(["gold.kept_answer"]))
    assert models._inputs.__wrapped__(sql) == (TableRef("gold", "kept_answer"),)
    # Another version of the SQL is parsed anew; an unreadable entry is parsed again, not trusted.
    assert models._inputs.__wrapped__(sql + " -- edited") == expected
    kept.write_text("{not json")
    assert models._inputs.__wrapped__(sql) == expected


def _columns_read(model: Model, ref: TableRef) -> set[str]:
    """The columns of ``ref`` that the model's SQL names through the alias it gives the table."""
    from sqlglot import exp

    tree = sqlglot.parse_one(model.render(), read="duckdb")
    aliases = {t.alias_or_name for t in tree.find_all(exp.Table) if (t.db, t.name) == (ref.layer, ref.name)}
    assert not any(isinstance(c.this, exp.Star) and c.table in aliases for c in tree.find_all(exp.Column)), (
        f"{model.ref} reads every column of {ref}"
    )
    return {c.name for c in tree.find_all(exp.Column) if c.table in aliases}


def test_every_partitioned_model_says_what_a_changed_dimension_means_for_its_days() -> None:
    # Without a rule an hourly build that changes the dimension rebuilds every day of the model: right, but the
    # cost of a full build. A rule's columns must be every column the SQL reads of the input, or a change in one
    # it leaves out would reach none of the days it feeds.
    models = load_models()
    for ref, model in models.items():
        if not model.contract.partitioned:
            continue
        dimensions = {i for i in model.inputs if i in models and not models[i].contract.partitioned}
        changing = {i for i in dimensions if models[i].inputs}  # one with no inputs changes only with its code
        assert {str(i) for i in changing} <= set(model.contract.changed_inputs), ref
        for name, rule in model.contract.changed_inputs.items():
            source = TableRef(*name.split("."))
            assert source in model.inputs and source in models, f"{ref}: {name} is not a model it reads"
            assert set(rule.columns) <= set(models[source].contract.columns), f"{ref}: {name}"
            # A partitioned input also reaches the days of the partitions it wrote: its rule names the days its rows
            # feed beyond them (an order's refunds' days), through the columns read there.
            if source in dimensions:
                assert _columns_read(model, source) <= set(rule.columns), f"{ref}: {name}"
            read = set(tables_read(rule.days))
            assert read <= set(model.inputs) - {source}, f"{ref}: {name}'s days read what the model does not"
