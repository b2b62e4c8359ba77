"""Hostile and drifting drops in a real landing folder, ingested by the CLI as a user runs it: a huge line cannot
hang the run or sink its file's good rows, a drifted header cannot put phone numbers in clear in the lake, and a
file that cannot be read is refused once, then retried only when it changes or when asked to."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retreasure.bronze.ingest import REFUSED_FILES, forget_refused, run_ingest
from retreasure.exitcodes import ExitCode
from retreasure.lake import Lake
from retreasure.lake.ingest_log import INGEST_LOG
from retreasure.lake.store import TableRef
from retreasure.settings import Settings
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import run_cli
from tests.pii_scan import clear_values_in_parquet

pytestmark = pytest.mark.e2e

COLUMNS = [
    *("type", "receipt_id", "line_no", "sold_at", "store_id", "sku", "title", "quantity", "unit_price"),
    *("discount", "tax", "tax_rate", "currency", "discount_code", "payment_method", "loyalty_email", "loyalty_phone"),
]
PHONES = [
    "+44 20 7946 0958",
    "020 7946 0958",
    "(212) 555-0147",
    "212-555-0147",
    "0049 30 123456",
    "030 1234567",
    "+1.212.555.0147",
    "+4930987654",
]
EMAILS = ["ann.weber@example.com", "bob+tills@example.org"]
SALES = TableRef("bronze", "pos_sales")
QUARANTINE = TableRef("quarantine", "pos_sales")


def sale(n: int, email: str = "", phone: str = "") -> list[str]:
    return [
        *("sale", f"BER-{n}", "1", f"2025-03-04T10:{n % 60:02d}:00+01:00", "BER", f"RT-{n}", "Vase", "1", "12.50"),
        *("0.00", "2.38", "0.19", "EUR", "", "card", email, phone),
    ]


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    quote = lambda cell: f'"{cell}"' if "," in cell or '"' in cell else cell  # noqa: E731
    return "".join(",".join(quote(c) for c in row) + "\n" for row in [header, *rows])


def ingest(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, "ingest", *args, columns=200, **env)


def scalar(lake: Lake, sql: str, *refs: TableRef) -> object:
    return lake.query(sql, list(refs)).to_pylist()[0]["v"]


@pytest.mark.timeout(120)
def test_a_ten_megabyte_line_among_good_rows_is_quarantined_and_the_rows_land(tmp_path: Path) -> None:
    rows = [sale(n) for n in range(1, 31)]
    hostile = ("a@b," * 2_500_000 + "+1 " * 10).encode() + b"\n"  # ~10 MB, what once kept the run at 100% CPU
    body = csv_text(COLUMNS, rows[:15]).encode() + hostile + csv_text(COLUMNS, rows[15:]).encode().split(b"\n", 1)[1]
    drop = tmp_path / "landing/pos/sales/BER/2025-03-04/sales_10.csv"
    drop.parent.mkdir(parents=True)
    drop.write_bytes(body)

    first = ingest(tmp_path, "--source", "pos")
    assert first.returncode == ExitCode.OK, first.stdout[-2000:] + first.stderr[-2000:]
    lake = Lake(tmp_path / "lake")
    assert scalar(lake, f"SELECT count(*) AS v FROM {SALES} WHERE error IS NULL", SALES) == 30
    [quarantined] = lake.query(f"SELECT raw, reason FROM {QUARANTINE}", [QUARANTINE]).to_pylist()
    digest = hashlib.sha256(hostile).hexdigest()
    assert quarantined["reason"] == (
        f"oversized: line of {len(hostile)} bytes (sha256 {digest}) is over the {1 << 20}-byte limit"
    )
    assert quarantined["raw"].startswith("a@b,a@b,") and len(quarantined["raw"]) < 5000
    log = f"SELECT records, files FROM {INGEST_LOG} WHERE source = 'pos' AND entity = 'sales' ORDER BY started_at"
    assert lake.query(log, [INGEST_LOG]).to_pylist() == [{"records": 31, "files": 1}]

    second = ingest(tmp_path, "--source", "pos")
    assert second.returncode == ExitCode.OK, second.stdout[-2000:] + second.stderr[-2000:]
    assert lake.query(log, [INGEST_LOG]).to_pylist() == [{"records": 31, "files": 1}, {"records": 0, "files": 0}]
    assert scalar(lake, f"SELECT count(*) AS v FROM {SALES}", SALES) == 31


DRIFTED_PHONE_HEADERS = [
    *("loyalty_phone\x00", "Loyalty Phone", "\u200bloyalty_phone", "LOYALTY-PHONE ", "loyalty\u200b_phone"),
]


def test_drifted_headers_leave_no_clear_phone_or_email_in_any_parquet_file(tmp_path: Path) -> None:
    landing = tmp_path / "landing/pos/sales/BER"
    n = 0
    for hour, phone_header in enumerate(DRIFTED_PHONE_HEADERS, start=10):
        header = [*COLUMNS[:-2], " LOYALTY EMAIL", phone_header, "customer mobile"]
        header[0] = "\ufeffType"
        rows = []
        for phone in PHONES:
            n += 1
            rows.append([*sale(n, EMAILS[n % 2], phone), PHONES[(n + 3) % len(PHONES)]])
        rows.append(["sale", "BER-x", "call " + PHONES[hour % len(PHONES)], "or", EMAILS[0]])  # a broken row
        path = landing / "2025-03-04" / f"sales_{hour}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(csv_text(header, rows), encoding="utf-8")
    result = ingest(tmp_path, "--source", "pos")
    assert result.returncode == ExitCode.OK, result.stdout[-2000:] + result.stderr[-2000:]
    lake = Lake(tmp_path / "lake")
    assert clear_values_in_parquet(tmp_path / "lake", PHONES + EMAILS) == []
    # The landed names are the normalised ones, so silver still finds the loyalty columns after the drift.
    landed = lake.query(
        f"SELECT json_extract_string(raw, '$.loyalty_phone') AS phone, json_extract_string(raw, '$.loyalty_email') "
        f"AS email, json_extract_string(raw, '$.type') AS type FROM {SALES} WHERE error IS NULL",
        [SALES],
    ).to_pylist()
    assert len(landed) == n
    assert all(r["phone"].startswith("pii:phone:") and r["email"].startswith("pii:email:") for r in landed)
    assert {r["type"] for r in landed} == {"sale"}


header_variants = st.builds(
    lambda name, pad, case: pad[0] + case(name) + pad[1],
    st.sampled_from(["loyalty_phone", "loyalty phone", "loyalty-phone", "Loyalty.Phone", "mobile", "tel"]),
    st.tuples(
        st.sampled_from(["", "\ufeff", " ", "\u200b", "\u200d"]), st.sampled_from(["", "\x00", " ", "\u2060", "\t"])
    ),
    st.sampled_from([str.lower, str.upper, str.title]),
)


@settings(max_examples=8)
@given(phone_header=header_variants, email_header=header_variants, phones=st.permutations(PHONES))
def test_generated_header_drift_never_lands_a_clear_phone(
    phone_header: str, email_header: str, phones: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        header = [*COLUMNS[:-2], email_header, phone_header]
        rows = [sale(n, EMAILS[n % 2], phone) for n, phone in enumerate(phones, start=1)]
        path = root / "landing/pos/sales/LON/2025-03-04/sales_09.csv"
        path.parent.mkdir(parents=True)
        path.write_text(csv_text(header, rows), encoding="utf-8")
        config = Settings(  # type: ignore[call-arg]
            _env_file=None,
            lake_uri=str(root / "lake"),
            landing_dir=root / "landing",
            pii_hmac_key=HMAC_KEY,
            pii_vault_key=VAULT_KEY,
        )
        runs = run_ingest(config, Lake.from_settings(config), ["pos"])
        assert {r.status for r in runs} == {"success"}
        assert clear_values_in_parquet(root / "lake", PHONES + EMAILS) == []


NOT_GEOJSON = b'{"type": "FeatureCollection", "features": [{"name": "caf\xe9"}]}'


def test_an_unreadable_file_is_refused_once_and_retried_when_it_changes(tmp_path: Path) -> None:
    config = Settings(  # type: ignore[call-arg]
        _env_file=None,
        lake_uri=str(tmp_path / "lake"),
        landing_dir=tmp_path / "landing",
        pii_hmac_key=HMAC_KEY,
        pii_vault_key=VAULT_KEY,
    )
    lake = Lake.from_settings(config)
    drop = tmp_path / "landing/geo/zones/zones_2025-03-01.geojson"
    drop.parent.mkdir(parents=True)
    drop.write_bytes(NOT_GEOJSON)
    [_, zones] = run_ingest(config, lake, ["geo"])
    assert zones.status == "partial" and "not UTF-8" in (zones.error or "")
    refused = f"SELECT path, bytes, sha256, reason FROM {REFUSED_FILES}"
    [row] = lake.query(refused, [REFUSED_FILES]).to_pylist()
    assert row["path"] == "geo/zones/zones_2025-03-01.geojson" and row["bytes"] == len(NOT_GEOJSON)
    assert row["sha256"] == hashlib.sha256(NOT_GEOJSON).hexdigest() and "not UTF-8" in row["reason"]

    [_, again] = run_ingest(config, lake, ["geo"])
    assert again.status == "success" and again.files == 0, "unchanged: not read again"
    assert len(lake.query(refused, [REFUSED_FILES])) == 1

    drop.write_bytes(NOT_GEOJSON.replace(b"caf", b"bar"))  # changed, still broken: tried once more
    [_, changed] = run_ingest(config, lake, ["geo"])
    assert changed.status == "partial" and len(lake.query(refused, [REFUSED_FILES])) == 2

    drop.write_text('{"type": "FeatureCollection", "features": []}')
    [_, fixed] = run_ingest(config, lake, ["geo"])
    assert fixed.status == "success" and fixed.files == 1
    assert forget_refused(lake, ["geo"]) == 2 and len(lake.query(refused, [REFUSED_FILES])) == 0


def test_a_file_over_the_limit_is_refused_unread_and_replayed_with_retry_refused(tmp_path: Path) -> None:
    drop = tmp_path / "landing/pos/sales/BER/2025-03-04/sales_10.csv"
    drop.parent.mkdir(parents=True)
    drop.write_text(csv_text(COLUMNS, [sale(n, EMAILS[0], PHONES[0]) for n in range(1, 41)]))
    size = drop.stat().st_size
    small = {"RETREASURE_INGEST__MAX_FILE_BYTES": "2048"}

    refused = ingest(tmp_path, "--source", "pos", **small)
    assert refused.returncode == ExitCode.PARTIAL, refused.stdout[-2000:] + refused.stderr[-2000:]
    lake = Lake(tmp_path / "lake")
    [row] = lake.query(f"SELECT reason FROM {REFUSED_FILES}", [REFUSED_FILES]).to_pylist()
    assert row["reason"].startswith(f"oversized: file of {size} bytes (sha256 ")
    assert not lake.exists(SALES) or lake.count(SALES) == 0

    unchanged = ingest(tmp_path, "--source", "pos")  # the limit raised, but the file is known refused
    assert unchanged.returncode == ExitCode.OK
    assert not lake.exists(SALES) or lake.count(SALES) == 0

    replay = ingest(tmp_path, "--source", "pos", "--retry-refused")
    assert replay.returncode == ExitCode.OK, replay.stdout[-2000:] + replay.stderr[-2000:]
    assert "Retrying 1 refused file" in replay.stdout
    assert lake.count(SALES) == 40 and len(lake.query(f"SELECT * FROM {REFUSED_FILES}", [REFUSED_FILES])) == 0
