"""A real `retreasure ingest` process killed with SIGKILL mid-run, then re-run, lands exactly what one clean
run lands; and a second clean run adds nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr

from retreasure.connectors.base import load_sources
from retreasure.lake import Lake
from retreasure.settings import Settings
from retreasure_sim.config import Faults, SimConfig
from retreasure_sim.stage import Credentials, build, running_servers

pytestmark = pytest.mark.e2e

CONFIG = SimConfig(seed=5, start=date(2025, 2, 1), days=20, scale=0.4, faults=Faults.on())
# What legitimately differs between two runs: when and in which batch a row landed (or a landed file was
# hashed), and the request URL (its window end is the moment of the run).
VOLATILE = (
    *("ingested_at", "batch_id", "origin", "quarantined_at", "first_seen_at", "ciphertext", "run_id", "landed_at"),
    "hashed_at",
)


def env_for(settings: Settings, lake: Path) -> dict[str, str]:
    """The subprocess gets everything through its environment, as a deployed job would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")}
    env.update(
        RETREASURE_LAKE_URI=str(lake),
        RETREASURE_LANDING_DIR=str(settings.landing_dir),
        RETREASURE_PII_HMAC_KEY=settings.pii_hmac_key.get_secret_value(),
        RETREASURE_PII_VAULT_KEY=settings.pii_vault_key.get_secret_value(),
        RETREASURE_INGEST__FLUSH_RECORDS="1000",  # many small commits, so the kill lands between two of them
        RETREASURE_HTTP__BACKOFF_BASE_S="0.01",
        RETREASURE_HTTP__BACKOFF_MAX_S="0.05",
    )
    for source, cls in load_sources().items():
        for name, value in cls.configured(settings):
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"RETREASURE_{source.upper()}__{name.upper()}"] = str(value)
    return env


def ingest(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "retreasure", "ingest"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def snapshot(lake: Lake) -> dict[str, list[dict]]:
    """Every table's rows, less what legitimately differs between runs (timestamps, batch ids, ciphertexts)."""
    tables = {}
    for ref in lake.tables():
        if ref.layer == "ops" and ref.name == "ingest_log":
            continue
        columns = [c for c in lake.dataset(ref).schema.names if c not in VOLATILE]
        tables[str(ref)] = lake.query(f"SELECT {', '.join(columns)} FROM {ref} ORDER BY ALL", [ref]).to_pylist()
    return tables


def _diff(extra: list[dict], missing: list[dict]) -> str:
    import json

    lines = []
    for row in extra[:3]:
        twin = next((m for m in missing if m["record_key"] == row["record_key"]), None)
        if twin:
            a, b = json.loads(row["raw"]), json.loads(twin["raw"])
            lines.append(str({k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}))
    return f"{len(extra)} extra, {len(missing)} missing: " + " | ".join(lines)


def test_kill_during_ingest_then_rerun_equals_one_clean_run(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    truth = build(CONFIG, tmp_path / "sim", Path(settings.landing_dir))
    with running_servers(truth, CONFIG, Credentials.fresh(), settings) as (served, _):
        clean_env = env_for(served, tmp_path / "clean")
        assert (
            subprocess.run(
                [sys.executable, "-m", "retreasure", "ingest"],
                env=clean_env,
                cwd=tmp_path,
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
        crashed_env = env_for(served, tmp_path / "crashed")
        process = ingest(crashed_env, tmp_path)
        commits = tmp_path / "crashed" / "bronze"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(commits.glob("*/_delta_log/*.json"))) < 3:
            time.sleep(0.02)
        assert process.poll() is None, "the run finished before it could be killed: make the data bigger"
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        rerun = subprocess.run(
            [sys.executable, "-m", "retreasure", "ingest"],
            env=crashed_env,
            cwd=tmp_path,
            capture_output=True,
            check=False,
        )
        assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
        clean, crashed = Lake(tmp_path / "clean"), Lake(tmp_path / "crashed")
        # The killed run's rows are in the log, none left `running`: its entity under way is `interrupted`.
        statuses = crashed.query("SELECT DISTINCT status FROM ops.ingest_log").column("status").to_pylist()
        assert set(statuses) <= {"success", "interrupted"}, statuses
        got, want = snapshot(crashed), snapshot(clean)
        assert got.keys() == want.keys()
        for table in want:
            if got[table] == want[table]:  # both sorted by every column: equal lists, the same rows as often
                continue
            extra = [r for r in got[table] if r not in want[table]]
            missing = [r for r in want[table] if r not in got[table]]
            assert (extra, missing) == ([], []), (table, _diff(extra, missing))
            assert got[table] == want[table], (table, "the same rows, not as often")
        before = {str(r): clean.count(r) for r in clean.tables("bronze")}
        full_reread = [sys.executable, "-m", "retreasure", "ingest", "--since", "2024-01-01"]
        again = subprocess.run(full_reread, env=clean_env, cwd=tmp_path, capture_output=True, check=False)
        assert again.returncode == 0
        assert {str(r): clean.count(r) for r in clean.tables("bronze")} == before
        assert len(before) >= 12
