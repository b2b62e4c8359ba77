"""One build at a time on a lake: while a `retreasure build` process holds the lake, a second build process waits
for it (saying whom it waits for) and a stream's micro-build skips, leaving its rows to the next tick."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retreasure.engine.changes import BUILDS
from retreasure.lake import Lake, TableRef
from retreasure.lake.lock import LakeBusy, build_lock, holder
from retreasure.streaming.microbuild import STREAM_BUILDS, MicroBuilds
from retreasure_sim.model import Truth
from tests.helpers import cli_env

STREAMED = (TableRef("bronze", "web_clickstream"), TableRef("bronze", "web_transactions"))


def _build(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "retreasure", "build", *args],
        cwd=root,
        env=cli_env(root, RETREASURE_LOG_FILE="-"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _held_by(lake: Lake, pid: int) -> bool:
    """True once process ``pid`` holds the lake's lock (it says so in the file, and the lock is taken)."""
    if holder(lake).get("pid") != pid:
        return False
    try:
        with build_lock(lake, "probe", wait_s=0):
            return False
    except LakeBusy:
        return True


def test_a_second_build_waits_and_a_micro_build_skips_while_a_build_holds_the_lake(
    bronze_lake: tuple[Truth, Lake], tmp_path: Path
) -> None:
    lake = Lake(shutil.copytree(bronze_lake[1].uri, tmp_path / "lake"))
    first = _build(tmp_path)
    deadline = time.monotonic() + 120
    while not _held_by(lake, first.pid) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _held_by(lake, first.pid), "the full build never held the lake"
    assert holder(lake)["mode"] == "full"

    second = _build(tmp_path, "--incremental")
    skipped = MicroBuilds(lake, STREAMED, every_s=60).build_now()
    assert skipped.status == "skipped" and f"pid {first.pid}" in (skipped.error or "")
    stored = lake.query(f"SELECT status, error FROM {STREAM_BUILDS}", [STREAM_BUILDS]).to_pylist()
    assert [r["status"] for r in stored] == ["skipped"]

    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, out + err
    out2, err2 = second.communicate(timeout=600)
    assert second.returncode == 0, out2 + err2
    waiting = [json.loads(line) for line in err2.splitlines() if "build waiting for the lake" in line]
    assert waiting and waiting[0]["holder"]["pid"] == first.pid and waiting[0]["holder"]["mode"] == "full"

    builds = lake.query(
        f"SELECT mode, status, started_at, finished_at FROM {BUILDS} ORDER BY started_at", [BUILDS]
    ).to_pylist()
    assert [(b["mode"], b["status"]) for b in builds] == [("full", "success"), ("incremental", "success")]
    assert builds[1]["started_at"] >= builds[0]["finished_at"], "the two builds overlapped"

    # The lake is free again: the next micro-build runs (nothing new in the streamed tables: no model runs).
    after = MicroBuilds(lake, STREAMED, every_s=60).build_now()
    assert after.status == "success" and after.model_runs == 0


def test_the_lock_is_free_again_when_its_holder_is_killed(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    code = (
        "import sys, time\n"
        "from retreasure.lake import Lake\n"
        "from retreasure.lake.lock import build_lock\n"
        "with build_lock(Lake(sys.argv[1]), 'full'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n"
    )
    holder_process = subprocess.Popen([sys.executable, "-c", code, lake.uri], stdout=subprocess.PIPE, text=True)
    try:
        assert holder_process.stdout is not None and holder_process.stdout.readline().strip() == "held"
        with pytest.raises(LakeBusy) as busy, build_lock(lake, "incremental", wait_s=0.5):
            pass
        assert busy.value.holder["pid"] == holder_process.pid and busy.value.waited_s >= 0.5
    finally:
        holder_process.kill()
        holder_process.wait()
    with build_lock(lake, "incremental", wait_s=5):
        assert holder(lake)["mode"] == "incremental"
