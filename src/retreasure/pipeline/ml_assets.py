"""Recommendations in Dagster: one step that reads the features from gold (and the clickstream from silver),
evaluates on a time split, trains, scores every customer and listing, and publishes the four gold tables.

One step rather than four: the features are a few seconds' read, the model lives in memory between training and
scoring, and the gold tables must change together or not at all (a run that does not beat the popularity
baseline publishes none of them; its evaluation is still recorded). The job runs weekly, on Monday at 04:30 UTC,
two hours after the nightly build has put Sunday into gold.
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg

from retreasure.ml import reco_data, reco_run
from retreasure.ml.recommend import RecoParams
from retreasure.pipeline.assets import asset_key
from retreasure.pipeline.incidents import StepGuard
from retreasure.pipeline.resources import RetreasureResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

RECO_JOB = "recommendations_weekly"
RECO_INPUTS = reco_data.INPUTS
RECO_TABLES = (reco_run.EVAL, reco_run.RECOMMENDATIONS, reco_run.SIMILAR, reco_run.AFFINITY)


class RecoConfig(dg.Config):
    """What a run may change from the defaults (an analyst trying weights from the launchpad)."""

    behaviour_weight: float = RecoParams.behaviour_weight
    kind_weights: dict[str, float] | None = None


def reco_assets(policy: dg.RetryPolicy | None = None) -> dg.AssetsDefinition:
    """The recommendation tables, produced together from the gold (and silver clickstream) they read."""
    inputs = [asset_key(ref) for ref in RECO_INPUTS]

    @dg.multi_asset(
        name="recommendations",
        specs=[
            dg.AssetSpec(asset_key(ref), deps=inputs, group_name="ml", skippable=ref != reco_run.EVAL)
            for ref in RECO_TABLES
        ],
        retry_policy=policy,
        description="Evaluate, train and score the recommender; publish when it beats popularity on recall@10.",
    )
    def recommendations(
        context: dg.AssetExecutionContext, retreasure: RetreasureResource, config: RecoConfig
    ) -> Iterator[dg.MaterializeResult]:
        weights = {} if config.kind_weights is None else {"kind_weights": config.kind_weights}
        params = RecoParams(behaviour_weight=config.behaviour_weight, **weights)
        with StepGuard(context, retreasure, str(reco_run.RECOMMENDATIONS)) as guard:
            result = reco_run.run(retreasure.lake(), params)
        metrics = {
            f"{s.method}_{s.group}_{name}": round(getattr(s, name), 4)
            for s in result.scores
            for name in ("recall_at_10", "ndcg_at_10", "coverage")
        }
        context.log.info(f"run {result.run_id}: promoted={result.promoted} {metrics}")
        if result.promoted:
            guard.succeeded()
        else:
            # Flagged like a losing forecast: an incident and its alert; the served tables stay the last promoted.
            guard.blocked(f"recommendation run {result.run_id} not promoted: it does not beat popularity on recall@10")
        published = RECO_TABLES if result.promoted else (reco_run.EVAL,)
        for ref in published:
            yield dg.MaterializeResult(
                asset_key=asset_key(ref),
                metadata={"run_id": result.run_id, "promoted": result.promoted, **metrics},
            )

    return recommendations


def reco_job() -> "UnresolvedAssetJobDefinition":
    return dg.define_asset_job(
        RECO_JOB,
        selection=dg.AssetSelection.assets(*(asset_key(ref) for ref in RECO_TABLES)),
        description="Weekly: evaluate, train and score the recommender.",
    )


def weekly_reco_schedule(job: "UnresolvedAssetJobDefinition") -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{RECO_JOB}_schedule",
        cron_schedule="30 4 * * 1",
        job=job,
        execution_timezone="UTC",
        description="Monday 04:30 UTC, after the nightly build.",
    )
