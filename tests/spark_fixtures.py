"""The session's Spark engine: one local Spark session with Delta for every test marked `spark`, started on
first use and stopped at the end. Small on purpose: two cores shared, two shuffle partitions, a modest heap. Its
Delta jars are cached in the checkout's .tools/spark, fetched once per machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SPARK_JARS = REPO_ROOT / ".tools" / "spark"


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[object]:
    from retreasure.engine.spark import SparkEngine

    engine = SparkEngine(master="local[2]", driver_memory="1g", shuffle_partitions=2, jars_dir=SPARK_JARS)
    yield engine
    engine.stop()
