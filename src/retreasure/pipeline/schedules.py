"""Jobs and their schedules: bronze every hour, the models every night for the day before."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

INGEST_JOB = "ingest_hourly"
FILES_JOB = "ingest_files"
MODELS_JOB = "models_nightly"


def ingest_job(bronze: list[dg.AssetKey]) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        INGEST_JOB, selection=dg.AssetSelection.assets(*bronze), description="Every source into bronze."
    )


def files_job(file_bronze: list[dg.AssetKey]) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        FILES_JOB,
        selection=dg.AssetSelection.assets(*file_bronze),
        description="The file sources into bronze (what the landing sensor asks for).",
    )


def models_job(models: list[dg.AssetKey]) -> UnresolvedAssetJobDefinition:
    """Every model in one run, in dependency order. With a partition key the partitioned models build that day
    and the unpartitioned ones build in full; without one every model builds all of time (``retreasure build``)."""
    return dg.define_asset_job(
        MODELS_JOB, selection=dg.AssetSelection.assets(*models), description="Silver and gold from bronze."
    )


def hourly_ingest_schedule(job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{INGEST_JOB}_schedule",
        cron_schedule="5 * * * *",
        job=job,
        execution_timezone="UTC",
        description="Ingest every source at five past each hour.",
    )


def nightly_models_schedule(
    job: UnresolvedAssetJobDefinition, partitioned: bool, first_day: date
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
