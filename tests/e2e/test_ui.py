"""`retreasure ui`: the Dagster UI a data engineer opens to see lineage and runs, started as they start it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

START_S = 120  # dagster dev loads every model's SQL before it answers: slow on a busy machine
STOP_S = 30
ASSET_GRAPH = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"
LOCATIONS = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
)


@dataclass
class Ui:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def graphql(ui: Ui, query: str) -> dict[str, Any]:
    answer = httpx.post(f"{ui.url}/graphql", json={"query": query}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def loaded(ui: Ui) -> bool:
    """Whether the webserver answers and the code location has loaded; a location that failed to load fails."""
    try:
        httpx.get(f"{ui.url}/server_info", timeout=5).raise_for_status()
        entries = graphql(ui, LOCATIONS)["workspaceOrError"].get("locationEntries") or []
    except httpx.HTTPError:
        return False
    for entry in entries:
        if entry["loadStatus"] == "LOADED" and entry["locationOrLoadError"]["__typename"] == "PythonError":
            pytest.fail(f"code location {entry['name']} did not load: {entry['locationOrLoadError']['message']}")
    return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)


def asset_graph(ui: Ui) -> list[dict[str, Any]]:
    """The asset nodes, once the code location has loaded (the webserver answers before it has)."""
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert ui.process.poll() is None, f"retreasure ui exited ({ui.process.returncode}):\n{ui.tail()}"
        if loaded(ui):
            return graphql(ui, ASSET_GRAPH)["assetNodes"]
        time.sleep(1)
    pytest.fail(f"no asset graph from {ui.url} after {START_S} s:\n{ui.tail()}")


def outward_address() -> str | None:
    """This machine's address on its network (no packet is sent to find it); None when it has only loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only picks the interface
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[Ui]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETREASURE_", "DAGSTER_"))}
    env.update(
        RETREASURE_LAKE_URI=str(tmp_path / "lake"),
        RETREASURE_LANDING_DIR=str(tmp_path / "landing"),
        RETREASURE_PII_HMAC_KEY=HMAC_KEY,
        RETREASURE_PII_VAULT_KEY=VAULT_KEY,
        DAGSTER_HOME=str(tmp_path / "dagster"),
    )
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "retreasure",
                "ui",
                "--port",
                str(port),
                "--dagster-home",
                str(tmp_path / "dagster"),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: dagster dev's webserver and daemon can be cleaned up
        )
    try:
        yield Ui(process, port, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_ui_serves_the_lineage_on_loopback_and_stops_on_sigterm(ui: Ui) -> None:
    nodes = asset_graph(ui)
    upstream = {tuple(n["assetKey"]["path"]): {tuple(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
    layers = {key[0] for key in upstream}
    assert {"bronze", "silver", "gold"} <= layers, sorted(layers)

    def reaches_bronze_through_silver(key: tuple[str, ...], seen: set[tuple[str, ...]]) -> bool:
        for parent in upstream.get(key, set()) - seen:
            seen.add(parent)
            if parent[0] == "silver" and any(p[0] == "bronze" for p in upstream.get(parent, ())):
                return True
            if parent[0] in ("silver", "gold") and reaches_bronze_through_silver(parent, seen):
                return True
        return False

    marts = [key for key in upstream if key[0] == "gold" and key[-1].startswith("mart_")]
    assert marts, "no gold mart in the asset graph"
    assert [m for m in marts if reaches_bronze_through_silver(m, set())], "no mart traces back to bronze via silver"

    address = outward_address()
    if address is not None:  # bound to 127.0.0.1 only: the machine's own network address must not answer
        with pytest.raises(OSError), socket.create_connection((address, ui.port), timeout=5):
            pass

    ui.process.send_signal(signal.SIGTERM)
    try:
        ui.process.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"retreasure ui still running {STOP_S} s after SIGTERM:\n{ui.tail()}")
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", ui.port), timeout=5):
        pass
