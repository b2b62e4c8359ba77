"""Streaming web events into bronze: durable events/s and produce-to-bronze latency of the stream landing
(``StreamConsumer``, the loop `retreasure stream` runs), beside a plain confluent-kafka consumer that reads the
same topics and throws the messages away (the baseline), on a local broker started for the run.

(a) full speed: the simulated site's clickstream and transactions produced beforehand, then read by the raw
consumer and landed by the stream, each in a consumer group of its own; the rate is taken between the first
batch and the last (the group's join and the first fetch excluded, for both). (b) steady: the site produces at
``--rate`` messages/s (5,000) while the consumer runs; latency is from each message's produce time (its Kafka
timestamp) to its receipt (raw) or to the Delta commit that holds its row (stream). The producer is
`retreasure sim stream` in a process of its own, faults off (steady state). Results go to docs/benchmarks.md.

    make bench-stream            # or: .venv/bin/python -m bench.stream --small (quick, not written to the docs)
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench import landing_pass
from bench.ingest import bench_settings, write_section
from retreasure.lake import Lake
from retreasure.settings import Settings
from retreasure.streaming.broker import Broker
from retreasure.streaming.consumer import StreamConsumer
from retreasure.streaming.landing import LandedBatch

MARK = "<!-- bench/stream -->"
ROOT = Path(__file__).resolve().parents[1]
EVENTS_PER_DAY = 2_000  # the simulated shop's clickstream and transactions per day at scale 1, roughly
TIMEOUT_S = 600.0
# Targets of the streaming path: the landing keeps 70% of the raw consumer's pace; at 5,000 events/s a message is
# in bronze within a second (p99).
TARGET_RATIO, TARGET_P99_MS = 0.7, 1000.0


@dataclass
class Run:
    """What one consumer did: messages taken, when (monotonic s) each batch ended, and each message's latency."""

    name: str
    messages: int = 0
    batch_ends: list[tuple[float, int]] = field(default_factory=list)  # (seconds, messages so far)
    latencies_ms: list[np.ndarray] = field(default_factory=list)
    produced_ms: list[np.ndarray] = field(default_factory=list)  # the messages' produce times
    landing_ms: float = 0.0  # the stream's time in landing (decode to commit), of its wall time
    landing_cpu_ms: float = 0.0  # the CPU time of that landing
    batches: list[tuple[int, float]] = field(default_factory=list)  # (messages, landing ms) of clickstream commits
    seconds: float = 0.0  # wall time, from the consumer's start to its last batch
    cpu_s: float = 0.0  # the process's CPU time over the run: what a message costs, whatever the machine's load

    def cpu_us(self) -> float:
        """CPU microseconds a message (all of the process's threads, librdkafka's included)."""
        return self.cpu_s / self.messages * 1e6 if self.messages else math.nan

    def produce_rate(self) -> float:
        """Messages/s the site produced them at (from their timestamps)."""
        stamps = np.concatenate(self.produced_ms)
        span = (stamps.max() - stamps.min()) / 1000
        return len(stamps) / span if span > 0 else math.nan

    def steady_rate(self) -> float:
        """Messages/s between the end of the first batch and the end of the last."""
        (first, before), (last, total) = self.batch_ends[0], self.batch_ends[-1]
        return (total - before) / (last - first) if last > first else math.nan

    def percentiles(self) -> tuple[float, float]:
        every = np.concatenate(self.latencies_ms) if self.latencies_ms else np.array([math.nan])
        return float(np.percentile(every, 50)), float(np.percentile(every, 99))


# -- the site --------------------------------------------------------------------------------------------------
def produce(broker: Broker, prefix: str, days: int, rate: float | None = None) -> subprocess.Popen[str]:
    """`retreasure sim stream` of ``days`` simulated days to ``<prefix>.clickstream``/``.transactions``, faults
    off, at ``rate`` messages/s (or as fast as the broker takes them), in a process of its own."""
    pace = ["--rate", str(rate)] if rate else []
    return subprocess.Popen(
        [sys.executable, "-m", "retreasure", "sim", "stream", "--days", str(days), "--no-faults", *pace],
        cwd=ROOT,
        env=os.environ
        | {
            "RETREASURE_STREAMING__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "RETREASURE_STREAMING__CLICKSTREAM_TOPIC": f"{prefix}.clickstream",
            "RETREASURE_STREAMING__TRANSACTIONS_TOPIC": f"{prefix}.transactions",
            "RETREASURE_LOG_FILE": "-",
            "COLUMNS": "160",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def produced(process: subprocess.Popen[str]) -> None:
    out, _ = process.communicate(timeout=TIMEOUT_S)
    if process.returncode != 0:
        raise SystemExit(f"the site's producer failed ({process.returncode}):\n{out[-2000:]}")


def topic_total(broker: Broker, prefix: str) -> int:
    """Messages the two topics hold."""
    admin = AdminClient(broker.client_config())
    topics = [f"{prefix}.clickstream", f"{prefix}.transactions"]
    metadata = admin.list_topics(timeout=30).topics
    probe = Consumer(broker.client_config() | {"group.id": "bench-probe"})
    try:
        return sum(
            probe.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for topic in topics
            for p in metadata[topic].partitions
        )
    finally:
        probe.close()


def wait_until_assigned(broker: Broker, group: str) -> None:
    """Until the group's member holds partitions: messages produced from then on wait for no rebalance."""
    admin = AdminClient(broker.client_config())
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        description = admin.describe_consumer_groups([group])[group].result(30)
        if any(member.assignment and member.assignment.topic_partitions for member in description.members):
            return
        time.sleep(0.05)
    raise SystemExit(f"consumer group {group} got no partitions")


# -- the two consumers ---------------------------------------------------------------------------------------
def raw_consumer(broker: Broker, prefix: str, group: str, total: Callable[[], int | None]) -> Run:
    """The baseline: a plain consumer reading both topics and discarding each message (its value touched)."""
    run = Run("raw consumer (baseline)")
    consumer = Consumer(broker.client_config() | {"group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([f"{prefix}.clickstream", f"{prefix}.transactions"])
    started, cpu = time.monotonic(), time.process_time()
    deadline = started + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            wanted = total()
            if wanted is not None and run.messages >= wanted:
                break
            # A short wait: consume() holds a batch until it is full or the wait is over, which is latency.
            received = consumer.consume(num_messages=5000, timeout=0.01)
            if not received:
                continue
            now_ms = time.time() * 1000
            stamps = np.array([m.timestamp()[1] for m in received if m.error() is None and m.value()], np.float64)
            run.messages += len(stamps)
            run.latencies_ms.append(now_ms - stamps)
            run.produced_ms.append(stamps)
            run.batch_ends.append((time.monotonic(), run.messages))
    finally:
        consumer.close()
    run.seconds, run.cpu_s = run.batch_ends[-1][0] - started, time.process_time() - cpu
    return run


def stream_landing(settings: Settings, prefix: str, group: str, total: Callable[[], int | None]) -> Run:
    """The stream's own loop, landing into a fresh lake, stopped once every message is committed."""
    run = Run("stream landing into bronze")
    streaming = settings.streaming.model_copy(
        update={
            "clickstream_topic": f"{prefix}.clickstream",
            "transactions_topic": f"{prefix}.transactions",
            "group_id": group,
        }
    )
    stream = StreamConsumer(settings.model_copy(update={"streaming": streaming}), Lake.from_settings(settings))
    stop = threading.Event()

    def landed(batch: LandedBatch) -> None:
        run.messages += batch.messages
        run.batch_ends.append((time.monotonic(), run.messages))
        run.latencies_ms.append((batch.committed_ms - batch.produced_ms).astype(np.float64))
        run.produced_ms.append(batch.produced_ms.astype(np.float64))
        run.landing_ms += batch.landing_ms
        run.landing_cpu_ms += batch.landing_cpu_ms
        if batch.topic.endswith(".clickstream"):
            run.batches.append((batch.messages, batch.landing_ms))

    def watch() -> None:
        while not stop.wait(0.1):
            wanted = total()
            if wanted is not None and run.messages >= wanted:
                stop.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started, cpu = time.monotonic(), time.process_time()
    stream.run(stop, max_seconds=TIMEOUT_S, landed=landed)
    stop.set()
    run.seconds, run.cpu_s = run.batch_ends[-1][0] - started, time.process_time() - cpu
    return run


# -- the phases ----------------------------------------------------------------------------------------------
def full_speed(broker: Broker, root: Path, days: int, batch_latency_ms: int | None) -> tuple[Run, Run]:
    produced(produce(broker, "full", days))
    total = topic_total(broker, "full")
    print(f"full speed: {total:,} messages on the topics", file=sys.stderr)
    raw = raw_consumer(broker, "full", "bench-full-raw", lambda: total)
    settings = stream_settings(root / "full", broker, batch_latency_ms)
    landing = stream_landing(settings, "full", "bench-full-stream", lambda: total)
    return raw, landing


def steady(broker: Broker, root: Path, days: int, rate: float, batch_latency_ms: int | None) -> tuple[Run, Run]:
    """Each consumer joins first, then the site produces at ``rate`` to topics of its own."""
    runs = []
    for name in ("raw", "stream"):
        prefix, group = f"steady-{name}", f"bench-steady-{name}"
        broker.create_topics([f"{prefix}.clickstream", f"{prefix}.transactions"])
        known: list[int] = []

        def total(known: list[int] = known) -> int | None:
            return known[0] if known else None

        def site(prefix: str = prefix, group: str = group, known: list[int] = known) -> None:
            wait_until_assigned(broker, group)
            produced(produce(broker, prefix, days, rate))
            known.append(topic_total(broker, prefix))

        producing = threading.Thread(target=site)
        producing.start()
        if name == "raw":
            runs.append(raw_consumer(broker, prefix, group, total))
        else:
            settings = stream_settings(root / "steady", broker, batch_latency_ms)
            runs.append(stream_landing(settings, prefix, group, total))
        producing.join()
        print(f"steady {name}: {runs[-1].messages:,} messages", file=sys.stderr)
    return runs[0], runs[1]


def stream_settings(root: Path, broker: Broker, batch_latency_ms: int | None = None) -> Settings:
    settings = bench_settings(root)
    update: dict[str, object] = {"bootstrap_servers": broker.bootstrap_servers}
    if batch_latency_ms:
        update["batch_latency_ms"] = batch_latency_ms
    return settings.model_copy(update={"streaming": settings.streaming.model_copy(update=update)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="messages of the full-speed phase, about")
    parser.add_argument("--rate", type=float, default=5_000, help="messages/s of the steady phase")
    parser.add_argument("--steady-seconds", type=float, default=20, help="length of the steady phase, about")
    parser.add_argument("--batch-latency-ms", type=int, help="the stream's batch latency (default: the settings')")
    parser.add_argument("--small", action="store_true", help="a quick run (20k events, 10 s), docs left alone")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.small:
        args.events, args.steady_seconds, args.no_write = 20_000, 10, True
    full_days = max(1, round(args.events / EVENTS_PER_DAY))
    steady_days = max(1, round(args.rate * args.steady_seconds / EVENTS_PER_DAY))
    settings = bench_settings(ROOT)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with Broker(root / "broker", jars_root=ROOT / settings.streaming.jars_dir) as broker:
            full = full_speed(broker, root, full_days, args.batch_latency_ms)
            paced = steady(broker, root, steady_days, args.rate, args.batch_latency_ms)
    load_after = os.getloadavg()
    report(args, full, paced, load_before, load_after)


def report(
    args: argparse.Namespace,
    full: tuple[Run, Run],
    paced: tuple[Run, Run],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    (raw_full, stream_full), stream_steady = full, paced[1]
    ratio = stream_full.steady_rate() / raw_full.steady_rate()
    p99 = stream_steady.percentiles()[1]
    rows = []
    for phase, runs in (("full speed", full), (f"steady {args.rate:,.0f}/s", paced)):
        for run in runs:
            p50, p99_run = run.percentiles()
            latency = f"{p50:,.0f} | {p99_run:,.0f}" if phase.startswith("steady") else "- | -"
            produced_at = f"{run.produce_rate():,.0f}" if phase.startswith("steady") else "(beforehand)"
            landing = f"{run.landing_ms / 1000 / run.seconds:.0%}" if run.landing_ms else "-"
            rows.append(
                f"| {phase} | {run.name} | {run.messages:,} | {produced_at} | {run.steady_rate():,.0f} | {latency} "
                f"| {landing} |"
            )
    streaming = bench_settings(ROOT).streaming
    batch_latency_ms = args.batch_latency_ms or streaming.batch_latency_ms
    command = "make bench-stream" if not args.small else ".venv/bin/python -m bench.stream --small"
    if args.batch_latency_ms:
        command = f".venv/bin/python -m bench.stream --batch-latency-ms {args.batch_latency_ms}"
    lines = [
        MARK,
        f"### Streaming ({datetime.now(UTC):%Y-%m-%d}, `{command}`)",
        "",
        "| phase | consumer | messages | produced/s | consumed or landed/s | p50 ms | p99 ms | time landing |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"- Full speed, landing / raw consumer: **{ratio:.2f}x** (target >= {TARGET_RATIO}: "
        f"{'met' if ratio >= TARGET_RATIO else 'not met'}).",
        f"- Steady {args.rate:,.0f}/s, p99 produce to committed bronze row: **{p99:,.0f} ms** "
        f"(target <= {TARGET_P99_MS:,.0f} ms: {'met' if p99 <= TARGET_P99_MS else 'not met'}).",
        f"- Micro-batches: {streaming.batch_messages:,} messages or {batch_latency_ms} ms; at the steady rate a "
        f"clickstream commit held {np.median([m for m, _ in stream_steady.batches]):,.0f} messages (median) and took "
        f"{np.median([ms for _, ms in stream_steady.batches]):,.0f} ms to land, at full speed "
        f"{np.median([m for m, _ in stream_full.batches]):,.0f} and "
        f"{np.median([ms for _, ms in stream_full.batches]):,.0f} ms.",
        f"- CPU time a message at full speed, a measure the machine's load sways less than rates: the stream "
        f"{stream_full.cpu_us():,.1f} us (its process, start to stop), of which landing "
        f"{stream_full.landing_cpu_ms * 1000 / stream_full.messages:,.1f} us (decode to commit); the raw consumer "
        f"{raw_full.cpu_us():,.1f} us.",
        f"- Machine load (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)}. Landed by {landing_pass()}.",
        MARK,
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(MARK, lines)


if __name__ == "__main__":
    main()
