"""Offline evaluation of recommendations on a time split: train on what happened before a cutoff, recommend from
what was for sale at the cutoff, and count the hits among what each customer put in the cart or bought after it.

Metrics per method and customer group (``warm``: with history before the cutoff; ``cold``: without): recall@k
(share of a customer's later items that were recommended), NDCG@k (the same, rewarding hits near the top) and
coverage (share of the items for sale that were recommended to anyone). The baseline is popularity: the items
for sale most interacted with.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from retreasure.ml import recommend
from retreasure.ml.reco_data import RecoData
from retreasure.ml.recommend import Candidates, RecoParams

K = 10


@dataclass(frozen=True)
class Score:
    method: str  # hybrid | popularity
    group: str  # warm | cold
    customers: int
    recall_at_10: float
    ndcg_at_10: float
    coverage: float


def later_wants(data: RecoData, cutoff: datetime, until: datetime, for_sale: set[str]) -> dict[str, set[str]]:
    """What each customer put in the cart or bought in [cutoff, until), among the items for sale at the cutoff."""
    wants: dict[str, set[str]] = defaultdict(set)
    for event in data.interactions:
        wanted = event.kind != "view" and event.sku in for_sale and event.who in data.customers
        if wanted and cutoff <= event.at < until:
            wants[event.who].add(event.sku)
    return dict(wants)


def evaluate(data: RecoData, cutoff: datetime, until: datetime, params: RecoParams) -> list[Score]:
    """Both methods on both groups, trained strictly before ``cutoff``."""
    model = recommend.train(data, cutoff, params)
    for_sale = data.for_sale(cutoff)
    candidates = Candidates(model, for_sale)
    wants = later_wants(data, cutoff, until, for_sale)
    bought = recommend.purchased(e for e in data.interactions if e.at < cutoff)
    lists: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(dict)
    for who in sorted(wants):
        group = "warm" if model.history.get(who) else "cold"
        mine, _ = recommend.recommend(model, who, candidates, K, bought.get(who, ()))
        lists[("hybrid", group)][who] = [sku for sku, _ in mine]
        lists[("popularity", group)][who] = [
            sku for sku, _ in recommend.popular(model, candidates, K, bought.get(who, ()))
        ]
    scores = []
    for (method, group), per_customer in sorted(lists.items()):
        recalls = [len(set(items) & wants[who]) / len(wants[who]) for who, items in per_customer.items()]
        ndcgs = [ndcg(items, wants[who]) for who, items in per_customer.items()]
        shown = {sku for items in per_customer.values() for sku in items}
        scores.append(
            Score(
                method,
                group,
                len(per_customer),
                sum(recalls) / len(recalls),
                sum(ndcgs) / len(ndcgs),
                len(shown) / max(len(for_sale), 1),
            )
        )
    return scores


def ndcg(ranked: list[str], relevant: set[str], k: int = K) -> float:
    """Normalised discounted cumulative gain of a ranked list with binary relevance."""
    gain = sum(1 / math.log2(rank + 2) for rank, sku in enumerate(ranked[:k]) if sku in relevant)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return gain / ideal if ideal else 0.0
