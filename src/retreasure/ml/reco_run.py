"""One recommendation run: evaluate on a time split, train on everything, score every customer and listing, and
publish to gold only when the model beat the popularity baseline.

Tables (gold), each written under its contract (``contracts/<name>.yml``: checks, column docs):

- ``ml_reco_eval``: one row per run, method and customer group: recall@10, NDCG@10, coverage, the run's
  parameters and whether it was promoted. Appended: it is the runs' record.
- ``ml_recommendations``: each customer's top items for sale, ranked, with how they were chosen.
- ``ml_similar_items``: each online listing's most similar items for sale.
- ``ml_customer_affinity``: each customer's predicted affinity for each attribute value, ranked within its kind
  (what the affinity audiences select on).

The last three are replaced as a whole by a promoted run and left as they were by a run that did not beat the
baseline on recall@10 for customers with history.

Every run is also a row of ``ops.ml_runs`` (task ``recommendations``, as the forecast's runs are; ``ml/runs.py``):
its parameters, its metrics (each method and group's recall@10, NDCG@10 and coverage), whether it was promoted,
rejected or failed, and its artefact folder holding the trained model (``model.pkl``: every person's attribute
affinity, the items' co-occurrence and popularity) and the popularity baseline's table (``popularity.parquet``).
A run's id is its data moment and parameters: a rerun of the same is recognisably the same run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from retreasure.lake.store import Lake, TableRef
from retreasure.ml import reco_data, reco_eval, recommend
from retreasure.ml.recommend import Candidates, RecoParams
from retreasure.ml.runs import Run, Status, record_run
from retreasure.ml.tables import write_checked

TASK = "recommendations"
MODEL = "hybrid_als"

EVAL = TableRef("gold", "ml_reco_eval")
RECOMMENDATIONS = TableRef("gold", "ml_recommendations")
SIMILAR = TableRef("gold", "ml_similar_items")
AFFINITY = TableRef("gold", "ml_customer_affinity")
HOLDOUT_DAYS = 28


@dataclass(frozen=True)
class RunResult:
    run_id: str
    as_of: datetime
    cutoff: datetime
    scores: list[reco_eval.Score]
    promoted: bool
    recommendations: int
    similar: int

    def score(self, method: str, group: str = "warm") -> reco_eval.Score | None:
        return next((s for s in self.scores if s.method == method and s.group == group), None)

    def judged(self) -> str:
        """The evaluation in a phrase: recall@10 against the popularity baseline, for returning customers."""
        hybrid, popular = self.score("hybrid"), self.score("popularity")
        if hybrid is None or popular is None:
            return "no returning customer to judge on"
        return (
            f"recall@10 {hybrid.recall_at_10:.4f} vs popularity {popular.recall_at_10:.4f} "
            f"({hybrid.customers} returning customers)"
        )


def run(lake: Lake, params: RecoParams | None = None, as_of: datetime | None = None, force: bool = False) -> RunResult:
    """Evaluate, train, score and (when better than popularity, or ``force``d) publish; returns what the run found.

    ``force`` publishes a run the evaluation could not judge or did not favour: a lake younger than the holdout
    has no customer with history on both sides of the cutoff. The evaluation row still says ``promoted = false``.
    """
    params = params or RecoParams()
    data = reco_data.load(lake)
    newest = max((e.at for e in data.interactions), default=datetime(1970, 1, 1, tzinfo=UTC))
    as_of = as_of or newest
    cutoff = as_of - timedelta(days=HOLDOUT_DAYS)
    run_id = _run_id(params, as_of)
    record = Run(TASK, MODEL, {**params.record(), "as_of": as_of, "cutoff": cutoff}, run_id)
    try:
        scores = reco_eval.evaluate(data, cutoff, as_of, params)
        promoted = _beats_baseline(scores)
        model = recommend.train(data, as_of + timedelta(microseconds=1), params)
        candidates = Candidates(model, data.for_sale(None))
        recommendations = _recommendations(model, data, candidates, run_id)
        similar = _similar(model, candidates, run_id)
        record.metrics = _metrics(scores, recommendations.num_rows, similar.num_rows)
        write_checked(lake, EVAL, _eval_table(run_id, as_of, cutoff, params, scores, promoted), run_id, "append")
        if promoted or force:
            write_checked(lake, RECOMMENDATIONS, recommendations, run_id, "overwrite")
            write_checked(lake, SIMILAR, similar, run_id, "overwrite")
            write_checked(lake, AFFINITY, _affinity(model, data, run_id), run_id, "overwrite")
    except Exception as exc:
        record_run(lake, record, "failed", f"{type(exc).__name__}: {exc}")
        raise
    result = RunResult(run_id, as_of, cutoff, scores, promoted, recommendations.num_rows, similar.num_rows)
    status, reason = _verdict(result, force)
    record_run(lake, record, status, reason, model, {"popularity": _popularity(model)})
    return result


def _verdict(result: RunResult, force: bool) -> tuple[Status, str]:
    """The run's status in ops.ml_runs (promoted: it replaced the serving tables) and why."""
    if result.promoted:
        return "promoted", f"{result.judged()}: beats popularity"
    if force:
        return "promoted", f"{result.judged()}: published by force, not on its evaluation"
    return "rejected", f"{result.judged()}: does not beat popularity; the serving tables are kept"


def _metrics(scores: list[reco_eval.Score], recommendations: int, similar: int) -> dict[str, float]:
    """Each method and group's figures, flat (``hybrid_warm_recall_at_10``...), and what the run scored."""
    metrics = {
        f"{s.method}_{s.group}_{name}": float(getattr(s, name))
        for s in scores
        for name in ("customers", "recall_at_10", "ndcg_at_10", "coverage")
    }
    return {**metrics, "recommendations": float(recommendations), "similar_items": float(similar)}


def _popularity(model: recommend.Model) -> pa.Table:
    """The popularity baseline's table: each item's decayed interaction weight, most popular first."""
    ranked = sorted(model.popularity.items(), key=lambda kv: (-kv[1], kv[0]))
    return pa.table({"sku": [sku for sku, _ in ranked], "weight": [round(w, 6) for _, w in ranked]})


def _run_id(params: RecoParams, as_of: datetime) -> str:
    """The same data moment and parameters give the same id: a rerun is recognisably the same run."""
    digest = hashlib.sha256(json.dumps([as_of.isoformat(), params.record()], default=str).encode()).hexdigest()
    return f"reco-{as_of:%Y%m%d}-{digest[:8]}"


def _beats_baseline(scores: list[reco_eval.Score]) -> bool:
    by = {(s.method, s.group): s for s in scores}
    mine, base = by.get(("hybrid", "warm")), by.get(("popularity", "warm"))
    return mine is not None and base is not None and mine.recall_at_10 > base.recall_at_10


def _recommendations(model: recommend.Model, data: reco_data.RecoData, candidates: Candidates, run_id: str) -> pa.Table:
    bought = recommend.purchased(data.interactions)
    rows: dict[str, list[object]] = {k: [] for k in ("run_id", "customer_token", "rank", "sku", "score", "method")}
    for customer in sorted(data.customers):
        picked, how = recommend.recommend(model, customer, candidates, model.params.top_n, bought.get(customer, ()))
        for rank, (sku, score) in enumerate(picked, start=1):
            for key, value in zip(rows, (run_id, customer, rank, sku, round(score, 6), how), strict=True):
                rows[key].append(value)
    return pa.table(rows, schema=_RECO_SCHEMA)


def _similar(model: recommend.Model, candidates: Candidates, run_id: str) -> pa.Table:
    rows: dict[str, list[object]] = {k: [] for k in ("run_id", "sku", "rank", "similar_sku", "score")}
    for sku, found in recommend.similar(model, candidates, model.params.similar_n).items():
        for rank, (other, score) in enumerate(found, start=1):
            for key, value in zip(rows, (run_id, sku, rank, other, round(score, 6)), strict=True):
                rows[key].append(value)
    return pa.table(rows, schema=_SIMILAR_SCHEMA)


def _affinity(model: recommend.Model, data: reco_data.RecoData, run_id: str) -> pa.Table:
    rows: dict[str, list[object]] = {k: [] for k in ("run_id", "customer_token", "kind", "value", "affinity", "rank")}
    attrs = model.attributes
    for customer in sorted(data.customers):
        affinity, _ = recommend.customer_affinity(model, customer)
        for kind, columns in sorted(attrs.kind_slices().items()):
            order = sorted(columns, key=lambda c: (-affinity[c], c))
            for rank, column in enumerate(order, start=1):
                value = attrs.names[column].split("=", 1)[1]
                for key, item in zip(
                    rows, (run_id, customer, kind, value, round(float(affinity[column]), 6), rank), strict=True
                ):
                    rows[key].append(item)
    return pa.table(rows, schema=_AFFINITY_SCHEMA)


def _eval_table(
    run_id: str,
    as_of: datetime,
    cutoff: datetime,
    params: RecoParams,
    scores: list[reco_eval.Score],
    promoted: bool,
) -> pa.Table:
    trained_at = datetime.now(UTC)
    rows = [
        {
            "run_id": run_id,
            "trained_at": trained_at,
            "as_of": as_of,
            "cutoff": cutoff,
            "method": s.method,
            "customer_group": s.group,
            "customers": s.customers,
            "recall_at_10": round(s.recall_at_10, 6),
            "ndcg_at_10": round(s.ndcg_at_10, 6),
            "coverage": round(s.coverage, 6),
            "promoted": promoted,
            "params": json.dumps(params.record(), sort_keys=True),
        }
        for s in scores
    ]
    return pa.Table.from_pylist(rows, schema=_EVAL_SCHEMA)


_TS = pa.timestamp("us", tz="UTC")
_RECO_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("customer_token", pa.string()),
        ("rank", pa.int32()),
        ("sku", pa.string()),
        ("score", pa.float64()),
        ("method", pa.string()),
    ]
)
_SIMILAR_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("sku", pa.string()),
        ("rank", pa.int32()),
        ("similar_sku", pa.string()),
        ("score", pa.float64()),
    ]
)
_AFFINITY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("customer_token", pa.string()),
        ("kind", pa.string()),
        ("value", pa.string()),
        ("affinity", pa.float64()),
        ("rank", pa.int32()),
    ]
)
_EVAL_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("trained_at", _TS),
        ("as_of", _TS),
        ("cutoff", _TS),
        ("method", pa.string()),
        ("customer_group", pa.string()),
        ("customers", pa.int64()),
        ("recall_at_10", pa.float64()),
        ("ndcg_at_10", pa.float64()),
        ("coverage", pa.float64()),
        ("promoted", pa.bool_()),
        ("params", pa.string()),
    ]
)
