"""One recommendation run: evaluate on a time split, train on everything, score every customer and listing, and
publish to gold only when the model beat the popularity baseline.

Tables (gold):

- ``ml_reco_eval``: one row per run, method and customer group: recall@10, NDCG@10, coverage, the run's
  parameters and whether it was promoted. Appended: it is the runs' record.
- ``ml_recommendations``: each customer's top items for sale, ranked, with how they were chosen.
- ``ml_similar_items``: each online listing's most similar items for sale.
- ``ml_customer_affinity``: each customer's predicted affinity for each attribute value, ranked within its kind
  (what the affinity audiences select on).

The last three are replaced as a whole by a promoted run and left as they were by a run that did not beat the
baseline on recall@10 for customers with history.
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
    scores = reco_eval.evaluate(data, cutoff, as_of, params)
    promoted = _beats_baseline(scores)
    model = recommend.train(data, as_of + timedelta(microseconds=1), params)
    candidates = Candidates(model, data.for_sale(None))
    recommendations = _recommendations(model, data, candidates, run_id)
    similar = _similar(model, candidates, run_id)
    lake.append(EVAL, _eval_table(run_id, as_of, cutoff, params, scores, promoted))
    if promoted or force:
        lake.overwrite(RECOMMENDATIONS, recommendations)
        lake.overwrite(SIMILAR, similar)
        lake.overwrite(AFFINITY, _affinity(model, data, run_id))
    return RunResult(run_id, as_of, cutoff, scores, promoted, recommendations.num_rows, similar.num_rows)


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
