"""Ad platforms' daily spend reports (Google Ads, Meta Ads), dropped as CSV under ``ads/<platform>/``.

Each platform names and orders its columns its own way; bronze keeps each row as the platform wrote it and
only finds the campaign and the day to key it. Silver maps the columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

from retreasure.connectors.base import Entity, FileSource, RawRecord
from retreasure.connectors.files import csv_rows, file_date, not_decimal, origin_of

CAMPAIGN_COLUMNS = ("campaign_id", "Campaign ID", "campaign.id")
DAY_COLUMNS = ("date", "date_start", "day", "Day", "segments.date")
NUMBERS = ("spend", "cost", "clicks", "impressions")


def first(cells: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((cells[n] for n in names if cells.get(n)), None)


class AdsSource(FileSource):
    """Daily spend per campaign from every ad platform that drops a report."""

    name = "ads"
    system = "Ad platforms (Google Ads, Meta Ads) spend reports"
    entities = (
        Entity(
            "spend",
            key="campaign_id",  # the landed key is "<platform>/<campaign_id>/<date>", set by read()
            description="One campaign's spend, clicks and impressions on one day, in the account currency.",
            files="*/spend_*.csv",
        ),
    )

    def read(self, entity: Entity, path: Path) -> Iterator[RawRecord]:
        origin = origin_of(self, path)
        platform = path.parent.name
        file_day = file_date(path)
        for row in csv_rows(path, self.settings.ingest.max_line_bytes):
            if row.cells is None:
                yield RawRecord(row.text.rstrip("\r\n"), origin, error=row.error, partition_date=file_day)
                continue
            error = row.error or not_decimal(row.cells, NUMBERS)
            campaign, day_text = first(row.cells, CAMPAIGN_COLUMNS), first(row.cells, DAY_COLUMNS)
            try:
                day = date.fromisoformat(day_text) if day_text else None
            except ValueError:
                day = None
            if campaign is None or day is None:
                yield RawRecord(
                    row.cells, origin, error=error or "no campaign id or no ISO date", partition_date=file_day
                )
                continue
            yield RawRecord(row.cells, origin, error=error, key=f"{platform}/{campaign}/{day_text}", partition_date=day)
