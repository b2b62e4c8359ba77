"""What `retreasure ingest` tells the person or scheduler that ran it, on a real landing folder: its exit code
(0 ok, 3 a file refused, 1 a source failed, 2 a wrong command line), the ingest log's row per entity (written
as the entity starts, completed as it ends, `interrupted` once its process is found dead) and the console."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from retreasure.connectors.shopify import ShopifySource
from retreasure.exitcodes import ExitCode
from retreasure.lake import Lake
from retreasure.lake.ingest_log import INGEST_LOG
from retreasure.settings import Settings
from retreasure_sim.config import SimConfig
from retreasure_sim.stage import Credentials, build, running_servers
from tests.helpers import cli_env, run_cli
from tests.integration.test_ecb_files import BILLION_LAUGHS, EXTERNAL_ENTITY, FIXTURE

pytestmark = pytest.mark.e2e

POS_HEADER = (
    "type,receipt_id,line_no,sold_at,store_id,sku,title,quantity,unit_price,discount,tax,tax_rate,currency,"
    "discount_code,payment_method,loyalty_email,loyalty_phone\n"
)
POS_ROW = (
    "sale,BER-20250104-{n:05d},1,2025-01-04T17:37:31+01:00,BER,RT-000165,Carved bowl,1,209.00,0.00,39.71,0.19,EUR,,"
    "cash,,\n"
)
ZONE = (
    '{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[7.0,47.3],[15.0,47.3],[15.0,55.0],[7.0,47.3]]]},'
    '"properties":{"zone_id":"Z-%d","name":"Z","fee":"4.90","currency":"EUR","valid_from":"2025-01-01"}}'
)
# What each kind of file looks like, per source and where it goes in the landing folder.
FILES = {
    "ecb": {
        "good": lambda n: FIXTURE.read_text(),
        "bomb": lambda n: BILLION_LAUGHS,
        "xxe": lambda n: EXTERNAL_ENTITY,
    },
    "pos": {
        "good": lambda n: POS_HEADER + POS_ROW.format(n=n),
        "empty": lambda n: "",
        "header_only": lambda n: POS_HEADER,
    },
    "geo": {
        "good": lambda n: '{"type":"FeatureCollection","features":[' + ZONE % n + "]}",
        "no_features": lambda n: '{"type":"FeatureCollection","features":[]}',
        "not_geojson": lambda n: "[1, 2, 3]",
    },
}
HOSTILE = {"bomb", "xxe", "not_geojson"}
EMPTY = {"empty", "header_only", "no_features"}
PLACES = {
    "ecb": "ecb/eurofxref-daily_{n}.xml",
    "pos": "pos/sales/BER/2025-01-04/sales_{n}.csv",
    "geo": "geo/zones/zones_{n}.geojson",
}


def drop(landing: Path, source: str, kind: str, n: int) -> Path:
    path = landing / PLACES[source].format(n=n)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FILES[source][kind](n))
    return path


def ingest(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(root, "ingest", *args, columns=80, **env)


def log_rows(root: Path) -> list[dict]:
    lake = Lake(root / "lake")
    return lake.query(f"SELECT * FROM {INGEST_LOG} ORDER BY started_at, source, entity", [INGEST_LOG]).to_pylist()


def test_a_refused_ecb_file_exits_partial_and_its_row_says_so(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    drop(landing, "ecb", "good", 1)
    drop(landing, "ecb", "bomb", 2)
    done = ingest(tmp_path, "--source", "ecb")
    assert done.returncode == ExitCode.PARTIAL, done.stdout + done.stderr
    (row,) = log_rows(tmp_path)
    assert row["status"] == "partial" and row["finished_at"] is not None
    assert "eurofxref-daily_2.xml" in row["error"] and "refused" in row["error"]
    assert row["records"] > 0, "the good file beside the refused one landed"
    assert "partial" in done.stdout and "eurofxref-daily_2.xml" in done.stdout


def test_empty_and_header_only_files_are_warned_about_and_exit_ok(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    drop(landing, "pos", "good", 10)
    empty, header_only = drop(landing, "pos", "empty", 11), drop(landing, "pos", "header_only", 12)
    done = ingest(tmp_path, "--source", "pos")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    sales = next(r for r in log_rows(tmp_path) if r["entity"] == "sales")
    assert sales["status"] == "success" and sales["records"] == 1
    relative = [p.relative_to(landing).as_posix() for p in (empty, header_only)]
    assert all(name in sales["warnings"] for name in relative), sales["warnings"]
    console = " ".join(done.stdout.split())  # the console wraps long lines at 80 columns
    assert "warning pos.sales: 2 files, no records (empty or header-only)" in console, done.stdout
    assert all(name in console for name in relative)


def test_a_failed_source_exits_failed_even_beside_a_refused_file(tmp_path: Path) -> None:
    drop(tmp_path / "landing", "ecb", "xxe", 1)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: every request is refused, then the source fails
    done = ingest(tmp_path, "--source", "ecb", "--source", "ebay", RETREASURE_EBAY__BASE_URL=f"http://127.0.0.1:{port}")
    assert done.returncode == ExitCode.FAILED, done.stdout + done.stderr
    statuses = {(r["source"], r["status"]) for r in log_rows(tmp_path)}
    assert ("ecb", "partial") in statuses and ("ebay", "failed") in statuses


@pytest.mark.parametrize("args", [["--source", "nowhere"], ["--since", "yesterday-ish"]], ids=["source", "since"])
def test_a_wrong_command_line_exits_usage_and_does_nothing(tmp_path: Path, args: list[str]) -> None:
    done = ingest(tmp_path, *args)
    assert done.returncode == ExitCode.USAGE, done.stdout + done.stderr
    assert not (tmp_path / "lake").exists()


def test_a_killed_run_is_interrupted_for_the_next_while_a_live_one_is_left_running(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """A shopify ingest hangs on a server that never answers (a live run); an ECB ingest beside it leaves its row
    `running`. Killed with SIGKILL, its row stays `running` until the next ingest finds its process gone and
    marks it `interrupted`; that next ingest lands everything."""
    config = SimConfig(seed=3, start=date(2025, 1, 1), days=3, scale=0.1)
    settings_env = cli_env(tmp_path, columns=80)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections complete in the kernel's backlog; no answer ever comes
    hung = subprocess.Popen(
        [sys.executable, "-m", "retreasure", "ingest", "--source", "shopify"],
        cwd=tmp_path,
        env={
            **settings_env,
            "RETREASURE_SHOPIFY__BASE_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "RETREASURE_SHOPIFY__ACCESS_TOKEN": "shpat-silent",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not Lake(tmp_path / "lake").exists(INGEST_LOG) or not log_rows(tmp_path):
            assert time.monotonic() < deadline and hung.poll() is None, "the hung ingest wrote no running row"
            time.sleep(0.2)
        (live,) = log_rows(tmp_path)
        assert (live["source"], live["status"], live["pid"]) == ("shopify", "running", hung.pid)
        assert live["host"] == socket.gethostname() and live["finished_at"] is None

        drop(tmp_path / "landing", "ecb", "good", 1)
        beside = ingest(tmp_path, "--source", "ecb")
        assert beside.returncode == ExitCode.OK, beside.stdout + beside.stderr
        still = next(r for r in log_rows(tmp_path) if r["source"] == "shopify")
        assert still["status"] == "running", "a live run of another source is not someone else's to close"

        hung.send_signal(signal.SIGKILL)
        assert hung.wait() == -signal.SIGKILL
    finally:
        if hung.poll() is None:
            hung.kill()
            hung.wait()
        silent.close()
    assert next(r for r in log_rows(tmp_path) if r["source"] == "shopify")["status"] == "running"

    truth = build(config, tmp_path / "sim", tmp_path / "sim-landing")
    with running_servers(truth, config, Credentials.fresh(), make_settings()) as (served, _):
        rerun = ingest(
            tmp_path,
            "--source",
            "shopify",
            RETREASURE_SHOPIFY__BASE_URL=ShopifySource.configured(served).base_url,
            RETREASURE_SHOPIFY__ACCESS_TOKEN=ShopifySource.configured(served).access_token.get_secret_value(),
        )
    assert rerun.returncode == ExitCode.OK, rerun.stdout + rerun.stderr
    rows = log_rows(tmp_path)
    killed = [r for r in rows if r["run_id"] == live["run_id"]]
    assert [(r["entity"], r["status"]) for r in killed] == [(live["entity"], "interrupted")]
    assert str(hung.pid) in killed[0]["error"]
    newest = [r for r in rows if r["source"] == "shopify" and r["run_id"] != live["run_id"]]
    assert newest and all(r["status"] == "success" for r in newest), newest
    assert sum(r["new_records"] for r in newest) > 0
    assert "interrupted" in rerun.stdout and "running" not in {r["status"] for r in rows}


def test_the_ingest_log_is_kept_as_json_lines_in_its_file_not_on_the_console(tmp_path: Path) -> None:
    drop(tmp_path / "landing", "ecb", "bomb", 1)
    done = ingest(tmp_path, "--source", "ecb")
    assert done.returncode == ExitCode.PARTIAL
    assert '"level"' not in done.stdout + done.stderr
    lines = (tmp_path / "logs" / "retreasure.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert any(e["msg"] == "file refused" and e["source"] == "ecb" for e in entries), entries


# One example is one CLI process (~10 s here): a few generated mixes, and the two that matter most written out.
@hypothesis_settings(max_examples=3)
@example({"ecb": ["good", "bomb"], "pos": ["empty", "header_only", "good"], "geo": ["no_features"]})
@example({"ecb": ["good"], "pos": ["header_only"], "geo": ["good", "not_geojson", "no_features"]})
@given(
    st.fixed_dictionaries(
        {source: st.lists(st.sampled_from(sorted(kinds)), max_size=3) for source, kinds in FILES.items()}
    )
)
def test_exit_code_and_statuses_follow_the_files_dropped(tmp_path_factory: pytest.TempPathFactory, drops: dict) -> None:
    root = tmp_path_factory.mktemp("mix")
    for source, kinds in drops.items():
        for n, kind in enumerate(kinds):
            drop(root / "landing", source, kind, n)
    done = ingest(root, "--source", "ecb", "--source", "pos", "--source", "geo")
    hostile = {source for source, kinds in drops.items() if HOSTILE & set(kinds)}
    assert done.returncode == (ExitCode.PARTIAL if hostile else ExitCode.OK), (drops, done.stdout)
    rows = log_rows(root)
    assert {r["status"] for r in rows} <= {"success", "partial"}
    for row in rows:
        dropped = drops[row["source"]] if row["entity"] in ("fx_rates", "sales", "delivery_zones") else []
        assert row["status"] == ("partial" if HOSTILE & set(dropped) else "success"), (drops, row)
        warned = len([k for k in dropped if k in EMPTY])
        if warned == 1:
            assert "no records" in row["warnings"], (drops, row)
        elif warned > 1:
            assert f"{warned} files, no records" in row["warnings"], (drops, row)
        else:
            assert row["warnings"] is None, (drops, row)
        assert row["finished_at"] is not None and row["pid"] > 0
