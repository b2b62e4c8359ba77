"""How a model reads bronze: ``@newest(bronze.<table>)`` is the newest version of each record of the table, in
the model's window, without malformed rows.

Which version is newest, and whether the model's window limits the read, is a property of the bronze table,
declared once in ``STAGED`` (``retreasure.contracts.staged``); a model only names the table, any bronze columns
it needs besides ``record_key`` and ``raw``, and which records it takes:

    FROM @newest(bronze.ads_spend, ingested_at)
    FROM @newest(bronze.pos_sales WHERE json_extract_string(raw, '$.type') = 'sale')

The call expands to a subquery over ``bronze.<table>`` before the SQL is parsed, so the table is still seen as
the model's input (lineage, incremental change detection, conservation). ``record_key`` is always selected: it
is the lineage every bronze-fed model carries.

The expansion is the same text for DuckDB and Spark: each ordering states its null order, whose defaults
differ between engines for ascending keys, and sqlglot rewrites ``QUALIFY`` for Spark's grammar.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache

from retreasure.contracts.staged import STAGED
from retreasure.lake.sql import first_per_key, on_good_rows

_CALL = "@newest("
_TABLE = re.compile(r"\bbronze\.(\w+)\b")
_WHERE = re.compile(r"\s+WHERE\s+", re.IGNORECASE)


def expand_newest(sql: str) -> str:
    """``sql`` with every ``@newest(...)`` call replaced by its subquery; the window stays ``@start_date`` and
    ``@end_date`` for the caller to bind."""
    return "".join(text if arguments is None else newest_sql(arguments) for text, arguments in _pieces(sql))


@lru_cache(maxsize=1024)
def windowed_reads(sql: str) -> frozenset[str]:
    """The bronze tables (``bronze.<table>``) that ``sql`` reads only through ``@newest`` calls its window limits:
    a run over a window reads nothing of them outside it, so its connection need name only the window's files
    (``Lake.connect``'s ``days``). A table also named anywhere else (a join, a call's predicate, a comment) is not."""
    windowed, elsewhere = set(), []
    for text, arguments in _pieces(sql):
        if arguments is None:
            elsewhere.append(text)
            continue
        named, _, predicate = _arguments(arguments)
        elsewhere.append(predicate)
        table = _TABLE.fullmatch(named)
        staged = STAGED.get(table.group(1)) if table else None
        if table and staged and staged.windowed:
            windowed.add(table.group(1))
        else:
            elsewhere.append(arguments)
    named = {m.group(1) for m in _TABLE.finditer(" ".join(elsewhere))}
    return frozenset(f"bronze.{t}" for t in windowed - named)


def _pieces(sql: str) -> Iterator[tuple[str, str | None]]:
    """``sql`` cut at its ``@newest(...)`` calls: (text, None) between them, (the call, its arguments) for each."""
    position = 0
    while (start := sql.find(_CALL, position)) >= 0:
        end = _closing_paren(sql, start + len(_CALL) - 1)
        yield sql[position:start], None
        yield sql[start : end + 1], sql[start + len(_CALL) : end]
        position = end + 1
    yield sql[position:], None


def newest_sql(arguments: str) -> str:
    """The subquery of one call, from its arguments: ``bronze.<table>[, column ...][ WHERE predicate]``."""
    if "--" in arguments:
        # The call becomes one line of SQL, where a comment would swallow the rest of the read.
        raise ValueError("@newest(...) takes no comment inside it: write the comment above the call")
    named, extra, predicate = _arguments(arguments)
    table = _TABLE.fullmatch(named)
    if not table:
        raise ValueError(f"@newest reads a bronze table, not {named!r}")
    staged = STAGED.get(table.group(1))
    if staged is None:
        raise ValueError(f"bronze.{table.group(1)} is not declared in retreasure.contracts.staged.STAGED")
    columns = ", ".join(dict.fromkeys(["record_key", "raw", *extra]))
    conditions = ["error IS NULL"]
    if staged.windowed:
        conditions.append("partition_date BETWEEN @start_date AND @end_date")
    if predicate:
        conditions.append(f"({on_good_rows(predicate)})")
    select = f"SELECT {columns} FROM bronze.{table.group(1)} WHERE {' AND '.join(conditions)}"
    return f"({first_per_key(select, ['record_key'], staged.newest.value)})"


def _arguments(arguments: str) -> tuple[str, list[str], str]:
    """A call's arguments as written: its table, the other columns it names, its predicate ("" for none)."""
    head, *rest = _WHERE.split(arguments.strip(), maxsplit=1)
    names = [n.strip() for n in head.split(",")]
    return names[0], names[1:], rest[0].strip() if rest else ""


def _closing_paren(sql: str, opening: int) -> int:
    """The index of the parenthesis closing the one at ``opening``, skipping quoted text."""
    depth = 0
    quote = ""
    for index in range(opening, len(sql)):
        char = sql[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"@newest( at offset {opening} is never closed")
