"""`retreasure sim stream`: the simulated web shop live, its clickstream and payment transactions published to
Kafka as the site would, at a chosen pace, with the wire's faults."""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from retreasure import terminal
from retreasure.exitcodes import ExitCode
from retreasure_sim.config import StreamFaults
from retreasure_sim.options import Scale, Seed, Start, WithFaults, sim_config

if TYPE_CHECKING:  # the wire (and the simulator's renderers) load when the command runs
    from retreasure_sim.streaming.producer import ProduceReport
    from retreasure_sim.streaming.wire import WireTally, WireTopics

console = Console()
FAULT_NAMES = {
    "duplicate": "duplicates",
    "out_of_order": "out of order",
    "late": "late (hours)",
    "malformed": "malformed",
    "oversized": "oversized",
    "schema_drift": "schema drift",
}


def stream(
    seed: Seed = 7,
    start: Start = "2025-01-01",
    days: Annotated[int, typer.Option(help="How many days of the site's traffic to replay.")] = 1,
    scale: Scale = 1.0,
    faults: WithFaults = True,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="Kafka host:port[,host:port]; default: the streaming settings' servers.")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Messages per second.")] = None,
    speed_up: Annotated[
        float | None, typer.Option(help="Simulated seconds per real second (3600: an hour a second).")
    ] = None,
    partitions: Annotated[
        int | None, typer.Option(help="Partitions of topics created here; default: the streaming settings'.")
    ] = None,
    faults_out: Annotated[
        Path | None, typer.Option(help="Write every wire fault (JSON Lines, with partition and offset) here.")
    ] = None,
) -> None:
    """Replay simulated days of the web shop's events on Kafka, as the live site sends them.

    Clickstream to web.clickstream (keyed by session), payment transactions to web.transactions (keyed by
    order), at --rate messages/s, at --speed-up times the simulated clock, or as fast as the broker takes them.
    Faults on the wire: duplicates, out-of-order and late events, malformed and oversized messages, schema drift.
    """
    from confluent_kafka import KafkaException

    from retreasure.cli import configured_settings
    from retreasure_sim.business import simulate
    from retreasure_sim.streaming.producer import Pace, Site

    try:
        pace = Pace(rate, speed_up)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(ExitCode.USAGE) from None
    site = Site.from_settings(configured_settings(), bootstrap_servers, partitions)
    servers = site.client["bootstrap.servers"]
    try:
        setup = site.ensure_topics()
    except KafkaException as exc:
        console.print(f"[red]No Kafka broker answers at {servers}:[/] {exc.args[0].str()}")
        console.print("Start one with `retreasure broker`, or give --bootstrap-servers.")
        raise typer.Exit(ExitCode.FAILED) from None
    if setup.created:
        console.print(f"Created topics: {', '.join(setup.created)}")
    if setup.raised:
        console.print(f"[dim]Raised the message size limit of {', '.join(setup.raised)} to take oversized messages.[/]")
    for topic, reason in setup.refused.items():
        console.print(f"[yellow]{topic} keeps its message size limit ({reason}): its oversized messages will fail.[/]")
    with console.status("Simulating..."):
        truth = simulate(sim_config(seed, start, days, scale, faults))
    events = len(truth["web_events"]) + len(truth["payments"])
    console.print(f"Streaming {truth.start} to {truth.end} to {servers}: {events:,} events, {pace.describe()}.")
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    with terminal.progress_bar(console) as bar:
        task = bar.add_task("Publishing events", total=events)
        report = site.publish(
            truth,
            StreamFaults.on() if faults else StreamFaults(),
            seed,
            pace,
            stop,
            lambda r: bar.update(task, completed=sum(map(len, r.tally.events.values()))),
        )
    if faults_out is not None:
        _write_faults(faults_out, report.tally, report.positions)
    _print_summary(report, site.topics)
    delivered = sum(report.delivered.values())
    raise typer.Exit(ExitCode.OK if report.complete else ExitCode.PARTIAL if delivered else ExitCode.FAILED)


def _write_faults(path: Path, tally: WireTally, positions: dict[int, tuple[int, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for fault in tally.faults:
            partition, offset = positions.get(fault.seq, (None, None))
            out.write(json.dumps({**asdict(fault), "partition": partition, "offset": offset}) + "\n")


def _print_summary(report: ProduceReport, topics: WireTopics) -> None:
    tally = report.tally
    table = Table(title="Published to Kafka", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("topic", "messages", "events", "delivered", "failed", "MB"):
        table.add_column(column, justify="left" if column == "topic" else "right", no_wrap=True)
    for topic in topics:
        failed = report.failed[topic]
        table.add_row(
            topic,
            f"{tally.messages[topic]:,}",
            f"{len(tally.events[topic]):,}",
            f"{report.delivered[topic]:,}",
            f"[red]{failed:,}[/]" if failed else "0",
            f"{tally.bytes[topic] / 1e6:,.1f}",
        )
    console.print(table)
    faults = Table(title="Faults on the wire", box=box.SIMPLE_HEAD, title_justify="left")
    faults.add_column("fault", no_wrap=True)
    for topic in topics:
        faults.add_column(topic, justify="right", no_wrap=True)
    for kind, name in FAULT_NAMES.items():
        faults.add_row(name, *(f"{tally.count(kind, topic):,}" for topic in topics))
    console.print(faults)
    console.print(
        f"{sum(report.delivered.values()):,} messages delivered in {report.seconds:,.1f} s "
        f"({report.rate():,.0f}/s); the platform must quarantine {len(tally.quarantined()):,} "
        f"(malformed and oversized) and land {sum(map(len, tally.landed.values())):,} events."
    )
    if report.client_errors:
        seen = ", ".join(f"{name} x{n}" for name, n in report.client_errors.most_common())
        console.print(f"[yellow]Broker trouble met and retried:[/] {seen}")
    for reason, n in report.errors.most_common(5):
        console.print(f"[red]{n:,} deliveries failed:[/] {terminal.shorten(reason)}")
    if report.stopped:
        console.print("[yellow]Stopped before the end of the period.[/]")
