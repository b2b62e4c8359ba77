"""eBay Sell Fulfillment API: the orders eBay buyers placed with us, and the parcels we shipped for them.

Orders are read by change time (``lastmodifieddate``) so a refund or a shipment brings an old order back;
``fieldGroups=TAX_BREAKDOWN`` makes eBay count the tax it collects and remits in ``total``, as our books do.
The shipping fulfillments of each changed order come from its own endpoint; their payload names no order,
so the record key is ``<orderId>/<fulfillmentId>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from pydantic import SecretStr

from retreasure.connectors.base import Entity, RawRecord, Source, SourceError, Window
from retreasure.http.client import HttpClient
from retreasure.http.paging import follow_next, json_body
from retreasure.records.instants import parse_instant
from retreasure.records.pii import PiiSpec
from retreasure.settings import SourceSettings

if TYPE_CHECKING:
    from retreasure.settings import Settings

ORDERS = "/sell/fulfillment/v1/order"
# eBay refuses a filter range over two years (error 30830); shorter spans also keep offsets shallow.
MAX_SPAN = timedelta(days=90)

_CONTACT = {"fullName": "name", "email": "email", "primaryPhone.phoneNumber": "phone"}
_ADDRESS = {"addressLine1": "street", "addressLine2": "street"}
ORDER_PII = PiiSpec(
    {
        "buyer.username": "username",
        **{f"fulfillmentStartInstructions.shippingStep.shipTo.{k}": v for k, v in _CONTACT.items()},
        **{f"fulfillmentStartInstructions.shippingStep.shipTo.contactAddress.{k}": v for k, v in _ADDRESS.items()},
        **{f"fulfillmentStartInstructions.finalDestinationAddress.{k}": v for k, v in _ADDRESS.items()},
        # Sent only to some sellers; declared so that they are masked the day they appear.
        **{f"buyer.buyerRegistrationAddress.{k}": v for k, v in _CONTACT.items()},
        **{f"buyer.buyerRegistrationAddress.contactAddress.{k}": v for k, v in _ADDRESS.items()},
        **{f"buyer.taxAddress.{k}": v for k, v in _ADDRESS.items()},
        "lineItems.giftDetails.recipientEmail": "email",
        "lineItems.giftDetails.senderName": "name",
    }
)


def ebay_time(at: datetime) -> str:
    """A filter bound as eBay wants it: UTC, milliseconds, 'Z'. Truncation is exact for the inclusive end,
    and at most one millisecond early (a harmless re-read) for the start."""
    at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"


def spans(window: Window, span: timedelta = MAX_SPAN) -> Iterator[tuple[datetime, datetime]]:
    """The window cut into consecutive ranges no longer than ``span``."""
    start = window.start
    while start < window.end:
        end = min(window.end, start + span)
        yield start, end
        start = end


class EbaySettings(SourceSettings):
    """Where eBay's Sell Fulfillment API is and how to call it: RETREASURE_EBAY__<FIELD>."""

    base_url: str = "http://127.0.0.1:8702"
    access_token: SecretStr = SecretStr("")
    page_size: int = 200


class EbaySource(Source):
    """Orders and shipping fulfillments from eBay's Sell Fulfillment API, by change time."""

    name: ClassVar[str] = "ebay"
    system: ClassVar[str] = "eBay"
    sells = "online"
    incremental: ClassVar[bool] = True
    settings_model = EbaySettings
    config: EbaySettings  # this source's section of the settings
    entities: ClassVar[tuple[Entity, ...]] = (
        Entity(
            "orders",
            key="orderId",
            updated_at="lastModifiedDate",
            pii=ORDER_PII,
            description="eBay orders as getOrders returns them (TAX_BREAKDOWN), one version per change.",
        ),
        Entity(
            "shipping_fulfillments",
            key="fulfillmentId",  # the landed key is "<orderId>/<fulfillmentId>", set by the connector
            updated_at="shippedDate",
            description="Parcels shipped for eBay orders: carrier, tracking number, shipped date, line items.",
        ),
    )

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._client: HttpClient | None = None

    @property
    def client(self) -> HttpClient:
        """The shared HTTP client with the seller's OAuth token, opened on first use."""
        if self._client is None:
            token = self.config.access_token.get_secret_value()
            if not token:
                raise SourceError(self.name, "no access token (RETREASURE_EBAY__ACCESS_TOKEN)")
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            self._client = self.http(self.config.base_url, headers)
        return self._client

    def extract(self, entity: Entity, window: Window) -> Iterator[RawRecord]:
        """Records of one entity changed in the window, exactly as eBay sent them."""
        if entity.name == "orders":
            for url, orders in self._pages(window):
                for order in orders:
                    yield RawRecord(order, url)
        elif entity.name == "shipping_fulfillments":
            yield from self._fulfillments(window)
        else:
            raise SourceError(self.name, f"unknown entity {entity.name!r}")

    def _pages(self, window: Window) -> Iterator[tuple[str, list[Any]]]:
        for start, end in spans(window):
            params = {
                "filter": f"lastmodifieddate:[{ebay_time(start)}..{ebay_time(end)}]",
                "limit": self.config.page_size,
                "fieldGroups": "TAX_BREAKDOWN",
            }
            yield from follow_next(self.client, ORDERS, params, "orders")

    def _fulfillments(self, window: Window) -> Iterator[RawRecord]:
        # Orders change when they ship, so the orders changed in the window hold every new fulfillment.
        shipped: dict[str, None] = {}
        for _, orders in self._pages(window):
            for order in orders:
                if isinstance(order, dict) and order.get("fulfillmentHrefs") and isinstance(order.get("orderId"), str):
                    shipped[order["orderId"]] = None
        for order_id in shipped:
            path = f"{ORDERS}/{quote(order_id, safe='')}/shipping_fulfillment"
            response = self.client.get(path)
            body = json_body(self.client, response)
            for fulfillment in body.get("fulfillments") or []:
                yield self._fulfillment_record(order_id, fulfillment, str(response.request.url))

    def _fulfillment_record(self, order_id: str, payload: Any, origin: str) -> RawRecord:
        fulfillment_id = payload.get("fulfillmentId") if isinstance(payload, dict) else None
        shipped = payload.get("shippedDate") if isinstance(payload, dict) else None
        try:
            updated_at = parse_instant(shipped)
        except ValueError:
            updated_at = None  # landing then fails on shippedDate itself and quarantines the record
        return RawRecord(
            payload,
            origin,
            key=f"{order_id}/{fulfillment_id}" if fulfillment_id else None,
            updated_at=updated_at,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
