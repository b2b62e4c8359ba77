"""Cell values for spreadsheet-bound files: formula neutralisation and exact number text.

A finance file is opened in Excel or LibreOffice, where a text cell such as ``=HYPERLINK(...)`` or ``+cmd`` is
run as a formula (CSV injection, OWASP). Text that reaches a report can come from a source system (a store or
region name), so every text cell that would start a formula gets a leading apostrophe. Numbers stay numbers.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

# What makes a spreadsheet treat a cell as a formula (or, for tab and carriage return, hide the prefix that does).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """The text as a spreadsheet must show it: a leading apostrophe when it would otherwise start a formula."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def fixed(value: Decimal, scale: int) -> str:
    """A decimal as plain text with exactly ``scale`` digits after the point (never an exponent)."""
    return format(value.quantize(Decimal(1).scaleb(-scale)), "f")


def csv_text(value: object, kind: pa.DataType) -> str:
    """One CSV cell: empty for null, exact fixed-scale decimals, ISO dates, neutralised text."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return fixed(value, kind.scale) if pa.types.is_decimal(kind) else format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return neutralise(str(value))
