"""Personal recommendations: for each customer, the items still for sale they are most likely to want.

Most items are one of a kind, so there is no item history to share between buyers: what carries over is taste.
The model learns each person's affinity for item attributes (category, era, material, condition, price band) from
what they viewed, put in the cart and bought, shares it between similar people with implicit-feedback matrix
factorisation over person x attribute (``als.py``), and scores each item for sale by its attributes. Behaviour adds
item-to-item evidence: items seen or bought by the same people as what this person interacted with (co-views and
co-purchases). Someone with no history starts from the taste of their segment (country and main channel).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Container, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np

from retreasure.ml import als
from retreasure.ml.reco_data import Interaction, RecoData

KINDS = ("category", "era", "material", "condition", "price_band")
# How much a match on each kind of attribute counts when an item is scored against a person's affinities.
KIND_WEIGHTS = {"category": 1.0, "era": 0.6, "material": 0.4, "condition": 0.1, "price_band": 0.4}
EVENT_WEIGHTS = {"view": 1.0, "cart": 3.0, "purchase": 6.0}
PRICE_BANDS = 5  # quantiles of the catalogue's list prices


@dataclass(frozen=True)
class RecoParams:
    """Everything that shapes a run's recommendations; recorded with each run."""

    top_n: int = 10
    similar_n: int = 10
    half_life_days: float = 90.0  # an interaction's weight halves every half-life before the moment of training
    behaviour_weight: float = 0.1  # co-view/co-purchase evidence against attribute affinity
    kind_weights: dict[str, float] = field(default_factory=lambda: dict(KIND_WEIGHTS))
    als_share: float = 0.5  # the factorisation's share of the affinity; the rest is the person's own history
    popularity_weight: float = 0.05
    als: als.AlsParams = field(default_factory=als.AlsParams)

    def record(self) -> dict[str, object]:
        return asdict(self)


class Attributes:
    """The attribute vocabulary of a catalogue, and each item's attributes as a weighted row."""

    def __init__(self, items: list[dict[str, object]], kind_weights: dict[str, float]) -> None:
        prices = sorted(float(i["list_price"] or 0.0) for i in items)  # type: ignore[arg-type]
        self.price_edges = [prices[len(prices) * q // PRICE_BANDS] for q in range(1, PRICE_BANDS)] if prices else []
        values = sorted({(kind, value) for item in items for kind, value in self.of(item)})
        self.index = {attr: n for n, attr in enumerate(values)}
        self.names = [f"{kind}={value}" for kind, value in values]
        self.sku_row = {str(item["sku"]): n for n, item in enumerate(items)}
        self.present = np.zeros((len(items), len(values)))  # which attributes each item has
        for n, item in enumerate(items):
            for attr in self.of(item):
                self.present[n, self.index[attr]] = 1.0
        weights = np.array([kind_weights[kind] for kind, _ in values])
        self.matrix = self.present * weights  # the same, weighted by how much a match on each kind counts

    def of(self, item: dict[str, object]) -> list[tuple[str, str]]:
        band = sum(float(item["list_price"] or 0.0) >= edge for edge in self.price_edges)  # type: ignore[arg-type]
        found = [(kind, str(item[kind])) for kind in KINDS[:4] if item.get(kind) is not None]
        return [*found, ("price_band", f"q{band + 1}")]

    def kind_slices(self) -> dict[str, list[int]]:
        slices: dict[str, list[int]] = defaultdict(list)
        for (kind, _), n in self.index.items():
            slices[kind].append(n)
        return dict(slices)


@dataclass
class Model:
    """A trained recommender: each person's attribute affinity and the items' co-occurrence."""

    params: RecoParams
    attributes: Attributes
    people: list[str]
    affinity: np.ndarray  # people x attributes, each kind's values summing to at most 1
    history: dict[str, list[str]]  # person -> items they interacted with, strongest first
    neighbours: dict[str, dict[str, float]]  # item -> item -> normalised co-occurrence
    popularity: dict[str, float]  # item -> decayed interaction weight
    segments: dict[tuple[str, str], np.ndarray]  # (country, channel) -> mean affinity of its people
    overall: np.ndarray  # everyone's mean affinity
    customers: dict[str, tuple[str, str]]  # token -> (country, main channel)

    def row(self, person: str) -> int | None:
        """The person's row of ``affinity``; None for someone with no interaction before training."""
        return self._rows.get(person)

    def __post_init__(self) -> None:
        self._rows = {p: n for n, p in enumerate(self.people)}


def interaction_strength(
    data: RecoData, known: Container[str], until: datetime, params: RecoParams
) -> dict[tuple[str, str], float]:
    """How strongly each person wanted each catalogue item before ``until``: views, carts and purchases weighted
    by kind and halved every half-life back in time."""
    strength: dict[tuple[str, str], float] = defaultdict(float)
    for event in data.interactions:
        if event.at < until and event.sku in known:
            age_days = (until - event.at).total_seconds() / 86400
            strength[(event.who, event.sku)] += EVENT_WEIGHTS[event.kind] * 0.5 ** (age_days / params.half_life_days)
    return strength


def item_popularity(strength: dict[tuple[str, str], float]) -> dict[str, float]:
    """Each item's interaction weight over everyone: the popularity baseline's whole model."""
    popularity: dict[str, float] = defaultdict(float)
    for (_, sku), weight in strength.items():
        popularity[sku] += weight
    return dict(popularity)


def train(data: RecoData, until: datetime, params: RecoParams) -> Model:
    """Fit the model on every interaction before ``until``."""
    attributes = Attributes(data.items, params.kind_weights)
    strength = interaction_strength(data, attributes.sku_row, until, params)
    people = sorted({who for who, _ in strength})
    rows = {p: n for n, p in enumerate(people)}
    profile = np.zeros((len(people), len(attributes.names)))
    for (who, sku), weight in strength.items():
        profile[rows[who]] += weight * attributes.present[attributes.sku_row[sku]]
    observed = _per_kind_shares(profile, attributes)
    if len(people):
        x, y = als.fit(np.log1p(profile), params.als)
        predicted = _per_kind_shares(np.clip(x @ y.T, 0, None), attributes)
    else:
        predicted = observed
    affinity = (1 - params.als_share) * observed + params.als_share * predicted
    history: dict[str, list[str]] = defaultdict(list)
    for (who, sku), _ in sorted(strength.items(), key=lambda kv: (-kv[1], kv[0])):
        history[who].append(sku)
    segments = _segments(people, affinity, data.customers)
    overall = affinity.mean(axis=0) if len(people) else np.zeros(len(attributes.names))
    return Model(
        params,
        attributes,
        people,
        affinity,
        dict(history),
        _co_occurrence(history),
        item_popularity(strength),
        segments,
        overall,
        data.customers,
    )


def _per_kind_shares(values: np.ndarray, attributes: Attributes) -> np.ndarray:
    """Each kind's values as shares of that kind's total for the person: what they lean to within each kind."""
    out = np.zeros_like(values)
    for columns in attributes.kind_slices().values():
        block = values[:, columns]
        totals = block.sum(axis=1, keepdims=True)
        out[:, columns] = np.divide(block, totals, out=np.zeros_like(block), where=totals > 0)
    return out


def _segments(
    people: list[str], affinity: np.ndarray, customers: dict[str, tuple[str, str]]
) -> dict[tuple[str, str], np.ndarray]:
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for n, person in enumerate(people):
        if person in customers:
            country, channel = customers[person]
            members[(country, channel)].append(n)
            members[(country, "")].append(n)
    return {segment: affinity[rows].mean(axis=0) for segment, rows in sorted(members.items())}


def _co_occurrence(history: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Items that the same people interacted with, by cosine of their audiences (co-views, co-purchases)."""
    together: Counter[tuple[str, str]] = Counter()
    audience: Counter[str] = Counter()
    for items in history.values():
        unique = sorted(set(items))
        audience.update(unique)
        if len(unique) > 50:  # a crawler-like history says nothing about which items go together
            continue
        for n, a in enumerate(unique):
            for b in unique[n + 1 :]:
                together[(a, b)] += 1
    neighbours: dict[str, dict[str, float]] = defaultdict(dict)
    for (a, b), count in together.items():
        score = count / math.sqrt(audience[a] * audience[b])
        neighbours[a][b] = score
        neighbours[b][a] = score
    return dict(neighbours)


def customer_affinity(model: Model, person: str) -> tuple[np.ndarray, str]:
    """A person's attribute affinity and where it came from: their own history, their segment's, or everyone's."""
    row = model.row(person)
    if row is not None and model.history.get(person):
        return model.affinity[row], "personal"
    return _segment_affinity(model, person), "cold_start"


def _segment_affinity(model: Model, person: str) -> np.ndarray:
    """The taste of the person's country and main channel; of their country; else of everyone."""
    country, channel = model.customers.get(person, ("", ""))
    for segment in ((country, channel), (country, "")):
        if segment in model.segments:
            return model.segments[segment]
    return model.overall


class Candidates:
    """The items that may be recommended (those for sale), with what scoring needs of them computed once."""

    def __init__(self, model: Model, skus: Iterable[str]) -> None:
        self.skus = sorted(skus)
        self.position = {sku: n for n, sku in enumerate(self.skus)}
        rows = [model.attributes.sku_row[sku] for sku in self.skus]
        self.matrix = model.attributes.matrix[rows]
        popular = np.array([model.popularity.get(sku, 0.0) for sku in self.skus])
        peak = popular.max(initial=0.0)
        self.popularity = np.log1p(popular) / np.log1p(peak) if peak > 0 else popular


def score_items(model: Model, affinity: np.ndarray, person: str | None, candidates: Candidates) -> np.ndarray:
    """Each candidate's score for a person: attribute affinity, plus behaviour, plus a little popularity."""
    content = candidates.matrix @ affinity
    behaviour = np.zeros(len(candidates.skus))
    for seen in model.history.get(person, [])[:30] if person is not None else []:
        for other, weight in model.neighbours.get(seen, {}).items():
            n = candidates.position.get(other)
            if n is not None:
                behaviour[n] += weight
    peak = behaviour.max(initial=0.0)
    if peak > 0:
        behaviour /= peak
    params = model.params
    return content + params.behaviour_weight * behaviour + params.popularity_weight * candidates.popularity


def recommend(
    model: Model, person: str, candidates: Candidates, n: int, exclude: Iterable[str] = ()
) -> tuple[list[tuple[str, float]], str]:
    """The ``n`` items for sale a person is most likely to want, and how (personal, or cold start)."""
    affinity, how = customer_affinity(model, person)
    return top(score_items(model, affinity, person, candidates), candidates.skus, n, exclude), how


def popular(model: Model, candidates: Candidates, n: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
    """The baseline: the items for sale most interacted with, ties to the attributes most people like."""
    scores = candidates.popularity + 1e-3 * (candidates.matrix @ model.overall)
    return top(scores, candidates.skus, n, exclude)


def similar(model: Model, candidates: Candidates, n: int) -> dict[str, list[tuple[str, float]]]:
    """For every listing of the catalogue, the ``n`` items for sale most like it: shared attributes (cosine),
    plus items the same people looked at or bought, plus a little popularity."""
    attrs = model.attributes
    norms = np.linalg.norm(attrs.matrix, axis=1, keepdims=True)
    unit = np.divide(attrs.matrix, norms, out=np.zeros_like(attrs.matrix), where=norms > 0)
    unit_candidates = unit[[attrs.sku_row[sku] for sku in candidates.skus]]
    found: dict[str, list[tuple[str, float]]] = {}
    skus = sorted(attrs.sku_row)
    for start in range(0, len(skus), 1000):
        chunk = skus[start : start + 1000]
        content = unit[[attrs.sku_row[sku] for sku in chunk]] @ unit_candidates.T
        for row, sku in enumerate(chunk):
            scores = content[row] + model.params.popularity_weight * candidates.popularity
            for other, weight in model.neighbours.get(sku, {}).items():
                position = candidates.position.get(other)
                if position is not None:
                    scores[position] += model.params.behaviour_weight * weight
            found[sku] = top(scores, candidates.skus, n, exclude=(sku,))
    return found


def top(scores: np.ndarray, candidates: list[str], n: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
    """The ``n`` best candidates, best first; ties go to the lower sku, so a seed always gives the same list."""
    skip = set(exclude)
    order = np.lexsort((np.arange(len(candidates)), -scores))
    picked: list[tuple[str, float]] = []
    for n_ in order:
        if candidates[n_] in skip:
            continue
        picked.append((candidates[n_], float(scores[n_])))
        if len(picked) == n:
            break
    return picked


def purchased(interactions: Iterable[Interaction]) -> dict[str, set[str]]:
    """What each person bought: never recommended to them again."""
    bought: dict[str, set[str]] = defaultdict(set)
    for event in interactions:
        if event.kind == "purchase":
            bought[event.who].add(event.sku)
    return bought
