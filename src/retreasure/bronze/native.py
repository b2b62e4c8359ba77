"""The optional native pass over a batch of JSON texts (the ``retreasure_native`` extension, ``native/``): one pass
per text in Rust, without the GIL, giving what ``JsonBatchMasker.texts`` and the hashing give -- the compact raw
text with the declared PII tokenised, its tokens, its SHA-256 -- and the values at the key and change-time paths.

``JsonBatchMasker`` stays the reference: the pass takes only the plain shape, and any text it is not sure of it
leaves (None) to the Python path, which lands it as it does today. It screens its texts with the same pattern
(``JsonBatchMasker.not_common``), run by Rust's regex engine instead of Arrow's RE2: both read these patterns (ASCII
classes, bounded repeats, one negated byte range) alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity

try:
    from retreasure_native import DeclaredMasker
except ImportError:  # not built (no Rust toolchain at set-up): the Python path does all
    DeclaredMasker = None


@dataclass(frozen=True)
class NativeTexts:
    """A batch's results in columns (few Python containers: the collector's passes over many small tuples cost
    more than the work). A row's text and hash are None where the Python path must land it."""

    texts: list[bytes | None]
    hashes: list[str | None]
    keys: list[Any]  # the value at the entity's key path (None: absent, or the row went the Python way)
    times: list[Any]  # the value at its change-time path, likewise
    token_rows: list[int]  # per token given, in order: its row, the token, its kind, the clear value
    tokens: list[str]
    kinds: list[str]
    clear: list[str]

    def tokens_of(self) -> list[list[tuple[str, str, str]]]:
        """Per row, its (token, kind, clear value), as ``PiiMasker.mask_declared`` lists them."""
        found: list[list[tuple[str, str, str]]] = [[] for _ in self.texts]
        for row, token, kind, value in zip(self.token_rows, self.tokens, self.kinds, self.clear, strict=True):
            found[row].append((token, kind, value))
        return found


def available() -> bool:
    """Is the native pass built and importable, and not switched off (``RETREASURE_NATIVE=0``: the Python path
    alone, to compare or to rule the pass out)?"""
    return DeclaredMasker is not None and os.environ.get("RETREASURE_NATIVE", "1") != "0"


class NativeBatchMasker:
    """The native pass for one entity of the declared-paths shape (``JsonBatchMasker.serves``), with the Python
    path's limits and screen (``JsonBatchMasker`` makes it)."""

    def __init__(
        self, masker: PiiMasker, entity: Entity, screen: str, max_line_bytes: int, max_text_bytes: int, brackets: int
    ) -> None:
        if DeclaredMasker is None:
            raise RuntimeError("the native pass is not built (retreasure_native: make setup with cargo present)")
        taken = [entity.key, entity.updated_at or entity.key]  # no change time: its column is not read
        self._pass = DeclaredMasker(
            entity.pii.tree, masker.token_key, taken, screen, max_line_bytes, max_text_bytes, brackets
        )

    def texts(self, values: Sequence[bytes | None]) -> NativeTexts:
        texts, hashes, (keys, times), token_rows, tokens, kinds, clear = self._pass.texts(list(values))
        return NativeTexts(texts, hashes, keys, times, token_rows, tokens, kinds, clear)
