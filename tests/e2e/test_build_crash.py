"""A real `retreasure build` killed with SIGKILL part-way through the models, then run again, leaves exactly
the silver, gold and quarantine tables of one clean build: no half-written table, no quarantined row twice."""

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
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import copy_lake, rows_without

pytestmark = pytest.mark.e2e

# What legitimately differs between two builds: which run wrote a row, and when it was quarantined.
VOLATILE = ("run_id", "quarantined_at")
KILL_AFTER_TABLES = 12  # silver tables on disk before the kill: well into the build, far from its end


def _env(lake: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")}
    env.update(RETREASURE_LAKE_URI=str(lake), RETREASURE_PII_HMAC_KEY=HMAC_KEY, RETREASURE_PII_VAULT_KEY=VAULT_KEY)
    return env


def _built(lake: Path) -> int:
    return sum(1 for log in (lake / "silver").glob("*/_delta_log") if any(log.iterdir()))


def _kill_mid_build(lake: Path) -> None:
    cli = [sys.executable, "-m", "retreasure", "build"]
    process = subprocess.Popen(cli, env=_env(lake), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while _built(lake) < KILL_AFTER_TABLES and time.monotonic() < deadline:
            assert process.poll() is None, "the build finished before it could be killed"
            time.sleep(0.05)
        assert _built(lake) >= KILL_AFTER_TABLES, "the build made no progress"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def test_a_build_killed_midway_then_rerun_equals_one_clean_build(
    bronze_lake: tuple[Truth, Lake], gold_lake: tuple[Truth, Lake], tmp_path: Path
) -> None:
    lake = copy_lake(bronze_lake[1], tmp_path / "lake")
    _kill_mid_build(Path(lake.uri))
    partial = set(lake.tables("silver") + lake.tables("gold"))
    clean = gold_lake[1]
    expected = clean.tables("silver") + clean.tables("gold") + clean.tables("quarantine")
    assert partial < set(expected), "the kill landed after the build had finished"

    rerun = subprocess.run(
        [sys.executable, "-m", "retreasure", "build"], env=_env(Path(lake.uri)), capture_output=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]

    assert sorted(map(str, lake.tables("silver") + lake.tables("gold") + lake.tables("quarantine"))) == sorted(
        map(str, expected)
    )
    for ref in expected:
        assert rows_without(lake, ref, VOLATILE) == rows_without(clean, ref, VOLATILE), f"{ref} differs"
