"""The lake: Delta tables by layer, their write modes, and the operational tables beside them.

``Lake``, ``TableRef`` and ``LAYERS`` are loaded from ``lake.store`` on first use, not with the package: any
``retreasure.lake.<module>`` import runs this file, and the store brings DuckDB, Delta and Arrow, which the
command line's start (``retreasure --help``) does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retreasure.lake.store import LAYERS, Lake, TableRef

RETENTION_HOURS = 7 * 24  # time travel kept for readers (and Delta's own default retention)

__all__ = ["LAYERS", "RETENTION_HOURS", "Lake", "TableRef"]


def __getattr__(name: str) -> Any:
    if name in {"LAYERS", "Lake", "TableRef"}:
        from retreasure.lake import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
