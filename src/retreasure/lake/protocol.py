"""What a Delta table asks of its readers: its protocol, and what in it the platform's own reader cannot honour.

Every engine that writes the lake (DuckDB through delta-rs, Spark through delta-spark) must leave each table
readable by delta-rs and DuckDB, which serve it. Two Delta features break that: deletion vectors (delta-rs refuses
to read such a table, even once they are purged, as long as the feature is in the protocol) and column mapping
(DuckDB over delta-rs's Arrow dataset then reads the physical column names, and returns NULL columns silently).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deltalake import DeltaTable
from deltalake.table import MAX_SUPPORTED_READER_VERSION, SUPPORTED_READER_FEATURES

if TYPE_CHECKING:  # the store asks this module whether a table is readable: no import back at run time
    from retreasure.lake.store import Lake, TableRef

# Reader features the platform's read path (delta-rs's Arrow dataset, scanned by DuckDB) reads: those the pinned
# delta-rs declares it supports there (it refuses a table with any other).
READABLE_READER_FEATURES = frozenset(SUPPORTED_READER_FEATURES)
# Table properties that put an unreadable feature in the protocol at the next write, or already mean one.
_UNREADABLE_PROPERTIES = {
    "delta.enableDeletionVectors": lambda value: value.lower() == "true",
    "delta.columnMapping.mode": lambda value: value.lower() not in {"", "none"},
}
# Reader version 2 is column mapping, before table features existed; version 3 lists its features by name.
_LEGACY_READER_VERSIONS = {1: (), 2: ("columnMapping",)}


@dataclass(frozen=True)
class TableProtocol:
    """A table's protocol as its log states it, and the table properties that govern its features."""

    table: str
    min_reader_version: int
    min_writer_version: int
    reader_features: tuple[str, ...]
    writer_features: tuple[str, ...]
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def required_reader_features(self) -> tuple[str, ...]:
        """The features a reader must support, whichever way the protocol states them."""
        return _LEGACY_READER_VERSIONS.get(self.min_reader_version, self.reader_features)

    def unreadable(self) -> list[str]:
        """Why delta-rs and DuckDB could not read this table right, now or after its next write (empty: readable)."""
        return self.unreadable_now() + [
            f"{name}={self.properties[name]}"
            for name, unreadable in _UNREADABLE_PROPERTIES.items()
            if unreadable(self.properties.get(name, ""))
        ]

    def unreadable_now(self) -> list[str]:
        """Why delta-rs and DuckDB cannot read this version of the table right (empty: readable)."""
        problems = [
            f"reader feature {feature}"
            for feature in self.required_reader_features
            if feature not in READABLE_READER_FEATURES
        ]
        if self.min_reader_version > MAX_SUPPORTED_READER_VERSION:
            problems.append(f"reader version {self.min_reader_version}")
        return problems


class UnreadableTable(ValueError):
    """A table the platform's reader cannot read right (another engine switched on a feature it lacks)."""


def table_protocol(lake: Lake, ref: TableRef) -> TableProtocol:
    """The protocol of ``ref`` at its current version."""
    return protocol_of(lake.delta(ref))


def protocol_of(table: DeltaTable) -> TableProtocol:
    """The protocol of an opened table at its version (from its log, no request)."""
    protocol = table.protocol()
    properties = {k: v for k, v in table.metadata().configuration.items() if k.startswith("delta.")}
    return TableProtocol(
        table=table.table_uri,
        min_reader_version=protocol.min_reader_version,
        min_writer_version=protocol.min_writer_version,
        reader_features=tuple(protocol.reader_features or ()),
        writer_features=tuple(protocol.writer_features or ()),
        properties=properties,
    )


def ensure_readable(table: DeltaTable) -> None:
    """UnreadableTable unless this version can be read right: a Parquet scan of a table with deletion vectors would
    return the deleted rows, one with column mapping NULL columns, and neither would say so."""
    problems = protocol_of(table).unreadable_now()
    if problems:
        raise UnreadableTable(
            f"{table.table_uri} cannot be read by delta-rs and DuckDB ({', '.join(problems)}): its writer must keep "
            "deletion vectors and column mapping off (docs/architecture.md, Lake URIs and storage)"
        )


def unreadable_tables(lake: Lake, refs: list[TableRef] | None = None) -> dict[TableRef, list[str]]:
    """Every table of the lake (or of ``refs``) that delta-rs and DuckDB could not read right, with why."""
    found = {ref: table_protocol(lake, ref).unreadable() for ref in (lake.tables() if refs is None else refs)}
    return {ref: problems for ref, problems in found.items() if problems}
