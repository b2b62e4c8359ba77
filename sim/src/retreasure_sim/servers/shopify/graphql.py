"""The GraphQL side of the fake Shopify: query text read without a GraphQL engine, search strings, cursors."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_PAGE = 250
CONNECTIONS = ("orders", "products", "customers", "inventoryItems")
SORT_KEYS = ("ID", "CREATED_AT", "UPDATED_AT")
SORT_TYPES = {
    "orders": "OrderSortKeys",
    "products": "ProductSortKeys",
    "customers": "CustomerSortKeys",
    "inventoryItems": "InventoryItemSortKeys",
}


class GraphQLError(Exception):
    """A request GraphQL refuses before running it: sent as ``{"errors": [...]}`` with HTTP 200."""

    def __init__(self, message: str, code: str, **extensions: Any) -> None:
        super().__init__(message)
        self.payload = {"message": message, "extensions": {"code": code, **extensions}}


# -- query text ----------------------------------------------------------------------------------


@dataclass
class Call:
    """The one top-level field a query asks for, with its arguments resolved against the variables."""

    field: str
    args: dict[str, Any]
    nested_firsts: list[int]
    shape: str  # "edges" or "nodes"


_COMMENT = re.compile(r"#[^\n]*")
_TOP_FIELD = re.compile(r"\{\s*(?:\w+\s*:\s*)?(\w+)\s*")
_ARG = re.compile(r'(\w+)\s*:\s*("(?:[^"\\]|\\.)*"|\$\w+|-?\d+|\w+)')
_NESTED_FIRST = re.compile(r"\w+\s*\([^()]*?\bfirst\s*:\s*(\$\w+|\d+)")


def _closing_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``, skipping string literals."""
    depth, i, quoted = 0, start, False
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise GraphQLError("syntax error, unexpected end of file", "parseError")


def _value(token: str, variables: dict[str, Any]) -> Any:
    if token.startswith("$"):
        return variables.get(token[1:])
    if token.startswith('"'):
        return json.loads(token)
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    return {"true": True, "false": False, "null": None}.get(token, token)


def parse_call(query: str, variables: dict[str, Any]) -> Call:
    """Read the top-level field, its arguments and the nested connection sizes from the query text."""
    text = _COMMENT.sub("", query)
    found = _TOP_FIELD.search(text)
    if not found:
        raise GraphQLError("syntax error, unexpected end of file", "parseError")
    name, rest_at, args = found.group(1), found.end(), {}
    if text[rest_at : rest_at + 1] == "(":
        close = _closing_paren(text, rest_at)
        args = {m.group(1): _value(m.group(2), variables) for m in _ARG.finditer(text[rest_at + 1 : close])}
        rest_at = close + 1
    selection = text[rest_at:]
    nested = []
    for m in _NESTED_FIRST.finditer(selection):
        size = _value(m.group(1), variables)
        nested.append(size if isinstance(size, int) else 0)
    shape = "edges" if re.search(r"\bedges\b", selection) else "nodes"
    return Call(name, args, nested, shape)


@dataclass(frozen=True)
class Term:
    """One time condition of a search string, e.g. ``updated_at:>='2025-03-01T00:00:00Z'``."""

    field: str  # updated_at | created_at
    op: str  # > >= < <= =
    at: datetime

    def admits(self, value: datetime) -> bool:
        return {
            ">": value > self.at,
            ">=": value >= self.at,
            "<": value < self.at,
            "<=": value <= self.at,
            "=": value == self.at,
        }[self.op]


_TERM = re.compile(r"""(\w+):(>=|<=|>|<)?('[^']*'|"[^"]*"|\S+)""")


def parse_search(text: str | None) -> tuple[list[Term], list[dict[str, str]]]:
    """Shopify's search syntax, as far as time filters go; anything else is ignored with a warning."""
    terms: list[Term] = []
    warnings: list[dict[str, str]] = []
    for part in re.split(r"\s+AND\s+", (text or "").strip()):
        if not part:
            continue
        found = _TERM.fullmatch(part.strip())
        if not found or found.group(1) not in ("updated_at", "created_at"):
            warnings.append({"field": part.split(":", 1)[0], "message": "Invalid search field for this query."})
            continue
        raw = found.group(3).strip("'\"")
        try:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            warnings.append({"field": found.group(1), "message": f"Invalid date: {raw}"})
            continue
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        terms.append(Term(found.group(1), found.group(2) or "=", at))
    return terms, warnings


# -- rows --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One record of a connection as of the clock; ``render(copy)`` gives its node(s) lazily."""

    id: int
    created_at: datetime
    updated_at: datetime
    render: Callable[[str], dict[str, Any]]
    copies: tuple[str, ...] = ("main",)

    def sort_value(self, key: str) -> Any:
        return {"ID": self.id, "CREATED_AT": self.created_at, "UPDATED_AT": self.updated_at}[key]


def encode_cursor(sort_key: str, value: Any, row_id: int, copy: int) -> str:
    """An opaque cursor: the position of an edge in the sorted connection."""
    shown = value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([sort_key, shown, row_id, copy], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort_key: str) -> tuple[Any, int, int]:
    """The position a cursor stands for; a cursor from another sort or a forged one is refused."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key, value, row_id, copy = json.loads(base64.urlsafe_b64decode(padded))
        if key != sort_key:
            raise ValueError("sort key changed")
        if sort_key != "ID":
            value = datetime.fromisoformat(value)
        return value, int(row_id), int(copy)
    except (ValueError, TypeError) as exc:
        raise GraphQLError("Invalid cursor for current pagination sort.", "argumentLiteralsIncompatible") from exc
