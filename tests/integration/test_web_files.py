"""The JSON Lines connector on hand-made files: every line accounted for, none able to sink the file."""

from __future__ import annotations

import json
from pathlib import Path

from retreasure.connectors.web import WebSource
from retreasure.records.sizes import KEPT_CHARS
from retreasure.settings import Settings


def test_every_line_is_a_record_or_a_reported_error(tmp_path: Path) -> None:
    source = WebSource(Settings(_env_file=None, landing_dir=tmp_path))  # type: ignore[call-arg]
    good = {
        "transaction_id": "T1",
        "order_id": "7500000000000001",
        "amount": "12.50",
        "occurred_at": "2025-03-04T10:00:00Z",
    }
    lines = [
        b"\xef\xbb\xbf" + json.dumps(good).encode(),
        b"",
        b'{"transaction_id": "T2", "amount": NaN}',
        b"[1, 2]",
        b'{"transaction_id": "T3", "note": "caf\xe9"}',
        b'{"transaction_id": "T4", "amount": "1.00"}',
        b'{"transaction_id": "T5", "amo',
    ]
    path = tmp_path / "web" / "transactions" / "2025-03-04.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join(lines))
    entity = source.entity("transactions")
    assert source.files(entity) == [path]
    records = list(source.read(entity, path))
    assert [r.error is None for r in records] == [True, False, False, False, True, False]
    assert records[0].payload == good and records[4].payload == {"transaction_id": "T4", "amount": "1.00"}
    assert "NaN is not JSON" in (records[1].error or "") and "not an object" in (records[2].error or "")
    assert (
        "malformed JSON" in (records[3].error or "")
        and records[3].payload == '{"transaction_id": "T3", "note": "caf\ufffd"}'
    )
    assert (records[5].error or "").startswith("truncated") and records[5].payload == '{"transaction_id": "T5", "amo'
    assert all(
        str(r.partition_date) == "2025-03-04" and r.origin == "web/transactions/2025-03-04.jsonl" for r in records
    )


def test_an_overlong_line_is_reported_and_skipped(tmp_path: Path) -> None:
    source = WebSource(Settings(_env_file=None, landing_dir=tmp_path))  # type: ignore[call-arg]
    path = tmp_path / "2025-03-04.jsonl"
    huge = '{"messageId": "E1", "blob": "' + "x" * (source.settings.ingest.max_line_bytes + 10) + '"}'
    path.write_text(huge + "\n" + '{"messageId": "E2", "timestamp": "2025-03-04T10:00:00.000Z"}\n')
    first, second = source.read(source.entity("clickstream"), path)
    assert (first.error or "").startswith(f"oversized: line of {len(huge) + 1} bytes (sha256 ")
    assert len(first.payload) <= KEPT_CHARS + 3
    assert second.error is None and second.payload["messageId"] == "E2"


def test_pii_is_declared_where_the_collector_puts_it() -> None:
    paths = WebSource.entities[0].pii.paths
    assert paths["context.ip"] == "ip" and paths["context.traits.email"] == "email"
