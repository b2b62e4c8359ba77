"""Where PII sits in a source's records, in one vocabulary for every connector: paths, kinds and safe columns.

Connectors declare it; bronze's masker (``retreasure.bronze.pii``) acts on it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2

# The kind is part of the token, so "street" on one channel and "address" on another would give the same street
# two tokens and break joins across channels.
KINDS = frozenset({"email", "phone", "name", "street", "username", "ip", "text"})

# Characters that are invisible in a header but make a different column name.
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\x00\u200b\u200c\u200d\u2060\u00ad"))
_NAME_SEPARATORS = re2.compile(r"[^\pL\pN]+")


@lru_cache(maxsize=4096)
def column_name(name: str) -> str:
    """The comparable form of a column name: ``"\ufeffLoyalty Phone\x00"`` and ``loyalty-phone`` are
    ``loyalty_phone``. Case folded, BOM/NUL/zero-width removed, runs of spaces and punctuation one ``_``."""
    text = unicodedata.normalize("NFKC", name.translate(_INVISIBLE)).casefold()
    return _NAME_SEPARATORS.sub("_", text).strip("_")


@dataclass(frozen=True)
class PiiSpec:
    """Where PII sits in one entity's records: dotted paths (lists are walked through) -> kind.

    ``*`` matches any key at that level. Columns of a CSV row are one-segment paths, compared by their
    normalised name (``column_name``). ``safe`` makes the entity default-deny: a top-level field that is
    neither a declared PII path nor named safe is tokenised whole (kind ``text``), so a new or renamed column
    of a source that carries PII cannot land in clear. Without ``safe``, undeclared fields pass through the
    safety net only.
    """

    paths: Mapping[str, str]
    safe: frozenset[str] | None = None
    # The paths as nested dicts, key by key, a kind at each leaf: what the masker walks a record with.
    tree: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.paths.values()) - KINDS)
        if unknown:
            raise ValueError(f"unknown PII kind(s) {unknown}: use one of {sorted(KINDS)}")
        object.__setattr__(self, "tree", _compile(self.paths))
        if self.safe is not None:
            object.__setattr__(self, "safe", frozenset(column_name(name) for name in self.safe))


def _compile(paths: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, kind in paths.items():
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"PII path {path!r} passes through a leaf")
        node[leaf] = kind
    return tree
