"""One record's bronze text, business key and change time, by the per-record rules every landing follows (the
batch ones, ``bronze.columns``, give the same bytes): the masked compact JSON text of an object (or the masked
text of what did not parse), the quarantine reason of one over the size limit, the key and time at the entity's
declared paths."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity
from retreasure.records.instants import parse_instant
from retreasure.records.paths import dig
from retreasure.records.sizes import KEPT_CHARS, oversized

LONE_SURROGATE = "malformed: a lone surrogate escape in JSON"


def masked_raw(masker: PiiMasker, entity: Entity, payload: Any, max_record_bytes: int) -> tuple[str, str | None]:
    """The text bronze keeps of a record, PII tokenised (compact JSON of an object or list, else the text), and
    the quarantine reason when it is over ``max_record_bytes`` (its text then cut to its start), else None."""
    if isinstance(payload, dict | list):
        raw = json.dumps(masker.mask(payload, entity.pii), separators=(",", ":"), ensure_ascii=False)
        if too_big := _oversized(raw, max_record_bytes):
            return raw[:KEPT_CHARS] + "...", too_big
        return raw, None
    if too_big := _oversized(text := str(payload), max_record_bytes):
        # Only the kept start is masked: masking the whole would be the unbounded work the limit prevents.
        return masker.mask_text(text[:KEPT_CHARS]) + "...", too_big
    return masker.mask_text(text), None


def utf8_raw(raw: str) -> tuple[str, bytes, str | None]:
    """A record's bronze text, its UTF-8 bytes, and None; or, for a text holding a lone surrogate (a JSON
    ``\\ud800`` escape: no UTF-8 text can hold it), the text with it replaced, its bytes and the reason."""
    try:
        return raw, raw.encode(), None
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8", "replace")
        return encoded.decode(), encoded, LONE_SURROGATE


def _oversized(text: str, limit: int) -> str | None:
    """The quarantine reason of a record's text over the limit, or None (a character is 1-4 bytes: most texts are
    judged by their length without being encoded)."""
    if len(text) <= limit // 4 or len(encoded := text.encode()) <= limit:
        return None
    return oversized("record", len(encoded), hashlib.sha256(encoded).hexdigest(), limit)


def record_key(payload: dict[str, Any], entity: Entity) -> str | None:
    """The business key at the entity's declared path, as text; None when missing or empty."""
    found = dig(payload, entity.key)
    return None if found is None or found == "" else str(found)


def change_time(payload: dict[str, Any], entity: Entity) -> tuple[datetime | None, str | None]:
    """The change time at the entity's declared path, or None and why (missing, or it does not parse)."""
    assert entity.updated_at
    try:
        updated_at = parse_instant(dig(payload, entity.updated_at))
    except (ValueError, OverflowError, OSError) as exc:
        return None, f"change time at '{entity.updated_at}' does not parse: {exc}"
    return updated_at, None if updated_at else f"no change time at '{entity.updated_at}'"


def first_reason(reason: str, other: str | None) -> str:
    """A record's reasons to be quarantined, ``reason`` first."""
    return f"{reason}; {other}" if other else reason
