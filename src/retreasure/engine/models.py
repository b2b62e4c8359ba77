"""Models found by convention: ``models/<layer>/<name>.sql`` with its contract ``<name>.yml`` beside it.

Dependencies come from the SQL itself (every ``layer.table`` it reads), so adding a model means adding two
files; nothing is listed by hand.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from graphlib import TopologicalSorter
from pathlib import Path

from retreasure.contracts.model import Contract
from retreasure.engine.staging import expand_newest
from retreasure.lake.store import LAYERS, TableRef
from retreasure.models import MODELS_DIR

# A model reads its incremental window through these two names; a full build sees all of time.
ALL_TIME = (date(1970, 1, 1), date(9999, 12, 31))
# The inputs found in each version of a model's SQL (by its hash), shared by every process of the user.
_INPUTS_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "retreasure" / "model-inputs"
_WINDOW = re.compile(r"@(start_date|end_date)\b")
# Exact decimal arithmetic where DuckDB would divide in floating point (it divides decimals as DOUBLEs, and a figure
# that must equal the books, or the other engine, to the cent cannot depend on binary rounding): in integers, rounded
# half away from zero. @to_base(amount, rate): an amount in a foreign currency, in EUR at ``rate`` units per EUR, to
# the cent (integer cents and micro-units). @divide(a, b, scale): a / b to ``scale`` decimals, NULL when b is 0;
# exact for operands of up to 4 decimals (they are taken in ten-thousandths).
_MACRO = re.compile(r"@(to_base|divide)\(\s*([^()]+?)\s*\)")


def _to_base(a: str, r: str) -> str:
    rate = f"CAST(round({r} * 1000000) AS BIGINT)"
    cents = f"abs(CAST(round({a} * 100) AS BIGINT))"
    quotient = f"sign({a}) * (({cents} * 2000000 + {rate}) // (2 * {rate}))"
    return f"(CAST({quotient} AS DECIMAL(18, 0)) * CAST(0.01 AS DECIMAL(3, 2)))"


def _divide(a: str, b: str, scale: str) -> str:
    digits = int(scale)
    top, bottom = f"CAST(round({a} * 10000) AS BIGINT)", f"nullif(CAST(round({b} * 10000) AS BIGINT), 0)"
    quotient = (
        f"sign({top}) * sign({bottom}) * ((abs({top}) * {2 * 10**digits} + abs({bottom})) // (2 * abs({bottom})))"
    )
    return f"(CAST({quotient} AS DECIMAL(18, 0)) * CAST({10**-digits:.{digits}f} AS DECIMAL({digits + 1}, {digits})))"


_MACROS: dict[str, Callable[..., str]] = {"to_base": _to_base, "divide": _divide}


def _expand_macro(match: re.Match[str]) -> str:
    return _MACROS[match.group(1)](*(arg.strip() for arg in match.group(2).split(",")))


@dataclass(frozen=True)
class Model:
    ref: TableRef
    path: Path
    sql: str
    contract: Contract

    @property
    def inputs(self) -> tuple[TableRef, ...]:
        return _inputs(self.render())

    def render(self, start: date = ALL_TIME[0], end: date = ALL_TIME[1]) -> str:
        """The SQL with its macros expanded and the window bound: ``@newest(bronze.x)`` becomes the read of the
        table's newest records (engine/staging.py), ``@start_date`` and ``@end_date`` DATE literals."""
        return _rendered(self.sql, start, end)

    def spark_sql(self) -> str:
        """The same model in Spark SQL, for the scale path."""
        import sqlglot

        return sqlglot.transpile(self.render(), read="duckdb", write="spark", pretty=True)[0]


@lru_cache(maxsize=1024)
def _rendered(sql: str, start: date, end: date) -> str:
    """A model's SQL rendered, once per version of the text and window: a build asks for each model's inputs (its
    rendered SQL) some ten times while planning, and a guarded ``@newest`` predicate is tokenized (~4 ms)."""
    values = {"start_date": start, "end_date": end}
    sql = _WINDOW.sub(lambda m: f"DATE '{values[m.group(1)].isoformat()}'", expand_newest(sql))
    return _MACRO.sub(_expand_macro, sql)


def tables_read(sql: str) -> tuple[TableRef, ...]:
    """The lake tables a piece of SQL reads (a model's, or a contract's), parsed once per version of the text."""
    return _inputs(sql)


@cache
def _inputs(sql: str) -> tuple[TableRef, ...]:
    """The lake tables ``sql`` reads: parsed once per version of the SQL, the answer kept on disk (a parse costs
    ~20 ms a model, over a second per build process that asks for every model's inputs)."""
    key = hashlib.sha256(f"{_parser_version()}\0{sql}".encode()).hexdigest()
    path = _INPUTS_CACHE / f"{key}.json"
    try:
        return tuple(TableRef(*name.split(".", 1)) for name in json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        found = _parsed_inputs(sql)
    try:
        _INPUTS_CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps([str(ref) for ref in found]))
        partial.replace(path)  # whole or absent: a reader never sees half a file
    except OSError:  # a read-only home: parse again next time
        pass
    return found


@cache
def _parser_version() -> str:
    """The SQL parser's version, which the kept answers are keyed by, read without importing it (~0.2 s)."""
    return importlib.metadata.version("sqlglot")


def _parsed_inputs(sql: str) -> tuple[TableRef, ...]:
    import sqlglot  # here: a build whose answers are all kept never imports the parser
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    found = set()
    for table in tree.find_all(exp.Table):
        # Only qualified names are lake tables; a CTE is referred to unqualified, even one named like a table.
        if table.db in LAYERS:
            found.add(TableRef(table.db, table.name))
    return tuple(sorted(found))


def load_models(root: Path = MODELS_DIR) -> dict[TableRef, Model]:
    """Every model under ``root``, keyed by the table it builds, in dependency order."""
    models = {}
    for sql_path in sorted(root.glob("*/*.sql")):
        ref = TableRef(sql_path.parent.name, sql_path.stem)
        contract_path = sql_path.with_suffix(".yml")
        if not contract_path.exists():
            raise ValueError(f"model {ref} has no contract {contract_path.name} beside it")
        models[ref] = Model(ref, sql_path, sql_path.read_text(), Contract.load(contract_path))
    graph = {ref: [i for i in needs(model) if i in models and i != ref] for ref, model in models.items()}
    return {ref: models[ref] for ref in TopologicalSorter(graph).static_order()}


def needs(model: Model) -> list[TableRef]:
    """What must be built first: the model's inputs, and the tables its relationship checks look up."""
    return [*model.inputs, *relationship_targets(model)]


def relationship_targets(model: Model) -> list[TableRef]:
    """The tables the model's relationship checks look up."""
    from retreasure.contracts.model import Relationship

    return [TableRef(*c.to.split(".")[:2]) for c in model.contract.checks if isinstance(c, Relationship)]


def downstream(models: dict[TableRef, Model], roots: set[TableRef]) -> set[TableRef]:
    """The models that read, directly or not, from any of ``roots``."""
    found: set[TableRef] = set()
    for ref, model in models.items():  # dependency order: inputs are settled before readers
        if any(i in roots or i in found for i in model.inputs):
            found.add(ref)
    return found
