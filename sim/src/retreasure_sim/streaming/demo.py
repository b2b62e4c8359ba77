"""The demo's web shop on a live wire: a local Kafka broker, the simulated site publishing its clickstream and
payment transactions to it, and the platform's stream landing them in bronze, as production does with Event Hubs.

The broker keeps its data between demos (``<broker_dir>/demo``, beside what `retreasure broker` keeps), as the
lake keeps its tables: the stream resumes from the offsets its tables hold, so a demo run again lands what its
site published again once (as a producer's duplicates), and `--fresh` clears both.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

from confluent_kafka import Consumer, TopicPartition
from rich.console import Console

from retreasure import terminal
from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger
from retreasure.settings import Settings, StreamingSettings
from retreasure.streaming import offsets
from retreasure.streaming.broker import Broker, BrokerFailed, JavaNotFound, find_java
from retreasure.streaming.consumer import StreamConsumer, StreamTotals
from retreasure.streaming.jars import JarDownloadError
from retreasure.streaming.landing import LandedBatch
from retreasure_sim.config import StreamFaults
from retreasure_sim.model import Truth
from retreasure_sim.streaming.cli import FAULT_NAMES
from retreasure_sim.streaming.producer import ProduceReport, Site

NO_JAVA = "Java not found: web events come from files instead of the broker"
# The stream stops once it has landed up to the topics' ends, or (should it never get there) once nothing came
# for this long.
IDLE_S = 30.0
TIMEOUT_S = 30.0  # for one request to the broker
# Why the wire cannot be used this time (no Java, no jars, a broker that does not start).
UNAVAILABLE = (JavaNotFound, JarDownloadError, BrokerFailed, OSError)
MAX_REASON = 160
T = TypeVar("T")


def streamed_sources(streaming: StreamingSettings) -> set[str]:
    """The sources whose entities come over the wire (``web``): their files are neither dropped nor ingested."""
    return {entity.split(".", 1)[0] for entity in streaming.entities.values()}


def prepared_broker(console: Console, streaming: StreamingSettings) -> Broker:
    """The demo's broker, not started yet: Java found and the jars in place (fetched with a bar on first use).
    Raises one of ``UNAVAILABLE`` when it cannot be."""
    from retreasure.streaming.cli import fetch_jars

    find_java()
    fetch_jars(console, streaming.jars_dir)
    return demo_broker(streaming)


def broker_dir(streaming: StreamingSettings) -> Path:
    """Where the demo's broker keeps its topics and log: its own folder, as a `retreasure broker` may be running."""
    return streaming.broker_dir / "demo"


def demo_broker(streaming: StreamingSettings) -> Broker:
    """The demo's own broker, on free loopback ports (a `retreasure broker` may hold 9092)."""
    return Broker(broker_dir(streaming), jars_root=streaming.jars_dir, partitions=streaming.partitions)


def in_background(work: Callable[[], T]) -> Future[T]:
    """Run ``work`` in a daemon thread (Ctrl-C does not wait for it); its result or error through the future.

    The broker must be started from the main thread instead: it is stopped when the thread that started it ends.
    """
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(work())
        except BaseException as exc:  # handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="demo-background", daemon=True).start()
    return future


@contextmanager
def stopped_at_exit(broker: Broker) -> Iterator[Callable[[], None]]:
    """The broker stopped when the block ends, however it ends (SIGTERM too, as Ctrl-C); yields ``stop_soon``,
    which stops it in the background once the demo is done with it (a first stop writes the broker's class
    archive, seconds the demo need not wait for)."""
    stopping: list[threading.Thread] = []

    def interrupt(number: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def stop_soon() -> None:
        if not stopping:
            stopping.append(threading.Thread(target=broker.stop, name="broker-stop"))
            stopping[0].start()

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield stop_soon
    finally:
        for thread in stopping:
            thread.join()
        broker.stop()
        signal.signal(signal.SIGTERM, previous)


@dataclass
class StreamedWeb:
    """What the demo's site published and what the stream landed of it."""

    report: ProduceReport
    totals: StreamTotals
    tables: dict[str, TableRef]  # topic -> the bronze table it lands in
    published_s: float
    landed_s: float

    def expected_counts(self, lake: Lake) -> dict[str, int]:
        """Per bronze table, the distinct events it must hold: every event the site sent in good shape (all but
        the oversized ones). A table that also holds rows from the web files (a demo run without the broker on
        the same lake) holds every event, oversized ones included, since the files carried them whole."""
        tally = self.report.tally
        return {
            table.name: len((tally.events if _holds_file_rows(lake, table) else tally.landed)[topic])
            for topic, table in self.tables.items()
        }


def _holds_file_rows(lake: Lake, table: TableRef) -> bool:
    if not lake.exists(table):
        return False
    found = lake.query(f"SELECT count(*) AS n FROM {table} WHERE origin NOT LIKE 'kafka://%'", [table])
    return bool(found.to_pylist()[0]["n"])


def stream_web(
    console: Console, broker: Broker, truth: Truth, faults: bool, seed: int, settings: Settings, lake: Lake
) -> StreamedWeb:
    """Publish the truth's web events as the site does (with the wire's faults when ``faults``), then land the
    topics in bronze with the platform's stream consumer until it has caught up."""
    site = Site.from_settings(settings, broker.bootstrap_servers)
    site.ensure_topics()
    events = len(truth["web_events"]) + len(truth["payments"])
    began = time.monotonic()
    with terminal.progress_bar(console) as bar:
        task = bar.add_task("Publishing web events to Kafka", total=events)
        report = site.publish(
            truth,
            StreamFaults.on() if faults else StreamFaults(),
            seed,
            progress=lambda r: bar.update(task, completed=sum(map(len, r.tally.events.values()))),
        )
    published_s = time.monotonic() - began
    consumer = StreamConsumer(settings, lake, client_config=broker.client_config())
    tables = {topic: landing.table for topic, landing in consumer.landings.items()}
    caught_up = CatchUp(lake, tables, partition_ends(broker.client_config(), tables))
    began = time.monotonic()
    with terminal.progress_bar(console) as bar:
        task = bar.add_task("Landing the stream in bronze", total=report.produced)

        def landed(batch: LandedBatch) -> None:
            bar.update(task, advance=batch.messages + batch.already_landed)
            caught_up.landed(batch)

        totals = consumer.run(caught_up.done, until_idle_s=IDLE_S, landed=landed)
    return StreamedWeb(report, totals, tables, published_s, time.monotonic() - began)


def partition_ends(client: dict[str, str], topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the offset after its last message, for every partition of ``topics``."""
    consumer = Consumer({**client, "group.id": "retreasure-demo-ends", "logger": get_logger("sim.kafka")})
    try:
        found = consumer.list_topics(timeout=TIMEOUT_S).topics
        return {
            (topic, partition): consumer.get_watermark_offsets(TopicPartition(topic, partition), TIMEOUT_S)[1]
            for topic in topics
            for partition in found[topic].partitions
        }
    finally:
        consumer.close()


class CatchUp:
    """Says when the stream has landed every partition up to the ends it had when the site stopped publishing:
    the demo's replay is then in bronze, without waiting for the topics to stay quiet."""

    def __init__(self, lake: Lake, tables: dict[str, TableRef], ends: dict[tuple[str, int], int]) -> None:
        self.done = threading.Event()
        # (topic, partition) -> the last offset to land, for those the tables do not hold up to their end yet
        self.left = {
            (topic, partition): end - 1
            for (topic, partition), end in ends.items()
            if end > 0 and (offsets.stored_offset(lake, tables[topic], topic, partition) or -1) < end - 1
        }
        self._settle()

    def landed(self, batch: LandedBatch) -> None:
        for partition, (_, last) in batch.offsets.items():
            if self.left.get((batch.topic, partition), last + 1) <= last:
                del self.left[batch.topic, partition]
        self._settle()

    def _settle(self) -> None:
        if not self.left:
            self.done.set()


def print_streamed(console: Console, streamed: StreamedWeb, broker: Broker) -> None:
    """Two lines: what went over the wire (and its faults), what landed in bronze."""
    report, totals = streamed.report, streamed.totals
    delivered = sum(report.delivered.values())
    faults = ", ".join(f"{report.tally.count(kind):,} {name}" for kind, name in FAULT_NAMES.items())
    console.print(
        f"Kafka {broker.version} broker on {broker.bootstrap_servers}: published {delivered:,} messages to "
        f"{' and '.join(streamed.tables)} in {streamed.published_s:.1f} s; faults on the wire: {faults}."
    )
    for reason, n in report.errors.most_common(3):
        console.print(f"[red]{n:,} deliveries failed:[/] {terminal.shorten(reason)}")
    landed = ", ".join(f"{table.name} +{totals.per_table[str(table)]:,}" for table in streamed.tables.values())
    console.print(
        f"Stream landed {totals.messages:,} messages in bronze in {streamed.landed_s:.1f} s "
        f"({totals.batches:,} micro-batches): {landed}; {totals.duplicates:,} duplicates skipped, "
        f"{totals.malformed:,} malformed or oversized (quarantined). Figures per batch: ops.stream_batches."
    )


def broker_unavailable(error: BaseException, broker_dir: Path) -> str:
    """One line on why the demo goes without the broker."""
    if isinstance(error, JavaNotFound):
        return NO_JAVA
    if isinstance(error, BrokerFailed):
        return f"The Kafka broker did not start (its log: {broker_dir}): web events come from files instead"
    return f"No Kafka broker ({reason(error)}): web events come from files instead"


def reason(error: BaseException) -> str:
    """The error on one line, cut short: a broker's start report quotes its log at length."""
    return " ".join(str(error).split())[:MAX_REASON] or type(error).__name__
