"""Masking a batch of JSON objects for bronze at once: the raw text ``masked_raw`` gives each, byte for byte, for
the common shape, with the per-record work in C (orjson) and the safety net's scan over the batch (Arrow).

The common shape is a JSON object whose PII sits at the entity's declared paths and whose other strings hold no
e-mail address or phone number, nor a number ``json.dumps`` writes another way than orjson (a float, or an integer
beyond 64 bits, which orjson reads as a float). For it, ``masked_raw`` is orjson's compact text of the object with
the declared values tokenised: orjson reads what the strict JSON reader reads (NaN, a lone surrogate or hostile
nesting it refuses, and they go the other way) and writes strings, integers and key order as ``json.dumps(...,
separators=(",", ":"), ensure_ascii=False)`` does. Whether a text is of that shape is decided over the batch's
texts, by Arrow: one without a backslash escape, a float or deep nesting, that ``CONTACT_SCREEN`` (the safety
net's screen) clears. Any other record is left to the per-record functions (``json_object``, ``masked_raw``),
which give it its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from retreasure.bronze import native
from retreasure.bronze.native import NativeBatchMasker, NativeTexts
from retreasure.bronze.pii import CONTACT_SCREEN, PiiMasker, declared_key_screen, declared_only_masks
from retreasure.connectors.base import Entity
from retreasure.records.pii import column_name

# What sends a compact text (orjson's) to the per-record functions, all in one pattern: a backslash escape
# (json.dumps and orjson escape alike, but the screen reads strings as they are written), a float (or an integer
# orjson read as one: json.dumps writes some the other way) -- a number starts after ":", "," or "[" and ends
# before ",", "}" or "]" in compact JSON --, and what the safety net may mask.
_FLOAT = r"[:,\[]-?[0-9]+(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)[,}\]]"
NOT_COMMON = "|".join([r"\\", _FLOAT, CONTACT_SCREEN])
# Nesting beyond which the strict reader (Python's recursion limit) may refuse a text orjson reads (to 1,024
# levels): brackets counted in all, strings included, which flags more.
MAX_BRACKETS = 200

# One record's fast result: the object (PII tokenised), its compact text, and the tokens' clear values.
Masked = tuple[dict[str, Any], bytes, list[tuple[str, str, str]]]


class JsonBatchMasker:
    """Gives the records of one entity that are of the common shape their bronze raw text, a batch at a time."""

    def __init__(
        self, masker: PiiMasker, entity: Entity, max_line_bytes: int, max_record_bytes: int, use_native: bool = True
    ) -> None:
        self.masker = masker
        self.spec = entity.pii
        self.max_line_bytes = max_line_bytes
        self.max_text_bytes = max_record_bytes // 4  # masked_raw judges shorter texts without encoding them
        # The common shape's screen and, for this entity's paths, keys the exact-name walk would miss.
        self.not_common = "|".join([NOT_COMMON, declared_key_screen(entity.pii)])
        # The native pass (``bronze.native``) where it is built: the same results for the texts it takes.
        self.native = (
            NativeBatchMasker(masker, entity, self.not_common, max_line_bytes, self.max_text_bytes, MAX_BRACKETS)
            if use_native and native.available()
            else None
        )

    @staticmethod
    def serves(entity: Entity) -> bool:
        """Only when masking changes a record at its declared paths alone (plus the safety net), and the key and
        change time are not on those paths: the rows' keys and times are read from the masked object."""
        if not declared_only_masks(entity.pii):
            return False
        own = [path for path in (entity.key, entity.updated_at) if path]
        return all(_apart(path, pii_path) for path in own for pii_path in entity.pii.paths)

    def batch(self, values: Sequence[bytes | None]) -> list[Masked | None] | NativeTexts:
        """What ``bronze.columns.batch_rows`` takes: the native pass's columns where it is built, else ``texts``."""
        return self.native.texts(values) if self.native is not None else self.texts(values)

    def texts(self, values: Sequence[bytes | None]) -> list[Masked | None]:
        """Per value (a message's, a line's bytes): its object, bronze raw text and tokens, or None when the
        per-record functions must land it (not an object, malformed, over a limit, or not of the common shape)."""
        results: list[Masked | None] = []
        loads, dumps, mask, spec = orjson.loads, orjson.dumps, self.masker.mask_declared, self.spec
        for value in values:
            if not value or len(value) > self.max_line_bytes:
                results.append(None)
                continue
            try:
                payload = loads(value)
            except orjson.JSONDecodeError:
                results.append(None)
                continue
            if type(payload) is not dict:
                results.append(None)
                continue
            tokens = mask(payload, spec)
            try:
                text = dumps(payload) if tokens is not None else b""
            except orjson.JSONEncodeError:  # nesting orjson reads (to 1,024 levels) but writes only to 254
                text = b""
            if (
                not text
                or len(text) > self.max_text_bytes
                or (len(text) > 2 * MAX_BRACKETS and text.count(b"{") + text.count(b"[") > MAX_BRACKETS)
            ):
                results.append(None)
                continue
            results.append((payload, text, tokens))
        candidates = [row for row, result in enumerate(results) if result is not None]
        if candidates:
            column = pa.array([results[row][1] for row in candidates], pa.string())  # type: ignore[index]
            for row in np.asarray(candidates)[~_common_shape(column, self.not_common)]:
                results[row] = None
        return results


def _common_shape(texts: pa.Array, not_common: str) -> np.ndarray:
    """Per compact JSON text (orjson's), True when ``json.dumps`` writes it the same, no undeclared string in
    it may need the safety net, and no key needs the masker's normalised comparison (``not_common``)."""
    return ~pc.fill_null(pc.match_substring_regex(texts, not_common), True).to_numpy(zero_copy_only=False)


def _apart(path: str, other: str) -> bool:
    """Neither dotted path is the other or lies under it (names compared as the masker compares them)."""
    mine, theirs = path.split("."), other.split(".")
    common = min(len(mine), len(theirs))
    return [column_name(p) for p in mine[:common]] != [column_name(p) for p in theirs[:common]]
