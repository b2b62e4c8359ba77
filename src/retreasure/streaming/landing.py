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
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from retreasure.bronze.batch import JsonBatchMasker
from retreasure.bronze.columns import batch_rows, bronze_columns, constant
from retreasure.bronze.landing import UNDATED, bronze_table, quarantine_table
from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity, load_sources
from retreasure.connectors.files import KEPT_CHARS, json_object, oversized
from retreasure.lake.bronze import BRONZE_SCHEMA, QUARANTINE_SCHEMA
from retreasure.lake.store import Lake, TableRef
from retreasure.streaming import offsets
from retreasure.streaming.dedup import SeenHashes, VaultTokens

QUARANTINE_RULE = "bronze.parseable"  # the file path's rule name for a record that cannot be keyed or dated


class Message(NamedTuple):
    """One consumed message: where it sits, its value as produced, and when it was produced (ms since epoch).
    A named tuple: the consume loop makes one per message, and a tuple is made in half the time of a frozen
    dataclass."""

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


@dataclass(frozen=True)
class Todo:
    """The messages of a batch past the offsets the table holds, with their columns (read off the messages once:
    a pass over them in Python per column costs as much as a column of the landing itself)."""

    messages: list[Message]
    values: list[bytes | None]
    partitions: np.ndarray  # int64
    positions: np.ndarray  # int64: the offsets
    produced: pa.Array  # int64: produce times, ms since the epoch (null: unknown)
    produced_ms: np.ndarray  # the same, 0 where unknown

    @staticmethod
    def of(messages: Sequence[Message], stored: dict[int, int]) -> Todo:
        """``messages`` but those at or below their partition's ``stored`` offset."""
        partitions = np.fromiter((m.partition for m in messages), np.int64, len(messages))
        positions = np.fromiter((m.offset for m in messages), np.int64, len(messages))
        keep = np.ones(len(messages), dtype=bool)
        for partition, offset in stored.items():
            keep &= (partitions != partition) | (positions > offset)
        chosen = list(messages) if keep.all() else [messages[row] for row in np.flatnonzero(keep)]
        produced = pa.array([m.timestamp_ms for m in chosen], pa.int64())
        return Todo(
            chosen,
            [m.value for m in chosen],
            partitions[keep],
            positions[keep],
            produced,
            pc.fill_null(produced, 0).to_numpy(zero_copy_only=False),
        )

    def ranges(self) -> dict[int, tuple[int, int]]:
        """Partition -> (first, last) offset, partitions in order."""
        return {
            int(partition): (int(self.positions[here].min()), int(self.positions[here].max()))
            for partition in np.unique(self.partitions)
            for here in [self.partitions == partition]
        }


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
        todo = Todo.of(messages, self._stored_offsets({m.partition for m in messages}))
        landed = LandedBatch(
            self.topic,
            self.table,
            offsets=todo.ranges(),
            messages=len(todo.messages),
            already_landed=len(messages) - len(todo.messages),
            bytes=sum(len(value) for value in todo.values if value),
            produced_ms=todo.produced_ms,
        )
        if not todo.messages:
            return landed
        last = {partition: last for partition, (_, last) in landed.offsets.items()}
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
        landed.quarantined = self._quarantine(rows.take(pa.array(bad)), [todo.messages[row] for row in bad], last)
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
                "rule": constant(QUARANTINE_RULE, copied.num_rows, pa.string()),
                "reason": copied.column("error"),
                "origin": copied.column("origin"),
                "batch_id": copied.column("batch_id"),
                "quarantined_at": copied.column("ingested_at"),
            },
            schema=QUARANTINE_SCHEMA,
        )
        # A partition's offset in the quarantine's log never goes back: after a crash between the two commits the
        # re-run's batches need not end where the crashed one's did, and a smaller offset there would let the rows
        # that batch quarantined in a second time.
        reached = {partition: max(offset, stored.get(partition, -1)) for partition, offset in last.items()}
        self.lake.append(self.quarantine, quarantined, txns=offsets.transactions(self.topic, reached))
        return copied.num_rows

    def _rows(self, todo: Todo, batch_id: str) -> tuple[pa.Table, list[str]]:
        """The bronze rows of the messages to land, in order, and their record hashes."""
        count, values = len(todo.messages), todo.values
        fast = self._fast.batch(values) if self._fast else [None] * count
        rows = batch_rows(self.masker, self.entity, values, fast, self._decode, self.max_record_bytes)
        raw_column, hash_column, keys, times, errors = bronze_columns(self.entity, rows)
        produced_day = pc.cast(pc.cast(pc.multiply(todo.produced, 1000), pa.timestamp("us", "UTC")), pa.date32())
        day = pc.coalesce(pc.cast(times, pa.date32()), produced_day, pa.scalar(UNDATED, pa.date32()))
        partitions, positions = pa.array(todo.partitions), pa.array(todo.positions)
        origin = pc.binary_join_element_wise(
            f"kafka://{self.topic}", pc.cast(partitions, pa.string()), pc.cast(positions, pa.string()), "/"
        )
        table = pa.table(
            {
                "source": constant(self.source, count, pa.string()),
                "entity": constant(self.entity.name, count, pa.string()),
                "record_key": keys,
                "record_updated_at": times,
                "raw": raw_column,
                "record_hash": hash_column,
                "error": errors,
                "origin": origin,
                "batch_id": constant(batch_id, count, pa.string()),
                "ingested_at": constant(datetime.now(UTC), count, pa.timestamp("us", "UTC")),
                "partition_date": day,
            },
            schema=BRONZE_SCHEMA,
        )
        return table, rows.hash_texts()

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
