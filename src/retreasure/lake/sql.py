"""SQL the platform writes in one way only, whichever layer asks for it."""

from __future__ import annotations

import re
from collections.abc import Sequence

_GUARDED_RAW = "TRY_CAST(raw AS JSON)"


def first_per_key(select: str, keys: Sequence[str], order: str) -> str:
    """``select`` kept to one row per key: the first in ``order``. Every "which version of a record wins" in the
    platform is this clause (staging's newest bronze version, an upsert's newest row, landing's first copy of a
    hash), each with its own ``order``; DuckDB and Spark SQL both read it."""
    return f"{select} QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY {order}) = 1"


def on_good_rows(predicate: str) -> str:
    """``predicate`` reading ``raw`` as NULL where it is not JSON (a malformed row's), so that no JSON function in
    it raises: DuckDB 1.4's Parquet reader evaluates expressions over rows that other conditions exclude (a filter
    pushed into it; a column computed under ``QUALIFY`` and filtered after it), and guards written as conditions
    were evaluated on malformed rows all the same: ``CASE WHEN error IS NULL THEN raw END``, and in the second shape
    ``CASE WHEN json_valid(raw) THEN raw END`` (``TRY`` around the predicate made every row's NULL). A cast that
    cannot fail holds wherever it is evaluated: ``TRY_CAST(raw AS JSON)`` (on Spark, ``raw``: its JSON functions
    read malformed text as NULL).

    The column is found by a scan of the predicate's tokens (strings, quoted names and words; a qualified name's
    part or a function named ``raw`` is not the column), not by a SQL parser: loading one's DuckDB dialect cost
    ~0.3 s of every build process, which renders the models before it runs one."""
    tokens = [t for t in _TOKEN.finditer(predicate) if not t.group().isspace()]
    out, copied = [], 0
    for i, token in enumerate(tokens):
        text = token.group()
        name = text[1:-1].replace('""', '"') if text.startswith('"') else text
        qualified = i > 0 and tokens[i - 1].group() == "."
        called = i + 1 < len(tokens) and tokens[i + 1].group() == "("
        if name.lower() == "raw" and not text.startswith("'") and not qualified and not called:
            out += [predicate[copied : token.start()], _GUARDED_RAW]
            copied = token.end()
    return "".join(out) + predicate[copied:]


# A predicate's tokens: a string ('' inside it is a quote), a quoted name, a word, spaces, any other character.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\w+|\s+|.", re.DOTALL)
