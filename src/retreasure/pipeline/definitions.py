"""What Dagster loads: ``dagster dev -m retreasure.pipeline.definitions`` (or ``retreasure ui``).

Everything is built from the declarations (connectors and model files). Loading reads the model files and
imports the connectors, and touches no lake: settings and the lake are opened by the resource when a step runs.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from retreasure.connectors.base import FileSource, Source, load_sources
from retreasure.engine.models import MODELS_DIR, load_models
from retreasure.pipeline.assets import (
    RESOURCE_KEY,
    asset_key,
    bronze_assets,
    model_assets,
    retry_policy,
    source_keys,
)
from retreasure.pipeline.exports import finance_export_job, monthly_export_schedule
from retreasure.pipeline.maintenance import compact_job, compact_schedule
from retreasure.pipeline.ml import ml_assets, ml_job, weekly_ml_schedule
from retreasure.pipeline.ml_assets import RECO_INPUTS, reco_assets, reco_job, weekly_reco_schedule
from retreasure.pipeline.partitions import daily_partitions, is_partitioned
from retreasure.pipeline.resources import JSON_LOGS_ENV, RetreasureResource
from retreasure.pipeline.schedules import (
    files_job,
    hourly_ingest_schedule,
    hourly_models_schedule,
    incremental_job,
    ingest_job,
    models_job,
    nightly_models_schedule,
)
from retreasure.pipeline.sensors import landing_sensor
from retreasure.pipeline.stream_history import (
    stream_checks,
    stream_checks_job,
    stream_checks_schedule,
    streamed_tables,
)

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

RETRY_DELAY_ENV = "RETREASURE_PIPELINE_RETRY_DELAY_S"


def build_definitions(
    models_root: Path = MODELS_DIR,
    sources: dict[str, type[Source]] | None = None,
    partition_start: date | str | None = None,
    retry_delay_s: float | None = None,
    resource: RetreasureResource | None = None,
) -> dg.Definitions:
    """The whole pipeline from the models under ``models_root`` and the connectors ``sources`` (all found by
    convention by default). ``retry_delay_s`` is the base delay of the retry policy (30 s by default)."""
    sources = load_sources() if sources is None else sources
    models = load_models(models_root)
    partitions = daily_partitions(partition_start)
    if retry_delay_s is None:
        retry_delay_s = float(os.environ.get(RETRY_DELAY_ENV, "30"))
    policy = retry_policy(retry_delay_s)

    assets: list[dg.AssetsDefinition] = [
        *bronze_assets(sources, policy),
        *model_assets(models, partitions, policy),
    ]
    jobs: list[UnresolvedAssetJobDefinition | dg.JobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    sensors: list[dg.SensorDefinition] = []
    if sources:
        bronze = [key for name, cls in sources.items() for key in source_keys(name, cls)]
        hourly = ingest_job(bronze)
        jobs.append(hourly)
        schedules.append(hourly_ingest_schedule(hourly))
        file_sources = {n: c for n, c in sources.items() if issubclass(c, FileSource)}
        if file_sources:
            files = files_job([key for name, cls in file_sources.items() for key in source_keys(name, cls)])
            jobs.append(files)
            sensors.append(landing_sensor(file_sources, files))
    if all(ref in models for ref in RECO_INPUTS):
        # The recommender reads these models; a project of other models has none to train.
        assets.append(reco_assets(policy))
        weekly = reco_job()
        jobs.append(weekly)
        schedules.append(weekly_reco_schedule(weekly))
    if models:
        nightly = models_job([asset_key(ref) for ref in models])
        jobs.append(nightly)
        daily = any(is_partitioned(m.contract) for m in models.values())
        first_day = partitions.start.date()
        schedules.append(nightly_models_schedule(nightly, daily, first_day))
        hourly_models = incremental_job(models_root, policy)
        jobs.append(hourly_models)
        schedules.append(hourly_models_schedule(hourly_models))
    streamed = streamed_tables(sources)
    if streamed:
        compaction = compact_job(policy)
        jobs.append(compaction)
        schedules.append(compact_schedule(compaction))
        checks = stream_checks_job(streamed)
        jobs.append(checks)
        schedules.append(stream_checks_schedule(checks))
    if any(ref.name == "mart_sales_daily" for ref in models):
        # The demand forecast reads gold's daily sales (retreasure.ml), weekly after the nightly build.
        assets += ml_assets(policy)
        forecast = ml_job()
        jobs.append(forecast)
        schedules.append(weekly_ml_schedule(forecast))
    # The month's finance files for accounting (reads gold only; see serving/exports).
    export = finance_export_job(policy)
    return dg.Definitions(
        assets=assets,
        asset_checks=stream_checks(streamed),
        jobs=[*jobs, export],
        schedules=[*schedules, monthly_export_schedule(export)],
        sensors=sensors,
        resources={RESOURCE_KEY: resource or RetreasureResource()},
    )


if os.environ.get(JSON_LOGS_ENV):
    from retreasure import log as _log

    _log.configure()

defs = build_definitions()
