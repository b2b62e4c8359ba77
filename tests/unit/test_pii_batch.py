"""Masking a batch at once gives each record the very raw text and vault entries the per-record masker gives it,
on generated records of every shape: PII at declared paths and under drifted names, contacts in free text,
dates, floats, huge integers, escapes, lists along the paths, deep nesting. Records it cannot vouch for are left
to the per-record path (None), never given another text."""

from __future__ import annotations

import json
from typing import Any

import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retreasure.bronze.batch import JsonBatchMasker
from retreasure.bronze.pii import PiiMasker, declared_key_screen
from retreasure.bronze.record import masked_raw
from retreasure.connectors.base import load_sources
from retreasure.connectors.files import json_object
from retreasure.records.pii import column_name
from tests.conftest import HMAC_KEY
from tests.unit.test_pii_safety_net import EMAILS, ORDINARY, PHONES

CLICKSTREAM = next(e for e in load_sources()["web"].entities if e.name == "clickstream")
LIMIT = 4 << 20
# Keys the clickstream's PII paths name (context.ip, context.traits.email, traits.email), some as a drifted
# column would spell them, and others.
KEYS = ["context", "Context", "ip", "IP", " ip", "traits", "email", "E-mail", "page", "note", "messageId", "x"]
WORDS = st.sampled_from(ORDINARY + PHONES + EMAILS + ["", " ", "pii:ip:0123", "2025-03-04T10:11:12.123Z"])
STRINGS = st.one_of(
    WORDS,
    st.builds(lambda a, b: f"{a} {b}", WORDS, WORDS),
    st.text(max_size=12),
    st.text(alphabet='0123456789 +-().@/"\\\n', max_size=16),
)
SCALARS = st.one_of(
    STRINGS,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=12,
)
CLEAR = st.one_of(st.sampled_from(["192.0.2.7", "2001:db8::1", "Ann@Example.com", " ", "pii:ip:0123"]), STRINGS)
TRAITS = st.fixed_dictionaries({}, optional={"email": CLEAR, "E-mail": CLEAR, "x": VALUES})
CONTEXT = st.fixed_dictionaries(
    {}, optional={"ip": CLEAR, "IP": CLEAR, "traits": TRAITS, "page": VALUES, "userAgent": st.sampled_from(ORDINARY)}
)
# Records shaped like the clickstream's (PII at its paths, often under drifted names), and any others.
RECORDS = st.one_of(
    st.fixed_dictionaries(
        {"messageId": st.text(alphabet="Ea-0123456789", max_size=12)},
        optional={"context": st.one_of(CONTEXT, VALUES), "Context": CONTEXT, "traits": TRAITS, "note": VALUES},
    ),
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6),
)


def per_record(masker: PiiMasker, line: bytes) -> tuple[str, dict[str, tuple[str, str]]]:
    payload, error = json_object(line + b"\n")
    assert error is None
    raw, too_big = masked_raw(masker, CLICKSTREAM, payload, LIMIT)
    assert too_big is None
    return raw, dict(masker.pending)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORDS, min_size=1, max_size=8), compact=st.booleans(), ascii_only=st.booleans())
def test_a_batch_gets_the_raw_text_and_vault_entries_of_the_per_record_masker(
    records: list[dict[str, Any]], compact: bool, ascii_only: bool
) -> None:
    separators = (",", ":") if compact else (", ", ": ")
    lines = [json.dumps(r, separators=separators, ensure_ascii=ascii_only).encode() for r in records]
    batch = JsonBatchMasker(PiiMasker(HMAC_KEY), CLICKSTREAM, 1 << 20, LIMIT)
    for line, result in zip(lines, batch.texts(lines), strict=True):
        if result is None:
            continue
        _, text, tokens = result
        raw, pending = per_record(PiiMasker(HMAC_KEY), line)
        assert text.decode() == raw, line
        assert {token: (kind, value) for token, kind, value in tokens} == pending, line


def test_the_common_shape_takes_the_batch_path_and_the_others_the_per_record_one() -> None:
    event = {
        "type": "track",
        "messageId": "E000000324",
        "userId": "9300000000000002",
        "properties": {"order_id": "9500000000000002", "total": "399.72", "quantity": 1, "sku": "RT-001364"},
        "context": {
            "userAgent": "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15",
            "ip": "198.51.100.136",
            "traits": {"email": "giulia.johnson.2@post.example.net"},
        },
        "timestamp": "2025-01-01T08:29:30.000Z",
    }
    odd = [
        {**event, "properties": {"note": "call +44 20 7946 0958"}},  # a phone number in free text
        {**event, "properties": {"note": "write to ann@example.org"}},  # an e-mail address in free text
        {**event, "properties": {"price": 294.0}},  # a float: json.dumps and orjson may write it apart
        {**event, "properties": {"id": 2**65}},  # orjson reads this integer as a float
        {**event, "properties": {"title": 'a "quoted" name'}},  # an escape
        {**event, "properties": {"note": "line 1\n020 7946 0958"}},  # a phone number after an escape
        {**event, "context": [{"ip": "192.0.2.7"}]},  # a list along a declared path
        {**event, "Context": {"ip": "192.0.2.7"}},  # a drifted name of a declared path: masked as the name
        {**event, "context": {"ip": "192.0.2.7", " IP": "192.0.2.8"}},
    ]
    lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() for r in [event, *odd]]
    lines += [b'{"messageId": NaN}', b'{"a": "\\ud800"}', b"[1, 2]", b"", b"[" * 500 + b"]" * 500]
    masker = PiiMasker(HMAC_KEY)
    results = JsonBatchMasker(masker, CLICKSTREAM, 1 << 20, LIMIT).texts(lines)
    assert results[0] is not None and all(result is None for result in results[1:])
    payload, text, tokens = results[0]
    assert text.decode() == per_record(PiiMasker(HMAC_KEY), lines[0])[0]
    assert payload["context"]["ip"].startswith("pii:ip:") and payload["messageId"] == "E000000324"
    assert [kind for _, kind, _ in tokens] == ["ip", "email"]
    assert not masker.pending, "the clear values wait for remember(): the record may yet go the other way"


NAMES = ["context", "ip", "traits", "email"]  # the names along the clickstream's PII paths
DRIFTS = st.builds(
    lambda before, name, after, upper: before + (name.upper() if upper else name) + after,
    st.text(alphabet=" -_.\ufeff\u200b", max_size=2),
    st.sampled_from([*NAMES, "ｉｐ", "e_mail"]),
    st.text(alphabet=" -_.:\u200b", max_size=2),
    st.booleans(),
)


@settings(max_examples=300)
@given(key=st.one_of(DRIFTS, st.text(max_size=8)))
def test_a_key_the_masker_compares_to_a_declared_name_is_screened_unless_it_is_that_name(key: str) -> None:
    text = json.dumps({key: 1}, separators=(",", ":"), ensure_ascii=False)
    flagged = re2.search(declared_key_screen(CLICKSTREAM.pii), text) is not None
    if "\\" in text:
        return  # an escape sends a text to the per-record masker whatever its keys
    if key in NAMES:
        assert not flagged, key
    elif column_name(key) in NAMES:
        assert flagged, key
