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
class SimConfig:
    seed: int = 7
    start: date = date(2025, 1, 1)
    days: int = 365
    scale: float = 1.0  # 1.0 is one year of a small antiques business (~20k orders, ~150k web sessions)
    faults: Faults = field(default_factory=Faults)


def hit(seed: int, kind: str, key: str, rate: float) -> bool:
    """Deterministic coin: does fault ``kind`` strike record ``key``? The same on every run and process."""
    if rate <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}|{kind}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate
