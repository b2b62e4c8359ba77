"""The commands a data engineer runs by hand: `sim`, then `fakes` in one terminal, `ingest` in another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retreasure.lake import Lake
from retreasure_sim.model import Truth
from retreasure_sim.stage import expected_counts
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import free_port

pytestmark = pytest.mark.e2e


def test_sim_fakes_ingest_by_hand(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("shopify", "ebay", "etsy")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")}
    env.update(
        COLUMNS="200",
        RETREASURE_PII_HMAC_KEY=HMAC_KEY,
        RETREASURE_PII_VAULT_KEY=VAULT_KEY,
        RETREASURE_SHOPIFY__ACCESS_TOKEN="shpat-hand-test",
        RETREASURE_EBAY__ACCESS_TOKEN="v^1.1#hand-test",
        RETREASURE_ETSY__API_KEY="etsy-key-hand",
        RETREASURE_ETSY__ACCESS_TOKEN="12345.etsy-token-hand",
        **{f"RETREASURE_{name.upper()}__BASE_URL": f"http://127.0.0.1:{port}" for name, port in ports.items()},
    )
    cli = [sys.executable, "-m", "retreasure"]
    sim = subprocess.run(
        [*cli, "sim", "--days", "7", "--scale", "0.2", "--no-faults"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sim.returncode == 0, sim.stderr[-2000:]
    assert "Simulated 2025-01-01 to 2025-01-07" in sim.stdout
    fakes = subprocess.Popen([*cli, "fakes", "--no-faults"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # one line per server once it listens
            assert fakes.stdout is not None and "http://127.0.0.1:" in fakes.stdout.readline()
        ingest = subprocess.run([*cli, "ingest"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
        assert ingest.returncode == 0, ingest.stdout[-3000:] + ingest.stderr[-3000:]
        for secret in ("shpat-hand-test", "hand-test", "etsy-token-hand", HMAC_KEY):
            assert secret not in ingest.stdout + ingest.stderr
    finally:
        fakes.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert fakes.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    lake = Lake(tmp_path / "lake")
    expected = expected_counts(Truth.load(tmp_path / "sim-data" / "truth"))
    landed = {
        ref.name: lake.query(f"SELECT count(DISTINCT record_key) AS n FROM {ref} WHERE error IS NULL", [ref])
        .column("n")[0]
        .as_py()
        for ref in lake.tables("bronze")
    }
    assert landed == expected
