"""SQL the platform writes in one way only, whichever layer asks for it."""

from __future__ import annotations

from collections.abc import Sequence


def first_per_key(select: str, keys: Sequence[str], order: str) -> str:
    """``select`` kept to one row per key: the first in ``order``. Every "which version of a record wins" in the
    platform is this clause (staging's newest bronze version, an upsert's newest row, landing's first copy of a
    hash), each with its own ``order``; DuckDB and Spark SQL both read it."""
    return f"{select} QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY {order}) = 1"
