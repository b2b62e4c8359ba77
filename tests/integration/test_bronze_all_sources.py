"""Every source at once, faults on: bronze matches the simulator, no clear PII anywhere, re-runs add nothing,
and one failing source neither stops the others nor goes unreported."""

from __future__ import annotations

from pathlib import Path

import pytest

from retreasure.bronze.ingest import run_ingest
from retreasure.lake import Lake, TableRef
from retreasure.lake.ingest_log import INGEST_LOG
from retreasure.records.instants import parse_instant
from retreasure_sim.config import Faults, SimConfig
from retreasure_sim.stage import Credentials, build, expected_counts, running_servers
from tests.conftest import SMALL
from tests.pii_scan import clear_values_in_parquet

CONFIG = SimConfig(SMALL.seed, SMALL.start, SMALL.days, SMALL.scale, Faults.on())


@pytest.fixture
def staged(make_settings, tmp_path: Path):
    settings = make_settings()
    truth = build(CONFIG, tmp_path / "sim", Path(settings.landing_dir))
    with running_servers(truth, CONFIG, Credentials.fresh(), settings) as (served, servers):
        yield truth, served, servers


def distinct_keys(lake: Lake, table: str) -> int:
    ref = TableRef("bronze", table)
    return lake.query(f"SELECT count(DISTINCT record_key) AS n FROM {ref} WHERE error IS NULL", [ref]).to_pylist()[0][
        "n"
    ]


def test_every_source_lands_what_the_simulator_sent(staged, tmp_path: Path) -> None:
    truth, settings, _ = staged
    lake = Lake.from_settings(settings)
    runs = run_ingest(settings, lake)
    assert [r.bronze_table for r in runs if r.status == "failed"] == []
    expected = expected_counts(truth)
    assert len(expected) >= 12
    assert {table: distinct_keys(lake, table) for table in expected} == expected
    assert sum(r.malformed for r in runs) > 0, "faults were on: some records must have come broken"
    assert sum(r.retries for r in runs) > 0, "faults were on: some requests must have been retried"
    injected: dict[str, int] = {}
    for fault in truth["faults"]:
        if fault.kind in ("malformed", "truncated"):
            injected[fault.source] = injected.get(fault.source, 0) + 1
    quarantined: dict[str, int] = {}
    for ref in lake.tables("quarantine"):
        source = ref.name.split("_", 1)[0]
        quarantined[source] = quarantined.get(source, 0) + lake.count(ref)
    assert quarantined == injected, "every injected broken record is quarantined, and nothing else"

    customers = truth["customers"]
    needles = [c.email for c in customers[:50]] + [c.phone for c in customers[:50]] + [c.street for c in customers[:20]]
    assert clear_values_in_parquet(tmp_path / "lake" / "bronze", needles) == []

    before = {str(r): lake.count(r) for r in lake.tables("bronze")}
    again = run_ingest(settings, lake, since=parse_instant("2024-01-01T00:00:00Z"))
    assert sum(r.new_records for r in again) == 0
    assert {str(r): lake.count(r) for r in lake.tables("bronze")} == before


def test_a_failing_source_is_logged_and_the_others_still_land(staged) -> None:
    _, settings, _ = staged
    broken = settings.with_source("ebay", access_token="wrong-token-123")
    lake = Lake.from_settings(broken)
    runs = run_ingest(broken, lake, ["ebay", "etsy", "ecb"])
    by_source = {r.source: r for r in runs}
    assert by_source["ebay"].status == "failed"
    assert "ebay" in by_source["ebay"].error and "wrong-token-123" not in by_source["ebay"].error
    assert by_source["etsy"].status == "success" and by_source["ecb"].status == "success"
    logged = lake.query(f"SELECT source, status, error FROM {INGEST_LOG} WHERE source = 'ebay'", [INGEST_LOG])
    assert set(logged.column("status").to_pylist()) == {"failed"}
