"""Inputs over their size limit: what is kept of them and the reason they are quarantined with, the same for a
line a file connector reads, a record bronze lands and a file bronze refuses."""

from __future__ import annotations

KEPT_CHARS = 4096  # of an oversized line or record, what is kept as its raw text


def oversized(what: str, size: int, digest: str, limit: int) -> str:
    """The quarantine reason of an input over its size limit: enough to find it again and prove what it was."""
    return f"oversized: {what} of {size} bytes (sha256 {digest}) is over the {limit}-byte limit"
