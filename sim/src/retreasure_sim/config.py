"""How big, how long and how faulty a simulated business to make."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from datetime import date


@dataclass(frozen=True)
class Faults:
    """Shares of records (or requests, or files) hit by each kind of fault. All zero: a perfect world."""

    duplicates: float = 0.0  # a record or a file delivered twice
    late_updates: float = 0.0  # an old order edited again long after it was placed
    malformed: float = 0.0  # an extra, broken copy of a record sent alongside the good one
    schema_drift: float = 0.0  # a record with an unknown extra field or without an optional one
    http_429: float = 0.0  # chance that a request is refused as over the rate limit
    http_5xx: float = 0.0  # chance that a request fails with a server error
    truncated_files: float = 0.0  # a file cut short in transfer, then sent again whole

    @classmethod
    def on(cls) -> Faults:
        """The faulty world the reconciliation tests and the demo run in."""
        return cls(0.02, 0.03, 0.01, 0.05, 0.04, 0.02, 0.02)

    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class StreamFaults:
    """Shares of the web shop's streamed events hit by each fault on the wire. All zero: a perfect wire."""

    duplicates: float = 0.0  # produced again moments later, byte for byte: the site retrying a lost acknowledgement
    out_of_order: float = 0.0  # sent seconds to minutes after events that happened later
    late: float = 0.0  # held back for hours: a phone offline, a collector queue drained late
    malformed: float = 0.0  # an extra, broken copy (not JSON, cut short) sent beside the good message
    oversized: float = 0.0  # a clickstream event stuffed beyond the platform's record limit: its only message
    schema_drift: float = 0.0  # a field added, renamed or sent as another JSON type

    @classmethod
    def on(cls) -> StreamFaults:
        """The faulty wire the streaming tests and the demo run on."""
        return cls(duplicates=0.02, out_of_order=0.03, late=0.005, malformed=0.005, oversized=0.0002, schema_drift=0.03)

    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class SimConfig:
    seed: int = 7
    start: date = date(2025, 1, 1)
    days: int = 365
    scale: float = 1.0  # 1.0 is one year of a small antiques business (~20k orders, ~150k web sessions)
    faults: Faults = field(default_factory=Faults)


def coin(seed: int, kind: str, key: str) -> float:
    """Where record ``key``'s seeded coin for fault ``kind`` lands in [0, 1): the same on every run and process."""
    digest = hashlib.blake2b(f"{seed}|{kind}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def hit(seed: int, kind: str, key: str, rate: float) -> bool:
    """Deterministic coin: does fault ``kind`` strike record ``key``? The same on every run and process."""
    return rate > 0 and coin(seed, kind, key) < rate
