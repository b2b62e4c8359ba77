"""The file drops: what the stores' tills, the GIS export, the ECB, the ad platforms and the web collector
leave in the landing folder, rendered from the truth, with seeded transfer faults.

Layout under the landing folder (one module per format):
    pos/sales/<store>/<YYYY-MM-DD>/sales_<HH>.csv          pos/inventory/<store>/<YYYY-MM-DD>/inventory_<HH>.csv
    geo/customers/customers_<YYYY-MM-DD>.geojson           geo/zones/zones_<YYYY-MM-DD>.geojson
    ecb/eurofxref-daily_<YYYY-MM-DD>.xml                   ecb/eurofxref-hist-90d_<last day>.xml
    ads/<platform>/spend_<YYYY-MM-DD>.csv
    web/clickstream/<YYYY-MM-DD>.jsonl                     web/transactions/<YYYY-MM-DD>.jsonl
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from retreasure_sim.config import Faults
from retreasure_sim.files import ads, ecb, geo, pos, web
from retreasure_sim.files.drop import Dropper
from retreasure_sim.model import Fault, Truth

FORMATS: dict[str, tuple[Callable[[Truth, Dropper], None], Callable[[Truth, datetime | None], dict[str, int]]]] = {
    "pos": (pos.render, pos.expected),
    "geo": (geo.render, geo.expected),
    "ecb": (ecb.render, ecb.expected),
    "ads": (ads.render, ads.expected),
    "web": (web.render, web.expected),
}


def render_files(
    truth: Truth, landing: Path, faults: Faults, seed: int, sources: Iterable[str] | None = None
) -> list[Fault]:
    """Write every file source's drops for the truth's whole date range; returns the faults injected."""
    dropper = Dropper(Path(landing), faults, seed)
    for name in FORMATS if sources is None else sources:
        FORMATS[name][0](truth, dropper)
    dropper.finish()
    return dropper.injected


def expected_counts(truth: Truth, as_of: datetime | None = None) -> dict[str, int]:
    """Per bronze table, the distinct well-formed business keys a complete ingest of the drops lands."""
    counts: dict[str, int] = {}
    for _, expected in FORMATS.values():
        counts.update(expected(truth, as_of))
    return counts
