"""The monthly finance export in Dagster: a job for one month, scheduled for the month just closed.

It runs on the 2nd at 06:00 UTC, after the 1st's nightly build has put the last day of the month into gold.
Failures open an incident like any step; a refused month (bad or still open) is not retried, it cannot pass.
"""

from datetime import UTC, datetime

import dagster as dg

from retreasure.log import get_logger
from retreasure.pipeline.incidents import StepGuard
from retreasure.pipeline.resources import RetreasureResource

EXPORT_JOB = "finance_export_monthly"
EXPORT_OP = "export_finance"
log = get_logger("pipeline")


class ExportConfig(dg.Config):
    period: str  # the accounting month, YYYY-MM


def finance_export_job(policy: dg.RetryPolicy) -> dg.JobDefinition:
    """One month's finance files (``retreasure export finance``) as a job; its run config names the period."""

    @dg.op(name=EXPORT_OP, retry_policy=policy, description="Write the month's finance reports and manifest.")
    def export(context: dg.OpExecutionContext, config: ExportConfig, retreasure: RetreasureResource) -> None:
        from retreasure.serving.exports.finance import export_finance

        with StepGuard(context, retreasure, "exports.finance", config.period) as guard:
            try:
                result = export_finance(retreasure.lake(), config.period)
            except ValueError as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
        guard.succeeded()
        rows = {f["name"]: f["rows"] for f in result.files}
        context.add_output_metadata({"folder": str(result.folder), "files": rows})
        log.info("exported", extra={"period": config.period, "folder": str(result.folder), "files": len(rows)})

    @dg.job(name=EXPORT_JOB, description="Finance files (CSV, XLSX, Parquet + manifest) for one closed month.")
    def job() -> None:
        export()

    return job


def previous_month(moment: datetime) -> str:
    first = moment.astimezone(UTC).date().replace(day=1)
    return f"{first.year - (first.month == 1)}-{(first.month - 2) % 12 + 1:02d}"


def monthly_export_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    """On the 2nd of each month at 06:00 UTC: the previous month."""

    @dg.schedule(
        name=f"{EXPORT_JOB}_schedule",
        cron_schedule="0 6 2 * *",
        job=job,
        execution_timezone="UTC",
        description="Export the month just closed for accounting.",
    )
    def monthly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        period = previous_month(context.scheduled_execution_time or datetime.now(UTC))
        return dg.RunRequest(
            run_key=f"finance:{period}", run_config={"ops": {EXPORT_OP: {"config": {"period": period}}}}
        )

    return monthly
