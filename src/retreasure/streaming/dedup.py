"""What the lake holds already, kept in memory while the stream lands so that no micro-batch pays an anti-join
against a whole table: a bronze table's record hashes, day partition by day partition (a producer's duplicate,
the same message produced again at another offset, lands once), and the PII vault's tokens.

Seeded from the tables, the sets are right across restarts. Another writer's commit (a file ingest) is noticed by
the table's version moving past the stream's own last commit: the sets are then read again.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import date

import numpy as np
import pyarrow as pa

from retreasure.bronze.pii import VAULT, PiiMasker
from retreasure.lake.store import Lake, TableRef


class SeenHashes:
    """The record hashes of one bronze table's day partitions, the most recently touched ``max_days`` of them."""

    def __init__(self, lake: Lake, table: TableRef, max_days: int = 14) -> None:
        self.lake = lake
        self.table = table
        self.max_days = max_days
        self.loads = 0  # day partitions read from the table: a figure for the ops log
        self._days: OrderedDict[int, set[str]] = OrderedDict()  # days since the epoch -> hashes
        self._version: int | None = None  # the table version the sets reflect
        # The day partitions the table holds at that version: a day it lacks is known empty without a query (a
        # stream catching up on days of events meets a new day in nearly every batch).
        self._present: set[int] = set()

    def _current(self) -> None:
        version = self.lake.version(self.table)
        if version != self._version:
            self._days.clear()
            self._version = version
            self._present = self._partitions() if version is not None else set()

    def _partitions(self) -> set[int]:
        found = self.lake.delta(self.table).partitions()
        return {date.fromisoformat(p["partition_date"]).toordinal() - _EPOCH for p in found if p.get("partition_date")}

    def _day(self, day: int) -> set[str]:
        hashes = self._days.get(day)
        if hashes is None:
            hashes = self._days[day] = self._read(day)
            self.loads += 1
            while len(self._days) > self.max_days:
                self._days.popitem(last=False)
        else:
            self._days.move_to_end(day)
        return hashes

    def _read(self, day: int) -> set[str]:
        if self._version is None or day not in self._present:
            return set()
        rows = self.lake.query(
            f"SELECT record_hash FROM {self.table} WHERE partition_date = $day",
            [self.table],
            {"day": date.fromordinal(day + _EPOCH)},
        )
        return set(rows.column("record_hash").to_pylist())

    def new(self, hashes: list[str], days: pa.Array) -> np.ndarray:
        """Per row, True when its record is in neither the table nor an earlier row of the batch."""
        self._current()
        first = first_occurrences(hashes)
        day_numbers = days.cast(pa.int32()).to_numpy(zero_copy_only=False)
        fresh = np.zeros(len(hashes), dtype=bool)
        for day in np.unique(day_numbers[first]):
            seen = self._day(int(day))
            rows = np.flatnonzero(first & (day_numbers == day))
            fresh[rows] = [hashes[row] not in seen for row in rows]
        return fresh

    def committed(self, hashes: list[str], days: pa.Array, version: int) -> None:
        """The rows just committed (the table now at ``version``): remembered without reading the table."""
        day_numbers = days.cast(pa.int32()).to_numpy(zero_copy_only=False)
        if version != (0 if self._version is None else self._version + 1):
            # Another writer committed in between: its rows are read with the day again.
            self._days.clear()
            self._version = version
            self._present = self._partitions()
            return
        for day in np.unique(day_numbers):
            known = self._days.get(int(day))
            if known is not None:
                known.update(hashes[row] for row in np.flatnonzero(day_numbers == day))
        self._present.update(int(day) for day in np.unique(day_numbers))
        self._version = version


class VaultTokens:
    """The tokens the PII vault holds: a masker's new clear values are stored without reading the vault again."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._tokens: set[str] = set()
        self._version: int | None = -1  # the vault version the set reflects (None: no vault yet; -1: unread)

    def flush(self, masker: PiiMasker, source: str) -> int:
        """Store the clear values ``masker`` saw since the last flush that the vault lacks; returns how many."""
        if not masker.pending:
            return 0
        version = self.lake.version(VAULT)
        if version != self._version:
            found = self.lake.query(f"SELECT token FROM {VAULT}", [VAULT]) if version is not None else None
            self._tokens = set(found.column("token").to_pylist()) if found is not None else set()
            self._version = version
        for token in [token for token in masker.pending if token in self._tokens]:
            del masker.pending[token]
        rows = masker.vault_rows(source)
        if rows.num_rows:
            self.lake.append(VAULT, rows)
            after = self.lake.version(VAULT)
            # Another writer's commit in between: its tokens are read with the vault next time.
            self._version = after if after == (0 if self._version is None else self._version + 1) else -1
            self._tokens.update(rows.column("token").to_pylist())
        return rows.num_rows


def first_occurrences(values: list[str]) -> np.ndarray:
    """Per row, True for the first row of each distinct value."""
    if not values:
        return np.zeros(0, dtype=bool)
    column = pa.array(values, pa.string())
    indices = pa.array(np.arange(len(values), dtype=np.int64))
    firsts = pa.table({"v": column, "i": indices}).group_by("v", use_threads=False).aggregate([("i", "min")])
    mask = np.zeros(len(values), dtype=bool)
    mask[firsts.column("i_min").to_numpy()] = True
    return mask


_EPOCH = date(1970, 1, 1).toordinal()
