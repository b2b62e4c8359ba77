"""Etsy Open API v3: the shop's receipts (orders with transactions, shipments, refunds) and its listings.

Etsy pages by offset with a total, limits each API key per second and per day, and wants two credentials on
every call. The connector paces itself below the per-second limit, waits out an exhausted second when the
``x-remaining-this-second`` header says so, and stops at once when the daily quota is gone (Etsy then asks
for a retry in a day; no run should sleep that long).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from math import ceil
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from retreasure.connectors.base import Entity, RawRecord, Source, Window
from retreasure.http.client import HttpClient
from retreasure.http.paging import offset_count
from retreasure.records.pii import PiiSpec
from retreasure.settings import SourceSettings

if TYPE_CHECKING:  # responses are only annotated here; the client imports httpx when it is made
    import httpx

    from retreasure.settings import Settings

API = "/v3/application"
EARLIEST = 946_684_800  # Etsy refuses time filters before 2000-01-01
# Headroom on the per-second limit: any `limit` consecutive requests span this many seconds.
PACING_SPAN_S = 1.1
# Listing states read on each run. Etsy has no "changed since" filter for listings, so every run reads
# them all and landing keeps only the records whose content changed.
LISTING_STATES = ("active", "sold_out", "inactive")

RECEIPT_PII = PiiSpec(
    {
        "buyer_email": "email",
        "payment_email": "email",
        "name": "name",
        "first_line": "street",
        "second_line": "street",
        "formatted_address": "street",
        "message_from_buyer": "text",
        "message_from_seller": "text",
        "gift_message": "text",
        "refunds.note_from_issuer": "text",
    }
)


class EtsySettings(SourceSettings):
    """Where Etsy's Open API is, the shop and how to call it: RETREASURE_ETSY__<FIELD>."""

    base_url: str = "http://127.0.0.1:8703"
    api_key: SecretStr = SecretStr("")
    access_token: SecretStr = SecretStr("")
    shop_id: int = 1
    page_size: int = 100
    # Etsy's default for new apps; the client paces itself below it in steady state.
    requests_per_second: float = 10.0


class EtsySource(Source):
    """The Etsy shop: receipts changed in a window, and the shop's listings."""

    name = "etsy"
    system = "Etsy"
    sells = "online"
    incremental = True
    settings_model = EtsySettings
    config: EtsySettings  # this source's section of the settings
    entities = (
        Entity(
            "receipts",
            key="receipt_id",
            updated_at="updated_timestamp",
            pii=RECEIPT_PII,
            description="Etsy orders: totals as Money, transactions (lines), shipments and refunds.",
        ),
        Entity(
            "listings",
            key="listing_id",
            updated_at="updated_timestamp",
            description="What the shop offers on Etsy: state, quantity and price (shop currency).",
        ),
    )

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._client: HttpClient | None = None

    def client(self) -> HttpClient:
        if self._client is None:
            etsy = self.config
            headers = {
                "x-api-key": etsy.api_key.get_secret_value(),
                "Authorization": f"Bearer {etsy.access_token.get_secret_value()}",
                "Accept": "application/json",
            }
            self._client = self.http(
                etsy.base_url,
                headers,
                per_second=steady_rate(etsy.requests_per_second),
                after_response=wait_when_second_spent,
            )
        return self._client

    def extract(self, entity: Entity, window: Window) -> Iterator[RawRecord]:
        """Records as received. Receipts by last change inside the window, oldest first; listings all."""
        shop = f"{API}/shops/{self.config.shop_id}"
        if entity.name == "receipts":
            params = {
                # Etsy's bounds are inclusive whole seconds; the window is half-open.
                "min_last_modified": max(EARLIEST, ceil(window.start.timestamp())),
                "max_last_modified": max(EARLIEST, ceil(window.end.timestamp()) - 1),
                "sort_on": "updated",
                "sort_order": "asc",
            }
            yield from self._pages(f"{shop}/receipts", params)
        elif entity.name == "listings":
            for state in LISTING_STATES:
                yield from self._pages(f"{shop}/listings", {"state": state, "sort_on": "created", "sort_order": "asc"})
        else:
            raise ValueError(f"etsy has no entity {entity.name!r}")

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[RawRecord]:
        # A spent daily quota (retry-after: 86400) raises QuotaExhausted in the shared client: the run stops.
        for url, items in offset_count(self.client(), path, params, self.config.page_size):
            for item in items:
                yield RawRecord(item, origin=url)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def steady_rate(limit: float) -> float:
    """Requests per second to send so that a rolling one-second window never holds more than ``limit``.

    The window holds ``limit`` requests when ``limit - 1`` gaps fit into one second, and network jitter can
    shorten a gap, so ``limit - 1`` gaps are stretched over ``PACING_SPAN_S`` seconds.
    """
    return (limit - 1) / PACING_SPAN_S if limit >= 2 else limit / 2


def wait_when_second_spent(response: httpx.Response) -> float:
    """When Etsy says this second's budget is spent, wait for the window to pass; returns the wait."""
    remaining = response.headers.get("x-remaining-this-second")
    if remaining is not None and remaining.strip().isdigit() and int(remaining) <= 0:
        time.sleep(1.0)
        return 1.0
    return 0.0
