"""The main job, as a person runs it: `retreasure demo` in a fresh folder, on a machine with Java (the web events
go through a local Kafka broker) and on one without (they come as file drops, and the demo says so)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from retreasure.lake import Lake
from retreasure.lake.store import TableRef
from retreasure_sim.business import simulate
from retreasure_sim.config import StreamFaults
from retreasure_sim.options import sim_config
from retreasure_sim.streaming.wire import wire_truth
from tests.kafka_fixtures import KAFKA_JARS

pytestmark = pytest.mark.e2e

# A small business, so that two demos and a broker fit in a test run.
SIZE = ("--days", "14", "--scale", "0.2")
NO_JAVA = "Java not found: web events come from files instead of the broker"


@dataclass(frozen=True)
class Demo:
    folder: Path
    env: dict[str, str]
    done: subprocess.CompletedProcess[str]

    @property
    def lake(self) -> Lake:
        return Lake(self.folder / "lake")

    def run_again(self) -> subprocess.CompletedProcess[str]:
        return run_demo(self.folder, self.env)


def demo_env(folder: Path, *, java: bool) -> dict[str, str]:
    """A plain terminal's environment with none of the test run's settings; without Java: a PATH that has none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_") and k != "JAVA_HOME"}
    env["COLUMNS"] = "80"  # a first run in a plain terminal reads whole
    if java:
        env["RETREASURE_STREAMING__JARS_DIR"] = str(KAFKA_JARS)  # the machine's cache, not a download per test
    else:
        (folder / "bin").mkdir(exist_ok=True)
        env["PATH"] = str(folder / "bin")
    return env


def run_demo(folder: Path, env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "retreasure", "demo", *SIZE, *options]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, check=False, timeout=900)


def kpi_table(stdout: str) -> list[str]:
    """The KPI summary's lines from gold (the quarantine's row count aside: each path has its own faults)."""
    lines = stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("KPIs (from gold)")))
    end = next(n for n in range(start, len(lines)) if "Rows in quarantine" in lines[n])
    return lines[start:end]


def origins(lake: Lake, table: str) -> dict[str, int]:
    rows = lake.query(
        f"SELECT CASE WHEN origin LIKE 'kafka://%' THEN 'kafka' ELSE 'file' END AS kind, count(*) AS n "
        f"FROM bronze.{table} GROUP BY ALL"
    ).to_pylist()
    return {row["kind"]: row["n"] for row in rows}


def broker_processes(folder: Path) -> list[int]:
    """Ids of the running JVMs whose command line names a path under ``folder`` (the demo's broker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command_line = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and str(folder).encode() in command_line and b"kafka.Kafka" in command_line:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def demo_without_java(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo, as run on a machine with no Java: the file path for the web events."""
    folder = tmp_path_factory.mktemp("demo-files")
    env = demo_env(folder, java=False)
    return Demo(folder, env, run_demo(folder, env))


def test_demo_lands_every_source_and_matches_the_simulator(demo_without_java: Demo) -> None:
    done, folder, lake = demo_without_java.done, demo_without_java.folder, demo_without_java.lake
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "…" not in done.stdout, "a table cut a value short at 80 columns"
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    assert '"level"' not in done.stdout + done.stderr, "JSON log lines belong in the log file, not the console"
    assert re.search(r"retries \w+: [\d,]+ of [\d,]+ requests; last: HTTP 429", done.stdout), "429s summed up"
    log_lines = (folder / "logs" / "retreasure.log").read_text().splitlines()
    assert any(json.loads(line)["msg"] == "retrying" for line in log_lines)
    assert "mismatches: 0" in done.stdout
    assert "checks failed: none" in done.stdout
    assert "Net revenue (EUR)" in done.stdout and "Tax owed by us (EUR)" in done.stdout
    assert (folder / ".env").stat().st_mode & 0o777 == 0o600, "the generated keys are private"
    assert len(lake.tables("bronze")) >= 12
    again = demo_without_java.run_again()
    assert again.returncode == 0
    assert "mismatches: 0" in again.stdout
    new_rows = lake.query("SELECT sum(new_records) AS n FROM ops.ingest_log GROUP BY run_id ORDER BY min(started_at)")
    assert new_rows.column("n").to_pylist()[-1] == 0, "the second run adds no rows"


def test_without_java_the_demo_says_so_in_one_line_and_takes_the_web_events_from_files(
    demo_without_java: Demo,
) -> None:
    done, folder, lake = demo_without_java.done, demo_without_java.folder, demo_without_java.lake
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.splitlines().count(NO_JAVA) == 1
    assert "Kafka" not in done.stdout, "no word of a broker that was never started"
    assert sorted(p.name for p in (folder / "landing" / "web").iterdir()) == ["clickstream", "transactions"]
    assert set(origins(lake, "web_clickstream")) == {"file"}
    assert not (folder / ".broker").exists() and not (folder / ".tools").exists(), "no broker, no jars fetched"

    # Asked for the broker explicitly, it stops at once rather than do something else.
    asked = run_demo(folder, demo_without_java.env, "--stream")
    assert asked.returncode == 1
    assert "--stream: no Kafka broker" in asked.stdout and "Java not found" in asked.stdout
    assert "Simulated" not in asked.stdout


@pytest.mark.kafka
@pytest.mark.timeout(1800)  # two demos and the file-path one it compares with: past 600 s on a busy machine
def test_demo_streams_the_web_events_through_a_broker_with_the_same_kpis(
    tmp_path: Path, demo_without_java: Demo
) -> None:
    env = demo_env(tmp_path, java=True)
    done = run_demo(tmp_path, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "…" not in done.stdout and max(len(line) for line in done.stdout.splitlines()) <= 80
    assert '"level"' not in done.stdout + done.stderr and "rdkafka" not in done.stderr
    shown = " ".join(done.stdout.split())
    assert re.search(r"Kafka [\d.]+ broker on 127\.0\.0\.1:\d+: published [\d,]+ messages", shown), shown
    assert "Stream landed" in shown and "mismatches: 0" in shown and "checks failed: none" in shown
    assert not (tmp_path / "landing" / "web").exists(), "no web files in stream mode"
    assert broker_processes(tmp_path) == [], "the broker is stopped when the demo ends"

    # Bronze holds exactly the events the simulated site put on the wire in good shape, all from the broker.
    lake = Lake(tmp_path / "lake")
    truth = simulate(sim_config(7, "2025-01-01", 14, 0.2, True))
    wire = wire_truth(truth, StreamFaults.on(), 7)
    for topic, table in (("web.clickstream", "web_clickstream"), ("web.transactions", "web_transactions")):
        keys = lake.query(f"SELECT DISTINCT record_key FROM bronze.{table} WHERE error IS NULL").column(0)
        assert set(keys.to_pylist()) == wire.landed[topic]
        assert set(origins(lake, table)) == {"kafka"}
    assert lake.count(TableRef("ops", "stream_batches")) > 0, "the stream's figures per batch"

    # The same business through the other path: the same figures from gold.
    assert kpi_table(done.stdout) == kpi_table(demo_without_java.done.stdout)

    # Run again: the site publishes the period again, the stream lands none of it twice.
    again = run_demo(tmp_path, env)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "mismatches: 0" in again.stdout
    assert re.search(r"web_clickstream \+0, web_transactions \+0", " ".join(again.stdout.split()))
    assert kpi_table(again.stdout) == kpi_table(done.stdout)


@pytest.mark.kafka
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_demo_stops_its_broker(tmp_path: Path, stop: signal.Signals) -> None:
    env = demo_env(tmp_path, java=True)
    command = [sys.executable, "-m", "retreasure", "demo", *SIZE]
    # A shell without job control starts background jobs with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: the demo must be started as a terminal would start it, SIGINT at its default.
    demo = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not broker_processes(tmp_path) and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert broker_processes(tmp_path), "the demo started a broker"
        demo.send_signal(stop)
        output, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode != 0, output.decode()[-2000:]
    assert broker_processes(tmp_path) == [], "the broker is stopped with the demo"
