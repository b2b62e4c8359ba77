"""How much ReTreasure sells when: the true shape of demand that the forecasts are judged against.

A day's expected volume at a place (a sales channel, a store, or the warehouse's buying) is a base rate times
``Demand.multiplier(place, day)``, the product of five parts, each declared below and seeded:

- **trend**: growth compounding from the simulation's first day (the web shop grows, eBay flattens, London
  shrinks a little);
- **weekly**: a day-of-week profile (stores peak on Saturday and are quiet on Monday; the web shop on Sunday
  evening's browsing, i.e. Sunday and Monday);
- **yearly**: one smooth wave with its peak day of the year (the run-up to Christmas for gifts, spring for
  the marketplaces' furniture hunters);
- **holidays**: Black Friday to Cyber Monday online, the Christmas gift weeks, stores closed on Christmas,
  Boxing Day and New Year's Day (and on Thanksgiving in New York, Easter Sunday in Berlin);
- **campaigns**: while a campaign of ``world.CAMPAIGNS`` runs, an uplift on the channels and stores it reaches.

What is bought also has a season: ``Demand.category_weights(day)`` is each category's share of new stock on a
day (its yearly wave and trend), and since buyers pick among what is for sale, a category's sales follow its
stock with a lag of a few weeks. Every category keeps a share of at least half its mean, so no category runs dry.

Each seed draws its own business around these figures (each growth, amplitude and uplift jittered by up to a
fifth) from a random stream of its own, so the sales' random stream is only moved by the volumes themselves.
The truth stays what was simulated (orders, lines, stock); this module is the rule that made it, for tests and
docs to state what a forecast should find.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pyarrow as pa

from retreasure_sim import world
from retreasure_sim.config import SimConfig
from retreasure_sim.model import Truth

YEAR_DAYS = 365.25


@dataclass(frozen=True)
class Shape:
    """The regular part of one place's demand: growth per year, Monday-to-Sunday profile, one yearly wave."""

    growth: float  # 0.3: +30% a year, compounding daily
    weekdays: tuple[float, float, float, float, float, float, float]  # Monday first; means about 1
    peak_day: int  # day of the year the yearly wave peaks on
    amplitude: float  # the wave's height: 0.3 is +30% at the peak, -30% half a year away


SHAPES: dict[str, Shape] = {
    "shopify": Shape(0.30, (1.10, 0.95, 0.92, 0.92, 0.90, 0.96, 1.25), 345, 0.25),
    "ebay": Shape(0.00, (1.05, 1.00, 0.98, 0.98, 0.95, 0.99, 1.05), 110, 0.15),
    "etsy": Shape(0.15, (1.00, 0.98, 0.98, 1.00, 0.97, 1.02, 1.05), 335, 0.30),
    "BER": Shape(0.10, (0.70, 0.90, 0.95, 1.00, 1.15, 1.60, 0.70), 340, 0.20),
    "LON": Shape(-0.05, (0.75, 0.90, 0.95, 1.00, 1.15, 1.50, 0.75), 350, 0.20),
    "NYC": Shape(0.20, (0.70, 0.85, 0.95, 1.05, 1.20, 1.55, 0.70), 330, 0.25),
    # Buying trips: the warehouse's intake follows the business's overall growth, on weekdays.
    "WH": Shape(0.15, (1.15, 1.15, 1.15, 1.15, 1.15, 0.70, 0.55), 300, 0.10),
}

# Category: (yearly growth, peak day of year, amplitude) of its share of the stock bought.
CATEGORY_SEASONS: dict[str, tuple[float, int, float]] = {
    "Furniture": (0.20, 100, 0.30),  # spring moves and mid-century's rise
    "Lighting": (0.05, 320, 0.40),  # the dark months
    "Ceramics": (0.00, 150, 0.30),
    "Glassware": (0.00, 190, 0.35),  # summer tables
    "Jewellery": (0.10, 350, 0.45),  # gifts
    "Clocks": (-0.10, 290, 0.30),
    "Art": (0.05, 260, 0.20),
    "Textiles": (0.00, 20, 0.35),  # winter throws and quilts
    "Books": (-0.15, 240, 0.25),
    "Silverware": (0.00, 355, 0.40),  # festive tables
}

ONLINE = ("shopify", "ebay", "etsy")

# Campaign id: uplift of each place it reaches while it runs (0.2 is +20%).
CAMPAIGN_UPLIFT: dict[str, dict[str, float]] = {
    "G-101": {"shopify": 0.10, "BER": 0.05},
    "G-102": {"shopify": 0.08},
    "G-103": {"shopify": 0.08, "LON": 0.05},
    "G-104": {"shopify": 0.25, "etsy": 0.10, "BER": 0.10, "LON": 0.10},
    "M-201": {"shopify": 0.05, "NYC": 0.10},
    "M-202": {"shopify": 0.06},
}


def black_friday(year: int) -> date:
    """The day after the fourth Thursday of November."""
    first = date(year, 11, 1)
    thursday = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
    return thursday + timedelta(days=1)


def easter_sunday(year: int) -> date:
    """Anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month = (h + el - 7 * m + 114) // 31
    return date(year, month, (h + el - 7 * m + 114) % 31 + 1)


def holiday_factor(place: str, day: date) -> float:
    """The calendar's effect on a place's day: closures (0), the gift season and the Black Friday weekend."""
    year = day.year
    if place in ("BER", "LON", "NYC", "WH"):
        closed = {date(year, 12, 25), date(year, 12, 26), date(year, 1, 1)}
        if place == "BER":
            closed.add(easter_sunday(year))
        if place == "NYC":
            closed.add(black_friday(year) - timedelta(days=1))  # Thanksgiving
            closed.discard(date(year, 12, 26))
        if day in closed:
            return 0.0
    if place == "WH":
        return 1.0
    friday = black_friday(year)
    if friday <= day <= friday + timedelta(days=3):  # Black Friday to Cyber Monday
        return 1.9 if place in ONLINE else (1.6 if place == "NYC" else 1.2)
    if date(year, 12, 1) <= day <= date(year, 12, 21):
        return 1.35
    if date(year, 12, 22) <= day <= date(year, 12, 24):
        return 1.5 if place not in ONLINE else 0.8  # last-minute shoppers go to the shops
    return 1.0


def wave(day: date, peak_day: int, amplitude: float) -> float:
    return 1.0 + amplitude * math.cos(2 * math.pi * (day.timetuple().tm_yday - peak_day) / YEAR_DAYS)


class Demand:
    """The seeded demand of one simulated business: the daily multiplier of each place, the category mix."""

    def __init__(self, config: SimConfig) -> None:
        self.start = config.start
        rng = random.Random(f"{config.seed}-demand")

        def jitter(value: float) -> float:
            return value * rng.uniform(0.8, 1.2)

        self.shapes = {
            place: Shape(jitter(s.growth), s.weekdays, s.peak_day, jitter(s.amplitude)) for place, s in SHAPES.items()
        }
        self.categories = {
            name: (jitter(growth), peak, jitter(amplitude))
            for name, (growth, peak, amplitude) in CATEGORY_SEASONS.items()
        }
        self.uplift = {
            cid: {place: jitter(lift) for place, lift in places.items()} for cid, places in CAMPAIGN_UPLIFT.items()
        }
        self.campaign_days = {c.campaign_id: (c.starts_day, c.ends_day) for c in world.CAMPAIGNS}

    def years(self, day: date) -> float:
        return (day - self.start).days / YEAR_DAYS

    def campaign_factor(self, place: str, day: date) -> float:
        offset = (day - self.start).days
        lift = sum(
            places.get(place, 0.0)
            for cid, places in self.uplift.items()
            if self.campaign_days[cid][0] <= offset <= self.campaign_days[cid][1]
        )
        return 1.0 + lift

    def multiplier(self, place: str, day: date) -> float:
        """Expected volume at ``place`` on ``day`` relative to its base rate (1.0 on an average day at the start)."""
        shape = self.shapes[place]
        return (
            (1.0 + shape.growth) ** self.years(day)
            * shape.weekdays[day.weekday()]
            * wave(day, shape.peak_day, shape.amplitude)
            * holiday_factor(place, day)
            * self.campaign_factor(place, day)
        )

    def category_weights(self, day: date) -> dict[str, float]:
        """Each category's relative weight in the stock bought on ``day``: never below half its mean."""
        return {
            name: max(0.5, (1.0 + growth) ** self.years(day) * wave(day, peak, amplitude))
            for name, (growth, peak, amplitude) in self.categories.items()
        }

    def pick_category(self, rng: random.Random, day: date) -> str:
        weights = self.category_weights(day)
        return rng.choices(list(weights), list(weights.values()))[0]


def sold_by_day(truth: Truth) -> pa.Table:
    """What demand became: units and net sales (EUR, before refunds) per day, channel, store and category, with
    the columns gold.mart_sales_daily gives them, from the truth. It stands in for that mart where a year through
    the fake servers and the whole build would cost too long (the forecasting tests and bench/ml.py); the mart
    itself is reconciled with the truth by the platform's tests."""
    from retreasure_sim.ledger import Rates

    rates = Rates(truth)
    products = {p.product_id: p.category for p in truth["products"]}
    orders = {o.order_id: o for o in truth["orders"]}
    sums: dict[tuple[date, str, str | None, str], list[Decimal]] = {}
    for line in truth["order_lines"]:
        order = orders[line.order_id]
        day = order.created_at.date()
        key = (day, order.channel, order.store_id, products[line.product_id])
        acc = sums.setdefault(key, [Decimal(0), Decimal(0)])
        acc[0] += line.quantity
        acc[1] += rates.to_base(line.unit_price * line.quantity - line.discount, order.currency, day)
    rows = [
        {"day": d, "channel": ch, "store_id": st, "category": cat, "units": int(u), "net_sales": n}
        for (d, ch, st, cat), (u, n) in sorted(
            sums.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "", kv[0][3])
        )
    ]
    schema = pa.schema(
        [
            ("day", pa.date32()),
            ("channel", pa.string()),
            ("store_id", pa.string()),
            ("category", pa.string()),
            ("units", pa.int64()),
            ("net_sales", pa.decimal128(18, 2)),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)
