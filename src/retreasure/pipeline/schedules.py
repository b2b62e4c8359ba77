"""Jobs and their schedules: bronze every hour, then the models incrementally (what the new hour touched); every
night the day before in full partitions."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from retreasure.engine.build import build_incremental
from retreasure.engine.models import load_models
from retreasure.pipeline.history import AssetHistory
from retreasure.pipeline.incidents import StepGuard
from retreasure.pipeline.resources import RetreasureResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

INGEST_JOB = "ingest_hourly"
FILES_JOB = "ingest_files"
MODELS_JOB = "models_nightly"
INCREMENTAL_JOB = "models_hourly"


def ingest_job(bronze: list[dg.AssetKey]) -> "UnresolvedAssetJobDefinition":
    return dg.define_asset_job(
        INGEST_JOB, selection=dg.AssetSelection.assets(*bronze), description="Every source into bronze."
    )


def files_job(file_bronze: list[dg.AssetKey]) -> "UnresolvedAssetJobDefinition":
    return dg.define_asset_job(
        FILES_JOB,
        selection=dg.AssetSelection.assets(*file_bronze),
        description="The file sources into bronze (what the landing sensor asks for).",
    )


def models_job(models: list[dg.AssetKey]) -> "UnresolvedAssetJobDefinition":
    """Every model in one run, in dependency order. With a partition key the partitioned models build that day
    and the unpartitioned ones build in full; without one every model builds all of time (``retreasure build``)."""
    return dg.define_asset_job(
        MODELS_JOB, selection=dg.AssetSelection.assets(*models), description="Silver and gold from bronze."
    )


def incremental_job(models_root: Path, policy: dg.RetryPolicy | None = None) -> dg.JobDefinition:
    """One step that rebuilds only what bronze changed since the last build (``retreasure build
    --incremental``): the changed days of each model, plus its lookback, and the small unpartitioned models
    whole. A blocking check stops the models downstream of it and fails the step."""

    @dg.op(
        name="build_changed",
        description="Silver and gold for the partitions new bronze data touched.",
        retry_policy=policy,
    )
    def build_changed(context: dg.OpExecutionContext, retreasure: RetreasureResource) -> dg.Output[int]:
        models = load_models(models_root)
        # Each model run goes into its asset's history as part of this run, as the asset jobs' do.
        history = AssetHistory(models, context.log_event, context.run.run_id)
        with StepGuard(context, retreasure, "models.incremental") as guard:
            result = build_incremental(
                retreasure.lake(), models, history, run_id=context.run.run_id, engine=retreasure.model_engine()
            )
        blocked = sorted({str(r.ref) for r in result.runs if r.blocked})
        if blocked:
            guard.blocked(f"blocking check(s) failed in {', '.join(blocked)}; their downstream was not built")
            raise dg.Failure(description=f"blocking checks failed: {', '.join(blocked)}", allow_retries=False)
        guard.succeeded()
        runs = len(result.runs)
        return dg.Output(runs, metadata={"mode": result.mode, "model runs": runs, "build": result.run_id})

    @dg.job(name=INCREMENTAL_JOB, description="Silver and gold, incrementally, from what bronze gained.")
    def hourly() -> None:
        build_changed()

    return hourly


def hourly_ingest_schedule(job: "UnresolvedAssetJobDefinition") -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{INGEST_JOB}_schedule",
        cron_schedule="5 * * * *",
        job=job,
        execution_timezone="UTC",
        description="Ingest every source at five past each hour.",
    )


def hourly_models_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{INCREMENTAL_JOB}_schedule",
        cron_schedule="35 * * * *",
        job=job,
        execution_timezone="UTC",
        description="At 35 past each hour (after the ingest): rebuild what the new bronze data touched.",
    )


def nightly_models_schedule(
    job: "UnresolvedAssetJobDefinition", partitioned: bool, first_day: date
) -> dg.ScheduleDefinition:
    """At 02:30 UTC: the previous day's partition of every partitioned model, and the unpartitioned models."""

    @dg.schedule(
        name=f"{MODELS_JOB}_schedule",
        cron_schedule="30 2 * * *",
        job=job,
        execution_timezone="UTC",
        description="Rebuild yesterday's partitions and the unpartitioned models.",
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        now = context.scheduled_execution_time or datetime.now(UTC)
        day = now.astimezone(UTC).date() - timedelta(days=1)
        if not partitioned:
            return dg.RunRequest(run_key=f"models:{day.isoformat()}")
        if day < first_day:
            return dg.SkipReason(f"{day} is before the first partition {first_day}")
        return dg.RunRequest(run_key=f"models:{day.isoformat()}", partition_key=day.isoformat())

    return nightly
