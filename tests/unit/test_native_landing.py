"""The native pass (``bronze.native``, the ``retreasure_native`` extension) gives, for every text it takes, what the
Python path gives byte for byte -- the compact raw text with the declared PII tokenised, each token with its clear
value at the first row that gives it, the SHA-256 of the text, the values at the key and change-time paths -- and
leaves to the Python path every text the Python path leaves to the per-record functions; and bronze's columns and
the vault's values made from its Arrow columns are the Python path's. Over the simulator's
clickstream and transactions messages (which it must take nearly all of), hostile and odd texts, and generated
objects serialised in several ways."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retreasure.bronze import native
from retreasure.bronze.batch import JsonBatchMasker
from retreasure.bronze.columns import batch_rows, bronze_columns
from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity
from retreasure.connectors.files import json_object
from retreasure.connectors.web import WebSource
from retreasure.records.paths import dig
from retreasure.settings import Settings
from retreasure_sim.business import Truth
from retreasure_sim.files.web import clickstream_messages, json_text, transaction_messages
from tests.conftest import HMAC_KEY

pytestmark = pytest.mark.skipif(
    not native.available(),
    reason="the native pass is not built (retreasure_native: make setup with cargo) or RETREASURE_NATIVE=0",
)

MAX_LINE_BYTES, MAX_RECORD_BYTES = 1 << 20, 4 << 20


def entity(name: str) -> Entity:
    return WebSource(Settings(_env_file=None)).entity(name)  # type: ignore[call-arg]


def compare(entity: Entity, values: list[bytes | None], max_line_bytes: int = MAX_LINE_BYTES) -> tuple[int, int]:
    """Assert the two paths agree on ``values``, text by text and then as bronze's columns; returns (texts the
    Python path takes, texts the native takes)."""
    reference = JsonBatchMasker(PiiMasker(HMAC_KEY), entity, max_line_bytes, MAX_RECORD_BYTES).texts(values)
    fast = JsonBatchMasker(PiiMasker(HMAC_KEY), entity, max_line_bytes, MAX_RECORD_BYTES).batch(values)
    assert isinstance(fast, native.NativeTexts)
    columns = [fast.texts, fast.hashes, fast.key_texts, fast.time_texts]
    assert all(len(column) == len(values) for column in [*columns, fast.landed, fast.key_other, fast.time_other])
    texts, hashes, keys, times = (column.to_pylist() for column in columns)
    first_tokens: list[tuple[int, str, str, str]] = []  # each token at the first row native took it from
    given: set[str] = set()
    for row, expected in enumerate(reference):
        if expected is None:
            assert not fast.landed[row], f"native took what the Python path leaves: {values[row]!r}"
        if not fast.landed[row]:
            assert texts[row] is None and hashes[row] is None and keys[row] is None and times[row] is None
            assert not fast.key_other[row] and not fast.time_other[row]
            continue
        assert expected is not None
        payload, raw, found = expected
        assert texts[row].encode() == raw, values[row]
        assert hashes[row] == hashlib.sha256(raw).hexdigest()
        for token, kind, value in found:
            if token not in given:
                given.add(token)
                first_tokens.append((row, token, kind, value))
        for got, other, path in (
            (keys[row], fast.key_other[row], entity.key),
            (times[row], fast.time_other[row], entity.updated_at),
        ):
            want = dig(payload, path)
            assert got == (want if isinstance(want, str) else None), (path, values[row])
            assert other == (want is not None and not isinstance(want, str)), (path, values[row])
    assert list(zip(fast.token_rows, fast.tokens, fast.kinds, fast.clear, strict=True)) == first_tokens
    compare_columns(entity, values, max_line_bytes)
    return sum(done is not None for done in reference), int(fast.landed.sum())


def compare_columns(entity: Entity, values: list[bytes | None], max_line_bytes: int) -> None:
    """Bronze's columns and the vault's clear values from the native pass's Arrow columns (its rows and the
    Python way's put together) are the Python path's, byte for byte and in the same order."""
    results = []
    for use_native in (False, True):
        masker = PiiMasker(HMAC_KEY)
        fast = JsonBatchMasker(masker, entity, max_line_bytes, MAX_RECORD_BYTES, use_native=use_native)
        rows = batch_rows(masker, entity, values, fast.batch(values), decode, MAX_RECORD_BYTES)
        results.append(([column.to_pylist() for column in bronze_columns(entity, rows)], list(masker.pending.items())))
    (python, python_vault), (rust, rust_vault) = results
    names = ("raw", "record_hash", "record_key", "record_updated_at", "error")
    for name, want, got in zip(names, python, rust, strict=True):
        assert got == want, name
    assert rust_vault == python_vault


def decode(value: bytes | None) -> tuple[Any, str | None]:
    """A value as the stream's landing reads one the batch way leaves aside (``TopicLanding._decode``)."""
    if not value:
        return "", "malformed: empty message (no value)"
    return json_object(value if value.endswith(b"\n") else value + b"\n")


SERIALISE: dict[str, Callable[[Any], bytes]] = {
    "collector": lambda message: json_text(message).encode(),
    "ascii escapes, spaced": lambda message: json.dumps(message).encode(),
    "indented": lambda message: json.dumps(message, indent=1, ensure_ascii=False).encode(),
}


@pytest.mark.parametrize("style", SERIALISE)
def test_the_simulated_clickstream_lands_natively_as_it_does_in_python(
    clean_truth: Truth, faulty_truth: Truth, style: str
) -> None:
    messages = [message for truth in (clean_truth, faulty_truth) for _, _, message in clickstream_messages(truth)]
    values: list[bytes | None] = [SERIALISE[style](message) for message in messages[:6000]]
    python, taken = compare(entity("clickstream"), values)
    assert python > 0.9 * len(values)
    assert taken == python  # the plain shape is all native: nothing in these messages sends it back


def test_the_simulated_transactions_land_natively_as_they_do_in_python(clean_truth: Truth, faulty_truth: Truth) -> None:
    messages = [message for truth in (clean_truth, faulty_truth) for _, message in transaction_messages(truth)]
    values: list[bytes | None] = [json_text(message).encode() for message in messages]
    python, taken = compare(entity("transactions"), values)
    assert taken == python


EVENT: dict[str, Any] = {
    "type": "track",
    "messageId": "E000000324",
    "userId": "9300000000000002",
    "properties": {"order_id": "9500000000000002", "total": "399.72", "quantity": 1, "sku": "RT-001364"},
    "context": {"ip": "198.51.100.136", "traits": {"email": "Giulia.Johnson@post.example.net"}},
    "timestamp": "2025-03-04T08:29:30.000Z",
}


def odd_records() -> list[Any]:
    """Objects each of which tests one rule of either path."""
    return [
        EVENT,
        {**EVENT, "traits": {"email": "  Ann@Example.ORG "}},  # another declared path, spaces, capitals
        {**EVENT, "context": {"ip": "  "}},  # a blank declared value: kept
        {**EVENT, "context": {"ip": "pii:ip:0123"}},  # already a token
        {**EVENT, "context": {"ip": None, "traits": None}},  # nulls on the paths
        {**EVENT, "context": {"ip": 17, "traits": "x"}},  # not a string at a leaf, a string where a branch is
        {**EVENT, "context": {"ip": {"v4": "192.0.2.1"}}},  # an object at a leaf: left as it is
        {**EVENT, "context": {"ip": ["192.0.2.1"]}},  # a list at a leaf: left as it is
        {**EVENT, "context": [{"ip": "192.0.2.7"}]},  # a list along a declared path: the masker walks it
        {**EVENT, "context": {"traits": [{"email": "a@b.example"}]}},
        {**EVENT, "traits": {"email": "ida.müller.4@inbox.example.com"}},  # a non-ASCII e-mail
        {**EVENT, "traits": {"email": "STRASSE@ÖL.example"}},
        {**EVENT, "context": {"ip": "ünïcode ip"}},  # non-ASCII at another kind
        {**EVENT, "context": {"ip": "straße"}},  # casefold is not lower
        {**EVENT, "properties": {"note": "call +44 20 7946 0958"}},  # a phone in free text: the safety net
        {**EVENT, "properties": {"note": "write to bob@example.com"}},  # an e-mail in free text
        {**EVENT, "properties": {"price": 294.0, "tiny": 1e-7, "big": 2**65, "edge": 2**64 - 1, "low": -(2**63)}},
        {**EVENT, "properties": {"below": -(2**63) - 1}},
        {**EVENT, "properties": {"title": 'a "quoted" café\n', "tab": "a\tb", "slash": "a/b\\c"}},
        {**EVENT, "properties": {"emoji": "😀 ☃ \u2028 \u007f \u00a0", "cjk": "東京"}},
        {**EVENT, "IP": "192.0.2.9", "Context": {"IP": "192.0.2.9"}},  # keys the normalised comparison matches
        {**EVENT, "context": {" ip": "192.0.2.9", "traits": {"E-mail": "x@y.example"}}},
        {**EVENT, "ключ": "значение"},  # a non-ASCII key
        {**EVENT, "messageId": 10016, "timestamp": 1741076970},  # numbers at the key and time
        {**EVENT, "messageId": True, "timestamp": None},
        {**EVENT, "messageId": {"id": 1}},  # an object as the key
        {**EVENT, "messageId": ["E1"]},  # a list as the key
        {**EVENT, "messageId": 2**64 - 1},
        {key: value for key, value in EVENT.items() if key != "messageId"},  # no key
        {**EVENT, "messageId": ""},
        {"a": {"b": {"c": {"d": [[[[{"e": []}]]]]}}}, "messageId": "deep"},
        {**EVENT, "properties": {}, "empty": [], "t": True, "f": False, "n": None, "zero": 0, "neg": -12},
        {},
    ]


def odd_texts() -> list[bytes | None]:
    texts: list[bytes | None] = []
    for record in odd_records():
        texts += [serialise(record) for serialise in SERIALISE.values()]
    base = json_text(EVENT).encode()
    texts += [
        None,
        b"",
        b"   ",
        b"null",
        b"[1, 2]",
        b'"a string"',
        b"17",
        b"\xef\xbb\xbf" + base,  # a BOM
        b" \t\r\n" + base + b" \r\n",  # JSON's white space around
        base + b"\n\x00",  # something after the object
        base + b"{}",
        base[:-1],  # cut
        base[:-1] + b",}",  # a trailing comma
        b'{"messageId": "E11", "amount": NaN}',
        b'{"messageId": "E11", "amount": Infinity}',
        b'{"messageId": "E12", "note": "caf\xe9"}',  # not UTF-8
        b'{"messageId": "E12", "note": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8
        b'{"messageId": "E15", "note": "\\ud800"}',  # a lone surrogate
        b'{"messageId": "E15", "note": "\\udc00\\ud800"}',
        b'{"messageId": "E15", "note": "\\ud83d\\ude00 \\u00e9 \\u00E9 \\/ \\u002f \\u007f"}',
        b'{"messageId": "E15", "note": "\\u0000"}',
        b'{"messageId": "E15", "note": "\\u0022"}',
        b'{"messageId": "E15", "note": "\\u005c"}',
        b'{"messageId": "E15", "note": "\\x41"}',
        b'{"messageId": "E15", "note": "\\u12"}',
        b'{"messageId": "E15", "note": "\\U0041"}',
        b'{"messageId": "E15", "note": "raw\tcontrol"}',
        b'{"messageId": "E\\u0031\\u0036", "context": {"\\u0069p": "192.0.2.1"}}',  # escaped key and values
        b'{"messageId": "E16", "context": {"ip": "\\u0031\\u0039\\u0032.0.2.1"}}',
        b'{"messageId": "E16", "traits": {"email": "\\u00c9lise@example.org"}}',
        b'{"messageId": "E17", "messageId": "E18"}',  # a duplicate key: the last value, at the first place
        b'{"messageId": "E17", "context": {"ip": "192.0.2.1", "ip": "192.0.2.2"}}',
        b'{"messageId": "E17", "n": -0, "m": 0, "x": 00}',  # "-0" is 0; a leading zero is not JSON
        b'{"messageId": -0}',
        b'{"messageId": "E17", "n": 1E5, "m": 1e-5, "k": 2.}',
        b'{"messageId": "E17", "n": -}',
        b'{"messageId": "E17", "n": +1}',
        b'{"messageId": "E17", "n": 18446744073709551616}',
        b'{"messageId": "E17", "n": 123456789012345678901234567890}',
        b'{"messageId": "E17", "t": tru, "f": nul}',
        b'{"messageId": "E17", "t": TRUE}',
        b'{"messageId" "E17"}',
        b'{"messageId": "E17",}',
        b"{'messageId': 'E17'}",
        b'{"messageId": "E17"',
        b'{"a": [1, 2,]}',
        b'{"a": [1 2]}',
        b'{ "a" : [ 1 , { "b" : [ ] } ] , "messageId" : "E19" }',
        b'{"a":' * 100 + b"1" + b"}" * 100,  # shallow enough, short
        b'{"a":' * 150 + b"1" + b"}" * 150,  # more than 200 brackets' worth of text
        b"[" * 500 + b"]" * 500,
        b'{"a":' + b"[" * 300 + b"]" * 300 + b"}",
        b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}",  # beyond orjson's depth
        b'{"messageId": "E20", "blob": "' + b"x" * 3000 + b'"}',  # over a line limit of 2048 (below)
    ]
    return texts


def test_odd_and_hostile_texts_land_natively_as_in_python_or_go_back() -> None:
    texts = odd_texts()
    python, taken = compare(entity("clickstream"), texts)
    assert 0 < taken <= python
    compare(entity("transactions"), texts)


def test_the_line_limit_and_the_text_limit_hold_natively() -> None:
    texts = odd_texts()
    compare(entity("clickstream"), texts, max_line_bytes=2048)
    compare(entity("clickstream"), texts, max_line_bytes=200)


KEYS = st.sampled_from(
    ["messageId", "timestamp", "context", "ip", "traits", "email", "IP", "E-mail", "note", "a", "é", "ip "]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["192.0.2.1", "Ann@Example.org", "+44 20 7946 0958", "2025-03-04T08:29:30.000Z", " "])
)
OBJECTS = st.dictionaries(
    KEYS,
    st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4)),
    max_size=6,
)


@given(records=st.lists(OBJECTS, min_size=1, max_size=20), style=st.sampled_from(sorted(SERIALISE)))
def test_generated_objects_land_natively_as_in_python_or_go_back(records: list[dict[str, Any]], style: str) -> None:
    compare(entity("clickstream"), [SERIALISE[style](record) for record in records])
