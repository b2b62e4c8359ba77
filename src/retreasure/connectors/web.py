"""The web shop's collector drops: Segment-spec clickstream messages and payment-gateway transactions,
one JSON object per line (JSON Lines), one file per day."""

from __future__ import annotations

from retreasure.connectors.base import Entity, FileSource
from retreasure.records.pii import PiiSpec


class WebSource(FileSource):
    """The web shop's event collector (Segment spec) and its payment gateway's transaction log."""

    name = "web"
    system = "Web shop clickstream collector and payment gateway (JSON Lines)"
    entities = (
        Entity(
            "clickstream",
            key="messageId",
            updated_at="timestamp",
            pii=PiiSpec({"context.ip": "ip", "context.traits.email": "email", "traits.email": "email"}),
            description="Segment page and track messages: page views, product views, carts, checkouts, orders.",
            files="clickstream/*.jsonl",
            json_lines=True,
        ),
        Entity(
            "transactions",
            key="transaction_id",
            updated_at="occurred_at",
            description="Payment gateway events per web order: authorized, captured, refunded.",
            files="transactions/*.jsonl",
            json_lines=True,
        ),
    )
