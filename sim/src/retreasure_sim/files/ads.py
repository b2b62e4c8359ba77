"""Ad platforms' daily spend reports, one CSV per platform per day. Google and Meta name and order their
columns differently, as their real exports do."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from retreasure_sim.files.drop import Dropper, amount, csv_doc, days, spoil_csv
from retreasure_sim.model import AdSpend, Truth

HEADERS = {
    "google_ads": ["campaign_id", "campaign_name", "date", "cost", "currency_code", "clicks", "impressions"],
    "meta_ads": ["date_start", "campaign_id", "campaign_name", "spend", "account_currency", "impressions", "clicks"],
}
DRIFT = {"google_ads": "conversions", "meta_ads": "reach"}


def row(platform: str, s: AdSpend) -> list[str]:
    spend = amount(s.spend, s.currency)
    if platform == "meta_ads":
        return [s.date.isoformat(), s.campaign_id, s.utm_campaign, spend, s.currency, str(s.impressions), str(s.clicks)]
    return [s.campaign_id, s.utm_campaign, s.date.isoformat(), spend, s.currency, str(s.clicks), str(s.impressions)]


def render(truth: Truth, dropper: Dropper) -> None:
    """Write each platform's report for every day, header only on days it ran no campaign."""
    rows: dict[tuple[str, date], list[AdSpend]] = defaultdict(list)
    for s in truth["ad_spend"]:
        rows[(s.platform, s.date)].append(s)
    platforms = sorted({c.platform for c in truth["campaigns"]} | {s.platform for s in truth["ad_spend"]})
    for platform in platforms:
        header = HEADERS.get(platform, HEADERS["google_ads"])
        drift = (DRIFT.get(platform, "notes"), lambda n: str(n % 3))
        for day in days(truth.start, truth.end):
            cells = [row(platform, s) for s in sorted(rows[(platform, day)], key=lambda s: s.campaign_id)]
            relative = f"ads/{platform}/spend_{day.isoformat()}.csv"
            doc = csv_doc(header, cells, drift if dropper.drifts(relative) else None)
            dropper.drop("ads", "spend", relative, doc, spoil_csv)


def expected(truth: Truth, as_of: datetime | None = None) -> dict[str, int]:
    """Distinct (platform, campaign, day) spend rows up to ``as_of``."""
    keys = {(s.platform, s.campaign_id, s.date) for s in truth["ad_spend"] if as_of is None or s.date <= as_of.date()}
    return {"ads_spend": len(keys)}
