"""The fake Shopify's nodes: orders, refunds and money as the Admin GraphQL API shapes them, and the wire faults."""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from retreasure_sim.model import BASE_CURRENCY, Customer, Order, OrderLine, Product, Refund, Truth, money
from retreasure_sim.timeline import OrderState

CHANNEL = "shopify"
LOCATION_ID = 1
LOCATION_GID = f"gid://shopify/Location/{LOCATION_ID}"
SHOP_GID = "gid://shopify/Shop/1"

INVENTORY_ITEM_OFFSET = 100_000_000_000_000
DRIFT_FIELD = "channelInformationV2"  # not in Shopify's schema: what a newer API version might add


# -- shapes --------------------------------------------------------------------------------------


def gid(kind: str, number: int | str) -> str:
    """Shopify's global id of a resource, as GraphQL names it."""
    return f"gid://shopify/{kind}/{number}"


def iso(at: datetime | None) -> str | None:
    """A GraphQL ``DateTime``: UTC, whole seconds, ``Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else None


def amount(value: Decimal, currency: str) -> str:
    """A money amount as Shopify writes it: a decimal string in the currency's minor unit ("23600" for yen)."""
    return format(money(value, currency), "f")


class FxTable:
    """The truth's ECB reference rates, looked up for a day or the last business day before it."""

    def __init__(self, truth: Truth) -> None:
        by_day: dict[date, dict[str, Decimal]] = defaultdict(dict)
        for fx in truth["fx_rates"]:
            by_day[fx.date][fx.currency] = fx.rate
        self.days = sorted(by_day)
        self.rates = by_day

    def rate(self, currency: str, day: date) -> Decimal:
        """Units of ``currency`` per euro on ``day``."""
        if currency == BASE_CURRENCY:
            return Decimal(1)
        if not self.days:
            raise ValueError(f"no FX rates in the truth to convert {currency}")
        i = bisect.bisect_right(self.days, day) - 1
        return self.rates[self.days[max(i, 0)]][currency]


def shop_amount(value: Decimal, currency: str, rate: Decimal) -> Decimal:
    """An amount in the shop's currency (EUR), converted at ``rate`` units per euro."""
    return money(value if currency == BASE_CURRENCY else value / rate, BASE_CURRENCY)


def money_set(value: Decimal, currency: str, rate: Decimal) -> dict[str, Any]:
    """A ``MoneyBag``: the shop's EUR beside what the buyer saw."""
    return {
        "shopMoney": {
            "amount": amount(shop_amount(value, currency, rate), BASE_CURRENCY),
            "currencyCode": BASE_CURRENCY,
        },
        "presentmentMoney": {"amount": amount(value, currency), "currencyCode": currency},
    }


def tax_title(country: str, region: str) -> str:
    """The name a tax line carries in the buyer's jurisdiction."""
    return f"{region} State Tax" if country == "US" else {"JP": "Consumption Tax"}.get(country, "VAT")


def mailing_address(c: Customer) -> dict[str, Any]:
    """A customer's address as a ``MailingAddress`` (shipping, billing and default address alike)."""
    return {
        "firstName": c.first_name,
        "lastName": c.last_name,
        "name": f"{c.first_name} {c.last_name}",
        "address1": c.street,
        "address2": None,
        "city": c.city,
        "provinceCode": c.region or None,
        "zip": c.postal_code,
        "countryCode": c.country,
        "countryCodeV2": c.country,
        "phone": c.phone,
    }


def order_number(order: Order) -> int:
    """The shop's running order number, shown as the order's name ("#1001")."""
    return 1000 + int(order.channel_order_id) % 1_000_000_000


def order_node(state: OrderState, customer: Customer, products: dict[str, Product], rate: Decimal) -> dict[str, Any]:
    """An order as the Admin API shows it at the state's moment."""
    o = state.order
    cur = o.currency

    def ms(value: Decimal) -> dict[str, Any]:
        return money_set(value, cur, rate)

    def tax_lines(rate_: Decimal, price: Decimal) -> list[dict[str, Any]]:
        if not rate_:
            return []
        return [
            {
                "title": tax_title(o.tax_country, o.tax_region),
                "rate": float(rate_),
                "ratePercentage": float(rate_ * 100),
                "priceSet": ms(price),
                "channelLiable": o.tax_party == "marketplace",
            }
        ]

    lines = {line.line_no: line for line in o.lines}
    refunded_qty: dict[int, int] = defaultdict(int)
    for r in state.refunds:
        refunded_qty[r.line_no] += r.quantity
    refunded = sum((r.amount + r.tax for r in state.refunds), Decimal(0))
    rate_of_lines = o.lines[0].tax_rate if o.lines else Decimal(0)
    financial = "PAID" if not state.refunds else ("REFUNDED" if refunded >= o.total else "PARTIALLY_REFUNDED")

    def line_node(line: OrderLine) -> dict[str, Any]:
        p = products[line.product_id]
        gross = line.unit_price * line.quantity
        return {
            "id": gid("LineItem", line.line_id),
            "name": p.title,
            "title": p.title,
            "sku": line.sku,
            "quantity": line.quantity,
            "currentQuantity": line.quantity - refunded_qty[line.line_no],
            "product": {"id": gid("Product", p.shopify_product_id)},
            "variant": {"id": gid("ProductVariant", p.shopify_variant_id)},
            "originalUnitPriceSet": ms(line.unit_price),
            "originalTotalSet": ms(gross),
            "discountedTotalSet": ms(gross - line.discount),
            "totalDiscountSet": ms(line.discount),
            "discountAllocations": [{"allocatedAmountSet": ms(line.discount)}] if line.discount else [],
            "taxLines": tax_lines(line.tax_rate, line.tax),
            "requiresShipping": True,
            "taxable": bool(line.tax_rate),
        }

    def refund_node(r: Refund) -> dict[str, Any]:
        line = lines[r.line_no]
        return {
            "id": gid("Refund", r.channel_refund_id),
            "createdAt": iso(r.created_at),
            "updatedAt": iso(r.created_at),
            "note": None,
            "totalRefundedSet": ms(r.amount + r.tax),
            "refundLineItems": {
                "nodes": [
                    {
                        "lineItem": {"id": gid("LineItem", line.line_id), "sku": line.sku},
                        "quantity": r.quantity,
                        "restockType": "RETURN" if r.restocked else "NO_RESTOCK",
                        "restocked": r.restocked,
                        "priceSet": ms(line.unit_price),
                        "subtotalSet": ms(r.amount),
                        "totalTaxSet": ms(r.tax),
                    }
                ]
            },
        }

    fulfillments = [
        {
            "id": gid("Fulfillment", f.channel_fulfillment_id),
            "status": "SUCCESS",
            "displayStatus": "DELIVERED" if f.fulfillment_id in state.delivered else "IN_TRANSIT",
            "createdAt": iso(f.shipped_at),
            "updatedAt": iso(state.delivered.get(f.fulfillment_id, f.shipped_at)),
            "inTransitAt": iso(f.shipped_at),
            "deliveredAt": iso(state.delivered.get(f.fulfillment_id)),
            "totalQuantity": sum(line.quantity for line in o.lines),
            "trackingInfo": [{"company": f.carrier, "number": f.tracking_number, "url": None}],
        }
        for f in state.fulfillments
    ]
    custom = [("session_id", o.session_id), ("utm_campaign", o.campaign)]
    return {
        "id": gid("Order", o.channel_order_id),
        "legacyResourceId": o.channel_order_id,
        "name": f"#{order_number(o)}",
        "createdAt": iso(o.created_at),
        "updatedAt": iso(state.updated_at),
        "processedAt": iso(o.created_at),
        "cancelledAt": None,
        "closed": False,
        "test": False,
        "email": customer.email,
        "phone": customer.phone,
        "sourceName": "web",
        "currencyCode": BASE_CURRENCY,
        "presentmentCurrencyCode": cur,
        "taxesIncluded": False,
        "displayFinancialStatus": financial,
        "displayFulfillmentStatus": "FULFILLED" if state.fulfillments else "UNFULFILLED",
        "discountCodes": [o.discount_code] if o.discount_code else [],
        "customAttributes": [{"key": k, "value": v} for k, v in custom if v is not None],
        "tags": [],
        "note": None,
        "paymentGatewayNames": ["shopify_payments"],
        "subtotalPriceSet": ms(o.subtotal - o.discount),
        "totalDiscountsSet": ms(o.discount),
        "totalShippingPriceSet": ms(o.shipping),
        "totalTaxSet": ms(o.tax),
        "totalPriceSet": ms(o.total),
        "totalRefundedSet": ms(refunded),
        "currentTotalPriceSet": ms(o.total - refunded),
        "taxLines": tax_lines(rate_of_lines, o.tax),
        "customer": {
            "id": gid("Customer", customer.shopify_customer_id),
            "email": customer.email,
            "firstName": customer.first_name,
            "lastName": customer.last_name,
            "phone": customer.phone,
        },
        "shippingAddress": mailing_address(customer),
        "billingAddress": mailing_address(customer),
        "shippingLine": {
            "title": "Standard",
            "code": "standard",
            "source": "shopify",
            "originalPriceSet": ms(o.shipping),
            "discountedPriceSet": ms(o.shipping),
            "taxLines": tax_lines(rate_of_lines, o.shipping_tax) if o.shipping_tax else [],
        },
        "lineItems": {"nodes": [line_node(line) for line in o.lines]},
        "fulfillments": fulfillments,
        # The dispatch promise lives on the order's fulfillment order, not the order: one per order here,
        # as the shop has one location. Its id reuses the order's number (ids are unique per resource type).
        "fulfillmentOrders": {
            "nodes": [
                {
                    "id": gid("FulfillmentOrder", o.channel_order_id),
                    "status": "CLOSED" if state.fulfillments else "OPEN",
                    "fulfillBy": iso(o.ship_by),
                }
            ]
        },
        "refunds": [refund_node(r) for r in state.refunds],
    }


def faulty(node: dict[str, Any], copy: str, order: Order) -> dict[str, Any]:
    """The node as a wire fault changes it: the broken extra copy, or the drifted shape."""
    if copy == "malformed":
        broken = dict(node)
        if int(order.channel_order_id) % 2:
            broken["updatedAt"] = "not-a-date"
        else:
            del broken["id"]
        return broken
    if copy == "drift":
        drifted = {k: v for k, v in node.items() if k != "phone"}
        drifted[DRIFT_FIELD] = {"channelId": "gid://shopify/Channel/1", "displayName": "Online Store"}
        return drifted
    return node


def inventory_item_id(p: Product) -> int:
    """The inventory item behind a product's one variant."""
    return p.shopify_variant_id + INVENTORY_ITEM_OFFSET
