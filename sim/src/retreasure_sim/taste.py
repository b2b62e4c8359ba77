"""What each shopper likes: a latent taste (two categories, two eras, two materials, a price band) that steers
which items they look at and buy, so that recommendations have something true to learn and to be judged against.

A taste is drawn once per person from its own seeded stream (``<seed>-taste``), so it does not reshuffle the
business's other draws more than the choices it steers. A web visitor has a taste from their first session; the
customer they become when they buy inherits it. A person picks from a shelf (a ``Pool``) by drawing a handful of
candidates at random and choosing among them with odds ``exp(affinity)``: most picks match the taste, some do not
(people browse, and the shelf may hold nothing they like). The truth keeps every customer's taste
(``truth["customer_tastes"]``); ``tastes_of(truth)`` reads it back by customer.
"""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Protocol

from retreasure_sim import world
from retreasure_sim.model import CustomerTaste, Product, Truth

# EUR list price bands: what a shopper is comfortable paying for one item.
PRICE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("under_60", 0.0, 60.0),
    ("60_200", 60.0, 200.0),
    ("200_600", 200.0, 600.0),
    ("over_600", 600.0, math.inf),
)
# How much each matching trait adds to an item's affinity (log-odds of being chosen among the candidates).
WEIGHTS = {"category": 3.0, "era": 1.5, "material": 1.0, "price_band": 1.0}
CANDIDATES = 24  # items a shopper considers per pick: the shelf glimpsed, not the whole catalogue


class Shelf(Protocol):
    items: list[str]


def price_band(list_price: Decimal | float) -> str:
    """The band a EUR list price falls in."""
    price = float(list_price)
    return next(name for name, low, high in PRICE_BANDS if low <= price < high)


def affinity(taste: CustomerTaste, product: Product) -> float:
    """How much ``taste`` likes ``product``: the weights of the traits it matches (0 for none)."""
    return (
        WEIGHTS["category"] * (product.category in taste.categories)
        + WEIGHTS["era"] * (product.era in taste.eras)
        + WEIGHTS["material"] * (product.material in taste.materials)
        + WEIGHTS["price_band"] * (price_band(product.list_price) == taste.price_band)
    )


class Tastes:
    """Every person's taste and the picks it steers, on the business's own taste stream."""

    def __init__(self, seed: int, truth: Truth, products: dict[str, Product]) -> None:
        self.rng = random.Random(f"{seed}-taste")
        self.truth = truth
        self.products = products
        self.of_visitor: dict[str, CustomerTaste] = {}
        self.of_customer: dict[str, CustomerTaste] = {}

    def draw(self, owner: str) -> CustomerTaste:
        rng = self.rng
        band = rng.choices([name for name, _, _ in PRICE_BANDS], (0.35, 0.35, 0.2, 0.1))[0]
        return CustomerTaste(
            customer_id=owner,
            categories=rng.sample(sorted(world.CATEGORIES), 2),
            eras=rng.sample(list(world.ERAS), 2),
            materials=rng.sample(list(world.MATERIALS), 2),
            price_band=band,
        )

    def visitor(self, anonymous_id: str) -> CustomerTaste:
        """A web visitor's taste, drawn on their first visit."""
        found = self.of_visitor.get(anonymous_id)
        if found is None:
            found = self.of_visitor[anonymous_id] = self.draw(anonymous_id)
        return found

    def customer(self, customer_id: str, inherited: CustomerTaste | None = None) -> CustomerTaste:
        """A customer's taste: the visitor's they were (when they first bought on the web), else their own."""
        found = self.of_customer.get(customer_id)
        if found is None:
            base = inherited or self.draw(customer_id)
            found = CustomerTaste(customer_id, base.categories, base.eras, base.materials, base.price_band)
            self.of_customer[customer_id] = found
            self.truth["customer_tastes"].append(found)
        return found

    def pick(self, shelf: Shelf, taste: CustomerTaste) -> str | None:
        """One item from ``shelf`` as a person of ``taste`` would choose it."""
        items = shelf.items
        if not items:
            return None
        rng = self.rng
        candidates = [items[rng.randrange(len(items))] for _ in range(CANDIDATES)]
        odds = [math.exp(affinity(taste, self.products[pid])) for pid in candidates]
        return rng.choices(candidates, odds)[0]

    def basket(self, shelf: Shelf, taste: CustomerTaste, count: int) -> list[str]:
        """Up to ``count`` different items from ``shelf``, each picked to ``taste``."""
        picked: list[str] = []
        for _ in range(count * 3):
            if len(picked) == count:
                break
            pid = self.pick(shelf, taste)
            if pid is None:
                break
            if pid not in picked:
                picked.append(pid)
        return picked


def tastes_of(truth: Truth) -> dict[str, CustomerTaste]:
    """The true taste of every customer, by customer id: what recommendations are judged against."""
    return {t.customer_id: t for t in truth["customer_tastes"]}
