"""The web shop's event files: Segment-spec clickstream messages and payment-gateway transactions, one JSON
object per line, one file per UTC day."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from retreasure_sim.files.drop import Doc, Dropper, amount, days, spoil_json, utc_text
from retreasure_sim.model import Payment, Session, Truth, WebEvent

SITE = "https://shop.retreasure.example"
PAGES = (
    ("/", "ReTreasure | Vintage and antiques"),
    ("/collections/new-in", "New in | ReTreasure"),
    ("/collections/furniture", "Furniture | ReTreasure"),
    ("/collections/lighting", "Lighting | ReTreasure"),
    ("/collections/ceramics", "Ceramics | ReTreasure"),
    ("/pages/about", "About us | ReTreasure"),
    ("/search", "Search | ReTreasure"),
)
TRACKED = {
    "product_viewed": "Product Viewed",
    "product_added": "Product Added",
    "checkout_started": "Checkout Started",
    "order_completed": "Order Completed",
}
WEBKIT = "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
AGENTS = {
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    "mobile": f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) {WEBKIT}",
    "tablet": f"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) {WEBKIT}",
}
# Schema drift: the field a newer collector or gateway release adds to every message it sends.
CLICKSTREAM_EXTRA = {"channel": "browser"}
TRANSACTIONS_EXTRA = {"gateway": "stripe"}
REFERRERS = {
    "google": "https://www.google.com/",
    "facebook": "https://www.facebook.com/",
    "instagram": "https://www.instagram.com/",
}


def _n(text: str) -> int:
    """A stable number per id: the same event always gets the same page, delay and address."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def json_text(message: dict[str, Any]) -> str:
    """A message as the collector and the gateway serialise it: compact JSON, UTF-8 text unescaped."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def jsonl(objects: Iterable[dict[str, Any]]) -> Doc:
    records = [json_text(o) for o in objects]
    return Doc("", records, "\n" if records else "", "\n")


class Clickstream:
    """Turns truth web events into Segment messages; expects each session's events in order, one session
    after the other (as the truth keeps them), to carry the previous page as the referrer."""

    def __init__(self, truth: Truth) -> None:
        self.sessions = {s.session_id: s for s in truth["sessions"]}
        self.products = {p.product_id: p for p in truth["products"]}
        self.customers = {c.customer_id: c for c in truth["customers"]}
        self.orders = {o.order_id: o for o in truth["orders"]}
        self.session: str | None = None
        self.url = ""

    def page(self, event: WebEvent, n: int) -> tuple[str, str]:
        if event.name == "page_view":
            return PAGES[n % len(PAGES)]
        if event.product_id in self.products:
            product = self.products[event.product_id]
            return f"/products/{product.sku.lower()}", f"{product.title} | ReTreasure"
        if event.name == "order_completed":
            return "/checkout/thank-you", "Thank you | ReTreasure"
        return "/checkout", "Checkout | ReTreasure"

    def message(self, event: WebEvent, session: Session) -> dict[str, Any]:
        n = _n(event.event_id)
        first = self.session != session.session_id
        path, title = self.page(event, n)
        utm = {"source": session.utm_source, "medium": session.utm_medium, "name": session.utm_campaign}
        query = ""
        if first and session.utm_source:
            query = "?" + urlencode({f"utm_{k if k != 'name' else 'campaign'}": v for k, v in utm.items() if v})
        url = SITE + path + query
        referrer = REFERRERS.get(session.utm_source or "", "") if first else self.url
        self.session, self.url = session.session_id, url
        visitor = _n(session.anonymous_id)
        # The device clock is off by up to 30 s and sends a moment later; the collector corrects the skew.
        original = event.at + timedelta(seconds=visitor % 61 - 30)
        delay = timedelta(milliseconds=150 + n % 2000)
        context: dict[str, Any] = {
            "page": {"url": url, "path": path, "referrer": referrer, "title": title},
            "userAgent": AGENTS.get(session.device, AGENTS["desktop"]),
            "ip": _address(visitor, session.device),
        }
        if session.utm_source:
            context["campaign"] = {k: v for k, v in utm.items() if v}
        customer = self.customers.get(session.customer_id or "")
        if customer:
            context["traits"] = {"email": customer.email}
        message: dict[str, Any] = {"type": "page" if event.name == "page_view" else "track"}
        message["messageId"] = event.event_id
        message["anonymousId"] = session.anonymous_id
        if customer:
            message["userId"] = str(customer.shopify_customer_id)
        if event.name == "page_view":
            message["name"] = title
            properties: dict[str, Any] = {"path": path, "url": url, "title": title, "referrer": referrer}
        else:
            message["event"] = TRACKED.get(event.name, event.name)
            properties = self.properties(event)
        message["properties"] = {**properties, "session_id": session.session_id}
        message["context"] = context
        message["timestamp"] = utc_text(event.at)
        message["originalTimestamp"] = utc_text(original)
        message["sentAt"] = utc_text(original + delay)
        message["receivedAt"] = utc_text(event.at + delay)
        return message

    def properties(self, event: WebEvent) -> dict[str, Any]:
        product = self.products.get(event.product_id or "")
        if product:
            found = {"product_id": str(product.shopify_product_id), "sku": product.sku, "name": product.title}
            return {**found, "price": amount(product.list_price, "EUR"), "currency": "EUR", "quantity": 1}
        order = self.orders.get(event.order_id or "")
        if not order:
            return {}
        cur = order.currency
        products = {p.product_id: p for p in (self.products.get(line.product_id) for line in order.lines) if p}
        return {
            "order_id": order.channel_order_id,
            "total": amount(order.total, cur),
            "revenue": amount(order.subtotal - order.discount, cur),
            "tax": amount(order.tax, cur),
            "shipping": amount(order.shipping, cur),
            "discount": amount(order.discount, cur),
            **({"coupon": order.discount_code} if order.discount_code else {}),
            "currency": cur,
            "products": [
                {
                    "product_id": str(products[line.product_id].shopify_product_id)
                    if line.product_id in products
                    else line.product_id,
                    "sku": line.sku,
                    "price": amount(line.unit_price, cur),
                    "quantity": line.quantity,
                }
                for line in order.lines
            ],
        }


def _address(visitor: int, device: str) -> str:
    """A visitor's IP, from the documentation ranges (RFC 5737 / RFC 3849) so no real address is named."""
    if device == "mobile":
        return f"2001:db8:{visitor >> 48 & 0xFFFF:x}:{visitor >> 32 & 0xFFFF:x}::{visitor & 0xFFFF:x}"
    prefix = ("192.0.2", "198.51.100", "203.0.113")[visitor % 3]
    return f"{prefix}.{visitor >> 8 & 0xFF or 1}"


def clickstream_messages(truth: Truth) -> Iterator[tuple[WebEvent, Session, dict[str, Any]]]:
    """Every web event with its session and its Segment message, session after session as the truth keeps them
    (one day's sessions after the previous day's)."""
    stream = Clickstream(truth)
    for event in truth["web_events"]:
        session = stream.sessions[event.session_id]
        yield event, session, stream.message(event, session)


def transaction_messages(truth: Truth) -> Iterator[tuple[Payment, dict[str, Any]]]:
    """Every payment event with the gateway's record of it, in time order."""
    orders = {o.order_id: o for o in truth["orders"]}
    for p in sorted(truth["payments"], key=lambda p: (p.at, p.transaction_id)):
        order = orders.get(p.order_id)
        yield (
            p,
            {
                "transaction_id": p.transaction_id,
                "order_id": order.channel_order_id if order else p.order_id,
                "status": p.status,
                "amount": amount(p.amount, p.currency),
                "currency": p.currency,
                "occurred_at": utc_text(p.at),
            },
        )


def render(truth: Truth, dropper: Dropper) -> None:
    """Write a clickstream file and a transactions file for every day (and any day events spill into)."""
    pending: dict[date, list[dict[str, Any]]] = defaultdict(list)
    written: set[date] = set()

    def flush(day: date) -> None:
        messages = sorted(pending.pop(day, []), key=lambda m: (m["timestamp"], m["messageId"]))
        written.add(day)

        relative = f"web/clickstream/{day.isoformat()}.jsonl"
        drift = dropper.drifts(relative)
        doc = jsonl({**m, **CLICKSTREAM_EXTRA} if drift else m for m in messages)
        dropper.drop("web", "clickstream", relative, doc, spoil_json)

    # Sessions come day by day: once a later day's sessions start, earlier days' files are complete.
    started: date | None = None
    for event, session, message in clickstream_messages(truth):
        if session.started_at.date() != started:
            started = session.started_at.date()
            for day in sorted(d for d in pending if d < started):
                flush(day)
        pending[event.at.date()].append(message)
    for day in sorted(set(pending) | (set(days(truth.start, truth.end)) - written)):
        flush(day)

    payments: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for payment, record in transaction_messages(truth):
        payments[payment.at.date()].append(record)
    for day in sorted(set(payments) | set(days(truth.start, truth.end))):
        relative = f"web/transactions/{day.isoformat()}.jsonl"
        drift = dropper.drifts(relative)
        doc = jsonl({**r, **TRANSACTIONS_EXTRA} if drift else r for r in payments.get(day, []))
        dropper.drop("web", "transactions", relative, doc, spoil_json)


def expected(truth: Truth, as_of: datetime | None = None) -> dict[str, int]:
    """Distinct events and payment transactions up to ``as_of``."""
    events = {e.event_id for e in truth["web_events"] if as_of is None or e.at <= as_of}
    payments = {p.transaction_id for p in truth["payments"] if as_of is None or p.at <= as_of}
    return {"web_clickstream": len(events), "web_transactions": len(payments)}
