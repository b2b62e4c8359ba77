"""What differs when the models run on Spark, declared in one place: the session's settings and the rewrites of
DuckDB SQL into Spark SQL. Models are written once, in DuckDB's dialect; nothing in a model branches on engine.

sqlglot carries most of the translation (function names, ``QUALIFY``, ``UNION BY NAME``, ``TRY_CAST``); what
it leaves, or translates to something Spark reads with another meaning, is a row of ``REWRITES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlglot
from sqlglot import exp

from retreasure.lake.store import LAYERS

# The session every Spark build runs in, whatever the cluster. Time zone UTC: a model's dates are UTC dates, as
# on DuckDB. Parquet timestamps as microseconds (Spark's INT96 default is a legacy type other readers guess at).
# Delta tables stay readable by delta-rs and DuckDB: no deletion vectors (delta-rs refuses a table that has
# them), no column mapping (DuckDB over an Arrow dataset reads mapped columns as NULL). Decimal arithmetic keeps
# every digit, as DuckDB's does (Spark otherwise rounds a product's scale down to 6 digits).
SESSION_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.decimalOperations.allowPrecisionLoss": "false",
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
    "spark.databricks.delta.properties.defaults.columnMapping.mode": "none",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    # DuckDB's NULL-on-miss behaviour: an index past a list's end and a division by zero are NULL, not errors
    # (casts that may fail are TRY_CAST in the models either way); the size of a NULL list is NULL, not -1.
    "spark.sql.ansi.enabled": "false",
    "spark.sql.legacy.sizeOfNull": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


def _json_array(node: exp.Expression) -> exp.Expression | None:
    """``TRY_CAST(json AS VARCHAR[])`` or ``AS JSON[]``: DuckDB reads a JSON array as a list of its elements' text
    (a string element unquoted, an object as its JSON); Spark's ``from_json`` as ``array<string>`` does the same.
    A list literal cast to a list type is left to sqlglot."""
    if not isinstance(node, exp.TryCast | exp.Cast) or isinstance(node.this, exp.Array):
        return None
    if not node.to.is_type(exp.DataType.Type.ARRAY) or not node.to.expressions:
        return None
    if node.to.expressions[0].is_type(*exp.DataType.TEXT_TYPES, exp.DataType.Type.JSON):
        return exp.func("from_json", node.this, exp.Literal.string("array<string>"))
    return None


def _json_cast(node: exp.Expression) -> exp.Expression | None:
    """``CAST(x AS JSON)``: JSON is text on Spark."""
    if isinstance(node, exp.TryCast | exp.Cast) and node.to.is_type(exp.DataType.Type.JSON):
        return node.this
    return None


def _hugeint(node: exp.Expression) -> exp.Expression | None:
    """DuckDB's 128-bit integer (what it sums integers into) is Spark's widest exact type, DECIMAL(38, 0)."""
    if isinstance(node, exp.DataType) and node.is_type(exp.DataType.Type.INT128):
        return exp.DataType.build("DECIMAL(38, 0)")
    return None


def _json_wildcard(node: exp.Expression) -> exp.Expression | None:
    """``json_extract_string(x, '$.items[*].field')``: DuckDB returns the list of every item's field; Spark's
    ``get_json_object`` returns one JSON text (and unwraps a single match), so the items are parsed as a list and
    the field read from each."""
    if not isinstance(node, exp.JSONExtractScalar | exp.JSONExtract):
        return None
    path = node.expression
    text = path.name if isinstance(path, exp.Literal) else path.sql("duckdb").strip("'")
    if "[*]" not in text:
        return None
    prefix, _, suffix = text.partition("[*]")
    items = exp.func(
        "from_json",
        exp.func("get_json_object", node.this, exp.Literal.string(prefix)),
        exp.Literal.string("array<string>"),
    )
    if not suffix:
        return items
    element = exp.to_identifier("__item")
    field = exp.func("get_json_object", exp.column(element), exp.Literal.string("$" + suffix))
    return exp.func("transform", items, exp.Lambda(this=field, expressions=[element]))


# DuckDB's JSON structure names (from_json's second argument) as Spark types.
_JSON_TYPES = {"DOUBLE": "double", "VARCHAR": "string", "BIGINT": "bigint", "INTEGER": "int", "BOOLEAN": "boolean"}


def _json_structure(node: exp.Expression) -> exp.Expression | None:
    """``from_json(j, '[["DOUBLE"]]')``: DuckDB's structure by example is a Spark type (``array<array<double>>``)."""
    if not isinstance(node, exp.FromJson) or not isinstance(node.expression, exp.Literal):
        return None
    try:
        structure = json.loads(node.expression.name)
    except ValueError:
        return None
    if not isinstance(structure, list | dict):
        return None
    return exp.func("from_json", node.this, exp.Literal.string(_spark_type(structure)))


def _spark_type(structure: object) -> str:
    if isinstance(structure, list):
        return f"array<{_spark_type(structure[0])}>"
    if isinstance(structure, dict):
        return "struct<" + ", ".join(f"`{k}`: {_spark_type(v)}" for k, v in structure.items()) + ">"
    return _JSON_TYPES[str(structure).upper()]


def _list_sum(node: exp.Expression) -> exp.Expression | None:
    """``list_sum(xs)``: folded with ``aggregate`` over the non-null elements; NULL when there are none, as on
    DuckDB. The sum keeps the elements' scale (DECIMAL(38, s), DuckDB's type for it)."""
    if not (isinstance(node, exp.Anonymous) and node.name.lower() == "list_sum"):
        return None
    values = node.expressions[0]
    scale = 0
    if isinstance(values, exp.Cast) and values.to.expressions:
        inner = values.to.expressions[0]
        if inner.is_type(exp.DataType.Type.DECIMAL) and len(inner.expressions) == 2:
            scale = int(inner.expressions[1].name)
    present = exp.func(
        "filter",
        values,
        exp.Lambda(this=exp.column("__x").is_(exp.null()).not_(), expressions=[exp.to_identifier("__x")]),
    )
    total = sqlglot.parse_one(
        f"aggregate(__present, CAST(0 AS DECIMAL(38, {scale})), (__a, __x) -> __a + __x)", read="spark"
    )
    total.find(exp.Column).replace(present.copy())
    empty = exp.EQ(this=exp.func("size", present.copy()), expression=exp.Literal.number(0))
    return exp.If(this=empty, true=exp.null(), false=total)


def _full_match(node: exp.Expression) -> exp.Expression | None:
    """``regexp_full_match(x, p)``: Spark has no full match; ``RLIKE`` with the pattern anchored at both ends."""
    if isinstance(node, exp.RegexpFullMatch) and isinstance(node.expression, exp.Literal):
        return exp.RegexpLike(this=node.this, expression=exp.Literal.string(f"^(?:{node.expression.name})$"))
    return None


def _division(node: exp.Expression) -> exp.Expression | None:
    """``a / b``: DuckDB divides in floating point whatever the operands (decimals too, hence ``@to_base`` in
    integers); Spark divides decimals as decimals. The dividend as DOUBLE gives DuckDB's value and type."""
    if isinstance(node, exp.Div) and not node.args.get("typed"):
        dividend = node.this
        if not (isinstance(dividend, exp.Cast) and dividend.to.is_type(exp.DataType.Type.DOUBLE)):
            return exp.Div(this=exp.cast(dividend, "DOUBLE"), expression=node.expression)
    return None


def _iso_day_of_week(node: exp.Expression) -> exp.Expression | None:
    """``isodow(d)``, Monday 1 to Sunday 7: Spark's ``weekday`` counts from Monday 0 (sqlglot's own rendering
    shifts Spark's Sunday-first ``dayofweek`` by one day too few)."""
    if isinstance(node, exp.DayOfWeekIso):
        return exp.paren(exp.Add(this=exp.func("weekday", node.this), expression=exp.Literal.number(1)))
    return None


def _epoch_seconds(node: exp.Expression) -> exp.Expression | None:
    """``to_timestamp(epoch seconds)``: Spark's ``from_unixtime`` (sqlglot's choice) formats to whole seconds;
    ``timestamp_seconds`` keeps the fraction, as DuckDB does."""
    if isinstance(node, exp.UnixToTime) and not node.args.get("format") and not node.args.get("scale"):
        return exp.func("timestamp_seconds", node.this)
    return None


def _unnest_join(node: exp.Expression) -> exp.Expression | None:
    """``CROSS JOIN unnest(xs) AS u (x)``: sqlglot makes it a ``LATERAL VIEW`` after every join, where a later
    join's condition cannot see ``u``; a lateral ``explode`` in the join's own place can be seen."""
    if isinstance(node, exp.Join) and isinstance(node.this, exp.Unnest):
        unnest = node.this
        alias, ordinality = unnest.args.get("alias"), unnest.args.get("offset")
        if isinstance(ordinality, exp.Identifier) and alias is not None and alias.columns:
            # WITH ORDINALITY (1-based): each element paired with its position, as the alias's two columns.
            value, position = alias.columns[0], ordinality
            element, index = exp.to_identifier("__e"), exp.to_identifier("__i")
            pair = exp.func(
                "struct",
                exp.alias_(exp.column(element), value.name),
                exp.alias_(exp.Add(this=exp.column(index), expression=exp.Literal.number(1)), position.name),
            )
            paired = exp.func("transform", unnest.expressions[0], exp.Lambda(this=pair, expressions=[element, index]))
            alias = exp.TableAlias(this=alias.this.copy(), columns=[value.copy(), position.copy()])
            lateral = exp.Lateral(this=exp.func("inline", paired), alias=alias)
        else:
            lateral = exp.Lateral(this=exp.Explode(this=unnest.expressions[0]), alias=alias)
        joined = node.copy()
        joined.set("this", lateral)
        return joined
    return None


# Each rewrite takes a node of the DuckDB tree (its children already rewritten) and returns its Spark form, or
# None to leave it to sqlglot.
REWRITES: list[Callable[[exp.Expression], exp.Expression | None]] = [
    _json_array,
    _json_cast,
    _hugeint,
    _json_wildcard,
    _list_sum,
    _json_structure,
    _full_match,
    _division,
    _iso_day_of_week,
    _epoch_seconds,
    _unnest_join,
]


def to_spark(sql: str, tables: Callable[[str, str], str], columns_of: Callable[[str], list[str]] | None = None) -> str:
    """``sql`` (DuckDB) as Spark SQL, each lake table ``layer.name`` read as ``tables(layer, name)``.
    ``columns_of(query)`` names a Spark query's columns: what ``UNION BY NAME`` needs to line its sides up."""
    tree = _rewritten(sqlglot.parse_one(sql, read="duckdb"), tables)
    if columns_of is not None:
        tree = _union_by_name(tree, columns_of)
    return tree.sql(dialect="spark")


def _rewritten(tree: exp.Expression, tables: Callable[[str, str], str] | None = None) -> exp.Expression:
    """``tree`` with every rewrite applied, children first: a rewrite sees its arguments in their Spark form."""
    for node in reversed(list(tree.walk(bfs=False))):
        replaced = _table(node, tables) if tables is not None else None
        for rule in REWRITES:
            if replaced is None:
                replaced = rule(node)
        if replaced is not None:
            if node is tree:
                tree = replaced
            else:
                node.replace(replaced)
    return tree


def _table(node: exp.Expression, tables: Callable[[str, str], str]) -> exp.Expression | None:
    if isinstance(node, exp.Table) and node.db in LAYERS and not node.args.get("catalog"):
        renamed = exp.to_table(tables(node.db, node.name))
        if node.alias:
            renamed.set("alias", node.args["alias"])
        return renamed
    return None


def _union_by_name(tree: exp.Expression, columns_of: Callable[[str], list[str]]) -> exp.Expression:
    """``a UNION [ALL] BY NAME b ...`` as a positional union: every side selects the columns of all sides by name,
    in order of first appearance, NULL where it lacks one (DuckDB's meaning)."""
    ctes = tree.args.get("with_") or tree.args.get("with")
    defined = list(ctes.expressions) if ctes is not None else []
    unions = [u for u in tree.find_all(exp.Union) if u.args.get("by_name")]
    # Unions inside a CTE first, in the CTEs' order: a later side may read an earlier CTE, rewritten by then.
    unions.sort(
        key=lambda u: defined.index(u.find_ancestor(exp.CTE)) if u.find_ancestor(exp.CTE) in defined else 1 << 30
    )
    for union in unions:
        if union.root() is not tree:
            continue  # part of a longer chain, already rebuilt
        sides = _chain(union)
        home = union.find_ancestor(exp.CTE)
        before = defined[: defined.index(home)] if home in defined else defined
        names: list[list[str]] = []
        for side in sides:
            query = side.copy()
            if before:
                query.set("with_", exp.With(expressions=[c.copy() for c in before]))
            names.append(columns_of(query.sql("spark")))
        everyone = list(dict.fromkeys(n for side in names for n in side))
        rebuilt: exp.Expression | None = None
        for side, present in zip(sides, names, strict=True):
            lower = {n.lower() for n in present}
            picks = [
                exp.column(n, quoted=True) if n.lower() in lower else exp.alias_(exp.null(), n, quoted=True)
                for n in everyone
            ]
            select = exp.select(*picks).from_(exp.paren(side.copy()).as_("__side"))
            rebuilt = select if rebuilt is None else exp.union(rebuilt, select, distinct=union.args.get("distinct"))
        assert rebuilt is not None
        if union is tree:
            tree = rebuilt
        else:
            union.replace(rebuilt)
    return tree


def _chain(union: exp.Union) -> list[exp.Expression]:
    """The sides of a chain of ``UNION BY NAME`` of one kind, left to right."""
    sides: list[exp.Expression] = []
    for part in (union.this, union.expression):
        same = (
            isinstance(part, exp.Union)
            and part.args.get("by_name")
            and part.args.get("distinct") == union.args.get("distinct")
        )
        sides.extend(_chain(part) if same else [part])
    return sides


def condition_to_spark(condition: str) -> str:
    """A row rule's condition (DuckDB) as a Spark expression."""
    return _rewritten(sqlglot.parse_one(condition, read="duckdb")).sql(dialect="spark")
