"""The stream's consume loop: web topics in, micro-batches landed in bronze, each message exactly once.

Offsets are the tables' (``streaming/offsets.py``), never the consumer group's: auto-commit is off, and on every
partition assignment (start, rebalance) each partition is sought to the offset its table holds, plus one. A batch
lands when it holds ``batch_messages`` messages or ``batch_bytes`` bytes, or when its first message has waited
``batch_latency_ms``; before partitions are taken away in a rebalance, what is buffered for them is landed. After
each landing the group's offsets are committed too, for the broker's lag tools only: nothing reads them back.

Every batch's figures (messages, new rows, duplicates, malformed, bytes, consumer lag, produce-to-commit latency)
are logged as they land and written to ``ops.stream_batches`` every few seconds and on stop.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from retreasure.bronze.pii import PiiMasker
from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger
from retreasure.settings import Settings
from retreasure.streaming import offsets
from retreasure.streaming.dedup import VaultTokens
from retreasure.streaming.landing import LandedBatch, Message, TopicLanding

log = get_logger("stream")
STREAM_BATCHES = TableRef("ops", "stream_batches")
STREAM_BATCHES_SCHEMA = pa.schema(
    [
        ("batch_id", pa.string()),
        ("topic", pa.string()),
        ("table_name", pa.string()),
        ("offsets", pa.string()),  # partition:first-last, space separated
        ("messages", pa.int64()),  # landed by the batch's commit
        ("already_landed", pa.int64()),  # redelivered offsets the table held (after a crash or a rebalance)
        ("new_rows", pa.int64()),
        ("duplicates", pa.int64()),
        ("malformed", pa.int64()),
        ("quarantined", pa.int64()),
        ("bytes", pa.int64()),
        ("lag", pa.int64()),  # messages behind the partitions' ends after the commit; null when unknown
        ("latency_p50_ms", pa.float64()),  # produce to commit
        ("latency_max_ms", pa.float64()),
        ("landing_ms", pa.float64()),
        ("table_version", pa.int64()),
        ("committed_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class StreamTotals:
    """What a run of the stream landed, in sum."""

    batches: int = 0
    messages: int = 0
    new_rows: int = 0
    duplicates: int = 0
    malformed: int = 0
    already_landed: int = 0
    per_table: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class StreamConsumer:
    """Consumes the configured web topics and lands them in bronze until stopped, out of time or idle."""

    def __init__(
        self,
        settings: Settings,
        lake: Lake,
        client_config: Mapping[str, str] | None = None,
        entities: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.lake = lake
        streaming = settings.streaming
        self.client_config = dict(client_config or streaming.client_config())
        masker = PiiMasker(settings.pii_hmac_key.get_secret_value(), settings.pii_vault_key.get_secret_value() or None)
        vault = VaultTokens(lake)
        self.landings = {
            topic: TopicLanding(
                lake,
                masker,
                topic,
                entity,
                settings.ingest.max_line_bytes,
                settings.ingest.max_record_bytes,
                streaming.cached_days,
                vault,
            )
            for topic, entity in (entities or streaming.entities).items()
        }
        self.run_id = uuid.uuid4().hex[:12]
        self.totals = StreamTotals()
        self._buffer: list[Message] = []
        self._buffered_bytes = 0
        self._opened: float | None = None  # when the buffer's first message arrived
        self._ops_rows: list[dict[str, Any]] = []
        self._ops_written = time.monotonic()
        self._assigned_at: float | None = None
        self._consumer: Consumer | None = None

    # -- the loop -------------------------------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event | None = None,
        max_seconds: float | None = None,
        until_idle_s: float | None = None,
        landed: Callable[[LandedBatch], None] | None = None,
    ) -> StreamTotals:
        """Consume and land until ``stop`` is set, ``max_seconds`` have passed, or (``until_idle_s``) no message
        came for that long once partitions were assigned. What is buffered is landed before it returns."""
        streaming = self.settings.streaming
        stop = stop or threading.Event()
        consumer = self._consumer = Consumer(
            {
                **self.client_config,
                "group.id": streaming.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "client.id": f"retreasure-stream-{self.run_id}",
            },
            logger=get_logger("stream.client"),
        )
        consumer.subscribe(
            list(self.landings), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        started = time.monotonic()
        last_message = started
        latency_s = streaming.batch_latency_ms / 1000
        log.info("stream started", extra={"topics": list(self.landings), "group": streaming.group_id})
        try:
            while not stop.is_set():
                now = time.monotonic()
                if max_seconds is not None and now - started >= max_seconds:
                    break
                wait = latency_s if self._opened is None else max(0.0, self._opened + latency_s - now)
                wanted = max(1, streaming.batch_messages - len(self._buffer))
                for received in consumer.consume(num_messages=wanted, timeout=min(wait, 0.5)):
                    last_message = time.monotonic()
                    self._take(received)
                if self._buffer and (
                    len(self._buffer) >= streaming.batch_messages
                    or self._buffered_bytes >= streaming.batch_bytes
                    or time.monotonic() - (self._opened or 0.0) >= latency_s
                ):
                    self._land(landed)
                    # Idle time counts from when the consumer listens again: a landing slower than the idle
                    # limit is not a quiet topic.
                    last_message = time.monotonic()
                if self._ops_rows and time.monotonic() - self._ops_written >= streaming.ops_interval_s:
                    self._write_ops()
                    last_message = max(last_message, self._ops_written)
                idle_since = max(last_message, self._assigned_at or float("inf"))
                if until_idle_s is not None and not self._buffer and time.monotonic() - idle_since >= until_idle_s:
                    break
            self._land(landed)
        finally:
            self._write_ops()
            consumer.close()
            self._consumer = None
        log.info("stream stopped", extra=vars(self.totals) | {"per_table": dict(self.totals.per_table)})
        return self.totals

    def _take(self, received: KafkaMessage) -> None:
        error = received.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": str(error)})
            return
        _kind, stamp = received.timestamp()
        value = received.value()
        topic, partition, offset = received.topic(), received.partition(), received.offset()
        assert topic is not None and partition is not None and offset is not None
        self._buffer.append(Message(topic, partition, offset, value, stamp if stamp > 0 else None))
        self._buffered_bytes += len(value or b"")
        if self._opened is None:
            self._opened = time.monotonic()

    # -- rebalancing ----------------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Each assigned partition starts after the last offset its table holds (from the beginning if none)."""
        for assigned in partitions:
            landing = self.landings[assigned.topic]
            stored = offsets.stored_offset(self.lake, landing.table, assigned.topic, assigned.partition)
            assigned.offset = OFFSET_BEGINNING if stored is None else stored + 1
        consumer.assign(partitions)
        self._assigned_at = time.monotonic()
        log.info(
            "partitions assigned",
            extra={"partitions": {f"{p.topic}/{p.partition}": p.offset for p in partitions}},
        )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions going to another consumer: what is buffered lands first, while they are still this one's."""
        self._land(None)
        consumer.unassign()
        log.info("partitions revoked", extra={"partitions": [f"{p.topic}/{p.partition}" for p in partitions]})

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions already someone else's: their buffered messages are dropped, the new owner lands them."""
        lost = {(p.topic, p.partition) for p in partitions}
        self._buffer = [m for m in self._buffer if (m.topic, m.partition) not in lost]
        self._buffered_bytes = sum(len(m.value or b"") for m in self._buffer)
        log.warning("partitions lost", extra={"partitions": [f"{t}/{p}" for t, p in sorted(lost)]})

    # -- landing --------------------------------------------------------------------------------------------
    def _land(self, landed: Callable[[LandedBatch], None] | None) -> None:
        if not self._buffer:
            return
        batch, self._buffer, self._buffered_bytes, self._opened = self._buffer, [], 0, None
        batch_id = f"{self.run_id}-{self.totals.batches:06d}"
        by_topic: dict[str, list[Message]] = defaultdict(list)
        for message in batch:
            by_topic[message.topic].append(message)
        positions = []
        for topic, messages in sorted(by_topic.items()):
            landing = self.landings[topic]
            result = landing.land(messages, f"{batch_id}/{landing.table.name}")
            self._account(result, batch_id)
            positions += [TopicPartition(topic, p, last + 1) for p, (_, last) in result.offsets.items()]
            if landed:
                landed(result)
        self.totals.batches += 1
        if positions and self._consumer is not None:
            try:  # for the broker's lag tools only: the stream resumes from the tables' offsets
                self._consumer.commit(offsets=positions, asynchronous=True)
            except KafkaException as exc:
                log.warning("group offsets not committed", extra={"error": str(exc)})

    def _account(self, result: LandedBatch, batch_id: str) -> None:
        totals = self.totals
        totals.messages += result.messages
        totals.new_rows += result.new_rows
        totals.duplicates += result.duplicates
        totals.malformed += result.malformed
        totals.already_landed += result.already_landed
        totals.per_table[str(result.table)] += result.new_rows
        produced = result.produced_ms[result.produced_ms > 0]
        latency = (result.committed_ms - produced).astype(np.float64) if len(produced) else None
        row = {
            "batch_id": batch_id,
            "topic": result.topic,
            "table_name": str(result.table),
            "offsets": " ".join(f"{p}:{first}-{last}" for p, (first, last) in result.offsets.items()),
            "messages": result.messages,
            "already_landed": result.already_landed,
            "new_rows": result.new_rows,
            "duplicates": result.duplicates,
            "malformed": result.malformed,
            "quarantined": result.quarantined,
            "bytes": result.bytes,
            "lag": self._lag(result),
            "latency_p50_ms": float(np.median(latency)) if latency is not None else None,
            "latency_max_ms": float(latency.max()) if latency is not None else None,
            "landing_ms": round(result.landing_ms, 1),
            "table_version": result.version,
            "committed_at": datetime.fromtimestamp(result.committed_ms / 1000, UTC) if result.committed_ms else None,
        }
        self._ops_rows.append(row)
        log.info("stream batch landed", extra={k: v for k, v in row.items() if k != "committed_at"})

    def _lag(self, result: LandedBatch) -> int | None:
        """Messages behind the ends of the batch's partitions, from the ends the last fetch reported."""
        if self._consumer is None or not result.offsets:
            return None
        behind = 0
        for partition, (_, last) in result.offsets.items():
            try:
                _, end = self._consumer.get_watermark_offsets(TopicPartition(result.topic, partition), cached=True)
            except KafkaException:
                return None
            if end is None or end < 0:
                return None
            behind += max(0, end - last - 1)
        return behind

    def _write_ops(self) -> None:
        if self._ops_rows:
            rows, self._ops_rows = self._ops_rows, []
            self.lake.append(STREAM_BATCHES, pa.Table.from_pylist(rows, schema=STREAM_BATCHES_SCHEMA))
        self._ops_written = time.monotonic()
