"""A batch of JSON texts as bronze's columns, shared by the file and the stream landings: each text's raw text,
record hash and early reason (per text, in C where ``bronze.batch`` can), then the business keys, change times and
reasons of the whole batch as columns, by the per-record functions' rules.

Text keys and ISO 8601 change times (nearly all) are checked and parsed by Arrow; any other value (a number for a
key, epoch seconds, a time that does not parse) goes through ``record_key`` / ``change_time`` row by row, so the
columns are those the per-record path gives, byte for byte.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from retreasure.bronze.batch import Masked
from retreasure.bronze.native import NativeTexts
from retreasure.bronze.pii import PiiMasker
from retreasure.bronze.record import change_time, first_reason, masked_raw, record_key, utf8_raw
from retreasure.connectors.base import Entity
from retreasure.records.paths import dig

# The change-time shape Arrow parses exactly as ``parse_instant`` does (ISO 8601 with a zone, to the
# microsecond); any other value goes through ``parse_instant`` itself.
ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
STAMP = pa.timestamp("us", "UTC")

# How a value that the batch masker left aside is read: its object (or its text) and why it is malformed.
Decode = Callable[[Any], tuple[Any, str | None]]


@dataclass(frozen=True)
class Found:
    """The values at one declared path, a row each, as columns: the strings, and where a value is something else
    (a number, a boolean, an object: read again by the per-record functions)."""

    texts: pa.Array  # string: the value where it is a string, else null
    other: np.ndarray  # bool: a value that is neither a string nor absent (null)

    @staticmethod
    def of(values: Sequence[Any]) -> Found:
        try:
            return Found(pa.array(values, pa.string()), np.zeros(len(values), dtype=bool))
        except (pa.ArrowTypeError, pa.ArrowInvalid):  # a number, a boolean, an object: rare, and not text
            other = np.array([value is not None and not isinstance(value, str) for value in values], dtype=bool)
            texts = [value if isinstance(value, str) else None for value in values]
            return Found(pa.array(texts, pa.string()), other)

    def absent(self) -> np.ndarray:
        """Per row, was there no value (or null)?"""
        return ~self.other & pc.is_null(self.texts).to_numpy(zero_copy_only=False)

    def replaced(self, rows: np.ndarray, values: Sequence[Any]) -> Found:
        """These values with the values at ``rows`` (in order) replaced by ``values``."""
        if not len(rows):
            return self
        new = Found.of(values)
        other = self.other.copy()
        other[rows] = new.other
        return Found(replaced(self.texts, rows, new.texts), other)


@dataclass
class BatchRows:
    """The per-text part of a batch's rows, in order; ``bronze_columns`` turns it into bronze's columns."""

    raws: list[bytes] | pa.Array  # UTF-8 bronze text, PII tokenised
    hashes: list[str] | pa.Array  # SHA-256 of raws, in hex
    early: list[str | None]  # reasons known before the key and time are looked at
    objects: list[dict[str, Any] | None]  # payloads whose key and time are read
    keys: Found  # the values at the declared paths, as parsed
    times: Found
    # Rows the native pass landed: no payload was made for them (``objects`` holds None), their raw text is one.
    native: np.ndarray | None = None

    def is_object(self) -> np.ndarray:
        """Per row, was it a JSON object (its key and time are looked for)?"""
        objects = np.array([payload is not None for payload in self.objects], dtype=bool)
        return objects if self.native is None else objects | self.native

    def object_at(self, row: int) -> dict[str, Any]:
        """The payload of an object's row (parsed again from its raw text for a row the native pass landed: the
        masked object, whose key and time are as received -- they are not on PII paths)."""
        payload = self.objects[row]
        if payload is not None:
            return payload
        raw = self.raws[row]
        return orjson.loads(raw.as_py() if isinstance(raw, pa.Scalar) else raw)

    def hash_texts(self) -> list[str]:
        """The record hashes as Python strings (the stream's dedup keeps them in sets)."""
        return self.hashes if isinstance(self.hashes, list) else self.hashes.to_pylist()


def batch_rows(
    masker: PiiMasker,
    entity: Entity,
    values: Sequence[Any],
    fast: Sequence[Masked | None] | NativeTexts,
    decode: Decode,
    max_record_bytes: int,
) -> BatchRows:
    """The rows of ``values``: those ``JsonBatchMasker.batch`` did (``fast``) as it did them, the others decoded
    by ``decode`` and masked by the per-record functions, in their place."""
    if isinstance(fast, NativeTexts):
        return _native_rows(masker, entity, values, fast, decode, max_record_bytes)
    # Column by column in comprehensions: a loop appending to six lists per row was a third of the batch's time.
    raws = [done[1] if done is not None else b"" for done in fast]
    objects: list[dict[str, Any] | None] = [done[0] if done is not None else None for done in fast]
    early: list[str | None] = [None] * len(raws)
    remember = masker.remember
    for row, done in enumerate(fast):
        if done is not None:
            if done[2]:
                remember(done[2])
            continue
        raws[row], objects[row], early[row] = per_record(masker, entity, values[row], decode, max_record_bytes)
    sha256 = hashlib.sha256
    return BatchRows(
        raws,
        [sha256(raw).hexdigest() for raw in raws],
        early,
        objects,
        Found.of(_found(objects, entity.key)),
        Found.of(_found(objects, entity.updated_at) if entity.updated_at else [None] * len(raws)),
    )


def per_record(
    masker: PiiMasker, entity: Entity, value: Any, decode: Decode, max_record_bytes: int
) -> tuple[bytes, dict[str, Any] | None, str | None]:
    """One value the batch way left aside, by the per-record functions: its raw text, its object (None when it is
    not one) and why it is malformed."""
    payload, error = decode(value)
    text, too_big = masked_raw(masker, entity, payload, max_record_bytes)
    if too_big:
        error = first_reason(too_big, error)
    text, raw, unencodable = utf8_raw(text)
    if unencodable:  # quarantined whole: its key or time may hold the character no table can store either
        payload, error = text, first_reason(unencodable, error)
    return raw, (payload if isinstance(payload, dict) else None), error


def _native_rows(
    masker: PiiMasker,
    entity: Entity,
    values: Sequence[Any],
    fast: NativeTexts,
    decode: Decode,
    max_record_bytes: int,
) -> BatchRows:
    """``batch_rows`` of the native pass's columns: its rows as it made them, the others as ``batch_rows`` makes
    them, put in their places; the vault's clear values remembered in the rows' order (the first value of a
    token wins: the pass gives each token of its rows once, at its first row)."""
    count = len(values)
    early: list[str | None] = [None] * count
    objects: list[dict[str, Any] | None] = [None] * count
    remember, sha256 = masker.remember, hashlib.sha256
    tokens = list(zip(fast.tokens, fast.kinds, fast.clear, strict=True))
    back = np.flatnonzero(~fast.landed)
    raws: list[bytes] = []
    keys: list[Any] = []
    times: list[Any] = []
    remembered = 0  # the native rows' tokens before each row the Python way, then the rest: the rows' order
    for row in back.tolist():
        before = bisect.bisect_left(fast.token_rows, row, lo=remembered)
        remember(tokens[remembered:before])
        remembered = before
        raw, objects[row], early[row] = per_record(masker, entity, values[row], decode, max_record_bytes)
        raws.append(raw)
        keys.append(_dig(objects[row], entity.key))
        times.append(_dig(objects[row], entity.updated_at) if entity.updated_at else None)
    remember(tokens[remembered:])
    return BatchRows(
        replaced(fast.texts, back, pa.array(raws, pa.string())),
        replaced(fast.hashes, back, pa.array([sha256(raw).hexdigest() for raw in raws], pa.string())),
        early,
        objects,
        Found(fast.key_texts, fast.key_other).replaced(back, keys),
        Found(fast.time_texts, fast.time_other).replaced(back, times),
        fast.landed,
    )


def replaced(values: pa.Array, rows: np.ndarray, new: pa.Array) -> pa.Array:
    """``values`` with the values at ``rows`` (ascending) replaced by ``new``, in order."""
    if not len(rows):
        return values
    mask = np.zeros(len(values), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(values, pa.array(mask), new)


def _dig(payload: dict[str, Any] | None, path: str) -> Any:
    return dig(payload, path) if payload is not None else None


def _found(objects: list[dict[str, Any] | None], path: str) -> list[Any]:
    """The value at ``path`` of each object (None for a row without one), as ``dig`` finds it."""
    if "." in path:
        return [dig(payload, path) if payload is not None else None for payload in objects]
    return [payload.get(path) if payload is not None else None for payload in objects]


def bronze_columns(entity: Entity, rows: BatchRows) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array, pa.Array]:
    """The raw text, record hash, business key, change time and reason columns of ``rows``."""
    keys, times, late = keys_and_times(entity, rows.keys, rows.times, rows.is_object(), rows.object_at)
    key_missing = pc.if_else(pc.is_null(keys), f"no business key at '{entity.key}'", None)
    errors = pc.coalesce(pa.array(rows.early, pa.string()), late, key_missing)
    return _string_column(rows.raws), _string_column(rows.hashes), keys, times, errors


def keys_and_times(
    entity: Entity,
    found_keys: Found,
    found_times: Found,
    objects: np.ndarray,
    object_at: Callable[[int], dict[str, Any]],
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Per row: the business key, the change time and the change time's problem, as ``record_key`` and
    ``change_time`` find them (``objects``: which rows are objects; ``object_at``: the object of one)."""
    count = len(objects)
    keys = pc.if_else(pc.equal(found_keys.texts, ""), None, found_keys.texts)  # an empty key is no key
    keys = _patch(keys, found_keys.other, lambda row: record_key(object_at(row), entity))
    if not entity.updated_at:
        return keys, pa.nulls(count, STAMP), pa.nulls(count, pa.string())
    texts = found_times.texts
    iso = pc.fill_null(pc.match_substring_regex(texts, ISO_INSTANT), False)
    try:
        times = pc.cast(pc.if_else(iso, texts, None), STAMP)
    except pa.ArrowInvalid:  # a day that does not exist (02-30): every time of the batch by the per-record rules
        times, iso = pa.nulls(count, STAMP), pa.array(np.zeros(count, dtype=bool))
    is_object = pa.array(objects, pa.bool_())
    absent = pc.and_(is_object, pa.array(found_times.absent()))
    problems = pc.if_else(absent, f"no change time at '{entity.updated_at}'", None)
    by_payload = pc.and_(is_object, pc.invert(pc.or_(iso, absent)))
    rows = np.flatnonzero(pc.or_(by_payload, pa.array(found_times.other)).to_numpy(zero_copy_only=False))
    if len(rows):
        parsed = [change_time(object_at(row), entity) for row in rows]
        times = _replace(times, rows, [t for t, _ in parsed], STAMP)
        problems = _replace(problems, rows, [p for _, p in parsed], pa.string())
    return keys, times, problems


def constant(value: Any, count: int, kind: pa.DataType) -> pa.Array:
    """A column of ``count`` times ``value``."""
    return pc.fill_null(pa.nulls(count, kind), pa.scalar(value, kind))


def _string_column(values: list[Any] | pa.Array) -> pa.Array:
    return values if isinstance(values, pa.Array) else pa.array(values, pa.string())


def _patch(values: pa.Array, where: np.ndarray, compute: Callable[[int], Any]) -> pa.Array:
    rows = np.flatnonzero(where)
    return _replace(values, rows, [compute(row) for row in rows], values.type) if len(rows) else values


def _replace(values: pa.Array, rows: np.ndarray, new: list[Any], kind: pa.DataType) -> pa.Array:
    return replaced(values, rows, pa.array(new, kind))
