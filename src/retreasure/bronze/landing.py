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
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity, RawRecord
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
    _rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return len(self._rows)

    def mark(self) -> tuple[int, LandingStats]:
        """Where the buffer stands: ``rollback`` to it forgets what was added since (a file refused midway)."""
        return len(self._rows), replace(self.stats)

    def rollback(self, mark: tuple[int, LandingStats]) -> None:
        del self._rows[mark[0] :]
        self.stats = mark[1]

    def add(self, record: RawRecord) -> None:
        entity = self.entity
        payload = record.payload
        key = record.key
        updated_at = record.updated_at
        raw, too_big = masked_raw(self.masker, entity, payload, self.max_record_bytes)
        error = first_reason(too_big, record.error) if too_big else record.error
        if isinstance(payload, dict):
            if key is None:
                key = record_key(payload, entity)
            if updated_at is None and entity.updated_at:
                updated_at, problem = change_time(payload, entity)
                error = error or problem
        if key is None and error is None:
            error = f"no business key at '{entity.key}'"
        day = updated_at.date() if updated_at else record.partition_date or UNDATED
        self.stats.records += 1
        self.stats.bytes += len(raw)
        self.stats.malformed += error is not None
        self._rows.append(
            {
                "source": self.source,
                "entity": entity.name,
                "record_key": key,
                "record_updated_at": updated_at,
                "raw": raw,
                "record_hash": hashlib.sha256(raw.encode()).hexdigest(),
                "error": error,
                "origin": record.origin,
                "batch_id": self.batch_id,
                "ingested_at": self.ingested_at,
                "partition_date": day,
            }
        )

    def flush(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        table = pa.Table.from_pylist(rows, schema=BRONZE_SCHEMA)
        self.stats.new_records += self.lake.insert_new(
            bronze_table(self.source, self.entity), table, ["record_hash"], partition_by="partition_date"
        )
        bad = [row for row in rows if row["error"] is not None]
        if bad:
            quarantined = pa.Table.from_pylist(
                [
                    {
                        **{k: row[k] for k in ("source", "entity", "record_key", "raw", "record_hash", "origin")},
                        "rule": "bronze.parseable",
                        "reason": row["error"],
                        "batch_id": self.batch_id,
                        "quarantined_at": self.ingested_at,
                    }
                    for row in bad
                ],
                schema=QUARANTINE_SCHEMA,
            )
            self.stats.new_malformed += self.lake.insert_new(
                quarantine_table(self.source, self.entity), quarantined, ["record_hash"]
            )
        # The vault is written after bronze: a crash in between leaves tokens whose clear values the re-run
        # (which sees the same records again) stores then.
        self.masker.flush_vault(self.lake, self.source)


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
