"""The simulated web shop live on Kafka: the wire carries the day files' very records, every fault on it is one the
simulator's truth lists, and a real broker receives all of it, a restart mid-stream included."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from retreasure.connectors.files import load_json
from retreasure.exitcodes import ExitCode
from retreasure.settings import Settings
from retreasure.streaming.broker import Broker
from retreasure_sim.business import simulate
from retreasure_sim.config import Faults, SimConfig, StreamFaults
from retreasure_sim.files import render_files
from retreasure_sim.model import Truth
from retreasure_sim.options import sim_config
from retreasure_sim.streaming.producer import Pace, SiteProducer, ensure_topics, max_message_bytes
from retreasure_sim.streaming.wire import (
    EVENT_TIME_HEADER,
    WireMessage,
    WireTally,
    WireTopics,
    wire_messages,
    wire_truth,
)
from tests.helpers import run_cli

# Every fault switched on, oversized messages far more often than StreamFaults.on(), so a small period has some.
FAULTY_WIRE = StreamFaults(
    duplicates=0.03, out_of_order=0.03, late=0.01, malformed=0.01, oversized=0.002, schema_drift=0.05
)
KINDS = ("duplicate", "out_of_order", "late", "malformed", "oversized", "schema_drift")


def oversized_bytes(settings: Settings) -> int:
    """What the CLI stuffs messages to: over each of the platform's limits on one record."""
    return max(settings.ingest.max_line_bytes, settings.ingest.max_record_bytes) + (1 << 20)


def as_object(value: bytes) -> dict[str, Any] | None:
    """The message as the platform's JSON reader takes it: an object, or None when it is malformed."""
    try:
        parsed = load_json(value.decode("utf-8"))
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def test_the_wire_carries_the_records_the_day_files_hold(clean_truth: Truth, tmp_path: Path) -> None:
    render_files(clean_truth, tmp_path, Faults(), clean_truth.seed, ["web"])
    filed = {
        entity: sorted(
            line for path in (tmp_path / "web" / entity).glob("*.jsonl") for line in path.read_bytes().splitlines()
        )
        for entity in ("clickstream", "transactions")
    }
    messages = list(wire_messages(clean_truth, StreamFaults(), clean_truth.seed))
    topics = WireTopics()
    sent = {
        entity: sorted(m.value for m in messages if m.topic == topic)
        for entity, topic in zip(filed, topics, strict=True)
    }
    assert sent == filed and len(sent["clickstream"]) == len(clean_truth["web_events"]) > 1000
    assert len(sent["transactions"]) == len(clean_truth["payments"]) > 10

    assert [m.seq for m in messages] == list(range(len(messages)))
    assert all(a.sent_at <= b.sent_at for a, b in itertools.pairwise(messages))
    for message in messages:
        record = json.loads(message.value)
        clickstream = message.topic == topics.clickstream
        # One visit's events share a key, so they stay in order on one partition; likewise one order's payments.
        assert message.key.decode() == (record["properties"]["session_id"] if clickstream else record["order_id"])
        assert message.record_key == (record["messageId"] if clickstream else record["transaction_id"])
        event_time = dict(message.headers)[EVENT_TIME_HEADER].decode()
        assert event_time == (record["timestamp"] if clickstream else record["occurred_at"])
        assert message.sent_at == message.event_time and not message.faults


def test_every_fault_on_the_wire_is_one_the_truth_lists(clean_truth: Truth, settings: Settings) -> None:
    """Each message's faults are found again by looking at the message alone, against the same event sent on a
    perfect wire; the tally's faults are exactly these, and the same on every run."""
    perfect = {m.record_key: m for m in wire_messages(clean_truth, StreamFaults(), clean_truth.seed)}
    limit = max(settings.ingest.max_line_bytes, settings.ingest.max_record_bytes)
    stuffed = oversized_bytes(settings)
    tally = WireTally()
    sent: set[tuple[bytes, bytes]] = set()
    previous = None
    for message in wire_messages(clean_truth, FAULTY_WIRE, clean_truth.seed, stuffed):
        tally.add(message)
        assert previous is None or previous.sent_at <= message.sent_at
        previous = message
        good = perfect[message.record_key]
        assert (message.topic, message.key, message.event_time) == (good.topic, good.key, good.event_time)
        record = as_object(message.value)
        found = set()
        if (message.key, message.value) in sent:
            found.add("duplicate")
        elif record is None:
            found.add("malformed")
        else:
            delay = message.sent_at - message.event_time
            if delay >= timedelta(hours=1):
                assert delay <= timedelta(hours=6)
                found.add("late")
            elif delay:
                assert timedelta(seconds=1) <= delay <= timedelta(minutes=5)
                found.add("out_of_order")
            if len(message.value) > limit:
                assert len(message.value) == stuffed and message.topic == WireTopics().clickstream
                found.add("oversized")
            elif record != json.loads(good.value):
                assert record.keys() & {"messageId", "transaction_id"} and record.get("timestamp") == json.loads(
                    good.value
                ).get("timestamp")
                found.add("schema_drift")
        kinds = {kind for kind, _ in message.faults}
        if "duplicate" in kinds:  # a retry repeats the message as it was sent, its own faults included
            assert found == {"duplicate"}
        else:
            assert found == kinds, (message.seq, message.record_key, message.faults)
        sent.add((message.key, message.value))

    assert {kind: tally.count(kind) for kind in KINDS} == Counter(f.kind for f in tally.faults)
    assert all(tally.count(kind) > 0 for kind in KINDS), Counter(f.kind for f in tally.faults)
    assert sum(tally.messages.values()) == len(perfect) + tally.count("duplicate") + tally.count("malformed")
    oversized = {f.record_key for f in tally.faults if f.kind == "oversized"}
    for topic, table in zip(WireTopics(), ("web_events", "payments"), strict=True):
        every = {m.record_key for m in perfect.values() if m.topic == topic}
        assert len(every) == len(clean_truth[table]) and tally.events[topic] == every
        assert tally.landed[topic] == every - oversized
    assert {(f.seq, f.kind) for f in tally.quarantined()} == {
        (f.seq, f.kind) for f in tally.faults if f.kind in ("malformed", "oversized")
    }
    again = wire_truth(clean_truth, FAULTY_WIRE, clean_truth.seed, stuffed)
    assert again.faults == tally.faults and again.messages == tally.messages


def test_a_pace_schedules_by_count_or_by_the_simulated_clock() -> None:
    first = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    later = first + timedelta(hours=2)
    assert Pace(rate=500).due(1000, later, first) == 2.0  # the 1,001st message two seconds in, whatever its time
    assert Pace(speed_up=3600).due(1000, later, first) == 2.0  # two simulated hours, two real seconds
    assert Pace().due(1000, later, first) is None
    for wrong in ({"rate": 10, "speed_up": 10}, {"rate": 0}, {"speed_up": -1}):
        with pytest.raises(ValueError):
            Pace(**wrong)


def test_a_rate_and_a_speed_up_together_are_refused(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "sim", "stream", "--rate", "100", "--speed-up", "60")
    assert result.returncode == ExitCode.USAGE, result.stdout + result.stderr
    assert "a rate or a speed-up, not both" in result.stdout


# -- on a real broker ---------------------------------------------------------------------------------------


def small_truth(seed: int, days: int, scale: float) -> Truth:
    return simulate(SimConfig(seed=seed, start=date(2025, 3, 3), days=days, scale=scale))


def consume_all(broker: Broker, topics: WireTopics, count: int, timeout_s: float = 120.0) -> list[Any]:
    """Every message of the topics, read from the start by a consumer of its own, until ``count`` came."""
    consumer = Consumer(
        {
            **broker.client_config(),
            "group.id": f"readers-{topics.clickstream}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = []
        for topic in topics:
            described = consumer.list_topics(topic, timeout=30).topics[topic].partitions
            partitions += [TopicPartition(topic, p, 0) for p in described]
        consumer.assign(partitions)
        received: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(received) < count and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1.0):
                assert message.error() is None, message.error()
                received.append(message)
        # Nothing more than was sent: a last read finds the topics' ends.
        received += [m for m in consumer.consume(1000, timeout=2.0) if m.error() is None]
        return received
    finally:
        consumer.close()


@pytest.mark.kafka
def test_a_faulty_period_arrives_on_the_broker_as_sent(kafka_broker: Broker, settings: Settings) -> None:
    topics = WireTopics("faulty.web.clickstream", "faulty.web.transactions")
    client = kafka_broker.client_config()
    stuffed = oversized_bytes(settings)
    setup = ensure_topics(client, topics, 3, max_message_bytes(stuffed))
    assert setup.created == list(topics) and not setup.refused
    truth = small_truth(seed=5, days=5, scale=0.5)
    sent: list[WireMessage] = []

    def kept(messages: Any) -> Any:
        for message in messages:
            sent.append(message)
            yield message

    with SiteProducer(client, stuffed) as producer:
        report = producer.publish(kept(wire_messages(truth, FAULTY_WIRE, 5, stuffed, topics)))
    tally = report.tally
    assert 2000 < len(sent) < 10_000 and report.complete and not report.errors
    assert all(tally.count(kind) for kind in KINDS), tally.faults
    assert report.delivered == tally.messages and report.partitions == {topic: {0, 1, 2} for topic in topics}
    assert set(report.positions) == {f.seq for f in tally.faults}

    received = consume_all(kafka_broker, topics, len(sent))
    assert Counter(m.topic() for m in received) == tally.messages
    by_position = {(m.topic(), m.partition(), m.offset()): m for m in received}
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    for message in received:
        partitions_of[message.key()].add(message.partition())
        assert dict(message.headers() or [])[EVENT_TIME_HEADER]
    assert all(len(found) == 1 for found in partitions_of.values())  # a session's or an order's messages, one partition
    assert Counter((m.topic(), m.key(), m.value()) for m in received) == Counter(
        (m.topic, m.key, m.value) for m in sent
    )
    # The broker keeps one key's messages in the order they were sent.
    for topic in topics:
        for key in {m.key for m in sent if m.topic == topic}:
            stored = sorted((m for m in received if m.topic() == topic and m.key() == key), key=lambda m: m.offset())
            assert [m.value() for m in stored] == [m.value for m in sent if m.topic == topic and m.key == key]

    original = {(m.key, m.value): m for m in reversed(sent)}  # the first of identical messages
    for fault in tally.faults:
        message = sent[fault.seq]
        stored = by_position[(fault.topic, *report.positions[fault.seq])]
        assert (stored.key(), stored.value()) == (message.key, message.value)
        if fault.kind == "duplicate":  # byte for byte the message sent before it, stored again
            first = original[(message.key, message.value)]
            assert first.seq < fault.seq and first.value == stored.value()
        if fault.kind == "malformed":
            assert as_object(stored.value()) is None
        if fault.kind == "oversized":
            assert len(stored.value()) == stuffed > settings.ingest.max_record_bytes


@pytest.mark.kafka
def test_the_site_rides_out_a_broker_restart(kafka_broker: Broker) -> None:
    """A third of the stream is stored, the broker stops, a third is produced while it is down, it starts again
    and the rest follows: everything is stored once."""
    topics = WireTopics("restart.web.clickstream", "restart.web.transactions")
    client = kafka_broker.client_config()
    ensure_topics(client, topics, 3, max_message_bytes())
    truth = small_truth(seed=8, days=3, scale=0.4)
    messages = list(wire_messages(truth, StreamFaults.on(), 8, topics=topics))
    third = len(messages) // 3
    down, up = threading.Event(), threading.Event()

    def through_the_outage() -> Any:
        """The messages, the site pausing at a third until the broker is down and at two thirds until it is up
        again; serving its delivery reports meanwhile, as the producer does between messages."""
        for n, message in enumerate(messages):
            gate = down if n == third else up if n == 2 * third else None
            deadline = time.monotonic() + 300
            while gate is not None and not gate.is_set():
                assert time.monotonic() < deadline
                producer.producer.poll(0.05)
            yield message

    def delivered() -> int:
        return sum(producer.report.delivered.values())

    def wait_for(condition: Any) -> None:
        deadline = time.monotonic() + 120
        while not condition():
            assert worker.is_alive() and time.monotonic() < deadline
            time.sleep(0.05)

    with SiteProducer(client) as producer:
        # Produced from another thread: the broker must be stopped and started from the thread that started it.
        worker = threading.Thread(target=producer.publish, args=(through_the_outage(),))
        worker.start()
        try:
            wait_for(lambda: delivered() == third)
            kafka_broker.stop()
            down.set()
            wait_for(lambda: producer.report.produced == 2 * third)
            assert delivered() == third  # the second third waits in the client while the broker is down
        finally:
            kafka_broker.start()
            down.set()
            up.set()
        worker.join(timeout=400)
    report = producer.report
    assert not worker.is_alive()
    assert report.complete and report.produced == delivered() == len(messages), report.errors
    assert report.client_errors, "the producer never noticed the broker going away"
    received = consume_all(kafka_broker, topics, len(messages))
    # Nothing lost, and nothing written twice by the client's own retries: exactly the messages sent.
    assert Counter((m.key(), m.value()) for m in received) == Counter((m.key, m.value) for m in messages)


@pytest.mark.kafka
def test_sim_stream_publishes_a_period_and_lists_its_faults(kafka_broker: Broker, tmp_path: Path) -> None:
    topics = WireTopics("cli.web.clickstream", "cli.web.transactions")
    args = ("--seed", "9", "--start", "2025-04-07", "--days", "2", "--scale", "0.3")
    result = run_cli(
        tmp_path,
        "sim",
        "stream",
        *args,
        "--bootstrap-servers",
        kafka_broker.bootstrap_servers,
        "--faults-out",
        str(tmp_path / "faults.jsonl"),
        "--rate",
        "3000",
        RETREASURE_STREAMING__CLICKSTREAM_TOPIC=topics.clickstream,
        RETREASURE_STREAMING__TRANSACTIONS_TOPIC=topics.transactions,
    )
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    truth = simulate(sim_config(9, "2025-04-07", 2, 0.3, faults=True))
    expected = wire_truth(truth, StreamFaults.on(), 9, oversized_bytes(settings), topics)
    listed = [json.loads(line) for line in (tmp_path / "faults.jsonl").read_text().splitlines()]
    assert [(f["seq"], f["kind"], f["record_key"]) for f in listed] == [
        (f.seq, f.kind, f.record_key) for f in expected.faults
    ]
    assert listed and all(f["partition"] in (0, 1, 2) and f["offset"] >= 0 for f in listed)
    output = " ".join(result.stdout.split())
    assert set(output.split("Created topics: ")[1].split(" ")[0:2]) == {f"{topics.clickstream},", topics.transactions}
    delivered = sum(expected.messages.values())
    assert f"{delivered:,} messages delivered" in output
    assert f"must quarantine {len(expected.quarantined()):,}" in output
    received = consume_all(kafka_broker, topics, delivered)
    assert Counter(m.topic() for m in received) == expected.messages


@pytest.mark.kafka
def test_the_site_publishes_through_an_event_hubs_style_login(kafka_broker: Broker) -> None:
    """SASL PLAIN as `$ConnectionString` over TLS, as on Event Hubs' Kafka endpoint: the same producer, other
    client settings."""
    topics = WireTopics("eventhubs.web.clickstream", "eventhubs.web.transactions")
    client = kafka_broker.client_config(eventhubs=True)
    assert client["security.protocol"] == "SASL_SSL"
    ensure_topics(client, topics, 2, max_message_bytes())
    truth = small_truth(seed=3, days=1, scale=0.3)
    with SiteProducer(client) as producer:
        report = producer.publish(wire_messages(truth, StreamFaults(), 3, topics=topics))
    assert report.complete and report.produced == len(truth["web_events"]) + len(truth["payments"]) > 100
    assert report.partitions[topics.clickstream] == {0, 1} and report.partitions[topics.transactions] <= {0, 1}
