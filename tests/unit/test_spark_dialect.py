"""The one place the engines differ: DuckDB SQL rendered for Spark. Each rewrite turns a DuckDB construct into
what Spark reads with the same meaning; every model renders with none of DuckDB's own constructs left."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlglot

from retreasure.engine.models import load_models
from retreasure.engine.spark_dialect import SESSION_CONF, condition_to_spark, to_spark
from retreasure.exitcodes import ExitCode
from retreasure.quality.checks import failing_condition


def views(layer: str, name: str) -> str:
    return f"{layer}__{name}"


def test_lake_tables_are_read_from_their_views_and_keep_their_aliases() -> None:
    sql = to_spark("SELECT o.id FROM silver.orders o JOIN gold.dim_date d ON d.day = o.order_date", views)
    assert "silver__orders AS o" in sql and "gold__dim_date AS d" in sql
    assert "silver.orders" not in sql


def test_union_by_name_lines_the_sides_up_by_name_with_nulls_for_missing_columns() -> None:
    columns = {"silver__a": ["id", "x"], "silver__b": ["y", "id"]}

    def columns_of(query: str) -> list[str]:
        return columns[query.split("FROM ")[-1].strip()]

    sql = to_spark("SELECT * FROM silver.a UNION ALL BY NAME SELECT * FROM silver.b", views, columns_of)
    assert "BY NAME" not in sql
    first, second = sql.split(" UNION ALL ")
    assert first.startswith("SELECT `id`, `x`, NULL AS `y`")
    assert second.startswith("SELECT `id`, NULL AS `x`, `y`")


def test_json_paths_with_a_wildcard_read_every_item() -> None:
    sql = to_spark("SELECT list_min(json_extract_string(raw, '$.nodes[*].at')) AS m FROM bronze.t", views)
    assert "TRANSFORM(FROM_JSON(GET_JSON_OBJECT(raw, '$.nodes'), 'array<string>')" in sql
    assert "GET_JSON_OBJECT(__item, '$.at')" in sql


def test_json_arrays_cast_to_lists_are_parsed_and_json_is_text() -> None:
    sql = to_spark(
        "SELECT u.x FROM bronze.t CROSS JOIN unnest(TRY_CAST(json_extract(raw, '$.a') AS JSON[])) AS u (x)", views
    )
    assert "JSON" not in sql.replace("FROM_JSON", "").replace("GET_JSON_OBJECT", "")
    assert "CROSS JOIN LATERAL EXPLODE(FROM_JSON(" in sql


def test_ordinality_is_one_based_as_on_duckdb() -> None:
    sql = to_spark("SELECT r.n FROM silver.z, unnest(z.rings) WITH ORDINALITY AS r(ring, n)", views)
    assert "INLINE(TRANSFORM(z.rings, (__e, __i) -> STRUCT(__e AS ring, __i + 1 AS n))) AS r(ring, n)" in sql


@pytest.mark.parametrize(
    ("duckdb", "spark"),
    [
        ("SELECT CAST(NULL AS HUGEINT) AS n", "DECIMAL(38, 0)"),
        ("SELECT regexp_full_match(c, '[A-Z]{3}') AS ok", "c RLIKE '^(?:[A-Z]{3})$'"),
        ("SELECT from_json(j, '[[\"DOUBLE\"]]') AS r", "'array<array<double>>'"),
        ("SELECT a / b AS q", "CAST(a AS DOUBLE) / b"),  # DuckDB divides decimals in floating point
        ("SELECT isodow(d) * 2 AS n", "(WEEKDAY(d) + 1) * 2"),  # Monday 1 .. Sunday 7
        ("SELECT to_timestamp(e) AS t", "TIMESTAMP_SECONDS(e)"),  # fractions of a second kept
        # staging's guard (lake/sql.on_good_rows): Spark's JSON functions read malformed text as NULL themselves
        ("SELECT json_extract_string(TRY_CAST(raw AS JSON), '$.t') AS t", "GET_JSON_OBJECT(raw, '$.t') AS t"),
    ],
)
def test_duckdb_types_and_functions_become_their_spark_counterparts(duckdb: str, spark: str) -> None:
    assert spark in to_spark(duckdb, views)


def test_every_model_and_row_rule_renders_for_spark_without_duckdb_constructs() -> None:
    for ref, model in load_models().items():
        sql = to_spark(model.render(), views, lambda query: ["c"])
        sql = sqlglot.parse_one(sql, read="spark").sql("spark", comments=False)
        constructs = ("BY NAME", "INT128", "HUGEINT", "[*]", "list_sum", "REGEXP_FULL_MATCH", "QUALIFY", "JSON_VALID")
        for construct in constructs:
            assert construct.lower() not in sql.lower(), (ref, construct)
        for rule in model.contract.row_rules:
            sqlglot.parse_one(condition_to_spark(failing_condition(rule)[0]), read="spark")


def test_spark_tables_stay_readable_by_delta_rs_and_dates_are_utc() -> None:
    assert SESSION_CONF["spark.databricks.delta.properties.defaults.enableDeletionVectors"] == "false"
    assert SESSION_CONF["spark.databricks.delta.properties.defaults.columnMapping.mode"] == "none"
    assert SESSION_CONF["spark.sql.session.timeZone"] == "UTC"


def test_an_unknown_engine_is_a_usage_error(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "retreasure", "build", "--engine", "oracle"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"RETREASURE_LAKE_URI": str(tmp_path / "lake"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "duckdb, spark" in result.stdout
