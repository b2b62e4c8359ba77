"""`retreasure stream`: land the web topics in bronze as they arrive, until Ctrl-C or SIGTERM (or a limit)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from retreasure.exitcodes import ExitCode

console = Console()


def stream(
    max_seconds: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until stopped).")
    ] = None,
    until_idle: Annotated[
        float | None, typer.Option(help="Stop once no message came for this many seconds (a replay's end).")
    ] = None,
    bootstrap_servers: Annotated[
        str | None, typer.Option(help="host:port of the brokers. Default: RETREASURE_STREAMING__BOOTSTRAP_SERVERS.")
    ] = None,
) -> None:
    """Consume the web clickstream and transactions topics and land each message in bronze exactly once, in
    micro-batches (RETREASURE_STREAMING__BATCH_*). Ctrl-C or SIGTERM lands what is buffered and stops; a kill at
    any moment loses nothing, as offsets are committed with the rows. Figures per batch: ops.stream_batches.
    Exits 0 when stopped, 1 when the broker or the lake failed."""
    from confluent_kafka import KafkaException

    from retreasure import log
    from retreasure.lake import Lake
    from retreasure.redact import redact
    from retreasure.settings import get_settings
    from retreasure.streaming.consumer import StreamConsumer

    log.configure()
    settings = get_settings()
    if bootstrap_servers:
        streaming = settings.streaming.model_copy(update={"bootstrap_servers": bootstrap_servers})
        settings = settings.model_copy(update={"streaming": streaming})
    stop = threading.Event()

    def stopping(number: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    try:
        consumer = StreamConsumer(settings, Lake.from_settings(settings))
        console.print(f"Streaming {', '.join(consumer.landings)} from {settings.streaming.bootstrap_servers}.")
        totals = consumer.run(stop, max_seconds=max_seconds, until_idle_s=until_idle)
    except (KafkaException, OSError, ValueError) as exc:  # the broker, the lake's storage, a setting
        console.print(f"The stream failed: {redact(f'{type(exc).__name__}: {exc}')}", style="red", markup=False)
        raise typer.Exit(ExitCode.FAILED) from exc
    tables = ", ".join(f"{table} +{rows:,}" for table, rows in sorted(totals.per_table.items())) or "nothing new"
    console.print(
        f"Landed {totals.messages:,} messages in {totals.batches:,} batches: {tables}; "
        f"{totals.duplicates:,} duplicates, {totals.malformed:,} malformed (quarantined)."
    )
