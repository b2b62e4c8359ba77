"""The simulator's commands, mounted on the platform's command line through the `retreasure.commands` entry point.

The platform's CLI module is imported inside the commands, not at the top: it loads this module while its app is
being built, so a top-level import would be circular."""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from retreasure import terminal
from retreasure.exitcodes import ExitCode
from retreasure.lake import Lake
from retreasure_sim.config import Faults
from retreasure_sim.options import Scale, Seed, Start, WithFaults, sim_config
from retreasure_sim.streaming.cli import stream

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
    days: Annotated[int, typer.Option(help="How many days to simulate.")] = 60,
    scale: Scale = 0.3,
    faults: WithFaults = True,
    fresh: Annotated[bool, typer.Option(help="Start from an empty lake, landing folder and simulation.")] = False,
) -> None:
    """The whole local platform on a simulated business: simulate, serve, ingest, and compare with the truth."""
    from retreasure.cli import build_and_report, ensure_local_secrets, print_kpis
    from retreasure.lake.ingest_log import exit_code
    from retreasure_sim.stage import Credentials, build, expected_counts, running_servers

    settings = ensure_local_secrets()
    lake = Lake.from_settings(settings)
    landing = Path(settings.landing_dir)
    if fresh:
        for folder in (Path(lake.uri), landing, SIM_DIR):
            if lake.is_local or folder != Path(lake.uri):
                shutil.rmtree(folder, ignore_errors=True)
    config = sim_config(seed, start, days, scale, faults)
    with terminal.progress_bar(console) as bar:
        bar.add_task("Simulating the business", total=None)
        truth = build(config, SIM_DIR, landing)
    console.print(
        f"Simulated {truth.start} to {truth.end}: {len(truth['orders']):,} orders on 4 channels, "
        f"{len(truth['sessions']):,} web sessions, {len(truth['faults']):,} injected faults."
    )
    with running_servers(truth, config, Credentials.fresh(), settings) as (served, servers):
        console.print("Fake marketplaces: " + ", ".join(f"{n} {s.url}" for n, s in servers.items()))
        runs, interrupted = terminal.ingest(console, served, lake, None)
    terminal.print_ingest(console, runs, interrupted)
    _print_bronze_summary(lake, expected_counts(truth))
    built = build_and_report(lake)
    print_kpis(lake)
    console.print(
        f"Next: query the lake with DuckDB ({lake.uri}: bronze.*, silver.*, gold.*, ops.ingest_log, ops.dq_results, "
        "quarantine.*), read docs/kpis.md for what each figure means, run `retreasure ui` for the lineage, or "
        "`retreasure keys create --role admin` then `retreasure dashboard` and `retreasure serve` (docs/api.md)."
    )
    raise typer.Exit(_demo_exit_code(exit_code(runs), built))


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
