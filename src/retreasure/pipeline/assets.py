"""Assets made from the declarations: one multi-asset per source (one asset per bronze table it lands) and one
asset per model (its inputs as dependencies, its contract as description, column docs and asset checks).
Nothing here names a table: adding a connector or a model adds its assets.
"""

import hashlib
import re
import time
import warnings
from collections.abc import Iterator
from datetime import date

import dagster as dg

from retreasure.bronze.ingest import run_ingest
from retreasure.bronze.landing import bronze_table
from retreasure.connectors.base import Source
from retreasure.contracts.model import Conservation, Contract, Relationship, RowCount, Unique
from retreasure.engine.build import build
from retreasure.engine.models import ALL_TIME, Model
from retreasure.lake.ingest_log import summarise_warnings
from retreasure.lake.store import TableRef
from retreasure.log import get_logger
from retreasure.pipeline.incidents import StepGuard
from retreasure.pipeline.partitions import is_partitioned, partition_window
from retreasure.pipeline.resources import RetreasureResource
from retreasure.quality.checks import CheckResult, blocks_downstream
from retreasure.quality.checks import check_name as check_label

RESOURCE_KEY = "retreasure"
log = get_logger("pipeline")


class IngestFailed(Exception):
    """A source's ingest logged a failed entity: raised so that Dagster retries the step."""


def retry_policy(delay_s: float = 30.0, max_retries: int = 3) -> dg.RetryPolicy:
    """The one retry policy of every step: exponential backoff with jitter either side, so that steps that
    failed together (a source down, the lake throttled) do not all come back at the same instant."""
    return dg.RetryPolicy(
        max_retries=max_retries, delay=delay_s, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )


def asset_key(ref: TableRef) -> dg.AssetKey:
    return dg.AssetKey([ref.layer, ref.name])


def source_keys(name: str, source: type[Source]) -> list[dg.AssetKey]:
    return [asset_key(bronze_table(name, entity)) for entity in source.entities]


def check_spec_name(check: Unique | Relationship | RowCount | Conservation) -> str:
    """Dagster check names allow only letters, digits and underscores: ``unique(a, b)`` -> ``unique_a_b``."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", check_label(check)).strip("_")


def check_spec_names(contract: Contract) -> list[str]:
    """The Dagster names of a contract's table checks, in their order (a repeated name gets a suffix)."""
    seen: dict[str, int] = {}
    names = []
    for name in (check_spec_name(c) for c in contract.table_checks):
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


# -- bronze ------------------------------------------------------------------------------------------------
def bronze_assets(sources: dict[str, type[Source]], policy: dg.RetryPolicy) -> list[dg.AssetsDefinition]:
    return [_bronze_asset(name, source, policy) for name, source in sources.items()]


def _bronze_asset(name: str, source: type[Source], policy: dg.RetryPolicy) -> dg.AssetsDefinition:
    specs = [
        dg.AssetSpec(
            asset_key(bronze_table(name, entity)),
            group_name="bronze",
            description=entity.description or f"{name} {entity.name} as received",
            kinds={"delta"},
            metadata={
                "source": name,
                "entity": entity.name,
                "business key": entity.key,
                "change time": entity.updated_at or "-",
                "files": entity.files or "-",
            },
        )
        for entity in source.entities
    ]
    how = "incremental by change-time watermark" if source.incremental else "new files in the landing folder"

    # One step per source: run_ingest lands all its entities in one pass (one client, one request budget).
    @dg.multi_asset(
        name=f"bronze_{name}",
        specs=specs,
        retry_policy=policy,
        description=f"Ingest {source.system or name} into bronze ({how}).",
    )
    def ingest(context: dg.AssetExecutionContext, retreasure: RetreasureResource) -> Iterator[dg.MaterializeResult]:
        with StepGuard(context, retreasure, f"bronze.{name}") as guard:
            runs = run_ingest(retreasure.settings(), retreasure.lake(), [name])
            failed = [r for r in runs if r.status == "failed"]
            if failed:
                raise IngestFailed("; ".join(f"{r.bronze_table}: {r.error}" for r in failed))
        guard.succeeded()
        for run in runs:
            if run.status == "partial":
                context.log.warning(f"{run.bronze_table}: {run.error}")
            log.info(
                "materialized", extra={"asset": run.bronze_table, "rows": run.new_records, "seconds": run.duration_s}
            )
            yield dg.MaterializeResult(
                asset_key=asset_key(TableRef.parse(run.bronze_table)),
                metadata={
                    "status": run.status,
                    "records": run.records,
                    "new records": run.new_records,
                    "malformed": run.malformed,
                    "requests": run.requests,
                    "retries": run.retries,
                    "files": run.files,
                    "seconds": run.duration_s,
                    "window": f"{run.window_start} .. {run.window_end}" if run.window_start else "-",
                    "error": run.error or "",
                    "warnings": "; ".join(summarise_warnings(run.warnings)),
                },
            )

    return ingest


# -- models ------------------------------------------------------------------------------------------------
def model_assets(
    models: dict[TableRef, Model], partitions_def: dg.PartitionsDefinition | None, policy: dg.RetryPolicy
) -> list[dg.AssetsDefinition]:
    """One asset per model. Without ``partitions_def`` every model is unpartitioned and builds all of time:
    the full build (Dagster cannot run a partitioned asset that reads a partitioned one outside a partition,
    and a run over every partition records thousands of events)."""
    return [_model_asset(model, models, partitions_def, policy) for model in models.values()]


def model_window(context: dg.AssetExecutionContext) -> tuple[tuple[date, date], str | None]:
    """((start, end), partition label). A partitioned model run for a partition (or a range, in a single-run
    backfill) builds those days (the runner adds the contract's lookback); unpartitioned, all of time."""
    if context.assets_def.partitions_def and (context.has_partition_key or context.has_partition_key_range):
        keys = context.partition_key_range
        label = keys.start if keys.start == keys.end else f"{keys.start}..{keys.end}"
        return partition_window(keys.start, keys.end), label
    return ALL_TIME, None


def _model_asset(
    model: Model, models: dict[TableRef, Model], partitions_def: dg.PartitionsDefinition | None, policy: dg.RetryPolicy
) -> dg.AssetsDefinition:
    ref, contract = model.ref, model.contract
    key = asset_key(ref)
    partitioned = partitions_def is not None and is_partitioned(contract)
    deps = []
    for upstream in model.inputs:
        mapping = None
        other = models.get(upstream)
        if partitioned and other is not None and is_partitioned(other.contract) and contract.lookback_days:
            mapping = _lookback_mapping(contract.lookback_days)
        deps.append(dg.AssetDep(asset_key(upstream), partition_mapping=mapping))
    table_checks = contract.table_checks
    spec_names = check_spec_names(contract)
    check_specs = [
        dg.AssetCheckSpec(
            spec_name,
            asset=key,
            description=check.description or check_label(check),
            blocking=blocks_downstream(check.severity),
            metadata={"severity": check.severity, "check": check_label(check)},
        )
        for spec_name, check in zip(spec_names, table_checks, strict=True)
    ]
    metadata = {
        "grain": contract.grain,
        "keys": ", ".join(contract.keys),
        "write mode": contract.write_mode,
        "partition by": contract.partition_by or "-",
        "lookback days": contract.lookback_days,
        "sql": dg.MetadataValue.path(str(model.path)),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, type="", description=text) for name, text in contract.columns.items()]
        ),
    }
    code_version = hashlib.sha256((model.sql + contract.model_dump_json()).encode()).hexdigest()[:16]

    # BackfillPolicy is marked beta; single-run backfills are what the window logic above is for.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)

        @dg.asset(
            key=key,
            deps=deps,
            group_name=ref.layer,
            description=contract.description,
            partitions_def=partitions_def if partitioned else None,
            backfill_policy=dg.BackfillPolicy.single_run() if partitioned else None,
            retry_policy=policy,
            check_specs=check_specs,
            kinds={"duckdb", "delta"},
            code_version=code_version,
            metadata=metadata,
        )
        def materialize(context: dg.AssetExecutionContext, retreasure: RetreasureResource) -> dg.MaterializeResult:
            (start, end), partition = model_window(context)
            with StepGuard(context, retreasure, str(ref), partition) as guard:
                began = time.monotonic()
                # The engine builds, as for every other entry point; the Dagster run id names the build in ops.builds
                # and ops.dq_results, so each row there points at the run that made it.
                (run,) = build(
                    retreasure.lake(),
                    [ref],
                    start,
                    end,
                    models,
                    run_id=context.run.run_id,
                    engine=retreasure.model_engine(),
                )
                seconds = round(time.monotonic() - began, 3)
            results = [r for r in run.checks if r.kind == "table"]
            check_results = [_check_result(name, result) for name, result in zip(spec_names, results, strict=True)]
            blocking = [r for r in results if r.blocking]
            if blocking:
                guard.blocked(
                    "blocking check(s) failed: " + "; ".join(f"{r.check_name}: {r.failed} {r.detail}" for r in blocking)
                )
            else:
                guard.succeeded()
            row_failures = {r.check_name: r.failed for r in run.checks if r.kind == "row" and r.failed}
            log.info(
                "materialized",
                extra={"asset": str(ref), "partition": partition, "rows": run.rows, "seconds": seconds},
            )
            return dg.MaterializeResult(
                metadata={
                    "rows": run.rows,
                    "quarantined": run.quarantined,
                    "window": "all of time" if run.whole else f"{run.start} .. {run.end}",
                    "partitions written": len(run.partitions),
                    "row rule failures": row_failures,
                    "seconds": seconds,
                },
                check_results=check_results,
            )

    return materialize


def _lookback_mapping(days: int) -> dg.TimeWindowPartitionMapping:
    """Day D reads its upstream from D - lookback: the lineage says so, and so do stale markers. The first
    days' lookback reaches before the first partition, which is no error (the parameter is marked beta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(start_offset=-days, allow_nonexistent_upstream_partitions=True)


def _check_result(spec_name: str, result: CheckResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=spec_name,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR if result.severity == "error" else dg.AssetCheckSeverity.WARN,
        metadata={"checked": result.checked, "failed": result.failed, "detail": result.detail},
        description=result.check_name,
    )
