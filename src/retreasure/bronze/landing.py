"""Landing one entity's records in bronze: key, change time, PII tokens, hash, idempotent append.

A record is landed exactly as received (PII aside). One that cannot be keyed or dated is still landed, with
its reason in ``error``, and copied to ``quarantine.<table>``: nothing is dropped, nothing crashes a run.
Appends skip records whose hash the table already holds, so duplicate deliveries and re-runs add nothing.
A record over the size limit is quarantined whole: its raw text cut to its start, its size and SHA-256 in the
reason, so no single input can make masking or landing cost more than the limit allows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from retreasure.bronze.batch import JsonBatchMasker
from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity, RawRecord
from retreasure.connectors.files import LongLine, json_line
from retreasure.lake.bronze import BRONZE_SCHEMA, QUARANTINE_SCHEMA
from retreasure.lake.store import Lake, TableRef
from retreasure.records.instants import parse_instant
from retreasure.records.paths import dig
from retreasure.records.sizes import KEPT_CHARS, oversized

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


# The columns of bronze that differ from row to row, buffered as lists: one Arrow array each at a flush costs a
# fraction of building the table from a dict per row.
ROW_COLUMNS = ("record_key", "record_updated_at", "raw", "record_hash", "error", "origin", "partition_date")


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
    _batch: JsonBatchMasker | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if JsonBatchMasker.serves(self.entity):
            self._batch = JsonBatchMasker(self.masker, self.entity, self.max_line_bytes, self.max_record_bytes)

    @property
    def pending(self) -> int:
        return len(self._columns["raw"])

    def mark(self) -> tuple[int, LandingStats]:
        """Where the buffer stands: ``rollback`` to it forgets what was added since (a file refused midway)."""
        return self.pending, replace(self.stats)

    def rollback(self, mark: tuple[int, LandingStats]) -> None:
        for values in self._columns.values():
            del values[mark[0] :]
        self.stats = mark[1]

    def add_lines(self, lines: Sequence[bytes | LongLine], origin: str, day: date | None) -> None:
        """Add the records of lines of a JSON Lines file (``connectors.files.json_line_texts``), each as ``add``
        adds the record ``FileSource.read`` makes of it: the same row, byte for byte, and the same vault entries.
        Lines of the common shape (``bronze.batch``) are masked and serialised a batch at a time in C; the others
        one by one, in their place."""
        fast = self._batch.texts([None if isinstance(v, LongLine) else v for v in lines]) if self._batch else None
        for row, line in enumerate(lines):
            done = fast[row] if fast else None
            if done is None:
                payload, error = json_line(line, self.max_line_bytes)
                self.add(RawRecord(payload, origin, error=error, partition_date=day))
                continue
            payload, text, tokens = done
            if tokens:
                self.masker.remember(tokens)
            self._append(payload, text.decode(), None, None, None, origin, day)

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

    def flush(self) -> None:
        if not self.pending:
            return
        buffered, self._columns = self._columns, {name: [] for name in ROW_COLUMNS}
        count = len(buffered["raw"])
        constant = {"source": self.source, "entity": self.entity.name, "batch_id": self.batch_id}
        constant |= {"ingested_at": self.ingested_at}
        table = pa.table(
            {
                name: pa.array(buffered[name], kind)
                if name in buffered
                else pa.repeat(pa.scalar(constant[name], kind), count)
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


LONE_SURROGATE = "malformed: a lone surrogate escape in JSON"


def masked_raw(masker: PiiMasker, entity: Entity, payload: Any, max_record_bytes: int) -> tuple[str, str | None]:
    """The text bronze keeps of a record, PII tokenised (compact JSON of an object or list, else the text), and
    the quarantine reason when it is over ``max_record_bytes`` (its text then cut to its start), else None."""
    if isinstance(payload, dict | list):
        raw = json.dumps(masker.mask(payload, entity.pii), separators=(",", ":"), ensure_ascii=False)
        if too_big := _oversized(raw, max_record_bytes):
            return raw[:KEPT_CHARS] + "...", too_big
        return raw, None
    if too_big := _oversized(text := str(payload), max_record_bytes):
        # Only the kept start is masked: masking the whole would be the unbounded work the limit prevents.
        return masker.mask_text(text[:KEPT_CHARS]) + "...", too_big
    return masker.mask_text(text), None


def utf8_raw(raw: str) -> tuple[str, bytes, str | None]:
    """A record's bronze text, its UTF-8 bytes, and None; or, for a text holding a lone surrogate (a JSON
    ``\\ud800`` escape: no UTF-8 text can hold it), the text with it replaced, its bytes and the reason."""
    try:
        return raw, raw.encode(), None
    except UnicodeEncodeError:
        encoded = raw.encode("utf-8", "replace")
        return encoded.decode(), encoded, LONE_SURROGATE


def _oversized(text: str, limit: int) -> str | None:
    """The quarantine reason of a record's text over the limit, or None (a character is 1-4 bytes: most texts are
    judged by their length without being encoded)."""
    if len(text) <= limit // 4 or len(encoded := text.encode()) <= limit:
        return None
    return oversized("record", len(encoded), hashlib.sha256(encoded).hexdigest(), limit)


def record_key(payload: dict[str, Any], entity: Entity) -> str | None:
    """The business key at the entity's declared path, as text; None when missing or empty."""
    found = dig(payload, entity.key)
    return None if found is None or found == "" else str(found)


def change_time(payload: dict[str, Any], entity: Entity) -> tuple[datetime | None, str | None]:
    """The change time at the entity's declared path, or None and why (missing, or it does not parse)."""
    assert entity.updated_at
    try:
        updated_at = parse_instant(dig(payload, entity.updated_at))
    except (ValueError, OverflowError, OSError) as exc:
        return None, f"change time at '{entity.updated_at}' does not parse: {exc}"
    return updated_at, None if updated_at else f"no change time at '{entity.updated_at}'"


def first_reason(reason: str, other: str | None) -> str:
    """A record's reasons to be quarantined, ``reason`` first."""
    return f"{reason}; {other}" if other else reason
