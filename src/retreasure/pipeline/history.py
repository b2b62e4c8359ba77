"""Every model run in its Dagster asset's history, whatever started the build: a materialization with its row
count, window and partitions, and an evaluation per table check.

The engine builds; this module only tells Dagster what it built. A run inside Dagster (the hourly job) logs the
events into its own run; a build started elsewhere (`retreasure build`, the demo) reports them to the instance
the UI reads, as events of no run, each carrying the build id that ``ops.builds`` and ``ops.dq_results`` name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg

from retreasure.engine.build import Build, build_incremental, build_models, new_build_id
from retreasure.engine.models import Model
from retreasure.engine.runner import DUCKDB, ModelEngine, ModelRun
from retreasure.lake.store import Lake, TableRef
from retreasure.pipeline.assets import asset_key, check_spec_names
from retreasure.quality.checks import CheckResult

# A run that wrote this many day partitions or fewer (an hourly run, a backfill of a week) is one event per
# partition, so the UI's partition view fills in; a full build (a year of days for each of thirty models) is one
# event per model: an event costs ~20 ms to store, and ten thousand of them would outlast the build.
MAX_PARTITION_EVENTS = 31

AssetEvent = dg.AssetMaterialization | dg.AssetCheckEvaluation


def model_events(run: ModelRun, model: Model, build_id: str) -> Iterator[AssetEvent]:
    """What Dagster records of one model run: its materialization(s), then its table checks' evaluations."""
    key = asset_key(run.ref)
    metadata: dict[str, object] = {
        "rows": run.rows,
        "quarantined": run.quarantined,
        "window": "all of time" if run.whole else f"{run.start} .. {run.end}",
        "partitions written": len(run.partitions),
        "build": build_id,
    }
    days = [d for d in run.partitions if isinstance(d, date)]
    if run.partitions and len(days) == len(run.partitions) and len(days) <= MAX_PARTITION_EVENTS:
        for day in days:
            rows = run.partition_rows.get(day, 0)
            yield dg.AssetMaterialization(key, partition=day.isoformat(), metadata={**metadata, "rows": rows})
    else:
        yield dg.AssetMaterialization(key, metadata=metadata)
    table_results = [r for r in run.checks if r.kind == "table"]
    if not table_results:  # a windowed run followed by more windows of the same model: checked after the last
        return
    names = check_spec_names(model.contract)
    for name, result in zip(names, table_results, strict=True):
        yield check_evaluation(key, name, result)


def check_evaluation(key: dg.AssetKey, spec_name: str, result: CheckResult) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=spec_name,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR if result.severity == "error" else dg.AssetCheckSeverity.WARN,
        metadata={"checked": result.checked, "failed": result.failed, "detail": result.detail},
        description=result.check_name,
        blocking=result.severity == "error",
    )


class AssetHistory:
    """A build's progress callback that passes each model run on to Dagster through ``emit``."""

    def __init__(self, models: dict[TableRef, Model], emit: Callable[[AssetEvent], None], build_id: str) -> None:
        self.models = models
        self.emit = emit
        self.build_id = build_id

    def __call__(self, run: ModelRun) -> None:
        for event in model_events(run, self.models[run.ref], self.build_id):
            self.emit(event)


def dagster_home(configured: Path) -> Path:
    """Where the UI keeps its runs and asset history: ``DAGSTER_HOME`` when set (Dagster's own convention),
    else the settings' ``dagster_home``."""
    return Path(os.environ.get("DAGSTER_HOME") or configured).resolve()


def open_instance(home: Path) -> dg.DagsterInstance:
    """The Dagster instance at ``home``, created on first use with telemetry off."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(home))


def build_with_history(
    lake: Lake,
    models: dict[TableRef, Model],
    home: Path,
    incremental: bool = False,
    progress: Callable[[ModelRun], None] | None = None,
    only_from: Iterable[TableRef] | None = None,
    engine: ModelEngine = DUCKDB,
) -> Build:
    """A full (or incremental) build through the engine, each model run reported to the Dagster instance at
    ``home`` as it ends: how `retreasure build`, the demo and the stream's micro-builds build, so the UI shows
    their runs too. ``only_from`` (incremental only): what those bronze tables feed, as ``build_incremental``."""
    instance = open_instance(home)
    try:
        return _build_reported(instance, lake, models, incremental, progress, only_from, engine)
    finally:
        instance.dispose()


def _build_reported(
    instance: dg.DagsterInstance,
    lake: Lake,
    models: dict[TableRef, Model],
    incremental: bool = False,
    progress: Callable[[ModelRun], None] | None = None,
    only_from: Iterable[TableRef] | None = None,
    engine: ModelEngine = DUCKDB,
) -> Build:
    run_id = new_build_id()
    history = AssetHistory(models, instance.report_runless_asset_event, run_id)

    def each(run: ModelRun) -> None:
        history(run)
        if progress:
            progress(run)

    if incremental:
        return build_incremental(lake, models, each, run_id=run_id, only_from=only_from, engine=engine)
    return build_models(lake, models, each, run_id=run_id, engine=engine)
