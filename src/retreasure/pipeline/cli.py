"""`retreasure ui | build | backfill`: the Dagster UI, a full build and a backfill, on the same definitions."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from datetime import date
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from retreasure.models import MODELS_DIR
from retreasure.redact import redact

if TYPE_CHECKING:  # the engine (SQLGlot) and the lake (DuckDB, Delta) load with the command that uses them
    import dagster as dg

    from retreasure.lake.store import Lake, TableRef

app = typer.Typer(help="Orchestration: the Dagster UI, full builds and backfills.", no_args_is_help=True)
console = Console()

ModelsRoot = Annotated[Path, typer.Option(help="Folder of models (<layer>/<name>.sql with its .yml).", hidden=True)]
DEFINITIONS_MODULE = "retreasure.pipeline.definitions"
# Dagster's own console log says every step's every event at DEBUG: the progress lines below are enough.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port of the web UI (on 127.0.0.1).")] = 3000,
    dagster_home: Annotated[
        Path | None,
        typer.Option(help="Where Dagster keeps runs, schedules and sensors (default: settings' dagster_home)."),
    ] = None,
) -> None:
    """Start the Dagster UI and daemon (`dagster dev`) on 127.0.0.1, telemetry off. Ctrl-C or SIGTERM stops it."""
    from retreasure.pipeline.history import open_instance
    from retreasure.pipeline.resources import JSON_LOGS_ENV

    home = dagster_home.resolve() if dagster_home else _dagster_home()
    open_instance(home).dispose()  # created (telemetry off) before dagster dev reads it
    env = os.environ | {"DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1", JSON_LOGS_ENV: "1"}
    argv = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        DEFINITIONS_MODULE,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    console.print(f"Dagster UI on http://127.0.0.1:{port} (state in {home}); Ctrl-C stops it.")
    # A shell starts a background job with SIGINT ignored, and an ignored signal stays ignored across exec:
    # dagster dev stops its webserver and daemon by SIGINT, even on SIGTERM, so it would then never stop.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # exec rather than a child: SIGTERM and Ctrl-C reach dagster dev itself, with no process in between.
    os.execve(sys.executable, argv, env)  # noqa: S606


@app.command()
def build(
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Only what bronze gained since the last build (the hourly run).")
    ] = False,
    models_root: ModelsRoot = MODELS_DIR,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="duckdb (in process) or spark (PySpark with Delta); default: the settings'."),
    ] = None,
) -> None:
    """Build every model over all of time, in dependency order, in one run (checks included); with
    --incremental, only the partitions that new bronze data touched, plus each model's lookback. The models run
    on DuckDB, or on Spark with --engine spark (RETREASURE_ENGINE): the same SQL and contracts. Exit 0 when
    everything was built (rows that broke a row rule are in quarantine.*), 3 when a blocking table check
    stopped the models downstream of it, 1 when a model failed."""
    import time

    from retreasure import log
    from retreasure.engine.build import Build
    from retreasure.engine.engines import ENGINES, model_engine
    from retreasure.engine.runner import ModelRun
    from retreasure.exitcodes import ExitCode
    from retreasure.pipeline.history import build_with_history
    from retreasure.settings import get_settings

    log.configure()
    began = time.monotonic()
    settings = get_settings()
    engine_name = engine or settings.engine
    if engine_name not in ENGINES:
        console.print(f"[red]--engine {engine_name}: one of {', '.join(ENGINES)}[/]")
        raise typer.Exit(ExitCode.USAGE)

    def progress(run: ModelRun) -> None:
        window = "all of time" if run.whole else f"{run.start} .. {run.end}"
        colour = "red" if run.blocked else "green"
        written = f", {len(run.partitions)} partition(s)" if run.partitions else ""
        quarantined = f", [yellow]{run.quarantined:,} quarantined[/]" if run.quarantined else ""
        console.print(f"  [{colour}]built[/]   {run.ref} [{window}]  {run.rows:,} rows{written}{quarantined}")
        for check in run.checks:
            if check.blocking:
                console.print(
                    f"  [red]check[/]   {run.ref}: {check.check_name} failed: {check.failed:,} {check.detail}"
                )

    # Both modes run in this process through the engine, which records the build in ops.builds with the run id
    # its ops.dq_results rows carry; each model run goes into its asset's history in the Dagster UI.
    from retreasure.engine.models import load_models

    lake, models = _lake(), load_models(models_root)
    try:
        chosen = model_engine(engine_name, settings)
        result: Build = build_with_history(lake, models, _dagster_home(), incremental, progress, engine=chosen)
    except Exception as exc:
        console.print(f"[red]Build failed:[/] {redact(str(exc))}")
        raise typer.Exit(ExitCode.FAILED) from exc
    stopped = sorted({str(r.ref) for r in result.runs if r.blocked})
    console.print(
        f"{result.mode.capitalize()} build {result.run_id} on {engine_name}: {len(result.runs)} model run(s), "
        f"{sum(r.rows for r in result.runs):,} rows, {sum(r.quarantined for r in result.runs):,} quarantined, "
        f"in {time.monotonic() - began:.1f} s."
        + (
            f" [red]A blocking check failed in {', '.join(stopped)}: their downstream was not built.[/]"
            if stopped
            else ""
        )
    )
    if stopped:
        raise typer.Exit(ExitCode.PARTIAL)


def _lake() -> Lake:
    from retreasure.lake.store import Lake
    from retreasure.settings import get_settings

    return Lake.from_settings(get_settings())


def _dagster_home() -> Path:
    from retreasure.pipeline.history import dagster_home
    from retreasure.settings import get_settings

    return dagster_home(get_settings().dagster_home)


@app.command()
def backfill(
    first: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")],
    last: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD), included.")],
    select: Annotated[
        list[str] | None, typer.Option(help="Models to rebuild, as a pattern on layer.name (repeatable).")
    ] = None,
    models_root: ModelsRoot = MODELS_DIR,
) -> None:
    """Rebuild the selected partitioned models day by day (each day with its lookback) and the selected
    unpartitioned models once: those they read from before the days, those that read them after."""
    import dagster as dg

    from retreasure.engine.models import downstream, load_models
    from retreasure.pipeline.assets import asset_key
    from retreasure.pipeline.partitions import days, is_partitioned  # Dagster: imported only when needed
    from retreasure.pipeline.schedules import MODELS_JOB

    start, end = date.fromisoformat(first), date.fromisoformat(last)
    keys = days(start, end)
    models = load_models(models_root)
    chosen = [ref for ref in models if not select or any(fnmatch(str(ref), pattern) for pattern in select)]
    if not chosen:
        console.print(f"[red]No model matches {select}.[/] Models: {', '.join(str(r) for r in models)}")
        raise typer.Exit(2)
    partitioned = [r for r in chosen if is_partitioned(models[r].contract)]
    readers = downstream(models, set(partitioned))
    before = [r for r in chosen if r not in partitioned and r not in readers]
    after = [r for r in chosen if r not in partitioned and r in readers]

    defs = _definitions(models_root)
    job = defs.resolve_job_def(MODELS_JOB)
    if partitioned:
        assert isinstance(job.partitions_def, dg.TimeWindowPartitionsDefinition)
        known = (job.partitions_def.start.date().isoformat(), job.partitions_def.get_last_partition_key())
        outside = [k for k in keys if not (known[1] and known[0] <= k <= known[1])]
        if outside:
            console.print(f"[red]{outside[0]} is outside the partitions ({known[0]} to {known[1]}).[/]")
            raise typer.Exit(2)

    def run(refs: Sequence[TableRef], partition: str | None) -> bool:
        return _execute(job, partition, [asset_key(r) for r in refs]) if refs else True

    ok = run(before, None)
    for key in keys if partitioned else []:
        ok = run(partitioned, key) and ok
    ok = run(after, None) and ok
    console.print(
        f"Backfill {first} to {last}: {len(partitioned)} partitioned model(s) x {len(keys)} day(s), "
        f"{len(before) + len(after)} unpartitioned model(s) once." + ("" if ok else " [red]With failures.[/]")
    )
    if not ok:
        raise typer.Exit(1)


def _definitions(models_root: Path) -> dg.Definitions:
    from retreasure import log
    from retreasure.pipeline.definitions import build_definitions

    log.configure()
    return build_definitions(models_root=models_root)


def _execute(
    job: Any, partition: str | None, selection: list[dg.AssetKey] | None, instance: dg.DagsterInstance | None = None
) -> bool:
    """One in-process run, printing a line per model as it is built (or fails, or is skipped). Runs go to the
    UI's instance (see `_dagster_home`), so a backfill is in every asset's history."""
    import dagster as dg
    from dagster._core.utils import make_new_run_id

    from retreasure.pipeline.history import open_instance

    if instance is None:
        instance = open_instance(_dagster_home())
    run_id = make_new_run_id()
    built: set[dg.AssetKey] = set()
    failed: set[str] = set()
    where = f" [{partition}]" if partition else ""

    def progress(entry: Any) -> None:
        event = entry.dagster_event
        if event is None:
            return
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            built.add(materialization.asset_key)
            meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            console.print(
                f"  [green]built[/]   {_name(materialization.asset_key)}{where}  {meta.get('rows', 0):,} rows"
                f"  {meta.get('seconds', 0):.2f} s"
            )
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                colour = "red" if evaluation.severity == dg.AssetCheckSeverity.ERROR else "yellow"
                console.print(f"  [{colour}]check[/]   {_name(evaluation.asset_key)}: {evaluation.check_name} failed")
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            failed.add(event.step_key)
            message = redact(event.event_specific_data.error.message.strip())
            console.print(f"  [red]failed[/]  {event.step_key}{where}: {message}")

    instance.add_event_listener(run_id, progress)
    result = job.execute_in_process(
        run_config=QUIET,
        instance=instance,
        partition_key=partition,
        asset_selection=selection,
        run_id=run_id,
        raise_on_error=False,
    )
    wanted = set(selection) if selection is not None else set(job.asset_layer.selected_asset_keys)
    for key in sorted(wanted - built, key=_name):
        if "__".join(key.path) not in failed:
            console.print(f"  [yellow]skipped[/] {_name(key)}{where} (an upstream step failed or a blocking check)")
    return bool(result.success)


def _name(key: dg.AssetKey) -> str:
    return ".".join(key.path)
