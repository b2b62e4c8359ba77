"""API keys and the roles they carry: who may read which part of gold through the API.

A key is ``rt_<key_id>_<secret>``: the key id is public (it names the key in lists, logs and revocations), the
secret is 32 random bytes. Only the SHA-256 of the whole key is stored, in the Delta table ``ops.api_keys`` of
the configured lake; the clear key is printed once, when it is created. A fast hash is enough here because the
key is random and long: there is nothing to guess that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from retreasure.lake.store import Lake, TableRef
from retreasure.serving import read
from retreasure.serving.roles import ROLES

KEYS = TableRef("ops", "api_keys")
KEY_PREFIX = "rt_"
KEYS_SCHEMA = pa.schema(
    [
        ("key_id", pa.string()),
        ("key_hash", pa.string()),
        ("role", pa.string()),
        ("name", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("revoked_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's public id, its role and the name it was given."""

    key_id: str
    role: str
    name: str


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The public id inside a key, or None when the text is not shaped like one of ours (safe to log)."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    return key_id if sep and key_id.isalnum() and secret else None


def create_key(lake: Lake, role: str, name: str = "") -> str:
    """Create a key for ``role`` and return it in clear: the only time it is ever seen."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = {
        "key_id": key_id,
        "key_hash": _hash(key),
        "role": role,
        "name": name,
        "created_at": datetime.now(UTC),
        "revoked_at": None,
    }
    lake.append(KEYS, pa.Table.from_pylist([row], schema=KEYS_SCHEMA))
    return key


class _KnownKeys:
    """The keys of each lake as of one version of ``ops.api_keys``: whether a commit followed is asked on every
    request (one stat on a local lake), and the table read again only when one did."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_lake: dict[str, tuple[int, dict[str, dict[str, Any]]]] = {}

    def get(self, lake: Lake) -> dict[str, dict[str, Any]] | None:
        """The keys when the kept ones are of the table's current version; None when they must be read again."""
        with self._lock:
            kept = self._by_lake.get(lake.uri)
        if kept is None:
            return None
        moved = lake.committed_since(KEYS, kept[0])
        current = not moved if moved is not None else lake.version(KEYS) == kept[0]
        return kept[1] if current else None

    def put(self, lake: Lake, version: int | None, keys: dict[str, dict[str, Any]]) -> None:
        if version is not None:
            with self._lock:
                self._by_lake[lake.uri] = (version, keys)


_known = _KnownKeys()


def _keys(lake: Lake) -> dict[str, dict[str, Any]]:
    """Every key by id, as it stands (not to be changed by the caller): read through the read layer when
    ``ops.api_keys`` has a new version, else the keys kept for its version. Every request authenticates; a
    revocation commits a new version, so it takes effect on the very next request."""
    kept = _known.get(lake)
    if kept is not None:
        return kept
    # The version before the read: if a commit lands during it, the next look reads again.
    version = lake.version(KEYS)
    try:
        # Recorded apart: an answer computed by the same request does not depend on the keys.
        with read.recording():
            stored = read.rows(lake, f"SELECT * FROM {KEYS}", [KEYS])
    except read.NotBuilt:
        return {}
    rows: dict[str, dict[str, Any]] = {}
    # A revocation is a second row for the key, so the latest revocation time wins over "active".
    for row in stored:
        seen = rows.setdefault(row["key_id"], row)
        seen["revoked_at"] = max((t for t in (seen["revoked_at"], row["revoked_at"]) if t), default=None)
    _known.put(lake, version, rows)
    return rows


def authenticate(lake: Lake, key: str) -> Principal | None:
    """The principal behind ``key``; None when it is unknown, malformed or revoked."""
    return _check(_keys(lake), key)


def authenticate_kept(lake: Lake, key: str) -> Principal | None:
    """``authenticate`` without reading the lake: None also when the kept keys are not of the current version
    (then ``authenticate`` must be asked, off the event loop)."""
    kept = _known.get(lake)
    return _check(kept, key) if kept is not None else None


def _check(keys: dict[str, dict[str, Any]], key: str) -> Principal | None:
    key_id = key_id_of(key)
    row = keys.get(key_id or "")
    # Compare the hashes in constant time even when the id is unknown, so timing tells nothing about ids.
    stored = row["key_hash"] if row else _hash("")
    if not hmac.compare_digest(stored, _hash(key)) or row is None or row["revoked_at"] is not None:
        return None
    return Principal(key_id=row["key_id"], role=row["role"], name=row["name"])


def revoke_key(lake: Lake, key_id: str) -> bool:
    """Revoke a key by its id; False when there is no such active key.

    Appended as a second row for the key: the table is append-only, so its history is the keys' audit trail.
    """
    row = _keys(lake).get(key_id)
    if row is None or row["revoked_at"] is not None:
        return False
    lake.append(KEYS, pa.Table.from_pylist([{**row, "revoked_at": datetime.now(UTC)}], schema=KEYS_SCHEMA))
    return True


def list_keys(lake: Lake) -> list[dict[str, Any]]:
    """Every key's id, role, name and dates, oldest first: never the key nor its hash."""
    rows = sorted(_keys(lake).values(), key=lambda r: (r["created_at"], r["key_id"]))
    return [{k: v for k, v in r.items() if k != "key_hash"} for r in rows]
