"""The simulated ReTreasure: a seeded day-by-day model of the business that remembers the truth.

It buys stock, lists it, runs campaigns, gets web visits that browse and sometimes buy, sells on eBay, Etsy
and in its stores, ships, refunds and restocks, and publishes nothing itself: renderers turn this truth
into each channel's wire format.
"""

from __future__ import annotations

import heapq
import math
import random
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from retreasure_sim import world
from retreasure_sim.config import SimConfig, coin, hit
from retreasure_sim.demand import Demand, easter_sunday
from retreasure_sim.model import (
    AdSpend,
    Campaign,
    Customer,
    CustomerTaste,
    DeliveryZone,
    Fault,
    Fulfillment,
    FxRate,
    InventoryMovement,
    Order,
    OrderLine,
    Payment,
    Product,
    Refund,
    Session,
    Store,
    Truth,
    WebEvent,
    money,
)
from retreasure_sim.taste import Tastes

WAREHOUSE = "WH"
SESSION_GAP = timedelta(minutes=30)
FX_HISTORY_DAYS = 14
STORE_ZONES = {s.store_id: s.timezone for s in world.STORES}


def target_holidays(year: int) -> set[date]:
    """TARGET2 closing days: no ECB reference rates on these (nor on weekends)."""
    easter = easter_sunday(year)
    return {
        date(year, 1, 1),
        easter - timedelta(days=2),
        easter + timedelta(days=1),
        date(year, 5, 1),
        date(year, 12, 25),
        date(year, 12, 26),
    }


def whole(at: datetime) -> datetime:
    """Channels show whole seconds; the truth keeps what they can show."""
    return at.replace(microsecond=0)


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in target_holidays(day.year)


class Pool:
    """Products available to sell somewhere: O(1) add and remove; shoppers pick from ``items`` (``taste.py``)."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, pid: str) -> None:
        if pid not in self.index:
            self.index[pid] = len(self.items)
            self.items.append(pid)

    def remove(self, pid: str) -> None:
        i = self.index.pop(pid, None)
        if i is None:
            return
        last = self.items.pop()
        if last != pid:
            self.items[i] = last
            self.index[last] = i

    def __len__(self) -> int:
        return len(self.items)


class Business:
    def __init__(self, config: SimConfig) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        # Markets move on their own: a separate stream, so FX history does not reshuffle the sales.
        self.fx_rng = random.Random(f"{config.seed}-fx")
        self.end = config.start + timedelta(days=config.days - 1)
        self.end_at = datetime.combine(self.end + timedelta(days=1), time(), UTC)
        self.truth = Truth(start=config.start, end=self.end, seed=config.seed, scale=config.scale)
        self.products: dict[str, Product] = {}
        self.stock: dict[str, int] = {}
        self.pools: dict[str, Pool] = {ch: Pool() for ch in ("shopify", "ebay", "etsy")}
        self.pools.update({s.store_id: Pool() for s in world.STORES})
        self.customers: list[Customer] = []
        self.customer_by_id: dict[str, Customer] = {}
        self.customers_by_channel: dict[str, list[Customer]] = {ch: [] for ch in ("shopify", "ebay", "etsy", "pos")}
        self.channel_members: set[tuple[str, str]] = set()
        self.rates: dict[str, Decimal] = {cur: Decimal(v) for cur, (v, _) in world.FX_START.items()}
        self.rate_on: dict[date, dict[str, Decimal]] = {}
        self.restocks: list[tuple[datetime, int, str, int, str]] = []  # (at, seq, pid, qty, order_id)
        self.counters: dict[str, int] = {}
        self.visitors: list[str] = []  # recent visitors' cookie ids
        self.last_seen: dict[str, datetime] = {}  # cookie id -> end of that visitor's latest session
        self.visitor_customer: dict[str, str] = {}  # cookie id -> customer, once they bought
        self.campaign_sessions: dict[tuple[str, date], int] = {}
        self.demand = Demand(config)
        self.tastes = Tastes(config.seed, self.truth, self.products)

    def next_id(self, kind: str) -> int:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]

    def volume(self, per_day: float, day: date, place: str) -> int:
        """A day's count at a place (channel, store, warehouse): the demand's mean for that day, Poisson-like noise."""
        mean = per_day * self.c.scale * self.demand.multiplier(place, day)
        return max(0, round(self.rng.gauss(mean, math.sqrt(mean)))) if mean > 0 else 0

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> Truth:
        self.setup()
        # Rates exist before the first sale (the ECB has published since 1999): two weeks of history, so that
        # an order on the first simulated day, a holiday, still has a previous business day's rate.
        for back in range(FX_HISTORY_DAYS, 0, -1):
            self.fx(self.c.start - timedelta(days=back))
        for offset in range(self.c.days):
            day = self.c.start + timedelta(days=offset)
            self.fx(day)
            self.process_restocks(datetime.combine(day, time(), UTC))
            self.acquire(day, initial=offset == 0)
            self.web_day(day, offset)
            for channel, per_day in (("ebay", 14), ("etsy", 10)):
                for _ in range(self.volume(per_day, day, channel)):
                    self.marketplace_order(channel, self.moment(day))
            for store in world.STORES:
                self.store_day(store, day)
            self.ad_spend(day, offset)
        self.process_restocks(self.end_at)
        self.rebalance()
        self.zones()
        self.late_updates()
        self.wire_faults()
        self.truth["orders"].sort(key=lambda o: o.created_at)
        return self.truth

    def setup(self) -> None:
        for spec in world.STORES:
            market = world.MARKETS[spec.country]
            self.truth["stores"].append(
                Store(
                    spec.store_id,
                    spec.name,
                    spec.city,
                    spec.country,
                    market.currency,
                    spec.timezone,
                    spec.opens_hour,
                    spec.closes_hour,
                )
            )
        for spec in world.CAMPAIGNS:
            self.truth["campaigns"].append(
                Campaign(
                    spec.campaign_id,
                    spec.platform,
                    spec.utm_source,
                    spec.utm_medium,
                    spec.utm_campaign,
                    spec.currency,
                    self.c.start + timedelta(days=spec.starts_day),
                    min(self.end, self.c.start + timedelta(days=spec.ends_day)),
                )
            )

    def moment(self, day: date, start_hour: int = 0, end_hour: int = 24) -> datetime:
        seconds = self.rng.uniform(start_hour * 3600, end_hour * 3600 - 1)
        return datetime.combine(day, time(), UTC) + timedelta(seconds=int(seconds))

    # -- money -----------------------------------------------------------------------------------
    def fx(self, day: date) -> None:
        for currency, rate in list(self.rates.items()):
            decimals = world.FX_START[currency][1]
            drifted = Decimal(str(float(rate) * math.exp(self.fx_rng.gauss(0, 0.004))))
            self.rates[currency] = drifted.quantize(Decimal(1).scaleb(-decimals))
        if is_business_day(day):
            self.rate_on[day] = dict(self.rates)
            for currency, rate in self.rates.items():
                self.truth["fx_rates"].append(FxRate(day, currency, rate))

    def price_in(self, eur: Decimal, currency: str) -> Decimal:
        """Listing price in the buyer's currency: converted at today's rate, rounded to whole units."""
        if currency == "EUR":
            return money(eur, currency)
        return money((eur * self.rates[currency]).quantize(Decimal(1)), currency)

    # -- stock -----------------------------------------------------------------------------------
    def acquire(self, day: date, initial: bool) -> None:
        plan = [(WAREHOUSE, 1500 if initial else 45)] + [(s.store_id, 250 if initial else 6) for s in world.STORES]
        for location, per_day in plan:
            count = round(per_day * self.c.scale) if initial else self.volume(per_day, day, location)
            for _ in range(count):
                if initial:
                    at = datetime.combine(day, time(), UTC) - timedelta(days=self.rng.randint(1, 400))
                else:
                    at = self.bought_in(location, day, self.moment(day, 6, 9))
                self.new_product(location, at)

    def bought_in(self, location: str, day: date, dawn: datetime) -> datetime:
        """When a day's new goods enter stock: before anything of theirs can be sold that day.

        ``dawn`` is a 06:00-09:00 draw that used to be the UTC stamp; it is still drawn so that the seeded
        business (tests and documented figures) keeps its random stream. The web and marketplaces sell around
        the clock, so warehouse goods are in stock from the start of the UTC day; a store sells only while
        open, so its goods arrive at that dawn in the store's own time zone, before it opens.
        """
        if location == WAREHOUSE:
            return datetime.combine(day, time(), UTC)
        return dawn.replace(tzinfo=ZoneInfo(STORE_ZONES[location])).astimezone(UTC)

    def new_product(self, location: str, at: datetime) -> None:
        rng = self.rng
        n = self.next_id("product")
        category = self.demand.pick_category(rng, at.date())
        (low, high), multi_share = world.CATEGORIES[category]
        unique = rng.random() >= multi_share
        quantity = 1 if unique else rng.randint(2, 12)
        list_price = Decimal(round(math.exp(rng.uniform(math.log(low), math.log(high))))).quantize(Decimal("1.00"))
        cost = money(list_price * Decimal(str(round(rng.uniform(0.25, 0.6), 2))), "EUR")
        if location == WAREHOUSE:
            channels = ["shopify"] + [ch for ch, p in (("ebay", 0.6), ("etsy", 0.5)) if rng.random() < p]
        else:
            channels = ["pos"]
        era = rng.choice(world.ERAS)
        title = f"{rng.choice(world.ADJECTIVES)} {era} {rng.choice(world.NOUNS[category])}"
        product = Product(
            product_id=f"P{n:06d}",
            sku=f"RT-{n:06d}",
            title=title,
            category=category,
            era=era,
            material=rng.choice(world.MATERIALS),
            condition=rng.choice(world.CONDITIONS),
            unique=unique,
            initial_quantity=quantity,
            cost=cost,
            list_price=list_price,
            acquired_at=at,
            location_id=location,
            channels=channels,
            shopify_product_id=9_100_000_000_000_000 + n,
            shopify_variant_id=9_200_000_000_000_000 + n,
            ebay_item_id=str(110_000_000_000 + n),
            etsy_listing_id=1_500_000_000 + n,
        )
        self.products[product.product_id] = product
        self.truth["products"].append(product)
        self.stock[product.product_id] = 0
        self.move(product, quantity, "acquired", at, None)

    def move(self, product: Product, change: int, reason: str, at: datetime, order_id: str | None) -> None:
        pid = product.product_id
        self.stock[pid] += change
        on_hand = self.stock[pid]
        self.truth["inventory_movements"].append(
            InventoryMovement(
                f"M{self.next_id('movement'):08d}",
                pid,
                product.sku,
                product.location_id,
                at,
                change,
                reason,
                on_hand,
                order_id,
            )
        )
        pools = product.channels if product.location_id == WAREHOUSE else [product.location_id]
        for name in pools:
            if on_hand > 0:
                self.pools[name].add(pid)
            else:
                self.pools[name].remove(pid)

    def rebalance(self) -> None:
        """Each movement's on-hand-after as the balance at its instant, not in the order the day was drawn.

        A day's sales are drawn at random hours in no time order, and restocks are booked at the next midnight
        with their refund's time, so the running count kept while simulating can disagree with the stock a
        till or a shop shows at that moment (for goods with several units).
        """
        balance: dict[str, int] = {}
        for move in sorted(self.truth["inventory_movements"], key=lambda m: (m.at, m.movement_id)):
            move.on_hand_after = balance[move.product_id] = balance.get(move.product_id, 0) + move.change

    def process_restocks(self, until: datetime) -> None:
        while self.restocks and self.restocks[0][0] <= until:
            at, _, pid, qty, order_id = heapq.heappop(self.restocks)
            self.move(self.products[pid], qty, "restocked", at, order_id)

    # -- customers -------------------------------------------------------------------------------
    def new_customer(self, at: datetime, country: str | None = None, taste: CustomerTaste | None = None) -> Customer:
        rng = self.rng
        n = self.next_id("customer")
        if country is None:
            markets = list(world.MARKETS.values())
            country = rng.choices([m.country for m in markets], [m.weight for m in markets])[0]
        market = world.MARKETS[country]
        city = rng.choice(market.cities)
        first, last = rng.choice(world.FIRST_NAMES), rng.choice(world.LAST_NAMES)
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        customer = Customer(
            customer_id=f"C{n:06d}",
            email=f"{local}.{n}@{rng.choice(world.EMAIL_DOMAINS)}",
            first_name=first,
            last_name=last,
            phone=f"{market.phone_prefix} {rng.randint(100, 999)} {rng.randint(1000000, 9999999)}",
            street=f"{rng.randint(1, 180)} {rng.choice(market.streets)}",
            city=city.name,
            region=city.region,
            postal_code=city.postal_code,
            country=country,
            currency=market.currency,
            lat=round(city.lat + rng.uniform(-0.05, 0.05), 5),
            lon=round(city.lon + rng.uniform(-0.05, 0.05), 5),
            accepts_marketing=rng.random() < 0.55,
            created_at=at,
            shopify_customer_id=9_300_000_000_000_000 + n,
            ebay_username=f"{local[:10]}_{n}",
            etsy_user_id=900_000_000 + n,
        )
        self.customers.append(customer)
        self.customer_by_id[customer.customer_id] = customer
        self.truth["customers"].append(customer)
        self.tastes.customer(customer.customer_id, inherited=taste)
        return customer

    def buyer(
        self, channel: str, at: datetime, country: str | None = None, taste: CustomerTaste | None = None
    ) -> Customer:
        """A returning buyer on this channel, someone who bought elsewhere (same e-mail), or a new one (who keeps
        ``taste``, the taste of the visitor they were, when given)."""
        rng = self.rng
        same = self.customers_by_channel[channel]
        draw = rng.random()
        if same and draw < 0.25:
            customer = rng.choice(same)
        elif self.customers and draw < 0.37:
            customer = rng.choice(self.customers)
        else:
            customer = self.new_customer(at, country, taste)
        self.join(channel, customer)
        return customer

    def join(self, channel: str, customer: Customer) -> None:
        if (channel, customer.customer_id) not in self.channel_members:
            self.channel_members.add((channel, customer.customer_id))
            self.customers_by_channel[channel].append(customer)

    # -- orders ----------------------------------------------------------------------------------
    def order(
        self,
        channel: str,
        at: datetime,
        customer: Customer | None,
        products: list[str],
        store: world.StoreSpec | None = None,
        session: Session | None = None,
    ) -> Order:
        rng = self.rng
        n = self.next_id("order")
        currency = world.MARKETS[store.country].currency if store else customer.currency  # type: ignore[union-attr]
        country = store.country if store else customer.country  # type: ignore[union-attr]
        market = world.MARKETS[country]
        region = "" if store else customer.region  # type: ignore[union-attr]
        if store and country == "US":
            region = "NY"
        rate = world.US_SALES_TAX.get(region, Decimal(0)) if country == "US" else market.tax_rate
        discount_code = None
        discount_share = Decimal(0)
        if channel in ("shopify", "pos") and rng.random() < 0.12:
            discount_code, discount_share = rng.choice((("WELCOME10", Decimal("0.10")), ("VINTAGE15", Decimal("0.15"))))
        order_id = f"O{n:07d}"
        lines = []
        for line_no, pid in enumerate(products, start=1):
            product = self.products[pid]
            quantity = 1 if product.unique else min(self.stock[pid], rng.choice((1, 1, 1, 2, 3)))
            unit = self.price_in(product.list_price, currency)
            gross = unit * quantity
            discount = money(gross * discount_share, currency)
            tax = money((gross - discount) * rate, currency)
            lines.append(
                OrderLine(
                    order_id, line_no, self.line_id(channel), pid, product.sku, quantity, unit, discount, tax, rate
                )
            )
            self.move(product, -quantity, "sold", at, order_id)
        shipping = Decimal(0)
        if not store:
            zone = next(z for z in world.ZONES if z.zone_id == self.zone_of(customer))  # type: ignore[arg-type]
            fee = world.ZONE_FEE_CHANGES.get((zone.zone_id, 180)) if (at.date() - self.c.start).days >= 180 else None
            shipping = money(fee or zone.fee, currency)
        shipping_tax = money(shipping * rate, currency) if country in world.SHIPPING_TAXED else money(0, currency)
        subtotal = sum((line.unit_price * line.quantity for line in lines), Decimal(0))
        discount = sum((line.discount for line in lines), Decimal(0))
        tax = sum((line.tax for line in lines), Decimal(0)) + shipping_tax
        party = "marketplace" if country in world.MARKETPLACE_REMITS.get(channel, set()) else "seller"
        order = Order(
            order_id=order_id,
            channel=channel,
            channel_order_id=self.channel_order_id(channel, n, at, store),
            store_id=store.store_id if store else None,
            customer_id=customer.customer_id if customer else None,
            session_id=session.session_id if session else None,
            campaign=session.utm_campaign if session else None,
            created_at=at,
            currency=currency,
            subtotal=money(subtotal, currency),
            discount=money(discount, currency),
            shipping=shipping,
            shipping_tax=shipping_tax,
            tax=money(tax, currency),
            total=money(subtotal - discount + shipping + tax, currency),
            tax_party=party,
            tax_country=country,
            tax_region=region,
            discount_code=discount_code,
            ship_by=None if store else at + timedelta(days=world.HANDLING_DAYS[channel]),
            ship_country=None if store else country,
            updated_at=at,
            lines=lines,
        )
        self.truth["orders"].append(order)
        self.truth["order_lines"].extend(lines)
        if store:
            if rng.random() < 0.02:
                self.refund(order, at + timedelta(hours=rng.uniform(1, 72)))
        else:
            self.ship(order)
        return order

    def zone_of(self, customer: Customer) -> str:
        market = world.MARKETS[customer.country]
        return next(c.zone_id for c in market.cities if c.name == customer.city)

    def line_id(self, channel: str) -> int:
        base = {"shopify": 9_400_000_000_000_000, "ebay": 10_000_000_000, "etsy": 4_000_000_000, "pos": 0}
        return base[channel] + self.next_id(f"line.{channel}")

    def channel_order_id(self, channel: str, n: int, at: datetime, store: world.StoreSpec | None) -> str:
        k = self.next_id(f"order.{channel}")
        if channel == "shopify":
            return str(9_500_000_000_000_000 + k)  # above 2**53, as Shopify's are
        if channel == "ebay":
            return f"{10 + k % 90:02d}-{10000 + k:05d}-{(n * 7919) % 100000:05d}"
        if channel == "etsy":
            return str(3_100_000_000 + k)
        assert store is not None
        local = at.astimezone(ZoneInfo(store.timezone))
        return f"{store.store_id}-{local:%Y%m%d}-{k:05d}"

    def basket_size(self) -> int:
        return self.rng.choices((1, 2, 3), (0.78, 0.17, 0.05))[0]

    def marketplace_order(self, channel: str, at: datetime) -> None:
        pool = self.pools[channel]
        if not pool:
            return
        # The buyer comes first: what they pick is their taste's choice from what is listed.
        customer = self.buyer(channel, at)
        products = self.tastes.basket(pool, self.tastes.customer(customer.customer_id), self.basket_size())
        self.order(channel, at, customer, products)

    def store_day(self, store: world.StoreSpec, day: date) -> None:
        tz = ZoneInfo(store.timezone)
        for _ in range(self.volume(7, day, store.store_id)):
            local = datetime.combine(day, time(), tz) + timedelta(
                seconds=self.rng.uniform(store.opens_hour * 3600, store.closes_hour * 3600 - 60)
            )
            at = whole(local.astimezone(UTC))
            pool = self.pools[store.store_id]
            if not pool:
                continue
            # A walk-in who gives no e-mail still shops to a taste, only nobody keeps it.
            customer = self.buyer("pos", at, store.country) if self.rng.random() < 0.6 else None
            taste = self.tastes.customer(customer.customer_id) if customer else self.tastes.draw("walk-in")
            products = self.tastes.basket(pool, taste, self.basket_size())
            self.order("pos", at, customer, products, store=store)

    # -- after the sale --------------------------------------------------------------------------
    def ship(self, order: Order) -> None:
        rng = self.rng
        shipped = whole(
            order.created_at + timedelta(hours=rng.uniform(4, 24 * (world.HANDLING_DAYS[order.channel] + 2)))
        )
        if shipped >= self.end_at:
            return
        low, high = world.TRANSIT_DAYS[order.ship_country or "DE"]
        delivered: datetime | None = whole(shipped + timedelta(hours=rng.uniform(low * 24, high * 24)))
        if delivered is not None and delivered >= self.end_at:
            delivered = None
        n = self.next_id("fulfillment")
        carrier = world.CARRIERS[order.ship_country or "DE"]
        self.truth["fulfillments"].append(
            Fulfillment(
                f"F{n:07d}",
                5_600_000_000 + n,
                order.order_id,
                shipped,
                delivered,
                carrier,
                f"{carrier[:2].upper()}{rng.randint(10**9, 10**10 - 1)}",
            )
        )
        order.updated_at = max(order.updated_at, delivered or shipped)
        if delivered and rng.random() < 0.06:
            self.refund(order, delivered + timedelta(days=rng.uniform(1, 14)))

    def refund(self, order: Order, at: datetime) -> None:
        at = whole(at)
        if at >= self.end_at:
            return
        line = self.rng.choice(order.lines)
        n = self.next_id("refund")
        self.truth["refunds"].append(
            Refund(
                f"R{n:06d}",
                6_700_000_000 + n,
                order.order_id,
                line.line_no,
                at,
                line.quantity,
                money(line.unit_price * line.quantity - line.discount, order.currency),
                line.tax,
                True,
            )
        )
        order.updated_at = max(order.updated_at, at)
        heapq.heappush(self.restocks, (at, n, line.product_id, line.quantity, order.order_id))
        if order.channel == "shopify":
            self.payment(order, "refunded", at, line.unit_price * line.quantity - line.discount + line.tax)

    def payment(self, order: Order, status: str, at: datetime, amount: Decimal) -> None:
        n = self.next_id("payment")
        self.truth["payments"].append(
            Payment(f"T{n:08d}", order.order_id, status, money(amount, order.currency), order.currency, at)
        )

    def late_updates(self) -> None:
        """Some orders are touched again long after (a note, a tag): same money, a later updated_at."""
        for order in self.truth["orders"]:
            if order.channel == "pos" or not hit(
                self.c.seed, "late_update", order.order_id, self.c.faults.late_updates
            ):
                continue
            later = whole(order.updated_at + timedelta(days=self.rng.uniform(20, 60)))
            if later < self.end_at:
                order.updated_at = later
                self.truth["faults"].append(
                    Fault(order.channel, "orders", order.channel_order_id, "late_update", later.isoformat())
                )

    def wire_faults(self) -> None:
        """Decide which marketplace orders the fake servers will send twice, broken, or drifted.

        Each order by its own seeded coin; and a fault that is switched on strikes at least one order of every
        channel (the one whose coin came closest), so that a faulty world always holds a case of it, however few
        orders a short run draws.
        """
        faults = self.c.faults
        kinds = (
            ("duplicate", faults.duplicates),
            ("malformed", faults.malformed),
            ("schema_drift", faults.schema_drift),
        )
        struck: set[tuple[str, str]] = set()
        online = [order for order in self.truth["orders"] if order.channel != "pos"]
        for order in online:
            for kind, rate in kinds:
                if hit(self.c.seed, kind, order.order_id, rate):
                    self.truth["faults"].append(Fault(order.channel, "orders", order.channel_order_id, kind, ""))
                    struck.add((order.channel, kind))
        for channel in sorted({order.channel for order in online}):
            for kind, rate in kinds:
                if rate > 0 and (channel, kind) not in struck:
                    closest = min(
                        (o for o in online if o.channel == channel), key=lambda o: coin(self.c.seed, kind, o.order_id)
                    )
                    self.truth["faults"].append(Fault(channel, "orders", closest.channel_order_id, kind, ""))

    # -- the website -----------------------------------------------------------------------------
    def web_day(self, day: date, offset: int) -> None:
        active = [c for c in world.CAMPAIGNS if c.starts_day <= offset <= c.ends_day]
        for _ in range(self.volume(400, day, "shopify")):
            self.session(day, active)

    def session(self, day: date, campaigns: list[world.CampaignSpec]) -> None:
        rng = self.rng
        start = self.moment(day, 7, 23)
        anonymous_id, customer_id = self.visitor(start)
        # Who is browsing decides what catches their eye: a known customer's taste, else the visitor's own.
        taste = self.tastes.customer(customer_id) if customer_id else self.tastes.visitor(anonymous_id)
        draw = rng.random()
        utm: tuple[str | None, str | None, str | None]
        if draw < 0.30 and campaigns:
            spec = rng.choice(campaigns)
            utm = (spec.utm_source, spec.utm_medium, spec.utm_campaign)
            self.campaign_sessions[(spec.campaign_id, day)] = self.campaign_sessions.get((spec.campaign_id, day), 0) + 1
        elif draw < 0.45:
            utm = ("newsletter", "email", f"newsletter_{day:%Y_%m}")
        else:
            utm = (None, None, None)
        session = Session(
            f"S{self.next_id('session'):08d}",
            anonymous_id,
            customer_id,
            start,
            start,
            utm[0],
            utm[1],
            utm[2],
            rng.choice(("desktop", "mobile", "mobile", "tablet")),
            0,
            False,
            None,
        )
        at = start
        events = self.truth["web_events"]

        def emit(name: str, product_id: str | None = None, order_id: str | None = None) -> None:
            nonlocal at
            at += timedelta(seconds=rng.randint(5, 240))
            events.append(WebEvent(f"E{self.next_id('event'):09d}", session.session_id, name, at, product_id, order_id))
            session.events += 1

        for _ in range(rng.randint(1, 4)):
            emit("page_view")
        viewed = []
        if rng.random() < 0.7:
            for _ in range(rng.randint(1, 4)):
                pid = self.tastes.pick(self.pools["shopify"], taste)
                if pid:
                    viewed.append(pid)
                    emit("product_viewed", pid)
        conversion = 0.45 if utm[1] == "email" else 0.35
        if viewed and rng.random() < 0.22:
            emit("product_added", viewed[-1])
            if rng.random() < 0.5:
                emit("checkout_started")
                available = [pid for pid in dict.fromkeys(viewed) if self.stock[pid] > 0]
                if available and rng.random() < conversion and at < self.end_at:
                    if customer_id:
                        customer = self.customer_by_id[customer_id]
                        self.join("shopify", customer)
                    else:
                        customer = self.buyer("shopify", at, taste=taste)
                    order = self.order("shopify", at + timedelta(seconds=30), customer, available[:2], session=session)
                    emit("order_completed", order_id=order.order_id)
                    session.converted, session.order_id, session.customer_id = (
                        True,
                        order.order_id,
                        customer.customer_id,
                    )
                    self.payment(order, "authorized", order.created_at, order.total)
                    self.payment(
                        order, "captured", order.created_at + timedelta(minutes=rng.randint(1, 20)), order.total
                    )
                    self.visitor_customer[anonymous_id] = customer.customer_id
        session.ended_at = at
        if anonymous_id not in self.last_seen:
            self.visitors.append(anonymous_id)
            if len(self.visitors) > 20_000:
                del self.visitors[:10_000]
        self.last_seen[anonymous_id] = max(at, self.last_seen.get(anonymous_id, at))
        self.truth["sessions"].append(session)

    def visitor(self, start: datetime) -> tuple[str, str | None]:
        """A returning visitor (their cookie) last seen on an earlier day, else a new one.

        A day's sessions are drawn in no particular time order, so a visitor seen earlier the same day could
        come back within the 30-minute gap that separates sessions; an earlier day never can (sessions start
        after 07:00 and end before midnight).
        """
        rng = self.rng
        if self.visitors and rng.random() < 0.3:
            for _ in range(3):
                anonymous_id = rng.choice(self.visitors)
                if self.last_seen[anonymous_id].date() < start.date():
                    return anonymous_id, self.visitor_customer.get(anonymous_id)
        return f"a-{self.next_id('visitor'):08d}", None

    # -- marketing and geo -----------------------------------------------------------------------
    def ad_spend(self, day: date, offset: int) -> None:
        rng = self.rng
        for spec in world.CAMPAIGNS:
            if not spec.starts_day <= offset <= spec.ends_day:
                continue
            sessions = self.campaign_sessions.get((spec.campaign_id, day), 0)
            clicks = round(sessions * rng.uniform(1.0, 1.3))
            spend = money(Decimal(str(spec.daily_budget * self.c.scale * rng.uniform(0.7, 1.05))), spec.currency)
            self.truth["ad_spend"].append(
                AdSpend(
                    spec.platform,
                    spec.campaign_id,
                    spec.utm_campaign,
                    day,
                    spend,
                    spec.currency,
                    clicks,
                    round(clicks * rng.uniform(40, 120)),
                )
            )

    def zones(self) -> None:
        for zone in world.ZONES:
            lon0, lat0, lon1, lat1 = zone.box
            ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
            self.truth["delivery_zones"].append(
                DeliveryZone(zone.zone_id, zone.name, zone.fee, zone.currency, ring, self.c.start)
            )
            for (zone_id, offset), fee in world.ZONE_FEE_CHANGES.items():
                if zone_id == zone.zone_id and offset < self.c.days:
                    self.truth["delivery_zones"].append(
                        DeliveryZone(
                            zone.zone_id, zone.name, fee, zone.currency, ring, self.c.start + timedelta(days=offset)
                        )
                    )


def simulate(config: SimConfig) -> Truth:
    return Business(config).run()
