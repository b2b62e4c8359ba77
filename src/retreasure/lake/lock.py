"""One build at a time on a lake: the hourly build, a full build, a backfill and the stream's micro-builds write
the same silver and gold tables, and two of them at once would each overwrite the other's partitions from what
it read before the other wrote.

A build holds an OS file lock (``fcntl.flock``) on ``<lake>/.build.lock`` for as long as it runs; the file says
who holds it (pid, host, mode, since). The OS drops the lock when its holder exits, even by kill -9, so a crashed
build never leaves the lake locked. A second build waits for it, bounded, saying every ``LOG_EVERY_S`` who it
waits for; a micro-build does not wait (``wait_s=0``: ``LakeBusy``), the next tick catches up.

The lock is re-entrant within a thread (an incremental build that turns out to be a first, full build takes it
once); two threads of one process exclude each other as two processes do. A lake on object storage (abfss://)
has no file lock: there one scheduler must run the builds (docs/streaming.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from retreasure.lake.store import Lake
from retreasure.log import get_logger

LOCK_FILE = ".build.lock"
WAIT_S = 3600.0  # a full build of a year takes about a minute here; an hour means something is stuck
LOG_EVERY_S = 30.0
log = get_logger("lake")
_held = threading.local()  # lock path -> how deep this thread holds it


class LakeBusy(Exception):
    """Another build holds the lake, and this one would not (or no longer) wait."""

    def __init__(self, holder: dict[str, object], waited_s: float) -> None:
        self.holder = holder
        self.waited_s = waited_s
        who = ", ".join(f"{k} {v}" for k, v in holder.items()) or "unknown"
        super().__init__(f"another build holds the lake ({who}); waited {waited_s:.1f} s")


def lock_path(lake: Lake) -> Path | None:
    """Where the lake's build lock lives; None for a lake on object storage."""
    return Path(lake.uri.removeprefix("file://")) / LOCK_FILE if lake.is_local else None


def holder(lake: Lake) -> dict[str, object]:
    """Who holds (or last held) the lake's build lock: pid, host, mode, since; empty when nobody ever did."""
    path = lock_path(lake)
    try:
        text = path.read_text() if path else ""
        return dict(json.loads(text)) if text.strip() else {}
    except (OSError, ValueError):
        return {}


@contextmanager
def build_lock(lake: Lake, mode: str, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the lake's build lock for the block; wait up to ``wait_s`` for another build to end, else ``LakeBusy``."""
    path = lock_path(lake)
    depths: dict[str, int] = _held.__dict__.setdefault("depths", {})
    if path is None or depths.get(str(path)):
        depths[str(path)] = depths.get(str(path), 0) + 1
        try:
            yield
        finally:
            depths[str(path)] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, lake, mode, wait_s)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "mode": mode, "since": datetime.now(UTC).isoformat()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode(), 0)
        depths[str(path)] = 1
        try:
            yield
        finally:
            depths[str(path)] = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, lake: Lake, mode: str, wait_s: float) -> None:
    began = time.monotonic()
    said = None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = time.monotonic() - began
            if waited >= wait_s:
                raise LakeBusy(holder(lake), waited) from None
            if said is None or time.monotonic() - said >= LOG_EVERY_S:
                log.info("build waiting for the lake", extra={"mode": mode, "holder": holder(lake), "waited_s": waited})
                said = time.monotonic()
            time.sleep(min(0.2, wait_s - waited))
        else:
            if said is not None:
                log.info("build has the lake", extra={"mode": mode, "waited_s": round(time.monotonic() - began, 1)})
            return
