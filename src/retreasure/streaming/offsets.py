"""Where a stream's landing stands in each topic-partition: the last offset committed with the rows, kept in the
table's own Delta log as an application transaction (``txn`` action) per topic-partition.

The offsets live in the same commit as the rows they landed, so the table and its position can never disagree:
a process killed before a commit left neither, one killed after left both. On start and on every partition
assignment the consumer resumes from the table's offset (+1), never from the consumer group's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from retreasure.lake.store import Lake, TableRef

APP = "retreasure-stream"


def app_id(topic: str, partition: int) -> str:
    """The application id of one topic-partition's landing in a table's log."""
    return f"{APP}/{topic}/{partition}"


def stored_offset(lake: Lake, table: TableRef, topic: str, partition: int) -> int | None:
    """The last offset of ``topic``/``partition`` committed to ``table``; None when none ever was."""
    return lake.txn_version(table, app_id(topic, partition))


def stored_offsets(lake: Lake, table: TableRef, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """The last committed offset of each of ``partitions`` that has one."""
    if not lake.exists(table):
        return {}
    delta = lake.delta(table)
    found = {partition: delta.transaction_version(app_id(topic, partition)) for partition in set(partitions)}
    return {partition: offset for partition, offset in found.items() if offset is not None}


def transactions(topic: str, last_offsets: Mapping[int, int]) -> list[tuple[str, int]]:
    """The ``txn`` actions (app id, version) of a commit that landed up to ``last_offsets`` (partition -> offset)."""
    return [(app_id(topic, partition), offset) for partition, offset in sorted(last_offsets.items())]
