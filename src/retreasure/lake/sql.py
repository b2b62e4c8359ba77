"""SQL the platform writes in one way only, whichever layer asks for it."""

from __future__ import annotations

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
    read malformed text as NULL)."""
    import sqlglot  # here: commands that open the lake and never parse SQL do not pay its import (~0.1 s)
    from sqlglot.tokens import TokenType

    tokens = sqlglot.tokenize(predicate, read="duckdb")
    out, copied = [], 0
    for i, token in enumerate(tokens):
        # The column itself: not a qualified name's part, not a function of that name.
        qualified = i > 0 and tokens[i - 1].token_type == TokenType.DOT
        called = i + 1 < len(tokens) and tokens[i + 1].token_type == TokenType.L_PAREN
        column = token.token_type in (TokenType.VAR, TokenType.IDENTIFIER) and token.text.lower() == "raw"
        if column and not qualified and not called:
            out += [predicate[copied : token.start], _GUARDED_RAW]
            copied = token.end + 1
    return "".join(out) + predicate[copied:]
