"""How a model reads bronze: ``@newest(bronze.<table>)`` is the newest version of each record of the table, in
the model's window, without malformed rows.

Which version is newest, and whether the model's window limits the read, is a property of the bronze table,
declared once in ``STAGED`` below; a model only names the table, any bronze columns it needs besides
``record_key`` and ``raw``, and which records it takes:

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
from dataclasses import dataclass
from enum import StrEnum

from retreasure.lake.sql import first_per_key


class Newest(StrEnum):
    """What makes one version of a record newer than another; ties always go to the later landing, then to a
    fixed order of content hashes, so a rebuild picks the same version."""

    BY_CHANGE = "record_updated_at DESC NULLS LAST, ingested_at DESC, record_hash"
    """The source's own change time: a late-landing old version never replaces a newer one."""
    BY_LANDING = "ingested_at DESC, record_hash"
    """The newest landing: the source restates a record in full and has no change time of its own."""
    BY_FILE_DAY = "partition_date DESC, ingested_at DESC, record_hash"
    """The newest daily file that lists the record: the file's day is the version's day."""


@dataclass(frozen=True)
class Staged:
    newest: Newest
    # False: read in full on every run, whatever the window (a small table, or one whose every version matters
    # to rows of any day).
    windowed: bool = True


# One line per bronze table a model reads.
STAGED: dict[str, Staged] = {
    "ads_spend": Staged(Newest.BY_CHANGE),
    "ebay_orders": Staged(Newest.BY_CHANGE),
    "ebay_shipping_fulfillments": Staged(Newest.BY_CHANGE),
    # A rate is restated only by a re-sent file; fx_rates carries rates across days, so it needs them all.
    "ecb_fx_rates": Staged(Newest.BY_LANDING, windowed=False),
    # Catalogue, customers and stock levels are small dimensions rebuilt whole on every run.
    "etsy_listings": Staged(Newest.BY_CHANGE, windowed=False),
    "etsy_receipts": Staged(Newest.BY_CHANGE),
    # A customer located again (a move) is where the latest file puts them; a new zone version can move
    # customers located long ago, so every location is read.
    "geo_customer_locations": Staged(Newest.BY_FILE_DAY, windowed=False),
    # A zone version's end is the next version's start, wherever it landed.
    "geo_delivery_zones": Staged(Newest.BY_CHANGE, windowed=False),
    "pos_inventory": Staged(Newest.BY_CHANGE),
    "pos_sales": Staged(Newest.BY_CHANGE),
    "shopify_customers": Staged(Newest.BY_CHANGE, windowed=False),
    "shopify_inventory_levels": Staged(Newest.BY_CHANGE, windowed=False),
    "shopify_orders": Staged(Newest.BY_CHANGE),
    "shopify_products": Staged(Newest.BY_CHANGE, windowed=False),
    "web_clickstream": Staged(Newest.BY_CHANGE),
    "web_transactions": Staged(Newest.BY_CHANGE),
}

_CALL = "@newest("
_TABLE = re.compile(r"bronze\.(\w+)")
_WHERE = re.compile(r"\s+WHERE\s+", re.IGNORECASE)


def expand_newest(sql: str) -> str:
    """``sql`` with every ``@newest(...)`` call replaced by its subquery; the window stays ``@start_date`` and
    ``@end_date`` for the caller to bind."""
    out = []
    position = 0
    while (start := sql.find(_CALL, position)) >= 0:
        end = _closing_paren(sql, start + len(_CALL) - 1)
        out.append(sql[position:start])
        out.append(newest_sql(sql[start + len(_CALL) : end]))
        position = end + 1
    out.append(sql[position:])
    return "".join(out)


def newest_sql(arguments: str) -> str:
    """The subquery of one call, from its arguments: ``bronze.<table>[, column ...][ WHERE predicate]``."""
    if "--" in arguments:
        # The call becomes one line of SQL, where a comment would swallow the rest of the read.
        raise ValueError("@newest(...) takes no comment inside it: write the comment above the call")
    head, *rest = _WHERE.split(arguments.strip(), maxsplit=1)
    predicate = rest[0].strip() if rest else ""
    names = [n.strip() for n in head.split(",")]
    table = _TABLE.fullmatch(names[0])
    if not table:
        raise ValueError(f"@newest reads a bronze table, not {names[0]!r}")
    staged = STAGED.get(table.group(1))
    if staged is None:
        raise ValueError(f"bronze.{table.group(1)} is not declared in retreasure.engine.staging.STAGED")
    columns = ", ".join(dict.fromkeys(["record_key", "raw", *names[1:]]))
    conditions = ["error IS NULL"]
    if staged.windowed:
        conditions.append("partition_date BETWEEN @start_date AND @end_date")
    if predicate:
        # Guarded: DuckDB may evaluate conjuncts in any order, and a malformed row's raw is not JSON.
        conditions.append(f"CASE WHEN error IS NULL THEN ({predicate}) END")
    select = f"SELECT {columns} FROM bronze.{table.group(1)} WHERE {' AND '.join(conditions)}"
    return f"({first_per_key(select, ['record_key'], staged.newest.value)})"


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
