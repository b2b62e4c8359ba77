"""The simulator's commands, mounted on the platform's command line through the `retreasure.commands` entry point.

The platform's CLI module is imported inside the commands, not at the top: it loads this module while its app is
being built, so a top-level import would be circular."""

from __future__ import annotations

import shutil
import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from retreasure import terminal
from retreasure.exitcodes import ExitCode
from retreasure_sim.config import Faults, SimConfig
from retreasure_sim.options import Scale, Seed, Start, WithFaults, sim_config
from retreasure_sim.streaming.cli import stream

if TYPE_CHECKING:  # the lake (DuckDB, Delta, Arrow) loads when a command runs: the platform's `--help` stays fast
    from retreasure.lake import Lake
    from retreasure.settings import Settings
    from retreasure.streaming.broker import Broker

SIM_DIR = Path("sim-data")
console = Console()


sim_app = typer.Typer(invoke_without_command=True)


def register(app: typer.Typer) -> None:
    """Mount `sim` (and `sim stream`), `fakes` and `demo` on the platform's command line."""
    app.add_typer(sim_app, name="sim")
    app.command()(fakes)
    app.command()(demo)


sim_app.command()(stream)


@sim_app.callback()
def sim(
    context: typer.Context,
    seed: Seed = 7,
    start: Start = "2025-01-01",
    days: Annotated[int, typer.Option(help="How many days to simulate.")] = 365,
    scale: Scale = 1.0,
    faults: WithFaults = True,
    out: Annotated[Path, typer.Option(help="Where the truth is kept.")] = SIM_DIR,
) -> None:
    """Simulate the business: write its ground truth and drop its files into the landing folder. `sim stream`
    publishes its web events to Kafka instead, as the live site does."""
    if context.invoked_subcommand is not None:
        return
    from retreasure.cli import configured_settings
    from retreasure_sim.stage import build

    settings = configured_settings()
    with console.status("Simulating..."):
        truth = build(sim_config(seed, start, days, scale, faults), out, Path(settings.landing_dir))
    console.print(
        f"Simulated {truth.start} to {truth.end}: {len(truth['orders']):,} orders, "
        f"{len(truth['sessions']):,} web sessions, {len(truth['faults']):,} injected faults. "
        f"Truth in {out / 'truth'}, files in {settings.landing_dir}."
    )


def fakes(
    sim_dir: Annotated[Path, typer.Option(help="Simulation to serve (from `retreasure sim`).")] = SIM_DIR,
    faults: WithFaults = True,
) -> None:
    """Serve the fake marketplaces on the ports and with the credentials in settings, until Ctrl-C."""
    from retreasure.cli import configured_settings
    from retreasure.connectors.base import load_sources
    from retreasure_sim.model import Truth
    from retreasure_sim.stage import SERVED_TABLES, SERVER_OPTIONS, server_classes

    settings = configured_settings()
    truth = Truth.load(sim_dir / "truth", only=SERVED_TABLES)
    chosen = Faults.on() if faults else Faults()
    servers = []
    for name, cls in server_classes().items():
        section = load_sources()[name].configured(settings)
        credentials = {k: v.get_secret_value() for k, v in section if hasattr(v, "get_secret_value")}
        host, _, port = section.base_url.removeprefix("http://").partition(":")
        options = SERVER_OPTIONS.get(name, {})
        server = cls(truth, credentials, faults=chosen, seed=truth.seed, host=host, port=int(port or 80), **options)
        servers.append(server.start())
        console.print(f"{name}: {server.url}")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.stop()


def demo(
    seed: Seed = 7,
    start: Start = "2025-01-01",
    # Nine months at a tenth of the business: the weeks a forecast's backtest needs, at the cost of two months.
    days: Annotated[int, typer.Option(help="How many days to simulate.")] = 270,
    scale: Scale = 0.1,
    faults: WithFaults = True,
    fresh: Annotated[
        bool, typer.Option(help="Start from an empty lake, landing folder, simulation and demo broker.")
    ] = False,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="Web clickstream and transactions through a local Kafka broker, or as file drops. "
            "Default: through the broker when Java is found.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The whole local platform on a simulated business: simulate, serve, stream, ingest, and compare with the
    truth."""
    from retreasure.cli import ensure_local_secrets
    from retreasure.lake import Lake
    from retreasure_sim.streaming import demo as live

    settings = ensure_local_secrets()
    lake = Lake.from_settings(settings)
    if fresh:
        for folder in (Path(lake.uri), Path(settings.landing_dir), SIM_DIR, live.broker_dir(settings.streaming)):
            if lake.is_local or folder != Path(lake.uri):
                shutil.rmtree(folder, ignore_errors=True)
    config = sim_config(seed, start, days, scale, faults)
    with ExitStack() as stack:
        broker = None
        if stream is not False:
            try:
                broker = live.prepared_broker(console, settings.streaming)
            except live.UNAVAILABLE as exc:
                _without_broker(exc, settings, required=stream is True)
        raise typer.Exit(_run_demo(stack, settings, lake, config, broker, required=stream is True))


def _without_broker(error: BaseException, settings: Settings, required: bool) -> None:
    """Say in one line why the web events come from files after all; with --stream, stop instead."""
    from retreasure_sim.streaming import demo as live

    if required:
        console.print(f"[red]--stream: no Kafka broker:[/] {live.reason(error)}")
        raise typer.Exit(ExitCode.FAILED)
    console.print(live.broker_unavailable(error, live.broker_dir(settings.streaming)), markup=False, highlight=False)


def _run_demo(
    stack: ExitStack, settings: Settings, lake: Lake, config: SimConfig, broker: Broker | None, required: bool
) -> ExitCode:
    """Simulate (starting the broker meanwhile, when there is one), stream the web events through it, ingest the
    other sources from the fake servers and the landing folder, build, compare with the truth, and train the
    models against their baselines."""
    from retreasure.cli import build_and_report, print_kpis
    from retreasure.connectors.base import load_sources
    from retreasure.lake.ingest_log import exit_code
    from retreasure_sim.files import FORMATS
    from retreasure_sim.stage import Credentials, build, drop_files, expected_counts, running_servers
    from retreasure_sim.streaming import demo as live

    landing = Path(settings.landing_dir)
    # The streamed sources' files are held back (a file format bears the name of its source).
    held_back = live.streamed_sources(settings.streaming) if broker is not None else set()
    with terminal.progress_bar(console) as bar:
        bar.add_task("Simulating the business", total=None)
        simulated = live.in_background(
            lambda: build(config, SIM_DIR, landing, [name for name in FORMATS if name not in held_back])
        )
        if broker is not None:
            stop_soon = stack.enter_context(live.stopped_at_exit(broker))
            starting = bar.add_task(f"Starting the Kafka {broker.version} broker", total=None)
            try:
                broker.start()
            except live.UNAVAILABLE as exc:
                _without_broker(exc, settings, required)
                broker = None
            bar.remove_task(starting)
        truth = simulated.result()
        if held_back and broker is None:  # the broker did not start: the files after all
            drop_files(truth, config, SIM_DIR, landing, sorted(held_back))
    streamed = held_back if broker is not None else set()
    console.print(
        f"Simulated {truth.start} to {truth.end}: {len(truth['orders']):,} orders on 4 channels, "
        f"{len(truth['sessions']):,} web sessions, {len(truth['faults']):,} injected faults."
    )
    expected = expected_counts(truth)
    if broker is not None:
        web = live.stream_web(console, broker, truth, config.faults.any(), config.seed, settings, lake)
        stop_soon()
        live.print_streamed(console, web, broker)
        expected |= web.expected_counts(lake)
    with running_servers(truth, config, Credentials.fresh(), settings) as (served, servers):
        console.print("Fake marketplaces: " + ", ".join(f"{n} {s.url}" for n, s in servers.items()))
        sources = [name for name in load_sources() if name not in streamed]
        runs, interrupted = terminal.ingest(console, served, lake, sources)
    terminal.print_ingest(console, runs, interrupted)
    _print_bronze_summary(lake, expected)
    built = build_and_report(lake)
    print_kpis(lake)
    _print_ml_headline(lake)
    console.print(
        f"Next: query the lake with DuckDB ({lake.uri}: bronze.*, silver.*, gold.*, ops.ingest_log, ops.dq_results, "
        "ops.stream_batches, quarantine.*), read docs/kpis.md for what each figure means, run `retreasure ui` for "
        "the lineage, or `retreasure keys create --role admin` then `retreasure dashboard` and `retreasure serve` "
        "(docs/api.md)."
    )
    return _demo_exit_code(exit_code(runs), built)


def _print_ml_headline(lake: Lake) -> None:
    """Train the demand forecast and the recommender on the built lake and print each against its baseline."""
    import time

    from retreasure.ml.forecast import ForecastParams
    from retreasure.ml.headline import headline

    started = time.perf_counter()
    with terminal.progress_bar(console) as bar:
        bar.add_task("Training the demand forecast and the recommender", total=None)
        lines = headline(lake)
    console.print(f"Machine learning against its baselines ({time.perf_counter() - started:.0f} s; ops.ml_runs):")
    for line in lines:
        console.print(f"  {line}", markup=False, highlight=False)
    if lines[0].startswith("forecast: skipped"):
        days = ForecastParams().weeks_needed() * 7 + 7  # whole Monday-to-Sunday weeks from any start day
        console.print(f"  [dim](`retreasure demo --fresh --days {days}` simulates enough weeks to backtest)[/]")


def _demo_exit_code(ingested: ExitCode, built: list) -> ExitCode:
    """The ingest's code, or PARTIAL when a blocking check stopped models downstream (and the ingest was OK)."""
    if ingested == ExitCode.OK and any(r.blocked for r in built):
        return ExitCode.PARTIAL
    return ingested


def _print_bronze_summary(lake: Lake, expected: dict[str, int]) -> None:
    from retreasure.lake.store import TableRef

    table = Table(title="Bronze against the simulator's truth", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("bronze table", "rows", "keys", "truth", "match", "bad"):
        table.add_column(column, justify="left" if column == "bronze table" else "right", no_wrap=True)
    names = sorted(set(expected) | {r.name for r in lake.tables("bronze")})
    mismatches = 0
    for name in names:
        ref = TableRef("bronze", name)
        rows = keys = bad = 0
        if lake.exists(ref):
            found = lake.query(
                f"SELECT count(*) AS n, count(DISTINCT record_key) FILTER (WHERE error IS NULL) AS k, "
                f"count(*) FILTER (WHERE error IS NOT NULL) AS bad FROM {ref}",
                [ref],
            ).to_pylist()[0]
            rows, keys, bad = found["n"], found["k"], found["bad"]
        want = expected.get(name)
        ok = want is None or want == keys
        mismatches += not ok
        table.add_row(
            name,
            f"{rows:,}",
            f"{keys:,}",
            "-" if want is None else f"{want:,}",
            "[green]yes[/]" if ok else "[red]NO[/]",
            f"{bad:,}",
        )
    console.print(table)
    console.print(
        "[dim]keys: distinct good records; truth: what the simulator sent; bad: malformed, in quarantine.*[/]\n"
        f"Lake: {lake.uri}  (bronze tables: {len(names)}, mismatches: {mismatches}); "
        "ingest log: ops.ingest_log; quarantine: quarantine.*"
    )
