"""The web shop's collector drops: Segment-spec clickstream messages and payment-gateway transactions,
one JSON object per line (JSON Lines), one file per day."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from retreasure.connectors.base import Entity, FileSource, RawRecord
from retreasure.connectors.files import file_date, json_lines, origin_of
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
        ),
        Entity(
            "transactions",
            key="transaction_id",
            updated_at="occurred_at",
            description="Payment gateway events per web order: authorized, captured, refunded.",
            files="transactions/*.jsonl",
        ),
    )

    def read(self, entity: Entity, path: Path) -> Iterator[RawRecord]:
        origin = origin_of(self, path)
        day = file_date(path)  # where a line without a readable time lands
        for payload, error in json_lines(path, self.settings.ingest.max_line_bytes):
            yield RawRecord(payload, origin, error=error, partition_date=day)
