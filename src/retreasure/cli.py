"""`retreasure`: the command line of the ReTreasure data platform."""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from retreasure import log, terminal
from retreasure.exitcodes import ExitCode
from retreasure.records.instants import parse_instant

if TYPE_CHECKING:  # each command imports the lake (DuckDB, Delta, Arrow) when it runs: `--help` stays fast
    from retreasure.lake import Lake
    from retreasure.settings import Settings

# Help in click's plain layout (rich_markup_mode=None): Typer's rich help imports and lays out with Rich's markdown
# and traceback modules, most of the start of `retreasure --help`, for the same text.
app = typer.Typer(
    help="ReTreasure data platform: ingest, curate and serve a commerce lakehouse.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
console = Console()


def configured_settings() -> Settings:
    from retreasure.settings import get_settings

    log.configure()
    return get_settings()


def ensure_local_secrets(env_file: Path = Path(".env")) -> Settings:
    """First run on a laptop: create the PII keys in .env (mode 0600) so that nobody has to invent them."""
    from cryptography.fernet import Fernet

    from retreasure.settings import get_settings

    settings = configured_settings()
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
    from retreasure.lake import Lake
    from retreasure.lake.ingest_log import exit_code

    settings = configured_settings()
    known = load_sources()
    unknown = sorted(set(source or ()) - set(known))
    if unknown:
        _usage(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(known)}")
    window = _instant(since, "--since"), _instant(until, "--until")
    lake = Lake.from_settings(settings)
    if retry_refused:
        from retreasure.bronze.ingest import forget_refused

        console.print(f"Retrying {forget_refused(lake, source or list(known))} refused file(s).")
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


def build_and_report(lake: Lake) -> list:
    """Build every silver and gold model with a progress bar, as `retreasure build` does (ops.builds and the
    Dagster UI's asset history see it), then say which checks failed."""
    from retreasure.engine.models import load_models
    from retreasure.pipeline.history import build_with_history, dagster_home
    from retreasure.settings import get_settings

    models = load_models()
    with terminal.progress_bar(console) as bar:
        task = bar.add_task("Building silver and gold", total=len(models))
        home = dagster_home(get_settings().dagster_home)
        runs = build_with_history(lake, models, home, progress=lambda run: bar.update(task, advance=1)).runs
    failed = [f"{c.table_name}: {c.check_name}" for r in runs for c in r.checks if not c.passed]
    console.print(f"Built {len(runs)} silver and gold models; checks failed: {', '.join(failed) or 'none'}.")
    return runs


def print_kpis(lake: Lake) -> None:
    """The headline KPIs from gold, as a table."""
    from retreasure.serving.kpis import summary

    table = Table(title="KPIs (from gold)", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    for label, value in summary(lake):
        table.add_row(label, "-" if value is None else f"{value:,}")
    console.print(table)


@app.command()
def dictionary(out: Annotated[Path, typer.Option(help="Where to write it.")] = Path("docs/data-dictionary.md")) -> None:
    """Write the data dictionary from the model contracts."""
    from retreasure.engine.dictionary import render
    from retreasure.ml.catalog import documented_tables

    out.write_text(render(documented_tables()))
    console.print(f"Wrote {out}")


# Orchestration: the Dagster UI, a full build and backfills (retreasure/pipeline).
from retreasure.pipeline import cli as pipeline_cli  # noqa: E402 - mounted after the app exists

app.command()(pipeline_cli.ui)
app.command()(pipeline_cli.build)
app.command()(pipeline_cli.backfill)
from retreasure.pipeline.lake_cli import lake_app  # noqa: E402

app.add_typer(lake_app, name="lake")

# Serving: the HTTP API and its keys, finance exports, dashboards (retreasure/serving).
from retreasure.serving.api import cli as api_cli  # noqa: E402
from retreasure.serving.dashboard import cli as dashboard_cli  # noqa: E402
from retreasure.serving.exports import cli as exports_cli  # noqa: E402

app.command()(api_cli.serve)
app.add_typer(api_cli.keys_app, name="keys")
app.add_typer(exports_cli.export_app, name="export")
app.command()(dashboard_cli.dashboard)

# Machine learning: the demand forecast (retreasure/ml).
from retreasure.ml import cli as ml_cli  # noqa: E402

app.add_typer(ml_cli.ml_app, name="ml")

# Streaming: the local Kafka broker (retreasure/streaming).
from retreasure.streaming import cli as streaming_cli  # noqa: E402

app.command()(streaming_cli.broker)
from retreasure.streaming import stream_cli  # noqa: E402


def _stream_reporting() -> stream_cli.StreamReporting:
    """The stream tells Dagster what it does: each micro-build's model runs, as `retreasure build` does, and its
    batches' figures (lag, latency, sizes) in the history of the bronze assets it lands in."""
    from retreasure.pipeline.history import dagster_home
    from retreasure.pipeline.stream_history import StreamHistory
    from retreasure.settings import get_settings

    return StreamHistory(dagster_home(get_settings().dagster_home))


app.command(name="stream")(stream_cli.stream_command(_stream_reporting))

# Commands from other installed packages: each entry point in this group is called with the app to mount its
# commands. The simulator (retreasure-sim, a development dependency) brings `sim`, `fakes` and `demo`; the
# platform itself never imports it.
COMMAND_PLUGINS = "retreasure.commands"
SIMULATOR_COMMANDS = ("sim", "fakes", "demo")


def _simulator_missing(name: str) -> None:
    @app.command(
        name,
        help="Needs the simulator package (retreasure-sim): `make setup` in a checkout installs it.",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def missing() -> None:
        console.print(
            f"[red]`retreasure {name}` needs the simulator, package retreasure-sim, which is not installed.[/] "
            "In a checkout of the repository, `make setup` installs it with the development dependencies "
            "(or: `uv pip install -e sim`)."
        )
        raise typer.Exit(ExitCode.USAGE)


def _mount_command_plugins() -> None:
    for entry in entry_points(group=COMMAND_PLUGINS):
        entry.load()(app)
    mounted = {info.name or info.callback.__name__ for info in app.registered_commands if info.callback}
    mounted |= {info.name for info in app.registered_groups if info.name}
    for name in SIMULATOR_COMMANDS:
        if name not in mounted:
            _simulator_missing(name)


_mount_command_plugins()


def _plain_help(typer_app: typer.Typer) -> None:
    """Every command group's help in the root's plain layout, the groups of plugins included: each Typer
    instance has its own markup mode, and one rich group would bring the rich help back for its commands."""
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            group.typer_instance.rich_markup_mode = None
            _plain_help(group.typer_instance)


_plain_help(app)


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(envvar="RETREASURE_LOG_LEVEL", help="Log level.")] = "INFO",
    log_file: Annotated[
        str, typer.Option(envvar="RETREASURE_LOG_FILE", help="Where the JSON log goes ('-': stderr).")
    ] = "logs/retreasure.log",
) -> None:
    os.environ.setdefault("RETREASURE_LOG_LEVEL", log_level)
    log.log_to_file(None if log_file == "-" else Path(log_file))
    # Nothing more: a source's secrets are masked as the settings load (each configured section's model is found
    # through the entry points its package publishes, settings.py), whichever command runs and whether it uses the
    # source; importing every connector here made each command's `--help` pay for pydantic-settings and HTTP.
