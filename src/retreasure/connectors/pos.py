"""The stores' POS exports: hourly sales and stock-movement CSVs per store, read as the tills wrote them.

Rows land as {column: cell text}, so a till update that adds a column cannot shift the others; a row that
does not fit the header lands as its raw text, marked malformed. Column names land normalised (``Loyalty Phone``,
``loyalty_phone\x00`` are ``loyalty_phone``), and the tills' records carry PII: every column not declared safe
here is tokenised, so a column a till update adds or renames never lands in clear."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

from retreasure.connectors.base import Entity, FileSource, RawRecord
from retreasure.connectors.files import csv_rows, file_date, not_decimal, origin_of
from retreasure.records.pii import PiiSpec, column_name

SALES_AMOUNTS = ("quantity", "unit_price", "discount", "tax", "tax_rate")
INVENTORY_AMOUNTS = ("change", "on_hand_after")


def local_date(value: str | None) -> date | None:
    """The calendar date of a local ISO timestamp, as the store saw it."""
    try:
        return datetime.fromisoformat(value).date() if value else None
    except ValueError:
        return None


class PosSource(FileSource):
    """The tills of the Berlin, London and Brooklyn stores."""

    name = "pos"
    system = "Store POS exports (hourly CSV)"
    sells = "store"
    entities = (
        Entity(
            "sales",
            key="receipt_id",  # the landed key is "<receipt_id>/<line_no>/<type>", set by read()
            pii=PiiSpec(
                {"loyalty_email": "email", "loyalty_phone": "phone"},
                safe=frozenset(
                    {
                        *("type", "receipt_id", "line_no", "sold_at", "store_id", "sku", "title", "quantity"),
                        *("unit_price", "discount", "tax", "tax_rate", "currency", "discount_code", "payment_method"),
                    }
                ),
            ),
            description="Receipt lines: sales, and refunds as negative lines, in store-local time.",
            files="sales/*/*/*.csv",
        ),
        Entity(
            "inventory",
            key="movement_id",
            pii=PiiSpec(
                {},
                safe=frozenset(
                    {
                        *("movement_id", "at", "store_id", "sku", "change", "reason", "on_hand_after"),
                        *("receipt_id", "unit_cost"),
                    }
                ),
            ),
            description="Stock movements at a store: bought in, sold, restocked after a refund.",
            files="inventory/*/*/*.csv",
        ),
    )

    def read(self, entity: Entity, path: Path) -> Iterator[RawRecord]:
        origin = origin_of(self, path)
        sales = entity.name == "sales"
        folder_day = file_date(path.parent)  # pos/sales/<store>/<YYYY-MM-DD>/: where a broken row lands
        for row in csv_rows(path, self.settings.ingest.max_line_bytes, column_name):
            if row.cells is None:
                yield RawRecord(row.text.rstrip("\r\n"), origin, error=row.error, partition_date=folder_day)
                continue
            cells = row.cells
            error = row.error or not_decimal(cells, SALES_AMOUNTS if sales else INVENTORY_AMOUNTS)
            when = local_date(cells.get("sold_at" if sales else "at"))
            key: str | None = None
            if sales:
                parts = [cells.get("receipt_id"), cells.get("line_no"), cells.get("type")]
                if all(parts):
                    key = "/".join(parts)  # type: ignore[arg-type]
                else:
                    error = error or "no receipt_id, line_no or type"
            if when is None:
                error = error or "no readable local time"
            yield RawRecord(cells, origin, error=error, key=key, partition_date=when or folder_day)
