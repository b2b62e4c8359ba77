"""Landing a micro-batch of one topic's messages in its bronze table, by the file path's rules, over the batch.

A message lands as a line of the entity's JSON Lines file would: its raw text with PII tokenised by the same
masker, its business key and change time from the entity's declared paths, its record hash; malformed, empty
and oversized messages land with their reason and are copied to quarantine, so none can block a partition.
Only the decoding, masking and hashing run per message (and the two lookups of the declared key and time in
the parsed object); the keys and change times are checked, parsed (Arrow), dated, turned into reasons and
deduplicated as columns, and the table is built from columns. A value the columns cannot take as the file path
would (a number for a key, a time in another shape than ISO 8601 with a zone) goes through the file path's own
functions, row by row.

Each landing is one Delta commit of the new rows with the offset of every topic-partition of the batch as
``txn`` actions (``streaming/offsets.py``); messages at or below the table's offsets are landed already and
skipped. The quarantine copy and the PII vault are written before that commit, idempotently, so a crash in
between loses neither.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retreasure.bronze.batch import JsonBatchMasker
from retreasure.bronze.landing import (
    UNDATED,
    bronze_table,
    change_time,
    first_reason,
    masked_raw,
    quarantine_table,
    record_key,
    utf8_raw,
)
from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity, load_sources
from retreasure.connectors.files import KEPT_CHARS, json_object, oversized
from retreasure.lake.bronze import BRONZE_SCHEMA, QUARANTINE_SCHEMA
from retreasure.lake.store import Lake, TableRef
from retreasure.records.paths import dig
from retreasure.streaming import offsets
from retreasure.streaming.dedup import SeenHashes, VaultTokens

# The change-time shape Arrow parses exactly as ``parse_instant`` does (ISO 8601 with a zone, to the
# microsecond); any other value goes through ``parse_instant`` itself.
ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
QUARANTINE_RULE = "bronze.parseable"  # the file path's rule name for a record that cannot be keyed or dated


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed message: where it sits, its value as produced, and when it was produced (ms since epoch)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass
class LandedBatch:
    """What landing one micro-batch of one topic did: the ops table's row and the log's line."""

    topic: str
    table: TableRef
    offsets: dict[int, tuple[int, int]]  # partition -> (first, last) offset landed by this commit
    messages: int  # landed by this commit (offsets past the table's)
    already_landed: int  # offsets the table held already: redelivered after a crash or a rebalance
    bytes: int  # of the messages' values
    produced_ms: np.ndarray  # the landed messages' produce times (0: unknown)
    new_rows: int = 0
    duplicates: int = 0  # records the table or an earlier message of the batch held: a producer's retries
    malformed: int = 0
    quarantined: int = 0
    committed_ms: int = 0  # when the commit completed
    landing_ms: float = 0.0  # time spent landing (decode to commit)
    landing_cpu_ms: float = 0.0  # CPU time of it (the landing thread's): the cost, whatever else the machine runs
    version: int | None = None  # the table's version after the commit; None when nothing was committed


def source_entity(dotted: str) -> tuple[str, Entity]:
    """The source and entity named ``<source>.<entity>`` (web.clickstream)."""
    source_name, _, entity_name = dotted.partition(".")
    source = load_sources().get(source_name)
    entity = next((e for e in source.entities if e.name == entity_name), None) if source else None
    if entity is None:
        raise ValueError(f"{dotted!r} names no source entity (<source>.<entity>, e.g. web.clickstream)")
    return source_name, entity


class TopicLanding:
    """Lands one topic's micro-batches in its entity's bronze table: messages of ``entity`` (``web.clickstream``,
    by default the topic's own name) in bronze.web_clickstream."""

    def __init__(
        self,
        lake: Lake,
        masker: PiiMasker,
        topic: str,
        entity: str | None = None,
        max_line_bytes: int = 1 << 20,
        max_record_bytes: int = 4 << 20,
        cached_days: int = 14,
        vault: VaultTokens | None = None,
    ) -> None:
        self.lake = lake
        self.masker = masker
        self.vault = vault or VaultTokens(lake)  # one per masker: the landings of a stream share it
        self.topic = topic
        self.source, self.entity = source_entity(entity or topic)
        self.table = bronze_table(self.source, self.entity)
        self.quarantine = quarantine_table(self.source, self.entity)
        self.max_line_bytes = max_line_bytes
        self.max_record_bytes = max_record_bytes
        self.seen = SeenHashes(lake, self.table, cached_days)
        self._stored: dict[int, int] = {}  # partition -> last offset the table holds, as of _stored_version
        self._stored_read: set[int] = set()  # partitions whose offset (or its absence) is in _stored
        self._stored_version: int | None = -1  # -1: not read yet
        self._fast = (
            JsonBatchMasker(masker, self.entity, max_line_bytes, max_record_bytes)
            if JsonBatchMasker.serves(self.entity)
            else None
        )

    def land(self, messages: Sequence[Message], batch_id: str) -> LandedBatch:
        """Land the messages (all of this topic) not landed yet, in one commit with their offsets."""
        started, cpu = time.perf_counter(), time.thread_time()
        stored = self._stored_offsets({m.partition for m in messages})
        todo = [m for m in messages if m.offset > stored.get(m.partition, -1)]
        last: dict[int, int] = {}
        first: dict[int, int] = {}
        for m in todo:
            last[m.partition] = max(m.offset, last.get(m.partition, m.offset))
            first[m.partition] = min(m.offset, first.get(m.partition, m.offset))
        landed = LandedBatch(
            self.topic,
            self.table,
            offsets={p: (first[p], last[p]) for p in sorted(last)},
            messages=len(todo),
            already_landed=len(messages) - len(todo),
            bytes=sum(len(m.value or b"") for m in todo),
            produced_ms=np.array([m.timestamp_ms or 0 for m in todo], dtype=np.int64),
        )
        if not todo:
            return landed
        rows, hashes = self._rows(todo, batch_id)
        fresh = self.seen.new(hashes, rows.column("partition_date"))
        malformed = pc.is_valid(rows.column("error")).to_numpy(zero_copy_only=False)
        new_rows = rows if fresh.all() else rows.filter(pa.array(fresh))
        landed.new_rows, landed.duplicates = new_rows.num_rows, rows.num_rows - new_rows.num_rows
        landed.malformed = int(malformed.sum())
        # Written before the rows' commit, so that a crash in between loses neither: once that commit holds the
        # offsets, these messages are never read again.
        self.vault.flush(self.masker, self.source)
        bad = np.flatnonzero(fresh & malformed)
        landed.quarantined = self._quarantine(rows.take(pa.array(bad)), [todo[row] for row in bad], last)
        before = self._stored_version
        self.lake.append(self.table, new_rows, ["partition_date"], txns=offsets.transactions(self.topic, last))
        landed.version = self.lake.version(self.table)
        if landed.version == (0 if before is None else before + 1):  # no other commit in between
            self._stored.update(last)
            self._stored_version = landed.version
        new_hashes = hashes if new_rows is rows else [hashes[row] for row in np.flatnonzero(fresh)]
        self.seen.committed(new_hashes, new_rows.column("partition_date"), landed.version)
        landed.committed_ms = time.time_ns() // 1_000_000
        landed.landing_ms = (time.perf_counter() - started) * 1000
        landed.landing_cpu_ms = (time.thread_time() - cpu) * 1000
        return landed

    def _stored_offsets(self, partitions: set[int]) -> dict[int, int]:
        """The table's last landed offset of each partition that has one: read from its log once, then kept
        while the table's version is the one this landing's own last commit made."""
        version = self.lake.version(self.table)
        if version != self._stored_version:
            self._stored, self._stored_read, self._stored_version = {}, set(), version
        unread = partitions - self._stored_read
        if unread and version is not None:
            self._stored.update(offsets.stored_offsets(self.lake, self.table, self.topic, unread))
        self._stored_read |= unread
        return self._stored

    def _quarantine(self, bad: pa.Table, messages: list[Message], last: dict[int, int]) -> int:
        """Copy the batch's new malformed rows (of ``messages``) to quarantine, with the offsets the bronze commit
        will carry: a re-run after a crash between the two commits skips the rows this one quarantined already."""
        if not bad.num_rows:
            return 0
        stored = offsets.stored_offsets(self.lake, self.quarantine, self.topic, last)
        copied = bad.filter(pa.array([m.offset > stored.get(m.partition, -1) for m in messages], pa.bool_()))
        if not copied.num_rows:
            return 0
        quarantined = pa.table(
            {
                **{name: copied.column(name) for name in ("source", "entity", "record_key", "raw", "record_hash")},
                "rule": _constant(QUARANTINE_RULE, copied.num_rows, pa.string()),
                "reason": copied.column("error"),
                "origin": copied.column("origin"),
                "batch_id": copied.column("batch_id"),
                "quarantined_at": copied.column("ingested_at"),
            },
            schema=QUARANTINE_SCHEMA,
        )
        self.lake.append(self.quarantine, quarantined, txns=offsets.transactions(self.topic, last))
        return copied.num_rows

    def _rows(self, messages: Sequence[Message], batch_id: str) -> tuple[pa.Table, list[str]]:
        """The bronze rows of ``messages``, in order, and their record hashes."""
        count = len(messages)
        raws: list[bytes] = []  # UTF-8
        hashes: list[str] = []
        early: list[str | None] = []  # reasons known before the key and time are looked at
        objects: list[dict[str, Any] | None] = []  # payloads whose key and time the file path would read
        found_keys: list[Any] = []  # the values at the declared paths, as parsed
        found_times: list[Any] = []
        key_path, updated_at = self.entity.key, self.entity.updated_at
        fast = self._fast.texts([m.value for m in messages]) if self._fast else [None] * count
        remember, sha256 = self.masker.remember, hashlib.sha256
        for message, done in zip(messages, fast, strict=True):
            if done is not None:
                payload, raw, tokens = done
                if tokens:
                    remember(tokens)
                raws.append(raw)
                hashes.append(sha256(raw).hexdigest())
                early.append(None)
                objects.append(payload)
                found_keys.append(dig(payload, key_path))
                found_times.append(dig(payload, updated_at) if updated_at else None)
                continue
            payload, error = self._decode(message.value)
            text, too_big = masked_raw(self.masker, self.entity, payload, self.max_record_bytes)
            if too_big:
                error = first_reason(too_big, error)
            text, encoded, unencodable = utf8_raw(text)
            if unencodable:
                payload, error = text, first_reason(unencodable, error)
            raws.append(encoded)
            hashes.append(hashlib.sha256(encoded).hexdigest())
            early.append(error)
            objects.append(payload if isinstance(payload, dict) else None)
            found_keys.append(dig(payload, key_path) if isinstance(payload, dict) else None)
            found_times.append(dig(payload, updated_at) if updated_at and isinstance(payload, dict) else None)
        raw_column = pa.array(raws, pa.string())
        early_column = pa.array(early, pa.string())
        keys, times, late = self._keys_and_times(found_keys, found_times, objects)
        key_missing = pc.if_else(pc.is_null(keys), f"no business key at '{self.entity.key}'", None)
        errors = pc.coalesce(early_column, late, key_missing)
        produced = pa.array([m.timestamp_ms for m in messages], pa.int64())
        produced_day = pc.cast(pc.cast(pc.multiply(produced, 1000), pa.timestamp("us", "UTC")), pa.date32())
        day = pc.coalesce(pc.cast(times, pa.date32()), produced_day, pa.scalar(UNDATED, pa.date32()))
        partitions = pa.array([m.partition for m in messages], pa.int64())
        positions = pa.array([m.offset for m in messages], pa.int64())
        origin = pc.binary_join_element_wise(
            f"kafka://{self.topic}", pc.cast(partitions, pa.string()), pc.cast(positions, pa.string()), "/"
        )
        table = pa.table(
            {
                "source": _constant(self.source, count, pa.string()),
                "entity": _constant(self.entity.name, count, pa.string()),
                "record_key": keys,
                "record_updated_at": times,
                "raw": raw_column,
                "record_hash": pa.array(hashes, pa.string()),
                "error": errors,
                "origin": origin,
                "batch_id": _constant(batch_id, count, pa.string()),
                "ingested_at": _constant(datetime.now(UTC), count, pa.timestamp("us", "UTC")),
                "partition_date": day,
            },
            schema=BRONZE_SCHEMA,
        )
        return table, hashes

    def _decode(self, value: bytes | None) -> tuple[Any, str | None]:
        """A message's value as the JSON Lines reader reads a line: an object, or its text and the reason."""
        if not value:
            return "", "malformed: empty message (no value)"
        if len(value) > self.max_line_bytes:
            digest = hashlib.sha256(value).hexdigest()
            head = value[:KEPT_CHARS].decode("utf-8", "replace") + "..."
            return head, oversized("message", len(value), digest, self.max_line_bytes)
        # Read as a line of a file is, its terminator included, so that a parser's message (its line and column)
        # is the same whichever way the record came.
        return json_object(value if value.endswith(b"\n") else value + b"\n")

    def _keys_and_times(
        self, found_keys: list[Any], found_times: list[Any], objects: list[dict[str, Any] | None]
    ) -> tuple[pa.Array, pa.Array, pa.Array]:
        """Per row: the business key, the change time and the change time's problem, as the file path finds
        them. Text keys and ISO 8601 times (nearly all) are checked and parsed as columns; any other value goes
        through the file path's own functions, row by row."""
        entity, count = self.entity, len(objects)
        keys, odd_keys = _strings(found_keys)
        keys = pc.if_else(pc.equal(keys, ""), None, keys)  # an empty key is no key
        keys = _patch(keys, odd_keys, lambda row: record_key(objects[row], entity))  # type: ignore[arg-type]
        stamp = pa.timestamp("us", "UTC")
        if not entity.updated_at:
            return keys, pa.nulls(count, stamp), pa.nulls(count, pa.string())
        texts, odd_times = _strings(found_times)
        iso = pc.fill_null(pc.match_substring_regex(texts, ISO_INSTANT), False)
        try:
            times = pc.cast(pc.if_else(iso, texts, None), stamp)
        except pa.ArrowInvalid:  # a day that does not exist (02-30): every time of the batch by the file path's
            times, iso = pa.nulls(count, stamp), pa.array(np.zeros(count, dtype=bool))
        is_object = pa.array([payload is not None for payload in objects], pa.bool_())
        absent = pc.and_(is_object, pa.array([value is None for value in found_times], pa.bool_()))
        problems = pc.if_else(absent, f"no change time at '{entity.updated_at}'", None)
        by_payload = pc.and_(is_object, pc.invert(pc.or_(iso, absent)))
        rows = np.flatnonzero(pc.or_(by_payload, odd_times).to_numpy(zero_copy_only=False))
        if len(rows):
            parsed = [change_time(objects[row], entity) for row in rows]  # type: ignore[arg-type]
            times = _replace(times, rows, [t for t, _ in parsed], stamp)
            problems = _replace(problems, rows, [p for _, p in parsed], pa.string())
        return keys, times, problems


def _strings(values: list[Any]) -> tuple[pa.Array, pa.Array]:
    """``values`` as a text column (None where a value is not text), and where a value was something else."""
    try:
        return pa.array(values, pa.string()), pa.array(np.zeros(len(values), dtype=bool))
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # a number, a boolean, an object: rare, and not text
        other = [value is not None and not isinstance(value, str) for value in values]
        texts = [value if isinstance(value, str) else None for value in values]
        return pa.array(texts, pa.string()), pa.array(other, pa.bool_())


def _patch(values: pa.Array, where: pa.Array, compute: Any) -> pa.Array:
    rows = np.flatnonzero(where.to_numpy(zero_copy_only=False))
    return _replace(values, rows, [compute(row) for row in rows], values.type) if len(rows) else values


def _replace(values: pa.Array, rows: np.ndarray, new: list[Any], kind: pa.DataType) -> pa.Array:
    mask = np.zeros(len(values), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(values, pa.array(mask), pa.array(new, kind))


def _constant(value: Any, count: int, kind: pa.DataType) -> pa.Array:
    return pc.fill_null(pa.nulls(count, kind), pa.scalar(value, kind))
