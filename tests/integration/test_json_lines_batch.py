"""A JSON Lines file lands the same whichever way its records go: one by one (``BronzeWriter.add`` of each record
``FileSource.read`` makes) or a batch of lines at a time (``BronzeWriter.add_lines``, the ingest's way). Same
bronze rows byte for byte (raw text, record hash, PII tokens, keys, dates, reasons), same quarantine, same vault."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from retreasure.bronze.landing import BronzeWriter, bronze_table, quarantine_table
from retreasure.bronze.pii import VAULT, PiiMasker
from retreasure.bronze.record import LONE_SURROGATE
from retreasure.connectors.files import json_line_texts
from retreasure.connectors.web import WebSource
from retreasure.lake import Lake, TableRef
from retreasure.settings import Settings
from tests.conftest import HMAC_KEY

EVENT = {
    "type": "track",
    "messageId": "E000000324",
    "userId": "9300000000000002",
    "properties": {"order_id": "9500000000000002", "total": "399.72", "quantity": 1, "sku": "RT-001364"},
    "context": {"ip": "198.51.100.136", "traits": {"email": "Giulia.Johnson@post.example.net"}},
    "timestamp": "2025-03-04T08:29:30.000Z",
}


def lines() -> list[bytes]:
    """Records of every kind the two ways must agree on: the common shape, each thing that sends a record to the
    per-record functions, and every malformed line the reader reports."""
    records: list[Any] = [
        EVENT,
        {**EVENT, "messageId": "E2", "traits": {"email": "ann@example.org"}},  # PII at another declared path
        {**EVENT, "messageId": "E3", "properties": {"note": "call +44 20 7946 0958"}},  # a phone in free text
        {**EVENT, "messageId": "E4", "properties": {"note": "write to bob@example.com"}},  # an e-mail in free text
        {**EVENT, "messageId": "E5", "properties": {"price": 294.0, "big": 2**65}},  # numbers orjson writes apart
        {**EVENT, "messageId": "E6", "properties": {"title": 'a "quoted" café\n'}},  # escapes
        {**EVENT, "messageId": "E7", "context": [{"ip": "192.0.2.7"}]},  # a list along a declared path
        {**EVENT, "messageId": "E8", "timestamp": "yesterday"},  # a change time that does not parse
        {**EVENT, "messageId": "E9", "timestamp": 1741076970},  # epoch seconds
        {key: value for key, value in EVENT.items() if key != "messageId"},  # no business key
        {**EVENT, "messageId": "", "context": {"ip": "  "}},  # an empty key, a blank PII value
        {**EVENT, "messageId": "E10", "context": {"ip": "pii:ip:0123"}},  # already a token
        {**EVENT, "messageId": 10016},  # a number for a key
        {**EVENT, "messageId": "E17", "timestamp": "2025-03-04T01:29:30.5+02:00"},  # an offset: the day before
        {**EVENT, "messageId": "E18", "timestamp": "2025-02-30T08:29:30Z"},  # a day that does not exist
    ]
    texts = [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() for r in records]
    texts += [json.dumps(r).encode() for r in records[:3]]  # json.dumps' default spacing: the same records again
    texts[0] = b"\xef\xbb\xbf" + texts[0]
    texts += [
        b"",
        b'{"messageId": "E11", "amount": NaN}',
        b"[1, 2]",
        b'{"messageId": "E12", "note": "caf\xe9"}',
        b'{"messageId": "E13", "blob": "' + b"x" * 3000 + b'"}',  # over the line limit below
        b"[" * 500 + b"]" * 500,
        b'{"messageId": "E15", "note": "\\ud800"}',  # a lone surrogate: valid JSON no UTF-8 text can hold
        b'{"messageId": "E14", "amo',  # the file's end, cut in transfer
    ]
    return texts


def land(root: Path, path: Path, batched: bool) -> Lake:
    settings = Settings(_env_file=None, landing_dir=root / "landing", ingest={"max_line_bytes": 2048})  # type: ignore[call-arg]
    source = WebSource(settings)
    entity = source.entity("clickstream")
    lake = Lake(root / ("batched" if batched else "one_by_one"))
    masker = PiiMasker(HMAC_KEY, VAULT_KEY)
    limits = settings.ingest
    writer = BronzeWriter(
        lake, masker, "web", entity, "run/1", AT, max_record_bytes=1 << 20, max_line_bytes=limits.max_line_bytes
    )
    if batched:
        texts = list(json_line_texts(path, writer.max_line_bytes))
        for start in range(0, len(texts), 4):  # batches that split the odd records among them
            writer.add_lines(texts[start : start + 4], "web/clickstream/2025-03-04.jsonl", FILE_DAY)
    else:
        for record in source.read(entity, path):
            writer.add(record)
    writer.flush()
    return lake


def rows(lake: Lake, ref: TableRef, order: str) -> list[dict[str, Any]]:
    return lake.query(f"SELECT * FROM {ref} ORDER BY {order}", [ref]).to_pylist()


AT = datetime(2025, 3, 5, tzinfo=UTC)
FILE_DAY = datetime(2025, 3, 4).date()
VAULT_KEY = Fernet.generate_key().decode()
SURROGATE_RAW = '{"messageId":"E15","note":"?"}'  # kept, with the character no UTF-8 text holds replaced


def test_a_file_lands_the_same_one_record_at_a_time_and_a_batch_of_lines_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "landing" / "web" / "clickstream" / "2025-03-04.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join(lines()))
    one_by_one, batched = land(tmp_path, path, batched=False), land(tmp_path, path, batched=True)
    table = bronze_table("web", WebSource.entities[0])
    expected = rows(one_by_one, table, "record_hash")
    assert len(expected) == len(lines()) - 1 - 3  # but the blank line, and the repeats (same raw text, same hash)
    assert rows(batched, table, "record_hash") == expected
    assert sum(row["error"] is None for row in expected) == 11
    assert {row["partition_date"] for row in expected} >= {FILE_DAY, FILE_DAY.replace(day=3)}
    assert [(row["raw"], row["error"]) for row in expected if "E15" in row["raw"]] == [(SURROGATE_RAW, LONE_SURROGATE)]
    assert any("pii:email:" in row["raw"] for row in expected) and not any("example" in r["raw"] for r in expected)
    quarantine = quarantine_table("web", WebSource.entities[0])
    assert rows(batched, quarantine, "record_hash") == rows(one_by_one, quarantine, "record_hash")
    vault = clear_vault(one_by_one)
    assert clear_vault(batched) == vault and len(vault) >= 4


def clear_vault(lake: Lake) -> list[tuple[str, str, str]]:
    """(token, kind, clear value) of every vault row (the ciphertexts differ: Fernet's nonce and time)."""
    reveal = PiiMasker(HMAC_KEY, VAULT_KEY).reveal
    return [(r["token"], r["kind"], reveal(r["ciphertext"])) for r in rows(lake, VAULT, "token")]
