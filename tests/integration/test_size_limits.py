"""Size limits on real files and a real lake: an oversized line or record is one quarantined record with its
size and hash, never a stall; the rows around it are read; a refused file leaves none of its records behind."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retreasure.bronze.ingest import REFUSED_FILES, run_ingest
from retreasure.bronze.landing import BronzeWriter, bronze_table
from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import RawRecord
from retreasure.connectors.files import csv_rows
from retreasure.connectors.web import WebSource
from retreasure.lake import Lake
from retreasure.lake.store import TableRef
from retreasure.records.sizes import KEPT_CHARS
from retreasure.settings import Settings
from tests.conftest import HMAC_KEY

HEADER = "receipt_id,sku,quantity\n"
LIMIT = 4096


def good(n: int) -> str:
    return f"R-{n},RT-{n},{n}\n"


@pytest.mark.timeout(120)
@settings(max_examples=15)
@given(
    unit=st.sampled_from(["a@", "+1 ", ".", '"', "a,", "x@y.co 030 1234567 ", "\r", "0"]),
    size=st.one_of(st.integers(min_value=1, max_value=2 * LIMIT), st.integers(min_value=LIMIT, max_value=3_000_000)),
    before=st.integers(min_value=0, max_value=20),
    after=st.integers(min_value=0, max_value=20),
)
def test_any_line_among_good_rows_costs_at_most_the_limit_and_the_rows_are_read(
    tmp_path_factory: pytest.TempPathFactory, unit: str, size: int, before: int, after: int
) -> None:
    line = (unit * (size // len(unit) + 1))[:size].replace("\n", "")
    path = tmp_path_factory.mktemp("csv") / "drop.csv"
    rows_before, rows_after = [good(n) for n in range(before)], [good(n) for n in range(100, 100 + after)]
    path.write_text(HEADER + "".join(rows_before) + line + "\n" + "".join(rows_after))
    rows = list(csv_rows(path, LIMIT))
    good_cells = [r.cells for r in rows if r.cells is not None and r.error is None]
    oversized = len(line.encode()) > LIMIT  # the limit is on the text; the size and hash include its newline
    if oversized or '"' not in line:  # an open quote in a line the parser reads runs on, as CSV says it must
        assert {c["receipt_id"] for c in good_cells} >= {f"R-{n}" for n in range(100, 100 + after)}
    if oversized:
        [long_one] = [r for r in rows if (r.error or "").startswith("oversized")]
        digest = hashlib.sha256((line + "\n").encode()).hexdigest()
        expected = f"oversized: line of {len(line) + 1} bytes (sha256 {digest}) is over the {LIMIT}-byte limit"
        assert long_one.error == expected
        assert len(long_one.text) <= KEPT_CHARS + 3
    # One open quoted field can run over lines, up to the parser's field limit: never the whole line.
    assert all(len(r.text) <= csv.field_size_limit() + 2 * LIMIT for r in rows)


def test_a_record_over_the_record_limit_is_quarantined_whole_with_size_and_hash(
    make_settings: Callable[..., Settings],
) -> None:
    config = make_settings(ingest={"max_record_bytes": 2048})
    folder = Path(config.landing_dir) / "web" / "clickstream"
    folder.mkdir(parents=True)
    big = {"messageId": "E1", "timestamp": "2025-03-04T10:00:00Z", "blob": "call 030 1234567 " * 300}
    small = {"messageId": "E2", "timestamp": "2025-03-04T10:00:01Z", "type": "page"}
    (folder / "2025-03-04.jsonl").write_text(json.dumps(big) + "\n" + json.dumps(small) + "\n")
    lake = Lake.from_settings(config)
    runs = run_ingest(config, lake, ["web"])
    assert {r.status for r in runs} == {"success"}
    quarantine = TableRef("quarantine", "web_clickstream")
    [row] = lake.query(f"SELECT raw, reason, record_key FROM {quarantine}", [quarantine]).to_pylist()
    assert row["reason"].startswith("oversized: record of ") and "(sha256 " in row["reason"]
    assert row["record_key"] == "E1" and len(row["raw"]) <= KEPT_CHARS + 3 and "1234567" not in row["raw"]
    clickstream = bronze_table("web", WebSource.entities[0])
    assert lake.count(clickstream) == 2


def test_a_rolled_back_file_lands_none_of_its_records(lake: Lake) -> None:
    writer = BronzeWriter(lake, PiiMasker(HMAC_KEY), "web", WebSource.entities[1], batch_id="b")
    writer.add(RawRecord({"transaction_id": "T1", "occurred_at": "2025-03-04T10:00:00Z"}, "a.jsonl"))
    mark = writer.mark()
    writer.add(RawRecord({"transaction_id": "T2", "occurred_at": "2025-03-04T10:00:00Z"}, "b.jsonl"))
    writer.add(RawRecord("broken", "b.jsonl", error="malformed"))
    writer.rollback(mark)
    writer.flush()
    assert writer.stats.records == 1 and writer.stats.malformed == 0
    table = bronze_table("web", WebSource.entities[1])
    assert lake.query(f"SELECT record_key FROM {table}", [table]).to_pylist() == [{"record_key": "T1"}]


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"><Cube><Cube time="2025-03-04">
<Cube currency="USD" rate="1.08"/>&x;</Cube></Cube></gesmes:Envelope>
"""


def test_a_hostile_xml_file_is_refused_once(make_settings: Callable[..., Settings]) -> None:
    config = make_settings()
    drop = Path(config.landing_dir) / "ecb" / "eurofxref-daily.xml"
    drop.parent.mkdir(parents=True)
    drop.write_bytes(XXE)
    lake = Lake.from_settings(config)
    [first] = run_ingest(config, lake, ["ecb"])
    assert first.status == "partial" and "DTDs and entities are not allowed" in (first.error or "")
    [row] = lake.query(f"SELECT path, sha256, reason FROM {REFUSED_FILES}", [REFUSED_FILES]).to_pylist()
    assert row["path"] == "ecb/eurofxref-daily.xml" and row["sha256"] == hashlib.sha256(XXE).hexdigest()
    assert not lake.exists(TableRef("bronze", "ecb_fx_rates")) or lake.count(TableRef("bronze", "ecb_fx_rates")) == 0
    [second] = run_ingest(config, lake, ["ecb"])
    assert second.status == "success" and second.files == 0 and second.records == 0
