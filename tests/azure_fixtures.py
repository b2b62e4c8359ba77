"""The session's Azure storage: one Azurite (the Azure Storage emulator) on loopback for every test marked `azure`,
started on first use and stopped at the end. It is installed, pinned, into the checkout's .tools/azurite by
scripts/install-azurite (run here when it is missing)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

from retreasure.lake.remote import EMULATOR_URL_VARIABLE
from retreasure.settings import EMULATOR_ACCOUNT, EMULATOR_KEY
from retreasure.streaming.broker import _stop_with_parent
from tests.helpers import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BLOB = REPO_ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
INSTALL = REPO_ROOT / "scripts" / "install-azurite"
HOST = "127.0.0.1"
CONTAINER = "lake"


class AzuriteFailed(RuntimeError):
    """Azurite is not installed, or did not listen in time; the message quotes its output."""


class Azurite:
    """One Azurite blob service on a free loopback port, its blobs in ``data_dir``: a context manager that starts it
    and stops it on exit (and, on Linux, when the thread that started it ends)."""

    def __init__(self, data_dir: Path, ready_timeout_s: float = 60.0) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The blob endpoint (Azurite puts the account in the path: <url>/devstoreaccount1/<container>)."""
        return f"http://{HOST}:{self.port}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={EMULATOR_ACCOUNT};AccountKey={EMULATOR_KEY};"
            f"BlobEndpoint={self.url}/{EMULATOR_ACCOUNT};"
        )

    def lake_uri(self, path: str, container: str = CONTAINER) -> str:
        """An ADLS Gen2 URI of a lake in ``container``, as a lake on Azure is named."""
        return f"abfss://{container}@{EMULATOR_ACCOUNT}.dfs.core.windows.net/{path}"

    def fresh_lake_uri(self, name: str) -> str:
        """A lake of its own for one test: a new folder of the session's container."""
        return self.lake_uri(f"{name}-{uuid.uuid4().hex[:8]}")

    def storage_settings(self) -> dict[str, Any]:
        """The settings' storage section that reaches this emulator (RETREASURE_STORAGE__*)."""
        return {"use_emulator": True, "emulator_url": self.url}

    def environment(self) -> dict[str, str]:
        """The same as environment variables, for a command started by a test."""
        return {"RETREASURE_STORAGE__USE_EMULATOR": "true", "RETREASURE_STORAGE__EMULATOR_URL": self.url}

    def create_container(self, name: str) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        with suppress(ResourceExistsError):
            BlobServiceClient.from_connection_string(self.connection_string).create_container(name)

    def blob_names(self, container: str, prefix: str) -> list[str]:
        """Names of the blobs under ``prefix``: what is really in the emulator's storage."""
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(self.connection_string).get_container_client(container)
        return [blob.name for blob in client.list_blobs(name_starts_with=prefix)]

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if not AZURITE_BLOB.exists():
            subprocess.run([str(INSTALL)], check=True)
        if not AZURITE_BLOB.exists():
            raise AzuriteFailed(f"Azurite is not installed in {AZURITE_BLOB.parent} (needs Node.js 20 and npm)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "azurite.out").open("ab") as output:
            self.process = subprocess.Popen(
                [
                    str(AZURITE_BLOB),
                    *("--blobHost", HOST, "--blobPort", str(self.port), "--location", str(self.data_dir)),
                    # Current Azure SDKs speak API versions newer than the emulator knows.
                    *("--disableTelemetry", "--skipApiVersionCheck", "--loose"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
            )
        self._wait_until_listening()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def _wait_until_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AzuriteFailed(f"Azurite exited with code {self.process.returncode}:\n{self._output()}")
            with socket.socket() as probe:
                probe.settimeout(0.5)
                if probe.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise AzuriteFailed(
            f"Azurite did not listen on {self.url} within {self.ready_timeout_s:.0f} s:\n{self._output()}"
        )

    def _output(self) -> str:
        return (self.data_dir / "azurite.out").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite with the container ``lake``; settings reach it with ``storage_settings()``. The process's lakes on the
    emulator go to this one (delta-rs reads its address from the environment), until the session ends."""
    with Azurite(tmp_path_factory.mktemp("azurite")) as emulator:
        emulator.create_container(CONTAINER)
        try:
            yield emulator
        finally:
            if os.environ.get(EMULATOR_URL_VARIABLE) == emulator.url:
                del os.environ[EMULATOR_URL_VARIABLE]
