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

import gc
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

from retreasure.bronze import native
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
        self._brokers_down_at = 0.0  # when the client last lost its connection to the brokers
        self._consumer: Consumer | None = None
        # Told each set of rows as it is written to ops.stream_batches (the Dagster UI's stream figures).
        self.ops_written: Callable[[list[dict[str, Any]]], None] | None = None

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
                "error_cb": self._on_client_error,
            },
            logger=get_logger("stream.client"),
        )
        consumer.subscribe(
            list(self.landings), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        started = time.monotonic()
        waiting_since = started
        latency_s = streaming.batch_latency_ms / 1000
        # What the process holds before the loop (modules, settings, clients) is left out of the collector's
        # full passes while it runs: the batches' messages, kept until they land, bring full passes on, and each
        # walked that whole heap (65-80 ms; ~1.7-2 us a message at full speed). Unfrozen when the loop ends.
        gc.freeze()
        log.info(
            "stream started",
            extra={"topics": list(self.landings), "group": streaming.group_id, "native_pass": native.available()},
        )
        try:
            while not stop.is_set():
                now = time.monotonic()
                if max_seconds is not None and now - started >= max_seconds:
                    break
                wait = latency_s if self._opened is None else max(0.0, self._opened + latency_s - now)
                wanted = max(1, streaming.batch_messages - len(self._buffer))
                asked = time.monotonic()
                received = consumer.consume(num_messages=wanted, timeout=min(wait, 0.5))
                if received:
                    waiting_since = time.monotonic()
                    self._take(received, asked)
                if self._buffer and (
                    len(self._buffer) >= streaming.batch_messages
                    or self._buffered_bytes >= streaming.batch_bytes
                    or time.monotonic() - (self._opened or 0.0) >= latency_s
                ):
                    self._land(landed)
                    waiting_since = time.monotonic()  # idle is time spent waiting for messages, not landing them
                if self._ops_rows and time.monotonic() - self._ops_written >= streaming.ops_interval_s:
                    self._write_ops()
                    waiting_since = time.monotonic()
                # Quiet while the brokers are out of reach is not idle either: a restarting broker has more to say.
                idle_since = max(waiting_since, self._assigned_at or float("inf"), self._brokers_down_at)
                if until_idle_s is not None and not self._buffer and time.monotonic() - idle_since >= until_idle_s:
                    break
            self._land(landed)
        finally:
            gc.unfreeze()
            self._write_ops()
            consumer.close()
            self._consumer = None
        log.info("stream stopped", extra=vars(self.totals) | {"per_table": dict(self.totals.per_table)})
        return self.totals

    def _on_client_error(self, error: KafkaError) -> None:
        """The client's own errors (it retries by itself): a lost connection holds the idle clock."""
        if error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self._brokers_down_at = time.monotonic()
        log.warning("stream client error", extra={"error": error.str()})

    def _take(self, received: list[KafkaMessage], asked: float) -> None:
        """Buffer the messages a consume call begun at ``asked`` (monotonic s) returned."""
        buffer, size = self._buffer, 0
        for message in received:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error", extra={"error": str(error)})
                continue
            value = message.value()
            stamp = message.timestamp()[1]
            buffer.append(
                Message(message.topic(), message.partition(), message.offset(), value, stamp if stamp > 0 else None)
            )
            size += len(value) if value else 0
        self._buffered_bytes += size
        if self._opened is None and buffer:
            # The call holds messages until it has enough or its wait is over: the first may have come as it
            # began, so the batch's latency counts from then, not from the call's return (up to twice as long).
            self._opened = asked

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
            if self.ops_written is not None:
                self.ops_written(rows)
        self._ops_written = time.monotonic()
