"""The shape of every bronze table and of bronze's quarantine: the landing writes it, the engine reads it (an
input never ingested reads as an empty table of this schema). Here, below both, so neither imports the other."""

from __future__ import annotations

import pyarrow as pa

BRONZE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("entity", pa.string(), nullable=False),
        pa.field("record_key", pa.string()),
        pa.field("record_updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("record_hash", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("origin", pa.string()),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("partition_date", pa.date32(), nullable=False),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("entity", pa.string()),
        ("record_key", pa.string()),
        ("raw", pa.string()),
        ("record_hash", pa.string()),
        ("rule", pa.string()),
        ("reason", pa.string()),
        ("origin", pa.string()),
        ("batch_id", pa.string()),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)
