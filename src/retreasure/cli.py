"""`retreasure`: the command line of the ReTreasure data platform."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from cryptography.fernet import Fernet
from rich import box
from rich.console import Console
from rich.table import Table

from retreasure import log, terminal
from retreasure.connectors.base import parse_instant
from retreasure.exitcodes import ExitCode
from retreasure.lake import Lake
from retreasure.settings import Settings, get_settings
from retreasure.sim.config import Faults, SimConfig

app = typer.Typer(help="ReTreasure data platform: ingest, curate and serve a commerce lakehouse.", no_args_is_help=True)
console = Console()

SIM_DIR = Path("sim-data")


def _settings() -> Settings:
    log.configure()
    return get_settings()


def ensure_local_secrets(env_file: Path = Path(".env")) -> Settings:
    """First run on a laptop: create the PII keys in .env (mode 0600) so that nobody has to invent them."""
    settings = _settings()
    if settings.pii_hmac_key.get_secret_value() and settings.pii_vault_key.get_secret_value():
        return settings
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    if not settings.pii_hmac_key.get_secret_value():
        lines.append(f"RETREASURE_PII_HMAC_KEY={secrets.token_urlsafe(32)}")
    if not settings.pii_vault_key.get_secret_value():
        lines.append(f"RETREASURE_PII_VAULT_KEY={Fernet.generate_key().decode()}")
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    console.print(f"[yellow]Created PII keys in {env_file} (keep it safe: the lake's tokens depend on it).[/]")
    get_settings.cache_clear()
    return get_settings()


def _config(seed: int, start: str, days: int, scale: float, faults: bool) -> SimConfig:
    return SimConfig(seed, date.fromisoformat(start), days, scale, Faults.on() if faults else Faults())


Seed = Annotated[int, typer.Option(help="Random seed: the same seed gives the same business.")]
Start = Annotated[str, typer.Option(help="First simulated day (YYYY-MM-DD).")]
Scale = Annotated[float, typer.Option(help="Volume multiplier: 1.0 is ~20k orders a year.")]
WithFaults = Annotated[bool, typer.Option("--faults/--no-faults", help="Inject duplicates, 429s, broken records...")]


@app.command()
def sim(
    seed: Seed = 7,
    start: Start = "2025-01-01",
    days: Annotated[int, typer.Option(help="How many days to simulate.")] = 365,
    scale: Scale = 1.0,
    faults: WithFaults = True,
    out: Annotated[Path, typer.Option(help="Where the truth is kept.")] = SIM_DIR,
) -> None:
    """Simulate the business: write its ground truth and drop its files into the landing folder."""
    from retreasure.sim.stage import build

    settings = _settings()
    with console.status("Simulating..."):
        truth = build(_config(seed, start, days, scale, faults), out, Path(settings.landing_dir))
    console.print(
        f"Simulated {truth.start} to {truth.end}: {len(truth['orders']):,} orders, "
        f"{len(truth['sessions']):,} web sessions, {len(truth['faults']):,} injected faults. "
        f"Truth in {out / 'truth'}, files in {settings.landing_dir}."
    )


@app.command()
def fakes(
    sim_dir: Annotated[Path, typer.Option(help="Simulation to serve (from `retreasure sim`).")] = SIM_DIR,
    faults: WithFaults = True,
) -> None:
    """Serve the fake marketplaces on the ports and with the credentials in settings, until Ctrl-C."""
    from retreasure.sim.model import Truth
    from retreasure.sim.stage import SERVED_TABLES, SERVER_OPTIONS, server_classes

    settings = _settings()
    truth = Truth.load(sim_dir / "truth", only=SERVED_TABLES)
    chosen = Faults.on() if faults else Faults()
    servers = []
    for name, cls in server_classes().items():
        section = getattr(settings, name)
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


@app.command()
def ingest(
    source: Annotated[list[str] | None, typer.Option(help="Source to ingest (repeatable); all by default.")] = None,
    since: Annotated[str | None, typer.Option(help="Window start (ISO 8601); default: the watermark.")] = None,
    until: Annotated[str | None, typer.Option(help="Window end (ISO 8601); default: now.")] = None,
    retry_refused: Annotated[
        bool, typer.Option(help="Read again the files refused earlier (ops.refused_files) of these sources.")
    ] = False,
) -> None:
    """Land new records from the sources in bronze (incremental; re-running adds nothing twice).

    Exits 0 when all landed (malformed records quarantined row by row are normal), 3 when a file was refused or
    quarantined whole, 1 when a source failed, 2 on a wrong command line (docs/runbook.md, "Exit codes")."""
    from retreasure.connectors.base import load_sources
    from retreasure.lake.ingest_log import exit_code

    settings = _settings()
    unknown = sorted(set(source or ()) - set(load_sources()))
    if unknown:
        _usage(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(load_sources())}")
    window = _instant(since, "--since"), _instant(until, "--until")
    lake = Lake.from_settings(settings)
    if retry_refused:
        from retreasure.bronze.ingest import forget_refused

        console.print(f"Retrying {forget_refused(lake, source or list(load_sources()))} refused file(s).")
    runs, interrupted = terminal.ingest(console, settings, lake, source, *window)
    terminal.print_ingest(console, runs, interrupted)
    raise typer.Exit(exit_code(runs))


def _usage(message: str) -> NoReturn:
    console.print(f"[red]{message}[/]")
    raise typer.Exit(ExitCode.USAGE)


def _instant(value: str | None, option: str = "") -> datetime | None:
    if value is None:
        return None
    if len(value) == 10:
        value += "T00:00:00Z"
    try:
        return parse_instant(value)
    except ValueError as exc:
        _usage(f"{option}: {exc}")


@app.command()
def demo(
    seed: Seed = 7,
    start: Start = "2025-01-01",
    days: Annotated[int, typer.Option(help="How many days to simulate.")] = 60,
    scale: Scale = 0.3,
    faults: WithFaults = True,
    fresh: Annotated[bool, typer.Option(help="Start from an empty lake, landing folder and simulation.")] = False,
) -> None:
    """The whole local platform on a simulated business: simulate, serve, ingest, and compare with the truth."""
    from retreasure.lake.ingest_log import exit_code
    from retreasure.sim.stage import Credentials, build, expected_counts, running_servers

    settings = ensure_local_secrets()
    lake = Lake.from_settings(settings)
    landing = Path(settings.landing_dir)
    if fresh:
        for folder in (Path(lake.uri), landing, SIM_DIR):
            if lake.is_local or folder != Path(lake.uri):
                shutil.rmtree(folder, ignore_errors=True)
    config = _config(seed, start, days, scale, faults)
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
    built = _build(lake)
    _print_kpis(lake)
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


def _build(lake: Lake) -> list:
    from retreasure.engine.build import build
    from retreasure.engine.models import load_models

    models = load_models()
    with terminal.progress_bar(console) as bar:
        task = bar.add_task("Building silver and gold", total=len(models))
        runs = build(lake, models=models, progress=lambda run: bar.update(task, advance=1))
    failed = [f"{c.table_name}: {c.check_name}" for r in runs for c in r.checks if not c.passed]
    console.print(f"Built {len(runs)} silver and gold models; checks failed: {', '.join(failed) or 'none'}.")
    return runs


def _print_kpis(lake: Lake) -> None:
    from retreasure.kpis import summary

    table = Table(title="KPIs (from gold)", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    for label, value in summary(lake):
        table.add_row(label, "-" if value is None else f"{value:,}")
    console.print(table)


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


@app.command()
def dictionary(out: Annotated[Path, typer.Option(help="Where to write it.")] = Path("docs/data-dictionary.md")) -> None:
    """Write the data dictionary from the model contracts."""
    from retreasure.engine.dictionary import render

    out.write_text(render())
    console.print(f"Wrote {out}")


# Orchestration: the Dagster UI, a full build and backfills (retreasure/pipeline).
from retreasure.pipeline import cli as pipeline_cli  # noqa: E402 - mounted after the app exists

app.command()(pipeline_cli.ui)
app.command()(pipeline_cli.build)
app.command()(pipeline_cli.backfill)

# Serving: the HTTP API and its keys, finance exports, dashboards (retreasure/serving).
from retreasure.serving.api import cli as api_cli  # noqa: E402
from retreasure.serving.dashboard import cli as dashboard_cli  # noqa: E402
from retreasure.serving.exports import cli as exports_cli  # noqa: E402

app.command()(api_cli.serve)
app.add_typer(api_cli.keys_app, name="keys")
app.add_typer(exports_cli.export_app, name="export")
app.command()(dashboard_cli.dashboard)


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(envvar="RETREASURE_LOG_LEVEL", help="Log level.")] = "INFO",
    log_file: Annotated[
        str, typer.Option(envvar="RETREASURE_LOG_FILE", help="Where the JSON log goes ('-': stderr).")
    ] = "logs/retreasure.log",
) -> None:
    os.environ.setdefault("RETREASURE_LOG_LEVEL", log_level)
    log.log_to_file(None if log_file == "-" else Path(log_file))
