"""The optional native pass over a batch of JSON texts (the ``retreasure_native`` extension, ``native/``): one pass
per text in Rust, without the GIL, giving what ``JsonBatchMasker.texts`` and the hashing give -- the compact raw
text with the declared PII tokenised, its tokens, its SHA-256 -- and the values at the key and change-time paths,
as Arrow columns over the pass's own buffers (no Python object per text).

``JsonBatchMasker`` stays the reference: the pass takes only the plain shape, and any text it is not sure of it
leaves (None) to the Python path, which lands it as it does today. It screens its texts with the same pattern
(``JsonBatchMasker.not_common``), run by Rust's regex engine instead of Arrow's RE2: both read these patterns (ASCII
classes, bounded repeats, one negated byte range) alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity

try:
    from retreasure_native import DeclaredMasker
except ImportError:  # not built (no Rust toolchain at set-up): the Python path does all
    DeclaredMasker = None

HASH_HEX = 64  # characters of a SHA-256 in hex
TEXT, OTHER = 1, 2  # the pass's kinds of a taken value (0: absent, or null)


@dataclass(frozen=True)
class NativeTexts:
    """A batch's results as Arrow columns over the pass's own buffers (no Python object per row: building them
    cost more than the pass). A row's text and hash are null where the Python path must land it."""

    texts: pa.Array  # string: the compact text, PII tokenised
    hashes: pa.Array  # string: its SHA-256 in hex
    landed: np.ndarray  # bool: the rows the pass landed
    key_texts: pa.Array  # string: the value at the entity's key path where it is a string
    key_other: np.ndarray  # bool: where that value is a number or a boolean (read from the raw text)
    time_texts: pa.Array  # the same at its change-time path
    time_other: np.ndarray
    # Per token the batch gives first, in row order: its row, the token, its kind, the clear value.
    token_rows: list[int]
    tokens: list[str]
    kinds: list[str]
    clear: list[str]


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
        texts, offsets, landed, hashes, taken, token_rows, tokens, kinds, clear = self._pass.texts(list(values))
        count = len(values)
        landed_rows = np.frombuffer(landed, dtype=np.uint8).astype(bool)
        hash_offsets = np.arange(0, HASH_HEX * (count + 1), HASH_HEX, dtype=np.int32).tobytes()
        (key_data, key_offsets, key_kinds), (time_data, time_offsets, time_kinds) = taken
        key_kind, time_kind = np.frombuffer(key_kinds, dtype=np.uint8), np.frombuffer(time_kinds, dtype=np.uint8)
        return NativeTexts(
            texts=string_array(count, texts, offsets, landed_rows),
            hashes=string_array(count, hashes, hash_offsets, landed_rows),
            landed=landed_rows,
            key_texts=string_array(count, key_data, key_offsets, key_kind == TEXT),
            key_other=key_kind == OTHER,
            time_texts=string_array(count, time_data, time_offsets, time_kind == TEXT),
            time_other=time_kind == OTHER,
            token_rows=token_rows,
            tokens=tokens,
            kinds=kinds,
            clear=clear,
        )


def string_array(count: int, data: bytes, offsets: bytes, valid: np.ndarray) -> pa.Array:
    """A string column over ``data`` and its int32 ``offsets`` (no copy), null where not ``valid``."""
    nulls = count - int(np.count_nonzero(valid))
    validity = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes()) if nulls else None
    return pa.Array.from_buffers(
        pa.string(), count, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls
    )
