"""Small helpers several test modules share: free ports, fake servers started and stopped, connector reads,
lake copies and ordered table reads. Mechanisms only; what a test asserts stays in the test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retreasure.connectors.base import RawRecord, Source, Window
from retreasure.lake import Lake, TableRef
from retreasure_sim.model import Order
from retreasure_sim.servers.base import FakeServer

ALL_TIME = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_together(servers: Sequence[FakeServer]) -> None:
    """Stop fake servers in parallel: each stop waits for its poll tick, so one by one adds up."""
    stoppers = [threading.Thread(target=server.stop) for server in servers]
    for thread in stoppers:
        thread.start()
    for thread in stoppers:
        thread.join()


def extract(source: Source, entity: str, start: datetime = ALL_TIME, end: datetime = FAR) -> list[RawRecord]:
    """Every record a connector yields for one entity changed in [start, end)."""
    return list(source.extract(source.entity(entity), Window(start, end)))


def copy_lake(source: Lake | Path, target: Path) -> Lake:
    """A private copy of a lake (the session's lakes are read-only)."""
    shutil.copytree(source.uri if isinstance(source, Lake) else source, target)
    return Lake(target)


def ordered_rows(lake: Lake, ref: TableRef, order_by: str) -> list[dict[str, Any]]:
    """A whole table as dicts, in a stable order."""
    return lake.query(f"SELECT * FROM {ref} ORDER BY {order_by}", [ref]).to_pylist()


def rows_without(lake: Lake, ref: TableRef, volatile: Sequence[str]) -> list[dict[str, Any]]:
    """A whole table in a stable order, less the columns that legitimately differ between two equal runs."""
    columns = ", ".join(f'"{c}"' for c in lake.dataset(ref).schema.names if c not in volatile)
    return lake.query(f"SELECT {columns} FROM {ref} ORDER BY ALL", [ref]).to_pylist()


def order_amounts(order: Order) -> dict[str, Any]:
    """An order's money, tax and shipping fields as every channel's silver order row carries them (from the
    truth): the part of an expected row that does not depend on the channel."""
    return {
        "currency": order.currency,
        "subtotal": order.subtotal,
        "discount": order.discount,
        "shipping": order.shipping,
        "tax": order.tax,
        "total": order.total,
        "tax_party": order.tax_party,
        "tax_country": order.tax_country,
        "tax_region": order.tax_region,
        "ship_country": order.ship_country,
        "ship_by_ts": order.ship_by,
    }


def cli_env(root: Path, columns: int = 200, **extra: str) -> dict[str, str]:
    """The environment of a `retreasure` command on the lake and landing folder under ``root``, as a person
    would set it: none of the test process's own RETREASURE_* settings, short HTTP backoffs."""
    from tests.conftest import HMAC_KEY, VAULT_KEY

    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")}
    env.update(
        COLUMNS=str(columns),
        RETREASURE_LAKE_URI=str(root / "lake"),
        RETREASURE_LANDING_DIR=str(root / "landing"),
        RETREASURE_PII_HMAC_KEY=HMAC_KEY,
        RETREASURE_PII_VAULT_KEY=VAULT_KEY,
        RETREASURE_HTTP__BACKOFF_BASE_S="0.01",
        RETREASURE_HTTP__BACKOFF_MAX_S="0.02",
        **extra,
    )
    return env


def run_cli(root: Path, *args: str, columns: int = 200, **env: str) -> subprocess.CompletedProcess[str]:
    """`retreasure <args>` in a subprocess in ``root`` (see ``cli_env``), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "retreasure", *args],
        cwd=root,
        env=cli_env(root, columns, **env),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def days_in_write_order(uri: str, part: str | None, keys: Sequence[str]) -> int:
    """How many days a data file of a partitioned upsert table holds, after checking its rows are in the engine's
    write order: by day, then key (NULLs last). A file of a table partitioned in Delta holds one day, whose value
    lives in its path rather than its columns."""
    import pyarrow.parquet as pq

    held = pq.read_schema(uri.removeprefix("file://")).names
    order = [c for c in dict.fromkeys([part, *keys]) if c is not None and c in held]
    rows = pq.read_table(uri.removeprefix("file://"), columns=order)
    assert rows.equals(rows.sort_by([(c, "ascending", "at_end") for c in order])), uri
    return len(rows.column(part).unique()) if part in held else 1
