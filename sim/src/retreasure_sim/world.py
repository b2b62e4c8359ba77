"""The simulated world as declarative tables: markets, stores, catalogue vocabulary, zones, campaigns.

Kept apart from the generator so that what the business *is* reads at a glance, and changes as data.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class City:
    name: str
    region: str  # US state, "" elsewhere
    postal_code: str
    lat: float
    lon: float
    zone_id: str


@dataclass(frozen=True)
class Market:
    country: str
    currency: str
    tax_rate: Decimal  # VAT/GST; US markets use their state's rate (US_SALES_TAX)
    phone_prefix: str
    weight: float  # share of online buyers
    cities: tuple[City, ...]
    streets: tuple[str, ...]


MARKETS: dict[str, Market] = {
    m.country: m
    for m in (
        Market(
            "DE",
            "EUR",
            Decimal("0.19"),
            "+49",
            0.24,
            (
                City("Berlin", "", "10115", 52.52, 13.405, "Z-DE"),
                City("Hamburg", "", "20095", 53.551, 9.994, "Z-DE"),
                City("Munich", "", "80331", 48.137, 11.575, "Z-DE"),
            ),
            ("Hauptstrasse", "Bahnhofstrasse", "Gartenweg", "Lindenallee"),
        ),
        Market(
            "FR",
            "EUR",
            Decimal("0.20"),
            "+33",
            0.08,
            (City("Paris", "", "75004", 48.853, 2.349, "Z-FR"), City("Lyon", "", "69002", 45.764, 4.836, "Z-FR")),
            ("Rue de la Paix", "Avenue Victor Hugo", "Rue du Moulin"),
        ),
        Market(
            "NL",
            "EUR",
            Decimal("0.21"),
            "+31",
            0.06,
            (City("Amsterdam", "", "1012", 52.37, 4.895, "Z-NL"),),
            ("Keizersgracht", "Prinsengracht", "Dorpsstraat"),
        ),
        Market(
            "IT",
            "EUR",
            Decimal("0.22"),
            "+39",
            0.05,
            (City("Rome", "", "00184", 41.893, 12.483, "Z-IT"), City("Milan", "", "20121", 45.464, 9.19, "Z-IT")),
            ("Via Roma", "Via Garibaldi", "Corso Italia"),
        ),
        Market(
            "GB",
            "GBP",
            Decimal("0.20"),
            "+44",
            0.18,
            (
                City("London", "", "SW1A 1AA", 51.507, -0.128, "Z-GB"),
                City("Manchester", "", "M1 1AE", 53.48, -2.242, "Z-GB"),
                City("Edinburgh", "", "EH1 1YZ", 55.953, -3.189, "Z-GB"),
            ),
            ("High Street", "Church Lane", "Station Road", "Mill Lane"),
        ),
        Market(
            "SE",
            "SEK",
            Decimal("0.25"),
            "+46",
            0.04,
            (City("Stockholm", "", "111 20", 59.329, 18.069, "Z-SE"),),
            ("Drottninggatan", "Storgatan"),
        ),
        Market(
            "US",
            "USD",
            Decimal("0"),
            "+1",
            0.31,
            (
                City("New York", "NY", "10001", 40.713, -74.006, "Z-US-E"),
                City("Chicago", "IL", "60601", 41.878, -87.63, "Z-US-E"),
                City("Los Angeles", "CA", "90012", 34.052, -118.244, "Z-US-W"),
                City("Seattle", "WA", "98101", 47.606, -122.332, "Z-US-W"),
                City("Austin", "TX", "78701", 30.267, -97.743, "Z-US-W"),
            ),
            ("Main Street", "Oak Avenue", "Maple Drive", "Park Place", "Elm Street"),
        ),
        Market(
            "JP",
            "JPY",
            Decimal("0.10"),
            "+81",
            0.04,
            (City("Tokyo", "", "100-0001", 35.68, 139.76, "Z-JP"),),
            ("Chuo-dori", "Omotesando"),
        ),
    )
}

US_SALES_TAX = {
    "NY": Decimal("0.08875"),
    "IL": Decimal("0.0625"),
    "CA": Decimal("0.0725"),
    "WA": Decimal("0.065"),
    "TX": Decimal("0.0625"),
}

# Where a marketplace collects and remits the tax itself (marketplace-facilitator rules), by channel.
# Versioned business configuration: the seller owes everything else.
MARKETPLACE_REMITS = {"ebay": {"US", "GB"}, "etsy": {"US", "GB"}}

# US sales tax here does not apply to shipping; VAT does.
SHIPPING_TAXED = {country for country in MARKETS if country != "US"}


@dataclass(frozen=True)
class StoreSpec:
    store_id: str
    name: str
    country: str
    city: str
    timezone: str
    opens_hour: int
    closes_hour: int


STORES = (
    StoreSpec("BER", "ReTreasure Berlin Mitte", "DE", "Berlin", "Europe/Berlin", 10, 19),
    StoreSpec("LON", "ReTreasure London Camden", "GB", "London", "Europe/London", 10, 18),
    StoreSpec("NYC", "ReTreasure Brooklyn", "US", "New York", "America/New_York", 11, 20),
)


@dataclass(frozen=True)
class Zone:
    zone_id: str
    name: str
    fee: Decimal
    currency: str
    # lon_min, lat_min, lon_max, lat_max: boxes that do not overlap, each around its market's cities.
    box: tuple[float, float, float, float]


ZONES = (
    Zone("Z-DE", "Germany", Decimal("4.90"), "EUR", (7.01, 47.3, 15.0, 55.0)),
    Zone("Z-FR", "France", Decimal("9.90"), "EUR", (-5.0, 42.0, 5.9, 50.9)),
    Zone("Z-NL", "Netherlands", Decimal("9.90"), "EUR", (3.3, 51.0, 7.0, 53.6)),
    Zone("Z-IT", "Italy", Decimal("9.90"), "EUR", (6.6, 36.6, 18.5, 46.9)),
    Zone("Z-GB", "United Kingdom", Decimal("14.00"), "GBP", (-8.0, 49.9, 1.8, 59.0)),
    Zone("Z-SE", "Sweden", Decimal("120.00"), "SEK", (11.0, 55.3, 24.0, 69.0)),
    Zone("Z-US-E", "US East", Decimal("29.00"), "USD", (-90.0, 24.0, -66.0, 49.0)),
    Zone("Z-US-W", "US West", Decimal("35.00"), "USD", (-125.0, 24.0, -90.01, 49.0)),
    Zone("Z-JP", "Japan", Decimal("4200"), "JPY", (129.0, 30.0, 146.0, 46.0)),
)
# Mid-year the domestic fee goes up: the daily zones file then carries a new version of Z-DE.
ZONE_FEE_CHANGES = {("Z-DE", 180): Decimal("5.90")}

CATEGORIES = {
    # category: (typical EUR list price range, multi-quantity share)
    "Furniture": ((180, 2400), 0.02),
    "Lighting": ((60, 900), 0.10),
    "Ceramics": ((15, 400), 0.35),
    "Glassware": ((12, 250), 0.40),
    "Jewellery": ((40, 1800), 0.05),
    "Clocks": ((90, 1500), 0.03),
    "Art": ((80, 3000), 0.01),
    "Textiles": ((20, 350), 0.30),
    "Books": ((8, 600), 0.15),
    "Silverware": ((25, 700), 0.25),
}
ERAS = ("Georgian", "Victorian", "Edwardian", "Art Nouveau", "Art Deco", "Mid-Century", "1970s", "1980s")
MATERIALS = ("oak", "walnut", "mahogany", "brass", "porcelain", "crystal", "silver", "linen", "leather", "glass")
CONDITIONS = ("Excellent", "Very good", "Good", "Restored", "Fair")
ADJECTIVES = ("Carved", "Gilded", "Hand-painted", "Rare", "Signed", "Enamelled", "Engraved", "Pair of", "Small")
NOUNS = {
    "Furniture": ("side table", "bureau", "armchair", "chest of drawers", "bookcase"),
    "Lighting": ("table lamp", "chandelier", "wall sconce", "desk lamp"),
    "Ceramics": ("vase", "teapot", "charger plate", "figurine"),
    "Glassware": ("decanter", "coupe glasses", "bowl", "perfume bottle"),
    "Jewellery": ("brooch", "ring", "pendant", "cufflinks"),
    "Clocks": ("mantel clock", "pocket watch", "wall clock"),
    "Art": ("oil painting", "etching", "watercolour", "lithograph"),
    "Textiles": ("quilt", "tapestry", "lace runner", "kilim rug"),
    "Books": ("first edition", "atlas", "botanical folio", "bound volumes"),
    "Silverware": ("cutlery set", "candlesticks", "tea service", "salver"),
}

FIRST_NAMES = (
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Ida",
    "Jonas",
    "Kate",
    "Liam",
    "Maya",
    "Noah",
    "Olivia",
    "Paul",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Will",
    "Yuki",
    "Zoe",
    "Léa",
    "Søren",
    "María",
    "Björn",
    "Chloé",
    "Giulia",
)
LAST_NAMES = (
    "Schmidt",
    "Müller",
    "Smith",
    "Jones",
    "Dubois",
    "Martin",
    "Rossi",
    "Bianchi",
    "de Vries",
    "Jansen",
    "Andersson",
    "Johansson",
    "Tanaka",
    "Sato",
    "Johnson",
    "Brown",
    "Garcia",
    "Miller",
    "O'Neill",
    "Weber",
    "Fischer",
    "Taylor",
    "Wilson",
    "Moreau",
    "Conti",
)
EMAIL_DOMAINS = ("example.com", "mail.example.org", "post.example.net", "inbox.example.com")

CARRIERS = {
    "DE": "DHL",
    "FR": "Colissimo",
    "NL": "PostNL",
    "IT": "Poste Italiane",
    "GB": "Royal Mail",
    "SE": "PostNord",
    "US": "USPS",
    "JP": "Japan Post",
}
# Days from shipping to delivery: (min, max) domestic-ish by destination, from the warehouse in Germany.
TRANSIT_DAYS = {
    "DE": (1, 3),
    "FR": (2, 5),
    "NL": (2, 4),
    "IT": (3, 6),
    "GB": (3, 7),
    "SE": (3, 6),
    "US": (5, 12),
    "JP": (6, 14),
}
# Promised handling time (days to ship) by channel.
HANDLING_DAYS = {"shopify": 2, "ebay": 3, "etsy": 3}


@dataclass(frozen=True)
class CampaignSpec:
    campaign_id: str
    platform: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    currency: str
    starts_day: int  # day offset into the simulation
    ends_day: int
    daily_budget: int


CAMPAIGNS = (
    CampaignSpec("G-101", "google_ads", "google", "cpc", "spring_deco", "EUR", 0, 120, 60),
    CampaignSpec("G-102", "google_ads", "google", "cpc", "summer_garden", "EUR", 100, 240, 45),
    CampaignSpec("G-103", "google_ads", "google", "cpc", "autumn_clocks", "EUR", 230, 330, 50),
    CampaignSpec("G-104", "google_ads", "google", "cpc", "holiday_gifts", "EUR", 300, 366, 120),
    CampaignSpec("M-201", "meta_ads", "facebook", "paid_social", "insta_finds", "USD", 0, 366, 40),
    CampaignSpec("M-202", "meta_ads", "instagram", "paid_social", "retarget_carts", "USD", 30, 366, 25),
)

# ECB currencies the simulator publishes: opening rate per EUR and its quoted decimals.
FX_START = {
    "USD": ("1.0850", 4),
    "JPY": ("160.50", 2),
    "GBP": ("0.85200", 5),
    "SEK": ("11.3500", 4),
    "CHF": ("0.9450", 4),
    "DKK": ("7.4580", 4),
    "NOK": ("11.5200", 4),
    "PLN": ("4.3100", 4),
    "AUD": ("1.6400", 4),
    "CAD": ("1.4700", 4),
}
