"""The Kafka broker's jars: pinned in broker_jars.txt (``scripts/lock-kafka-jars``), fetched and checked by the
shared mechanism in ``retreasure.http.maven``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from retreasure.http import maven
from retreasure.http.maven import MAVEN_CENTRAL, JarDownloadError, PinnedJar

__all__ = ["JarDownloadError", "PinnedJar", "ensure_jars", "kafka_version", "libs_dir", "pinned_jars"]

LOCK_FILE = Path(__file__).with_name("broker_jars.txt")
BROKER_ARTIFACT = ("org.apache.kafka", "kafka_2.13")


def pinned_jars(lock_file: Path = LOCK_FILE) -> list[PinnedJar]:
    """Every jar of the broker's runtime closure, in the lock list's order."""
    return maven.pinned_jars(lock_file)


def kafka_version(jars: list[PinnedJar] | None = None) -> str:
    """The broker's version: the pinned kafka_2.13 jar's."""
    for jar in jars or pinned_jars():
        if (jar.group, jar.artifact) == BROKER_ARTIFACT:
            return jar.version
    raise JarDownloadError(f"the lock list {LOCK_FILE.name} pins no {':'.join(BROKER_ARTIFACT)}")


def libs_dir(root: Path) -> Path:
    """Where the jars of the pinned version live under a jar cache root."""
    return root / kafka_version() / "libs"


def ensure_jars(
    root: Path,
    progress: Callable[[PinnedJar, int], None] | None = None,
    base_url: str = MAVEN_CENTRAL,
) -> Path:
    """The broker's libs folder under ``root``, holding exactly its pinned jars, each verified."""
    return maven.ensure_jars(libs_dir(root), LOCK_FILE, progress, base_url)
