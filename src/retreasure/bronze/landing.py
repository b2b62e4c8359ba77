"""Landing one entity's records in bronze: key, change time, PII tokens, hash, idempotent append.

A record is landed exactly as received (PII aside). One that cannot be keyed or dated is still landed, with
its reason in ``error``, and copied to ``quarantine.<table>``: nothing is dropped, nothing crashes a run.
Appends skip records whose hash the table already holds, so duplicate deliveries and re-runs add nothing.
A record over the size limit is quarantined whole: its raw text cut to its start, its size and SHA-256 in the
reason, so no single input can make masking or landing cost more than the limit allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from retreasure.bronze.batch import JsonBatchMasker
from retreasure.bronze.columns import batch_rows, bronze_columns, constant
from retreasure.bronze.pii import PiiMasker
from retreasure.bronze.record import change_time, first_reason, masked_raw, record_key, utf8_raw
from retreasure.connectors.base import Entity, RawRecord
from retreasure.connectors.files import LongLine, json_line
from retreasure.lake.bronze import BRONZE_SCHEMA, QUARANTINE_SCHEMA
from retreasure.lake.store import Lake, TableRef

# Records with no business date of their own land in one fixed partition, so that re-running on another day
# finds (and skips) them again instead of landing them twice.
UNDATED = date(1970, 1, 1)


def bronze_table(source: str, entity: Entity) -> TableRef:
    return TableRef("bronze", f"{source}_{entity.name}")


def quarantine_table(source: str, entity: Entity) -> TableRef:
    return TableRef("quarantine", f"{source}_{entity.name}")


@dataclass
class LandingStats:
    records: int = 0
    malformed: int = 0
    new_records: int = 0
    new_malformed: int = 0
    bytes: int = 0


# The columns of bronze that differ from row to row, buffered as lists for records added one by one (one Arrow
# array each costs a fraction of building the table from a dict per row) and as Arrow chunks for batches of lines.
ROW_COLUMNS = ("record_key", "record_updated_at", "raw", "record_hash", "error", "origin", "partition_date")
ROW_SCHEMA = pa.schema([BRONZE_SCHEMA.field(name) for name in ROW_COLUMNS])


@dataclass
class BronzeWriter:
    """Buffers one entity's records and lands them in one Delta commit per flush."""

    lake: Lake
    masker: PiiMasker
    source: str
    entity: Entity
    batch_id: str
    ingested_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    stats: LandingStats = field(default_factory=LandingStats)
    max_record_bytes: int = 4 << 20  # the ingest run passes settings.ingest.max_record_bytes
    max_line_bytes: int = 1 << 20  # the ingest run passes settings.ingest.max_line_bytes
    _columns: dict[str, list[Any]] = field(default_factory=lambda: {name: [] for name in ROW_COLUMNS})
    # Rows buffered before those in _columns, in order: a batch of lines lands as one chunk of columns.
    _chunks: list[pa.Table] = field(default_factory=list)
    _batch: JsonBatchMasker | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if JsonBatchMasker.serves(self.entity):
            self._batch = JsonBatchMasker(self.masker, self.entity, self.max_line_bytes, self.max_record_bytes)

    @property
    def pending(self) -> int:
        return sum(chunk.num_rows for chunk in self._chunks) + len(self._columns["raw"])

    def mark(self) -> tuple[int, LandingStats]:
        """Where the buffer stands: ``rollback`` to it forgets what was added since (a file refused midway)."""
        return self.pending, replace(self.stats)

    def rollback(self, mark: tuple[int, LandingStats]) -> None:
        self._seal()
        kept = pa.concat_tables(self._chunks).slice(0, mark[0]) if self._chunks else None
        self._chunks = [kept] if kept is not None and kept.num_rows else []
        self.stats = mark[1]

    def add_lines(self, lines: Sequence[bytes | LongLine], origin: str, day: date | None) -> None:
        """Add the records of lines of a JSON Lines file (``connectors.files.json_line_texts``), each as ``add``
        adds the record ``FileSource.read`` makes of it: the same row, byte for byte, and the same vault entries.
        Lines of the common shape (``bronze.batch``) are masked and serialised a batch at a time in C, the others
        one by one in their place; keys, change times and reasons are found over the batch (``bronze.columns``)."""
        if not lines:
            return
        values = [None if isinstance(line, LongLine) else line for line in lines]
        fast = self._batch.batch(values) if self._batch else [None] * len(lines)
        rows = batch_rows(self.masker, self.entity, lines, fast, self._read_line, self.max_record_bytes)
        raw, hashes, keys, times, errors = bronze_columns(self.entity, rows)
        count = len(lines)
        days = pc.coalesce(pc.cast(times, pa.date32()), pa.scalar(day or UNDATED, pa.date32()))
        chunk = dict(
            record_key=keys,
            record_updated_at=times,
            raw=raw,
            record_hash=hashes,
            error=errors,
            origin=constant(origin, count, pa.string()),
            partition_date=days,
        )
        self._seal()
        self._chunks.append(pa.table(chunk, schema=ROW_SCHEMA))
        self.stats.records += count
        self.stats.bytes += pc.sum(pc.utf8_length(raw)).as_py() or 0
        self.stats.malformed += count - errors.null_count

    def _read_line(self, line: bytes | LongLine) -> tuple[Any, str | None]:
        return json_line(line, self.max_line_bytes)

    def add(self, record: RawRecord) -> None:
        raw, too_big = masked_raw(self.masker, self.entity, record.payload, self.max_record_bytes)
        error = first_reason(too_big, record.error) if too_big else record.error
        self._append(record.payload, raw, error, record.key, record.updated_at, record.origin, record.partition_date)

    def _append(
        self,
        payload: Any,
        raw: str,
        error: str | None,
        key: str | None,
        updated_at: datetime | None,
        origin: str,
        partition_date: date | None,
    ) -> None:
        """Buffer the row of a record whose bronze text is ``raw``, keyed and dated from its ``payload``."""
        entity = self.entity
        raw, encoded, unencodable = utf8_raw(raw)
        if unencodable:  # quarantined whole: its key or time may hold the character no table can store either
            payload, error = raw, first_reason(unencodable, error)
        if isinstance(payload, dict):
            if key is None:
                key = record_key(payload, entity)
            if updated_at is None and entity.updated_at:
                updated_at, problem = change_time(payload, entity)
                error = error or problem
        if key is None and error is None:
            error = f"no business key at '{entity.key}'"
        day = updated_at.date() if updated_at else partition_date or UNDATED
        self.stats.records += 1
        self.stats.bytes += len(raw)
        self.stats.malformed += error is not None
        columns = self._columns
        columns["record_key"].append(key)
        columns["record_updated_at"].append(updated_at)
        columns["raw"].append(raw)
        columns["record_hash"].append(hashlib.sha256(encoded).hexdigest())
        columns["error"].append(error)
        columns["origin"].append(origin)
        columns["partition_date"].append(day)

    def _seal(self) -> None:
        """The rows buffered one by one become a chunk, so that what is added next comes after them."""
        if self._columns["raw"]:
            buffered, self._columns = self._columns, {name: [] for name in ROW_COLUMNS}
            arrays = [pa.array(buffered[name], kind) for name, kind in zip(ROW_COLUMNS, ROW_SCHEMA.types, strict=True)]
            self._chunks.append(pa.Table.from_arrays(arrays, schema=ROW_SCHEMA))

    def flush(self) -> None:
        if not self.pending:
            return
        self._seal()
        rows, self._chunks = pa.concat_tables(self._chunks), []
        count = rows.num_rows
        constant_values = {"source": self.source, "entity": self.entity.name, "batch_id": self.batch_id}
        constant_values |= {"ingested_at": self.ingested_at}
        table = pa.table(
            {
                name: rows.column(name) if name in ROW_COLUMNS else constant(constant_values[name], count, kind)
                for name, kind in zip(BRONZE_SCHEMA.names, BRONZE_SCHEMA.types, strict=True)
            },
            schema=BRONZE_SCHEMA,
        )
        self.stats.new_records += self.lake.insert_new(
            bronze_table(self.source, self.entity), table, ["record_hash"], partition_by="partition_date"
        )
        bad = pc.is_valid(table.column("error"))
        if pc.any(bad).as_py():
            rows = table.filter(bad)
            quarantined = (
                pa.table(
                    {
                        **{
                            k: rows.column(k)
                            for k in ("source", "entity", "record_key", "raw", "record_hash", "origin")
                        },
                        "rule": pa.repeat(pa.scalar("bronze.parseable"), rows.num_rows),
                        "reason": rows.column("error"),
                        "batch_id": rows.column("batch_id"),
                        "quarantined_at": rows.column("ingested_at"),
                    }
                )
                .select(QUARANTINE_SCHEMA.names)
                .cast(QUARANTINE_SCHEMA)
            )
            self.stats.new_malformed += self.lake.insert_new(
                quarantine_table(self.source, self.entity), quarantined, ["record_hash"]
            )
        # The vault is written after bronze: a crash in between leaves tokens whose clear values the re-run
        # (which sees the same records again) stores then.
        self.masker.flush_vault(self.lake, self.source)
