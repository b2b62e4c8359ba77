"""The whole flow with the lake on Azure storage (ADLS Gen2 URI, Azurite on loopback): the faulty business ingested,
`retreasure build` on DuckDB, the KPIs served through the read layer, `retreasure export finance`; every number
equals the same flow on local disk, and the simulator's books."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retreasure.lake import Lake, TableRef
from retreasure.lake.protocol import unreadable_tables
from retreasure.serving.exports.finance import MANIFEST, export_finance
from retreasure.serving.kpis import summary
from retreasure_sim.ledger import books
from retreasure_sim.model import Truth
from tests.azure_fixtures import Azurite
from tests.conftest import HMAC_KEY, VAULT_KEY, ingest_faulty_business

# Every read and commit is an HTTP round trip to a single-threaded emulator: a few times the local flow's time.
pytestmark = [pytest.mark.azure, pytest.mark.e2e, pytest.mark.timeout(1800)]
# What two landings of the same records share: the raw text and its hash differ by the fake servers' ports (in
# the links eBay returns), the batch and its time by the run.
RECORD = "source, entity, record_key, record_updated_at, error, partition_date"
# Ad-spend rows carry no change time of their own: their landing time stands in for it.
LANDED_AT = {TableRef("silver", "ad_spend"): "* EXCLUDE (updated_ts)"}


def _rows(lake: Lake, ref: TableRef, columns: str = "*") -> list[dict[str, object]]:
    return lake.query(f"SELECT {columns} FROM {ref} ORDER BY ALL", [ref]).to_pylist()


def _retreasure(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retreasure", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_the_flow_on_azure_storage_gives_the_numbers_it_gives_on_local_disk(
    azurite: Azurite, gold_lake: tuple[Truth, Lake], tmp_path: Path
) -> None:
    truth, local = gold_lake
    uri = azurite.fresh_lake_uri("flow")
    _, settings = ingest_faulty_business(tmp_path, lake_uri=uri, storage=azurite.storage_settings())
    remote = Lake.from_settings(settings)
    assert remote.tables("bronze") == local.tables("bronze")
    for ref in local.tables("bronze"):
        assert _rows(remote, ref, RECORD) == _rows(local, ref, RECORD), ref

    # The commands read the lake and its credentials from the environment only, as in production.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")}
    env |= azurite.environment() | {
        "RETREASURE_LAKE_URI": uri,
        "RETREASURE_PII_HMAC_KEY": HMAC_KEY,
        "RETREASURE_PII_VAULT_KEY": VAULT_KEY,
        "RETREASURE_DAGSTER_HOME": str(tmp_path / "dagster"),
        "RETREASURE_LOG_FILE": "-",
        "COLUMNS": "200",
    }
    built = _retreasure(env, tmp_path, "build")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert not (tmp_path / "lake").exists(), "nothing of the lake on local disk"

    modelled = local.tables("silver") + local.tables("gold")
    assert remote.tables("silver") + remote.tables("gold") == modelled
    for ref in modelled:
        columns = LANDED_AT.get(ref, "*")
        assert _rows(remote, ref, columns) == _rows(local, ref, columns), ref
    assert remote.tables("quarantine") == local.tables("quarantine")
    for ref in local.tables("quarantine"):
        assert remote.count(ref) == local.count(ref), ref
    assert unreadable_tables(remote) == {}

    # Served through the read layer: the same KPIs, and gold still equals the simulator's books.
    served = summary(remote)
    assert served == summary(local)
    assert dict(served)["Net revenue (EUR)"] == books(truth).net_revenue

    period = f"{local.query('SELECT max(month) AS m FROM gold.mart_finance').column('m')[0].as_py():%Y-%m}"
    refused = _retreasure(env, tmp_path, "export", "finance", "--period", period)
    assert refused.returncode == 2 and "remote: pass --out" in refused.stdout
    exported = _retreasure(env, tmp_path, "export", "finance", "--period", period, "--out", str(tmp_path / "remote"))
    assert exported.returncode == 0, exported.stdout[-3000:] + exported.stderr[-3000:]
    from_azure = json.loads((tmp_path / "remote" / period / MANIFEST).read_text())
    from_disk = export_finance(local, period, tmp_path / "local").manifest
    assert from_azure["files"] == from_disk["files"]  # names, rows, totals and SHA-256 of every file
    assert from_azure["files"] and all(f["rows"] for f in from_azure["files"] if f["report"] == "revenue")
