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


def _keys(lake: Lake) -> dict[str, dict[str, Any]]:
    """Every key by id, as it stands: read through the read layer, whose copy of the table lasts until its next
    commit. Every request authenticates; a revocation commits a new version, so it takes effect on the very next
    request."""
    try:
        stored = read.rows(lake, f"SELECT * FROM {KEYS}", [KEYS])
    except read.NotBuilt:
        return {}
    rows: dict[str, dict[str, Any]] = {}
    # A revocation is a second row for the key, so the latest revocation time wins over "active".
    for row in stored:
        seen = rows.setdefault(row["key_id"], row)
        seen["revoked_at"] = max((t for t in (seen["revoked_at"], row["revoked_at"]) if t), default=None)
    return rows


def authenticate(lake: Lake, key: str) -> Principal | None:
    """The principal behind ``key``; None when it is unknown, malformed or revoked."""
    key_id = key_id_of(key)
    row = _keys(lake).get(key_id or "")
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
