"""How each bronze table a model reads orders the versions of its records, and whether a model's window limits
the read: one line per table, read by ``@newest`` (``retreasure.engine.staging``) and by conservation
(``retreasure.quality.checks``), which must pick the same version."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Newest(StrEnum):
    """What makes one version of a record newer than another; ties always go to the later landing, then to a
    fixed order of content hashes, so a rebuild picks the same version."""

    BY_CHANGE = "record_updated_at DESC NULLS LAST, ingested_at DESC, record_hash"
    """The source's own change time: a late-landing old version never replaces a newer one."""
    BY_LANDING = "ingested_at DESC, record_hash"
    """The newest landing: the source restates a record in full and has no change time of its own."""
    BY_FILE_DAY = "partition_date DESC, ingested_at DESC, record_hash"
    """The newest daily file that lists the record: the file's day is the version's day."""


@dataclass(frozen=True)
class Staged:
    newest: Newest
    # False: read in full on every run, whatever the window (a small table, or one whose every version matters
    # to rows of any day).
    windowed: bool = True


# One line per bronze table a model reads.
STAGED: dict[str, Staged] = {
    "ads_spend": Staged(Newest.BY_CHANGE),
    "ebay_orders": Staged(Newest.BY_CHANGE),
    "ebay_shipping_fulfillments": Staged(Newest.BY_CHANGE),
    # A rate is restated only by a re-sent file; fx_rates carries rates across days, so it needs them all.
    "ecb_fx_rates": Staged(Newest.BY_LANDING, windowed=False),
    # Catalogue, customers and stock levels are small tables kept by key (write mode merge): a window's run reads
    # the versions that landed in it.
    "etsy_listings": Staged(Newest.BY_CHANGE),
    "etsy_receipts": Staged(Newest.BY_CHANGE),
    # A customer located again (a move) is where the latest file puts them (silver.geo merges a window's locations;
    # a new zone version, which can move customers located long ago, rebuilds it whole).
    "geo_customer_locations": Staged(Newest.BY_FILE_DAY),
    # A zone version's end is the next version's start, wherever it landed.
    "geo_delivery_zones": Staged(Newest.BY_CHANGE, windowed=False),
    "pos_inventory": Staged(Newest.BY_CHANGE),
    "pos_sales": Staged(Newest.BY_CHANGE),
    "shopify_customers": Staged(Newest.BY_CHANGE),
    "shopify_inventory_levels": Staged(Newest.BY_CHANGE),
    "shopify_orders": Staged(Newest.BY_CHANGE),
    "shopify_products": Staged(Newest.BY_CHANGE),
    "web_clickstream": Staged(Newest.BY_CHANGE),
    "web_transactions": Staged(Newest.BY_CHANGE),
}
