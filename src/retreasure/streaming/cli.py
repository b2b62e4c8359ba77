"""`retreasure broker`: a local Kafka broker for the web topics, run until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from retreasure.exitcodes import ExitCode

if TYPE_CHECKING:
    from retreasure.streaming.jars import PinnedJar

console = Console()
LOOPBACK_NAMES = {"127.0.0.1", "localhost"}
DEFAULT_PORT = 9092


def broker(
    port: Annotated[
        int | None,
        typer.Option(
            help="Port of the broker on 127.0.0.1 (0: any free port). "
            "Default: the port of RETREASURE_STREAMING__BOOTSTRAP_SERVERS when that is on this machine, else 9092."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the broker keeps its topics and its log. Default: RETREASURE_STREAMING__BROKER_DIR."),
    ] = None,
    heap_mb: Annotated[int, typer.Option(help="The broker's Java heap, in MB.")] = 512,
) -> None:
    """Run a local Apache Kafka broker (the stand-in for Azure Event Hubs) with the web topics created; Ctrl-C or
    SIGTERM stops it. The broker's pinned jars are fetched from Maven Central on first use. Exits 1 when Java is
    missing or the broker does not start, 2 when the port is taken."""
    from retreasure import log
    from retreasure.settings import get_settings
    from retreasure.streaming.broker import HOST, Broker, BrokerFailed, JavaNotFound, find_java  # this command only
    from retreasure.streaming.jars import JarDownloadError

    log.configure()
    streaming = get_settings().streaming
    port = _default_port(streaming.bootstrap_servers) if port is None else port
    if port and not _port_free(port):
        console.print(f"[red]Port {port} on {HOST} is taken (a broker already running?):[/] --port 0 picks a free one.")
        raise typer.Exit(ExitCode.USAGE)
    try:
        find_java()
        fetch_jars(console, streaming.jars_dir)
    except (JavaNotFound, JarDownloadError) as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED) from exc
    local = Broker(
        data_dir or streaming.broker_dir, jars_root=streaming.jars_dir, port=port, heap_mb=heap_mb,
        partitions=streaming.partitions,
    )  # fmt: skip
    _stop_on_sigterm()
    try:
        began = time.monotonic()
        with console.status(f"Starting the Kafka {local.version} broker..."):
            local.start()
            local.create_topics(streaming.topics, streaming.partitions)
        console.print(
            f"Kafka {local.version} broker on [bold]{local.bootstrap_servers}[/] in {time.monotonic() - began:.1f} s "
            f"(data and log in {local.data_dir}); topics {', '.join(streaming.topics)} with "
            f"{streaming.partitions} partitions. Ctrl-C stops it."
        )
        while local.running:
            time.sleep(0.5)
        assert local.process is not None
        console.print(f"[red]The broker stopped on its own (exit {local.process.returncode}):[/]")
        console.print(local.log_tail(), markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED)
    except BrokerFailed as exc:
        console.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(ExitCode.FAILED) from exc
    except KeyboardInterrupt:
        console.print("Stopping the broker...")
    finally:
        local.stop()
    console.print("Broker stopped.")


def fetch_jars(console: Console, jars_root: Path) -> Path:
    """The pinned jars in place (their folder), with a bar over the bytes and a line when some were downloaded."""
    from retreasure.streaming.jars import ensure_jars, kafka_version, pinned_jars

    jars = pinned_jars()
    total = sum(jar.size for jar in jars)
    columns = (TextColumn("{task.description}"), BarColumn(bar_width=24), DownloadColumn(), TransferSpeedColumn())
    began = time.monotonic()
    fetched = 0
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"Kafka {kafka_version(jars)} jars", total=total)

        def progress(jar: PinnedJar, size: int) -> None:
            nonlocal fetched
            fetched += size
            bar.update(task, advance=size if size else jar.size, description=f"Kafka jars: {jar.file_name}")

        libs = ensure_jars(jars_root, progress)
    if fetched:
        console.print(
            f"Fetched {fetched / 1e6:.1f} MB of Kafka jars into {libs} in {time.monotonic() - began:.1f} s "
            f"({len(jars)} jars, each checked against its pinned SHA-256)."
        )
    return libs


def _default_port(bootstrap_servers: str) -> int:
    host, _, port = bootstrap_servers.split(",", 1)[0].strip().rpartition(":")
    return int(port) if host in LOOPBACK_NAMES and port.isdigit() else DEFAULT_PORT


def _port_free(port: int) -> bool:
    from retreasure.streaming.broker import HOST

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the JVM binds: a port left in TIME_WAIT by a broker just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _stop_on_sigterm() -> None:
    """SIGTERM stops the broker as Ctrl-C does (a service manager's stop, or `kill`)."""

    def interrupt(number: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
