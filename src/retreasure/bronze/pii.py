"""PII masking for bronze: keyed-hash tokens in the lake, clear values only in the encrypted vault.

A token is ``pii:<kind>:<hmac>`` over the normalised value, so the same e-mail on Shopify and Etsy gives the
same token and silver can resolve one customer across channels without ever seeing the address.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from cryptography.fernet import Fernet

from retreasure.lake.store import Lake, TableRef

VAULT = TableRef("restricted", "pii")
VAULT_SCHEMA = pa.schema(
    [
        ("token", pa.string()),
        ("kind", pa.string()),
        ("ciphertext", pa.binary()),
        ("source", pa.string()),
        ("first_seen_at", pa.timestamp("us", tz="UTC")),
    ]
)
TOKEN_PREFIX = "pii:"  # noqa: S105 - a marker, not a credential
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_NON_DIGITS = re.compile(r"[^\d+]")
# What can be recognised in text that did not parse (no field names to go by): e-mail addresses,
# international phone numbers and IPv4 addresses. A national number without "+" is not recognisable.
_PII_IN_TEXT = {
    "email": re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"),
    "phone": re.compile(r"\+\d{1,3}[\s.-]?\(?\d[\d\s().-]{5,}\d"),
    "ip": re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
}


def normalise(kind: str, value: str) -> str:
    """The form that is hashed: equal people give equal tokens whatever the channel's formatting."""
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return _NON_DIGITS.sub("", value)
    return " ".join(value.split()).casefold()


# One vocabulary for every connector: the kind is part of the token, so "street" on one channel and "address"
# on another would give the same street two tokens and break joins across channels.
KINDS = frozenset({"email", "phone", "name", "street", "username", "ip", "text"})


@dataclass(frozen=True)
class PiiSpec:
    """Where PII sits in one entity's records: dotted paths (lists are walked through) -> kind.

    ``*`` matches any key at that level. Columns of a CSV row are one-segment paths.
    """

    paths: Mapping[str, str]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.paths.values()) - KINDS)
        if unknown:
            raise ValueError(f"unknown PII kind(s) {unknown}: use one of {sorted(KINDS)}")
        object.__setattr__(self, "_tree", _compile(self.paths))


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


def _subtree(tree: dict[str, Any], key: str) -> Any:
    """What applies under ``key``: its own paths and the wildcard's, merged (a leaf kind wins)."""
    specific, wild = tree.get(key), tree.get("*")
    if wild is None or isinstance(specific, str):
        return specific
    if specific is None or isinstance(wild, str):
        return specific if specific is not None else wild
    merged = dict(wild)
    for name, value in specific.items():
        merged[name] = _subtree({name: value, "*": wild.get(name)}, name) if name in wild else value
    return merged


class PiiMasker:
    """Replaces PII values with tokens and collects the clear values for the vault."""

    def __init__(self, hmac_key: str, vault_key: str | None = None) -> None:
        if not hmac_key:
            raise ValueError("PII HMAC key is not set (RETREASURE_PII_HMAC_KEY)")
        self._key = hmac_key.encode()
        self._fernet = Fernet(vault_key.encode()) if vault_key else None
        self.pending: dict[str, tuple[str, str]] = {}  # token -> (kind, clear value)

    def token(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key, normalise(kind, value).encode(), hashlib.sha256).hexdigest()
        return f"{TOKEN_PREFIX}{kind}:{digest[:32]}"

    def _mask_value(self, kind: str, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip() or value.startswith(TOKEN_PREFIX):
            return value
        token = self.token(kind, value)
        self.pending.setdefault(token, (kind, value))
        return token

    def mask(self, record: Any, spec: PiiSpec) -> Any:
        """A copy of ``record`` with declared PII tokenised, and any stray e-mail address caught too."""
        return self._walk(record, spec._tree)  # type: ignore[attr-defined]

    def _walk(self, node: Any, tree: Any) -> Any:
        if isinstance(node, list):
            return [self._walk(item, tree) for item in node]
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                sub = _subtree(tree, key)
                if isinstance(sub, str):
                    out[key] = self._mask_value(sub, value) if not isinstance(value, dict | list) else value
                else:
                    out[key] = self._walk(value, sub or {})
            return out
        # The safety net: an e-mail address in a field nobody declared is still PII.
        if isinstance(node, str) and "@" in node and _EMAIL.match(node.strip()):
            return self._mask_value("email", node)
        return node

    def mask_text(self, text: str) -> str:
        """Text that did not parse may still hold PII: every shape recognisable without field names."""
        for kind, pattern in _PII_IN_TEXT.items():
            text = pattern.sub(lambda m, kind=kind: self._mask_value(kind, m.group()), text)
        return text

    def flush_vault(self, lake: Lake, source: str) -> int:
        """Encrypt and store the clear values seen since the last flush; returns new vault rows."""
        if not self.pending:
            return 0
        if self._fernet is None:
            raise ValueError("PII vault key is not set (RETREASURE_PII_VAULT_KEY)")
        now = datetime.now(UTC)
        rows = [
            {
                "token": token,
                "kind": kind,
                "ciphertext": self._fernet.encrypt(value.encode()),
                "source": source,
                "first_seen_at": now,
            }
            for token, (kind, value) in self.pending.items()
        ]
        self.pending.clear()
        return lake.insert_new(VAULT, pa.Table.from_pylist(rows, schema=VAULT_SCHEMA), ["token"])

    def reveal(self, ciphertext: bytes) -> str:
        """Clear value of a vault row: for the fulfillment and opt-in marketing uses only."""
        if self._fernet is None:
            raise ValueError("PII vault key is not set (RETREASURE_PII_VAULT_KEY)")
        return self._fernet.decrypt(ciphertext).decode()
