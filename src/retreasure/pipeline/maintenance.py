"""The nightly compaction of what the stream appends to (its many small files rewritten into few) and of the
models' tables (the small files the hourly windows leave, rewritten in day order: ``engine/compaction.py``), and
files no version of the last week reads removed (``lake/maintenance.py``)."""

import dagster as dg

from retreasure.engine.compaction import compact_models
from retreasure.engine.models import load_models
from retreasure.lake.maintenance import STREAMED, optimize_tables
from retreasure.pipeline.resources import RetreasureResource

COMPACT_JOB = "lake_compact_nightly"


def compact_job(policy: dg.RetryPolicy | None = None) -> dg.JobDefinition:
    @dg.op(
        name="compact_streamed_tables",
        description="Compact the streamed tables' and the models' small files and vacuum what a week of time "
        "travel no longer reads.",
        retry_policy=policy,
    )
    def compact(context: dg.OpExecutionContext, retreasure: RetreasureResource) -> dg.Output[int]:
        lake, models = retreasure.lake(), load_models()
        for table in compact_models(lake, models):  # waits for a running build (the build lock)
            if table.files_rewritten:
                context.log.info(f"{table.table}: {table.files_before} -> {table.files_after} files")
        done = optimize_tables(lake, [*STREAMED, *models], vacuum=True, compacted_elsewhere=models)
        for table in done:
            context.log.info(
                f"{table.table}: {table.files_before} files -> {table.files_after} "
                f"({table.files_removed} compacted into {table.files_added}), {len(table.vacuum)} vacuumed"
            )
        metadata = {t.table: f"{t.files_before} -> {t.files_after} files, {len(t.vacuum)} vacuumed" for t in done}
        return dg.Output(len(done), metadata=metadata)

    @dg.job(name=COMPACT_JOB, description="Compact the streamed tables and the models' (small files); vacuum them.")
    def nightly() -> None:
        compact()

    return nightly


def compact_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{COMPACT_JOB}_schedule",
        cron_schedule="15 3 * * *",
        job=job,
        execution_timezone="UTC",
        description="At 03:15 UTC (after the nightly models): compact the streamed tables and the models'.",
    )
