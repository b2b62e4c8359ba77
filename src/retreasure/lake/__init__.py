"""The lake: Delta tables by layer, their write modes, and the operational tables beside them."""

from retreasure.lake.store import LAYERS, Lake, TableRef

__all__ = ["LAYERS", "Lake", "TableRef"]
