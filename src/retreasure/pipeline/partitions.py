"""Daily partitions for the models whose contract writes by partition, and the window a partition stands for."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from retreasure.contracts.model import Contract

DEFAULT_START = date(2025, 1, 1)


def is_partitioned(contract: Contract) -> bool:
    return contract.partitioned


def default_start() -> date:
    """The first partition: the day of the settings' first ingest window, else 2025-01-01."""
    from retreasure.records.instants import parse_instant
    from retreasure.settings import get_settings

    try:
        instant = parse_instant(get_settings().ingest.start)
    except Exception:  # a broken environment must not stop the definitions from loading
        return DEFAULT_START
    return instant.date() if instant else DEFAULT_START


def daily_partitions(start: date | str | None = None) -> dg.DailyPartitionsDefinition:
    first = date.fromisoformat(start) if isinstance(start, str) else (start or default_start())
    return dg.DailyPartitionsDefinition(start_date=first.isoformat(), timezone="UTC")


def partition_window(first: str, last: str | None = None) -> tuple[date, date]:
    """(start, end) to run a model for the days ``first``..``last`` (inclusive). The contract's lookback is
    not added here: the engine's runner applies it, once, to every window."""
    start, end = date.fromisoformat(first), date.fromisoformat(last or first)
    if end < start:
        raise ValueError(f"partition range {first}..{last} ends before it starts")
    return start, end


def days(first: date, last: date) -> list[str]:
    """Every partition key from ``first`` to ``last`` inclusive."""
    if last < first:
        raise ValueError(f"{last} is before {first}")
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
