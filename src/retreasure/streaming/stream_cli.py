"""`retreasure stream`: land the web topics in bronze as they arrive, until Ctrl-C or SIGTERM (or a limit), and
bring them on into silver and gold every few seconds (``--build-every``)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.console import Console

from retreasure.exitcodes import ExitCode

if TYPE_CHECKING:
    from retreasure.engine.models import Model
    from retreasure.lake.store import TableRef
    from retreasure.streaming.microbuild import BuildFn

console = Console()


class BatchObserver(Protocol):
    """Told the rows the consumer writes to ops.stream_batches; reports them on its own cadence until stopped."""

    def batches(self, rows: Sequence[dict[str, Any]]) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class StreamReporting(Protocol):
    """What the command layer gives the stream so that an orchestrator sees it (Dagster, from the layer above):
    the micro-build to run, made from the models, and an observer of the batches' figures."""

    def build_fn(self, models: dict[TableRef, Model]) -> BuildFn: ...
    def observer(self) -> BatchObserver: ...
    def close(self) -> None: ...


def stream_command(reporting: Callable[[], StreamReporting] | None = None) -> Callable[..., None]:
    """The `retreasure stream` command; ``reporting`` (made when it runs) tells an orchestrator what it lands and
    builds (by default nothing does: the engine's own micro-builds, the figures in ops.stream_batches only)."""

    def stream(
        max_seconds: Annotated[
            float | None, typer.Option(help="Stop after this many seconds (default: run until stopped).")
        ] = None,
        until_idle: Annotated[
            float | None, typer.Option(help="Stop once no message came for this many seconds (a replay's end).")
        ] = None,
        bootstrap_servers: Annotated[
            str | None,
            typer.Option(help="host:port of the brokers. Default: RETREASURE_STREAMING__BOOTSTRAP_SERVERS."),
        ] = None,
        build_every: Annotated[
            float | None,
            typer.Option(
                help="Build what the streamed tables feed (silver, gold) every this many seconds when something "
                "landed, and once more on stop; 0: never. Default: RETREASURE_STREAMING__BUILD_EVERY_S."
            ),
        ] = None,
    ) -> None:
        """Consume the web clickstream and transactions topics and land each message in bronze exactly once, in
        micro-batches (RETREASURE_STREAMING__BATCH_*), and build what they feed every --build-every seconds.
        Ctrl-C or SIGTERM lands what is buffered, builds and stops; a kill at any moment loses nothing, as offsets
        are committed with the rows. Figures: ops.stream_batches, ops.stream_builds. Exits 0 when stopped, 1 when
        the broker or the lake failed, 3 when a micro-build failed or a blocking check stopped part of one."""
        run_stream(max_seconds, until_idle, bootstrap_servers, build_every, reporting() if reporting else None)

    return stream


def run_stream(
    max_seconds: float | None = None,
    until_idle: float | None = None,
    bootstrap_servers: str | None = None,
    build_every: float | None = None,
    reporting: StreamReporting | None = None,
) -> None:
    """Land the web topics (and build what they feed) until stopped: the body of `retreasure stream`."""
    from confluent_kafka import KafkaException

    from retreasure import log
    from retreasure.lake import Lake
    from retreasure.redact import redact
    from retreasure.settings import get_settings
    from retreasure.streaming.consumer import StreamConsumer
    from retreasure.streaming.microbuild import MicroBuilds

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
    every = settings.streaming.build_every_s if build_every is None else build_every
    builds: MicroBuilds | None = None
    try:
        lake = Lake.from_settings(settings)
        consumer = StreamConsumer(settings, lake)
        console.print(f"Streaming {', '.join(consumer.landings)} from {settings.streaming.bootstrap_servers}.")
        if every:
            from retreasure.engine.models import load_models

            models = load_models()
            streamed = [landing.table for landing in consumer.landings.values()]
            builds = MicroBuilds(lake, streamed, every, reporting.build_fn(models) if reporting else None, models)
            builds.start()
            console.print(f"Building what {', '.join(map(str, streamed))} feed every {every:g} s.")
        observer = reporting.observer() if reporting else None
        if observer is not None:
            consumer.ops_written = observer.batches
            observer.start()
        try:
            landed = builds.landed if builds else None
            totals = consumer.run(stop, max_seconds=max_seconds, until_idle_s=until_idle, landed=landed)
        finally:
            if builds is not None:
                builds.stop()
            if observer is not None:
                observer.stop()
    except (KafkaException, OSError, ValueError) as exc:  # the broker, the lake's storage, a setting
        console.print(f"The stream failed: {redact(f'{type(exc).__name__}: {exc}')}", style="red", markup=False)
        raise typer.Exit(ExitCode.FAILED) from exc
    finally:
        if reporting is not None:
            reporting.close()
    tables = ", ".join(f"{table} +{rows:,}" for table, rows in sorted(totals.per_table.items())) or "nothing new"
    console.print(
        f"Landed {totals.messages:,} messages in {totals.batches:,} batches: {tables}; "
        f"{totals.duplicates:,} duplicates, {totals.malformed:,} malformed (quarantined)."
    )
    if builds is not None:
        figures = builds.totals
        console.print(
            f"Built {figures.builds:,} time(s): {figures.failed:,} failed, {figures.blocked:,} stopped by a blocking "
            f"check, {figures.skipped:,} skipped while another build held the lake; {figures.late_rows:,} rows "
            "late beyond the lookback, built all the same (ops.stream_builds)."
        )
        if figures.failed or figures.blocked:
            raise typer.Exit(ExitCode.PARTIAL)
