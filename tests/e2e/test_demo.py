"""The main job, as a person runs it: `retreasure demo` in a fresh folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from retreasure.lake import Lake

pytestmark = pytest.mark.e2e


def test_demo_lands_every_source_and_matches_the_simulator(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")}
    env["COLUMNS"] = "80"  # a first run in a plain terminal reads whole
    command = [sys.executable, "-m", "retreasure", "demo", "--days", "14", "--scale", "0.2"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "…" not in done.stdout, "a table cut a value short at 80 columns"
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    assert '"level"' not in done.stdout + done.stderr, "JSON log lines belong in the log file, not the console"
    assert re.search(r"retries \w+: [\d,]+ of [\d,]+ requests; last: HTTP 429", done.stdout), "429s summed up"
    log_lines = (tmp_path / "logs" / "retreasure.log").read_text().splitlines()
    assert any(json.loads(line)["msg"] == "retrying" for line in log_lines)
    assert "mismatches: 0" in done.stdout
    assert "checks failed: none" in done.stdout
    assert "Net revenue (EUR)" in done.stdout and "Tax owed by us (EUR)" in done.stdout
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600, "the generated keys are private"
    lake = Lake(tmp_path / "lake")
    assert len(lake.tables("bronze")) >= 12
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0
    assert "mismatches: 0" in again.stdout
    new_rows = lake.query("SELECT sum(new_records) AS n FROM ops.ingest_log GROUP BY run_id ORDER BY min(started_at)")
    assert new_rows.column("n").to_pylist()[-1] == 0, "the second run adds no rows"
