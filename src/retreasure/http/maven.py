"""Java jars the platform runs (the Kafka broker's, Spark's Delta extension): pinned in a lock list beside their
user, fetched once from Maven Central into a project-local folder, each checked by SHA-256.

A lock list has one jar a line: ``group:artifact:version sha1 sha256 size``; the SHA-1 is Maven Central's own, the
SHA-256 computed from the jar it vouched for (``scripts/lock-jars``). A jar is written to a temporary name and
renamed into place only once its digest matches, so a download killed half-way never leaves a jar that looks whole.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
DOWNLOAD_ATTEMPTS = 3
CHUNK_BYTES = 1 << 16
STALE_PART_S = 3600.0


class JarDownloadError(RuntimeError):
    """A pinned jar could not be fetched, or what was fetched is not the jar the lock list pins."""


@dataclass(frozen=True)
class PinnedJar:
    """One jar, as a lock list pins it."""

    group: str
    artifact: str
    version: str
    sha1: str
    sha256: str
    size: int

    @property
    def file_name(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, base_url: str = MAVEN_CENTRAL) -> str:
        return f"{base_url}/{self.group.replace('.', '/')}/{self.artifact}/{self.version}/{self.file_name}"


def pinned_jars(lock_file: Path) -> list[PinnedJar]:
    """Every jar of the lock list, in its order."""
    jars = []
    for line in lock_file.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        coordinates, sha1, sha256, size = line.split()
        group, artifact, version = coordinates.split(":")
        jars.append(PinnedJar(group, artifact, version, sha1, sha256, int(size)))
    return jars


def ensure_jars(
    libs: Path,
    lock_file: Path,
    progress: Callable[[PinnedJar, int], None] | None = None,
    base_url: str = MAVEN_CENTRAL,
) -> Path:
    """``libs``, holding exactly the jars ``lock_file`` pins, each verified; missing or damaged ones are fetched
    again.

    ``progress(jar, bytes)`` is called for every chunk downloaded (and with 0 for a jar already in place), so a
    caller can draw a bar over the total of ``PinnedJar.size``."""
    jars = pinned_jars(lock_file)
    libs.mkdir(parents=True, exist_ok=True)
    wanted = {jar.file_name for jar in jars}
    # A classpath may be libs/*: a jar the lock list does not name (an older pin) must not be on it. A
    # partial download is left alone while young, as another process may be writing it.
    for stray in libs.iterdir():
        unpinned = stray.suffix == ".jar" and stray.name not in wanted
        abandoned = stray.suffix == ".part" and time.time() - stray.stat().st_mtime > STALE_PART_S
        if unpinned or abandoned:
            stray.unlink(missing_ok=True)
    for jar in jars:
        target = libs / jar.file_name
        if _intact(target, jar):
            if progress:
                progress(jar, 0)
            continue
        _download(jar, target, progress, base_url)
    return libs


def _intact(path: Path, jar: PinnedJar) -> bool:
    if not path.is_file() or path.stat().st_size != jar.size:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == jar.sha256


def _download(jar: PinnedJar, target: Path, progress: Callable[[PinnedJar, int], None] | None, base_url: str) -> None:
    url = jar.url(base_url)
    problem = ""
    for _ in range(DOWNLOAD_ATTEMPTS):
        handle, partial_name = tempfile.mkstemp(prefix=f".{jar.file_name}.", suffix=".part", dir=target.parent)
        partial = Path(partial_name)
        try:
            with os.fdopen(handle, "wb") as out:
                digest = _fetch(url, out, jar, progress)
            if digest == jar.sha256:
                os.replace(partial, target)
                return
            problem = f"SHA-256 {digest} differs from the pinned {jar.sha256}"
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        finally:
            partial.unlink(missing_ok=True)
    raise JarDownloadError(f"could not fetch {url}: {problem}")


def _fetch(url: str, out: BinaryIO, jar: PinnedJar, progress: Callable[[PinnedJar, int], None] | None) -> str:
    digest = hashlib.sha256()
    with httpx.stream("GET", url, timeout=60.0, follow_redirects=True) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes(CHUNK_BYTES):
            out.write(chunk)
            digest.update(chunk)
            if progress:
                progress(jar, len(chunk))
    return digest.hexdigest()
