"""Dotted paths into a record: how an entity names its key, its change time and its PII (``shipTo.name``)."""

from __future__ import annotations

from typing import Any


def dig(payload: Any, path: str) -> Any:
    """Value at a dotted path in nested dicts, or None."""
    node = payload
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
