"""The demand forecast in Dagster: weekly features, then training, backtest and scoring, every Monday after the
night's build; a model that loses to its baseline is flagged (an incident and its alert) and not promoted."""

from typing import TYPE_CHECKING

import dagster as dg

from retreasure.ml import forecast as fc
from retreasure.ml.tables import contract
from retreasure.pipeline.assets import RESOURCE_KEY, asset_key
from retreasure.pipeline.incidents import StepGuard
from retreasure.pipeline.resources import RetreasureResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

ML_JOB = "ml_weekly"
FEATURES_KEY = asset_key(fc.FEATURES)
OUTPUT_KEYS = {ref: asset_key(ref) for ref in (fc.BACKTEST, fc.FORECAST, fc.SOURCING)}


class ForecastConfig(dg.Config):
    model: str = "AutoETS"
    horizon: int = 13
    planned_uplift: float = 1.0


def ml_assets(policy: dg.RetryPolicy) -> list[dg.AssetsDefinition]:
    """The features asset (from gold's daily sales) and the forecast step, which materializes the backtest always
    and the forecast and sourcing plan only when the run is promoted."""

    @dg.asset(
        key=FEATURES_KEY,
        deps=[asset_key(fc.SALES)],
        group_name="ml",
        retry_policy=policy,
        required_resource_keys={RESOURCE_KEY},
        description=contract(fc.FEATURES).description,
    )
    def demand_features(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        retreasure: RetreasureResource = getattr(context.resources, RESOURCE_KEY)
        with StepGuard(context, retreasure, str(fc.FEATURES)) as guard:
            features = fc.write_features(retreasure.lake(), context.run.run_id)
        guard.succeeded()
        return dg.MaterializeResult(metadata={"rows": features.num_rows})

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                key,
                deps=[FEATURES_KEY],
                group_name="ml",
                skippable=ref != fc.BACKTEST,
                description=contract(ref).description,
            )
            for ref, key in OUTPUT_KEYS.items()
        ],
        name="demand_forecast",
        retry_policy=policy,
        required_resource_keys={RESOURCE_KEY},
        can_subset=False,
    )
    def demand_forecast(context: dg.AssetExecutionContext, config: ForecastConfig):
        retreasure: RetreasureResource = getattr(context.resources, RESOURCE_KEY)
        params = fc.ForecastParams(
            model=config.model,  # type: ignore[arg-type]
            horizon=config.horizon,
            planned_uplift=config.planned_uplift,
        )
        with StepGuard(context, retreasure, str(fc.FORECAST)) as guard:
            result = fc.run_forecast(retreasure.lake(), params)
        metrics = {
            k: dg.MetadataValue.float(v) for k, v in result.metrics.items() if k.endswith(("mase", "wape", "bias"))
        }
        run = {"run_id": result.run.run_id, "verdict": result.reason, **metrics}
        yield dg.MaterializeResult(asset_key=OUTPUT_KEYS[fc.BACKTEST], metadata=run)
        if not result.promoted:
            # Flagged: an incident and its alert; the served forecast stays the last promoted one.
            guard.blocked(f"forecast run {result.run.run_id} not promoted: {result.reason}")
            return
        guard.succeeded()
        yield dg.MaterializeResult(
            asset_key=OUTPUT_KEYS[fc.FORECAST], metadata={**run, "rows": result.forecast.num_rows}
        )
        yield dg.MaterializeResult(asset_key=OUTPUT_KEYS[fc.SOURCING], metadata={"run_id": result.run.run_id})

    return [demand_features, demand_forecast]


def ml_job() -> "UnresolvedAssetJobDefinition":
    return dg.define_asset_job(
        ML_JOB,
        selection=dg.AssetSelection.assets(FEATURES_KEY, *OUTPUT_KEYS.values()),
        description="Demand features, forecast training, backtest and scoring.",
    )


def weekly_ml_schedule(job: "UnresolvedAssetJobDefinition") -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{ML_JOB}_schedule",
        cron_schedule="0 5 * * 1",
        job=job,
        execution_timezone="UTC",
        description="Mondays at 05:00 UTC, after the night's build has closed Sunday: retrain and forecast.",
    )
