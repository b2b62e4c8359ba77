"""The streaming path's acceptance, against the real broker and real `retreasure stream` processes: a simulated
period of the web shop (100k+ events) published with every fault of the wire switched on lands in bronze exactly
once, the broken messages in quarantine one for one; and it still does when the stream is killed -9 at random
moments and restarted, and when the broker is stopped and started again while the site produces and the stream
lands."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import ClassVar

import pytest
from confluent_kafka import Consumer, TopicPartition

from retreasure.lake import Lake, TableRef
from retreasure.settings import Settings
from retreasure.streaming import offsets
from retreasure.streaming.broker import Broker
from retreasure_sim.business import simulate
from retreasure_sim.config import SimConfig, StreamFaults
from retreasure_sim.streaming.producer import Pace, ProduceReport, Site
from retreasure_sim.streaming.wire import WireTally, WireTopics, wire_truth
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import cli_env

pytestmark = pytest.mark.kafka

# The platform's limit on one record, for the site and the stream alike: the site stuffs its oversized messages
# to this + 1 MiB (about 1 MiB each instead of 5 MiB by default, the same fault at a fifth of the bytes).
RECORD_LIMIT = 64 << 10
PARTITIONS = 3
TABLES = {"clickstream": TableRef("bronze", "web_clickstream"), "transactions": TableRef("bronze", "web_transactions")}
QUARANTINE = {
    "clickstream": TableRef("quarantine", "web_clickstream"),
    "transactions": TableRef("quarantine", "web_transactions"),
}
# A period whose clickstream and transactions hold 100k+ events together.
LARGE = SimConfig(seed=23, start=date(2025, 3, 1), days=53, scale=1.0)
# Smaller periods for the kill loop (~30k events) and the broker's restart (~20k, paced at 2,000 messages/s).
KILLED = SimConfig(seed=29, start=date(2025, 5, 1), days=15, scale=1.0)
RESTARTED = SimConfig(seed=31, start=date(2025, 6, 2), days=10, scale=1.0)
# A bound on every wait and stream, not a wait: each ends on its condition. Generous, for a machine the rest of the
# suite keeps busy beside these tests.
WAIT_S = 360.0


@dataclass(frozen=True)
class Published:
    """A simulated period on the wire: its topics, what a consumer must end up with, and where the broker stored
    each message that carries a fault (the producer's delivery reports)."""

    topics: WireTopics
    truth: WireTally
    positions: dict[int, tuple[int, int]]  # fault's message seq -> (partition, offset)

    def quarantined(self, topic: str) -> dict[str, str]:
        """The origin (kafka://topic/partition/offset) of each message to quarantine -> its fault."""
        return {origin(topic, *self.positions[f.seq]): f.kind for f in self.truth.quarantined(topic)}


def origin(topic: str, partition: int, offset: int) -> str:
    return f"kafka://{topic}/{partition}/{offset}"


def site(broker: Broker, topics: WireTopics) -> Site:
    """The simulated site as the settings describe it, with the record limit the stream is given too."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        pii_hmac_key=HMAC_KEY,
        pii_vault_key=VAULT_KEY,
        ingest={"max_line_bytes": RECORD_LIMIT, "max_record_bytes": RECORD_LIMIT},
        streaming={"clickstream_topic": topics.clickstream, "transactions_topic": topics.transactions},
    )
    return Site.from_settings(settings, broker.bootstrap_servers, PARTITIONS)


def fresh_topics() -> WireTopics:
    name = f"acc{uuid.uuid4().hex[:8]}"
    return WireTopics(f"{name}.clickstream", f"{name}.transactions")


def publish(
    broker: Broker, config: SimConfig, topics: WireTopics, pace: Pace | None = None
) -> tuple[Published, ProduceReport]:
    """Simulate ``config`` and publish its web events with every wire fault on, at ``pace``."""
    the_site = site(broker, topics)
    the_site.ensure_topics()
    truth = simulate(config)
    report = the_site.publish(truth, StreamFaults.on(), config.seed, pace or Pace())
    expected = wire_truth(truth, StreamFaults.on(), config.seed, the_site.oversized_bytes, topics)
    assert report.complete, (report.failed, report.errors.most_common(3))
    assert report.tally.faults == expected.faults  # what was sent is what the truth says, fault for fault
    return Published(topics, expected, report.positions), report


@pytest.fixture(scope="module")
def published(kafka_broker: Broker) -> Published:
    """100k+ events with every fault of the wire, produced once for the tests of this module to consume."""
    wire, _ = publish(kafka_broker, LARGE, fresh_topics())
    truth = wire.truth
    assert sum(len(events) for events in truth.events.values()) >= 100_000
    assert all(truth.count(kind) for kind in ("duplicate", "out_of_order", "late", "malformed", "oversized"))
    assert truth.count("schema_drift") and truth.quarantined(wire.topics.transactions)
    return wire


def stream_env(root: Path, broker: Broker, topics: WireTopics, group: str, **extra: str) -> dict[str, str]:
    return cli_env(
        root,
        RETREASURE_LOG_FILE="-",
        RETREASURE_STREAMING__BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        RETREASURE_STREAMING__CLICKSTREAM_TOPIC=topics.clickstream,
        RETREASURE_STREAMING__TRANSACTIONS_TOPIC=topics.transactions,
        RETREASURE_STREAMING__GROUP_ID=group,
        RETREASURE_INGEST__MAX_LINE_BYTES=str(RECORD_LIMIT),
        RETREASURE_INGEST__MAX_RECORD_BYTES=str(RECORD_LIMIT),
        **extra,
    )


class StreamProcess:
    """One `retreasure stream` subprocess, its output in files (a killed process leaves no pipe to drain)."""

    started: ClassVar[list[subprocess.Popen[str]]] = []  # killed at the end of each test, whatever happened

    def __init__(self, root: Path, env: dict[str, str], *args: str) -> None:
        self.output = root / f"stream-{uuid.uuid4().hex[:6]}.out"
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "retreasure", "stream", "--max-seconds", str(WAIT_S), *args],
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.started.append(self.process)

    def finish(self, timeout_s: float = WAIT_S + 30) -> str:
        self.process.wait(timeout_s)
        text = self.output.read_text()
        assert self.process.returncode == 0, text[-3000:]
        return text

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        assert self.process.returncode == -signal.SIGKILL, "it had stopped on its own before the kill"


@pytest.fixture(autouse=True)
def no_stream_left_running() -> Iterator[None]:
    yield
    while StreamProcess.started:
        process = StreamProcess.started.pop()
        if process.poll() is None:
            process.kill()
            process.wait(30)


def topic_ends(broker: Broker, topic: str) -> dict[int, int]:
    """Each partition's end offset (the next offset to be written)."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"ends-{uuid.uuid4().hex}"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(PARTITIONS)}
    finally:
        consumer.close()


def landed_to_the_end(lake: Lake, broker: Broker, topics: WireTopics) -> bool:
    """Whether both bronze tables hold the offsets of every message the topics hold."""
    for entity, topic in zip(TABLES, topics, strict=True):
        last = {p: end - 1 for p, end in topic_ends(broker, topic).items() if end > 0}
        if offsets.stored_offsets(lake, TABLES[entity], topic, range(PARTITIONS)) != last:
            return False
    return True


def commits(lake_root: Path) -> int:
    """Commits to the clickstream table so far."""
    return len(list((lake_root / "bronze" / "web_clickstream" / "_delta_log").glob("*.json")))


def assert_exactly_once(lake: Lake, wire: Published) -> None:
    """Per topic: the good rows' keys are the truth's events to land, each once; the rows in error, and the
    quarantine, are exactly the broken messages the truth lists, each once, matched by where they were stored."""
    for entity, topic in zip(TABLES, wire.topics, strict=True):
        table, quarantine = TABLES[entity], QUARANTINE[entity]
        rows = lake.query(f"SELECT record_key, record_hash, origin, error FROM {table}", [table]).to_pylist()
        good = Counter(r["record_key"] for r in rows if r["error"] is None)
        expected = wire.truth.landed[topic]
        assert set(good) == expected, (len(set(good) - expected), len(expected - set(good)))
        assert good.total() == len(expected), [key for key, n in good.items() if n > 1][:5]
        assert len({r["record_hash"] for r in rows}) == len(rows) == len({r["origin"] for r in rows})

        broken = wire.quarantined(topic)
        in_error = {r["origin"]: r["error"] for r in rows if r["error"] is not None}
        assert in_error.keys() == broken.keys()
        copies = (
            lake.query(f"SELECT origin, reason FROM {quarantine}", [quarantine]).to_pylist()
            if lake.exists(quarantine)
            else []
        )
        assert Counter(c["origin"] for c in copies) == Counter(broken.keys())  # each once, none other
        for copy in copies:  # the reason says which fault it was
            assert copy["reason"] == in_error[copy["origin"]]
            assert copy["reason"].startswith("oversized") == (broken[copy["origin"]] == "oversized"), copy


def test_100k_events_with_every_wire_fault_land_in_bronze_exactly_once(
    tmp_path: Path, kafka_broker: Broker, published: Published
) -> None:
    env = stream_env(tmp_path, kafka_broker, published.topics, group=f"{tmp_path.name}-once")
    out = StreamProcess(tmp_path, env, "--until-idle", "3").finish()
    lake = Lake(tmp_path / "lake")
    assert "Landed" in out and landed_to_the_end(lake, kafka_broker, published.topics)
    assert_exactly_once(lake, published)
    # The figures of every batch are in the ops table: every message on the topics counted once.
    produced = sum(published.truth.messages.values())
    assert lake.query("SELECT sum(messages) AS m FROM ops.stream_batches").column(0)[0].as_py() == produced


def test_kill_9_at_random_moments_and_restarts_still_land_each_message_once(
    tmp_path: Path, kafka_broker: Broker
) -> None:
    """Killed after a random number of commits, at a random moment inside a batch, or while starting; each time
    restarted, on a smaller period of the same faulty wire. Small batches and short waits inside them, so that the
    kills fall between and inside many commits before the stream reaches the end (the landing is fast enough that
    1,500-message batches and waits of up to a second let six runs land it all). Each run joins a consumer group
    of its own: a restart in the killed one's group would wait for its session to expire (45 s) before it got
    partitions, and what it resumes from is the tables' offsets, never a group's."""
    wire, _ = publish(kafka_broker, KILLED, fresh_topics())
    rng = random.Random(20261203)
    lake_root, lake = tmp_path / "lake", Lake(tmp_path / "lake")

    def restarted(run: int) -> dict[str, str]:
        group = f"{tmp_path.name}-kill-{run}"
        return stream_env(tmp_path, kafka_broker, wire.topics, group, RETREASURE_STREAMING__BATCH_MESSAGES="400")

    for run in range(6):
        before = commits(lake_root)
        process = StreamProcess(tmp_path, restarted(run))
        moment = rng.choice(("after commits", "inside a batch", "while starting"))
        if moment == "while starting":
            time.sleep(rng.uniform(0.2, 3.0))
        else:
            wanted = before + (rng.randint(1, 3) if moment == "after commits" else 1)
            wait_for(lambda: commits(lake_root) >= wanted)  # noqa: B023 - waited for within this iteration
            if moment == "inside a batch":
                time.sleep(rng.uniform(0.0, 0.25))
        process.kill()
    assert not landed_to_the_end(lake, kafka_broker, wire.topics), "the kills came after the stream's end"
    out = StreamProcess(tmp_path, restarted(6), "--until-idle", "3").finish()
    assert "Landed" in out and landed_to_the_end(lake, kafka_broker, wire.topics)
    assert_exactly_once(lake, wire)


def test_a_broker_stopped_and_started_while_the_site_produces_and_the_stream_lands_loses_and_repeats_nothing(
    tmp_path: Path, kafka_broker: Broker
) -> None:
    """The session's broker goes down for a few seconds in the middle of a paced replay (the site's producer
    holds its messages meanwhile, the stream's consumer reconnects) and comes back on the same ports and data."""
    topics = fresh_topics()
    site(kafka_broker, topics).ensure_topics()  # before the stream subscribes
    lake_root = tmp_path / "lake"
    process = StreamProcess(tmp_path, stream_env(tmp_path, kafka_broker, topics, f"{tmp_path.name}-restart"))
    wait_for(lambda: "partitions assigned" in process.output.read_text())
    replay: list[tuple[Published, ProduceReport]] = []
    producing = threading.Thread(target=lambda: replay.append(publish(kafka_broker, RESTARTED, topics, Pace(2000))))
    producing.start()
    wait_for(lambda: commits(lake_root) >= 2)
    assert producing.is_alive(), "the replay ended before the broker went down: nothing was mid-stream"
    kafka_broker.stop()
    time.sleep(2)
    kafka_broker.start()
    producing.join(WAIT_S)
    wire, report = replay[0]
    lake = Lake(lake_root)
    wait_for(lambda: landed_to_the_end(lake, kafka_broker, topics), every_s=0.5)
    process.process.send_signal(signal.SIGTERM)
    process.finish()
    assert report.client_errors, "the producer never saw the broker go"
    assert_exactly_once(lake, wire)


def wait_for(condition: Callable[[], bool], every_s: float = 0.02) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(every_s)
