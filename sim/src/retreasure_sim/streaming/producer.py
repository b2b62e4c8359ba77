"""Publishing the site's wire messages to a Kafka broker (or Event Hubs' Kafka endpoint), at a chosen pace.

The producer is the one a site would run: idempotent with ``acks=all`` (a retried batch is written once), lz4
batches lingering 5 ms, and a delivery timeout of minutes so that a broker restarting mid-stream only delays
messages: the client reconnects and resends them, and the delivery reports say what was finally stored where.

Oversized messages must reach the platform, which quarantines them: the client's own limit on a message is set
above their size, and ``ensure_topics`` gives the topics the same room (``max.message.bytes``; a broker's default
is about 1 MB, and lz4 leaves the stuffed messages near their size). Where the broker refuses that change, as
Event Hubs does with its fixed limit, they come back as failed deliveries, counted and reported.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from retreasure.log import get_logger
from retreasure.settings import Settings
from retreasure_sim.config import StreamFaults
from retreasure_sim.model import Truth
from retreasure_sim.streaming.wire import (
    DEFAULT_OVERSIZED_BYTES,
    WireMessage,
    WireTally,
    WireTopics,
    wire_messages,
)

# Head room over the largest message the wire sends: the record batch and the request around it.
FRAMING_BYTES = 1 << 20
DELIVERY_TIMEOUT_MS = 300_000  # five minutes: a broker restart, or a short outage, is waited out
POLL_EVERY = 1000  # messages between two serves of delivery reports while producing flat out
TIMEOUT_S = 30.0  # for one administrative request
CLIENT_LOG = get_logger("sim.kafka")


@dataclass(frozen=True)
class Pace:
    """How fast to replay: ``rate`` messages per second, or ``speed_up`` simulated seconds per real second
    (the gaps between events kept, shortened), or neither: as fast as the broker takes them."""

    rate: float | None = None
    speed_up: float | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.speed_up is not None:
            raise ValueError("give a rate or a speed-up, not both")
        if (self.rate is not None and self.rate <= 0) or (self.speed_up is not None and self.speed_up <= 0):
            raise ValueError("a rate or a speed-up must be above zero")

    def due(self, index: int, sent_at: datetime, first: datetime) -> float | None:
        """Seconds after the replay's start at which this message is due; None: at once."""
        if self.rate is not None:
            return index / self.rate
        if self.speed_up is not None:
            return (sent_at - first).total_seconds() / self.speed_up
        return None

    def describe(self) -> str:
        if self.rate is not None:
            return f"{self.rate:,.0f} messages/s"
        if self.speed_up is not None:
            return f"{self.speed_up:,.0f}x the simulated clock"
        return "as fast as the broker takes them"


@dataclass
class ProduceReport:
    """What a replay produced, and what the broker acknowledged: per topic, and where each fault is stored."""

    tally: WireTally = field(default_factory=WireTally)
    delivered: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # why deliveries failed, by the client's words
    # What the client met on the way and got over (a broker down for a while): error name -> times
    client_errors: Counter[str] = field(default_factory=Counter)
    # seq of each message carrying a fault -> (partition, offset) the broker stored it at
    positions: dict[int, tuple[int, int]] = field(default_factory=dict)
    partitions: dict[str, set[int]] = field(default_factory=dict)  # the partitions each topic received on
    seconds: float = 0.0
    stopped: bool = False  # interrupted before the whole stream was produced

    @property
    def produced(self) -> int:
        return sum(self.tally.messages.values())

    @property
    def complete(self) -> bool:
        """Every message produced was stored."""
        return not self.stopped and not self.failed and sum(self.delivered.values()) == self.produced

    def rate(self) -> float:
        return sum(self.delivered.values()) / self.seconds if self.seconds else 0.0


def producer_config(client: dict[str, str], max_message_bytes: int) -> dict[str, Any]:
    """The site's producer settings over the client settings (servers, credentials)."""
    return {
        **client,
        "client.id": "retreasure-site",
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 5,
        "message.max.bytes": max_message_bytes,
        "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
        # Java clients' partitioner: a key lands on the same partition whichever Kafka client produced it.
        "partitioner": "murmur2_random",
    }


def max_message_bytes(oversized_bytes: int = DEFAULT_OVERSIZED_BYTES) -> int:
    return oversized_bytes + FRAMING_BYTES


@dataclass
class TopicSetup:
    """What ``ensure_topics`` did: topics created, topics whose message limit it raised, and why it could not."""

    created: list[str] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # topic -> why its limit stays below the wire's largest


def ensure_topics(client: dict[str, str], topics: Iterable[str], partitions: int, max_bytes: int) -> TopicSetup:
    """Make the topics ready for the wire: create those missing, with ``partitions`` partitions, and give every one
    room for messages of ``max_bytes`` (``max.message.bytes``, checked by the broker on the compressed batch,
    which lz4 leaves near the message's size). A broker that refuses the change (Event Hubs fixes its limit)
    is reported, not fatal: its oversized messages come back as failed deliveries."""
    admin = AdminClient({**client, "logger": CLIENT_LOG})  # its informational lines are the log's, not the console's
    setup = TopicSetup()
    existing = set(admin.list_topics(timeout=TIMEOUT_S).topics)
    limit = {"max.message.bytes": str(max_bytes)}
    wanted = [
        NewTopic(name, partitions, replication_factor=-1, config=limit) for name in topics if name not in existing
    ]
    for name, future in admin.create_topics(wanted, request_timeout=TIMEOUT_S).items() if wanted else ():
        try:
            future.result(TIMEOUT_S)
            setup.created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    others = [ConfigResource(ResourceType.TOPIC, name) for name in topics if name not in setup.created]
    for resource, future in admin.describe_configs(others, request_timeout=TIMEOUT_S).items() if others else ():
        try:
            entry = future.result(TIMEOUT_S).get("max.message.bytes")
            if entry is not None and entry.value is not None and int(entry.value) >= max_bytes:
                continue
            change = ConfigEntry("max.message.bytes", str(max_bytes), incremental_operation=AlterConfigOpType.SET)
            target = ConfigResource(ResourceType.TOPIC, resource.name, incremental_configs=[change])
            admin.incremental_alter_configs([target], request_timeout=TIMEOUT_S)[target].result(TIMEOUT_S)
            setup.raised.append(resource.name)
        except KafkaException as exc:
            setup.refused[resource.name] = exc.args[0].str()
    return setup


class SiteProducer:
    """The site's Kafka producer: publishes wire messages at a pace and keeps the delivery reports. A context
    manager: the client is closed on exit."""

    def __init__(self, client: dict[str, str], oversized_bytes: int = DEFAULT_OVERSIZED_BYTES) -> None:
        self.report = ProduceReport()
        config = producer_config(client, max_message_bytes(oversized_bytes))
        # The client's own log (reconnects, retries) goes where the platform's log goes, not to the terminal.
        self.producer = Producer({**config, "error_cb": self._client_error, "logger": CLIENT_LOG})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.producer.close()

    def _client_error(self, error: KafkaError) -> None:
        self.report.client_errors[error.name()] += 1

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        topic = message.topic() or ""
        if error is None:
            self.report.delivered[topic] += 1
            self.report.partitions.setdefault(topic, set()).add(message.partition() or 0)
        else:
            self.report.failed[topic] += 1
            self.report.errors[error.str()] += 1

    def _delivered_fault(self, seq: int) -> Callable[[KafkaError | None, Message], None]:
        def delivered(error: KafkaError | None, message: Message) -> None:
            self._delivered(error, message)
            if error is None:
                self.report.positions[seq] = (message.partition() or 0, message.offset() or 0)

        return delivered

    def publish(
        self,
        messages: Iterable[WireMessage],
        pace: Pace = Pace(),
        stop: threading.Event | None = None,
        progress: Callable[[ProduceReport], None] | None = None,
        flush_timeout_s: float = DELIVERY_TIMEOUT_MS / 1000 + 30,
    ) -> ProduceReport:
        """Produce every message at its due time, then wait for every delivery report (or the timeout)."""
        report = self.report
        started = time.monotonic()
        first: datetime | None = None
        for index, message in enumerate(messages):
            if stop is not None and stop.is_set():
                report.stopped = True
                break
            first = first or message.sent_at
            due = pace.due(index, message.sent_at, first)
            if due is not None:
                self._wait_until(started + due, stop)
            self._produce(message)
            report.tally.add(message)
            if index % POLL_EVERY == 0:
                self.producer.poll(0)
                if progress is not None:
                    progress(report)
        deadline = time.monotonic() + flush_timeout_s
        while len(self.producer) and time.monotonic() < deadline:
            self.producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
            if progress is not None:
                progress(report)
        report.seconds = time.monotonic() - started
        return report

    def _produce(self, message: WireMessage) -> None:
        on_delivery = self._delivered_fault(message.seq) if message.faults else self._delivered
        while True:
            try:
                self.producer.produce(
                    message.topic,
                    message.value,
                    message.key,
                    on_delivery=on_delivery,
                    headers=message.headers,
                )
                return
            except BufferError:  # the client's queue is full: serve delivery reports until there is room
                self.producer.poll(0.05)

    def _wait_until(self, moment: float, stop: threading.Event | None) -> None:
        """Serve delivery reports until ``moment`` (monotonic seconds)."""
        while (left := moment - time.monotonic()) > 0.0005:
            self.producer.poll(min(left, 0.1))
            if stop is not None and stop.is_set():
                return


@dataclass(frozen=True)
class Site:
    """Where and how the simulated site publishes, from the platform's streaming and ingest settings."""

    client: dict[str, str]
    topics: WireTopics
    partitions: int
    oversized_bytes: int  # over every limit the platform puts on one record, so it quarantines these

    @classmethod
    def from_settings(
        cls, settings: Settings, bootstrap_servers: str | None = None, partitions: int | None = None
    ) -> Site:
        streaming = settings.streaming
        client = streaming.client_config()
        if bootstrap_servers:
            client["bootstrap.servers"] = bootstrap_servers
        limit = max(settings.ingest.max_line_bytes, settings.ingest.max_record_bytes)
        topics = WireTopics(streaming.clickstream_topic, streaming.transactions_topic)
        return cls(client, topics, partitions or streaming.partitions, limit + (1 << 20))

    def ensure_topics(self) -> TopicSetup:
        """The topics ready for the wire (see ``ensure_topics``); KafkaException when no broker answers."""
        return ensure_topics(self.client, self.topics, self.partitions, max_message_bytes(self.oversized_bytes))

    def publish(
        self,
        truth: Truth,
        faults: StreamFaults,
        seed: int,
        pace: Pace = Pace(),
        stop: threading.Event | None = None,
        progress: Callable[[ProduceReport], None] | None = None,
    ) -> ProduceReport:
        """Publish the truth's web events with the wire's faults, at ``pace``; the report once all are stored."""
        wire = wire_messages(truth, faults, seed, self.oversized_bytes, self.topics)
        with SiteProducer(self.client, self.oversized_bytes) as producer:
            return producer.publish(wire, pace, stop, progress)
