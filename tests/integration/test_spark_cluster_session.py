"""On a Databricks cluster the engine takes the cluster's Spark session as it is (its Delta, its workers, its
storage access) and only sets its SQL settings on it: no local master, no jars fetched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark

PROBE = """
import sys
from pathlib import Path
from retreasure.engine.spark import spark_session

session = spark_session("local[1]", "512m", 2, Path(sys.argv[1]))
print(session.conf.get("spark.sql.session.timeZone"), session.conf.get("spark.sql.ansi.enabled"))
print(session.sparkContext.getConf().get("spark.jars", "none"))
session.stop()
"""


def test_on_a_databricks_cluster_the_clusters_session_is_used_with_the_engines_sql_settings(tmp_path: Path) -> None:
    jars = tmp_path / "jars"
    env = {**os.environ, "DATABRICKS_RUNTIME_VERSION": "15.4", "SPARK_LOCAL_IP": "127.0.0.1", "TZ": "Asia/Tokyo"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(jars)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    settings, spark_jars = done.stdout.strip().splitlines()[-2:]
    assert settings == "UTC false"  # the dialect's session settings, set on the cluster's session
    assert spark_jars == "none"  # the cluster brings Delta: nothing passed, nothing fetched
    assert not jars.exists() or not any(jars.iterdir())


STOP_PROBE = """
import os
import sys
from pathlib import Path
from pyspark import SparkContext
from retreasure.engine.spark import SparkEngine

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

engine = SparkEngine("local[1]", "512m", 1, Path(sys.argv[1]))
for query in ("SELECT 1", "SELECT 2"):  # stopped, a later use starts the session and its JVM again
    assert engine.session.sql(query).collect()
    jvm = SparkContext._gateway.proc.pid
    engine.stop()
    print("alive" if alive(jvm) else "ended")
"""


def test_stopping_a_local_engine_ends_its_jvm_and_a_later_use_starts_another() -> None:
    from tests.spark_fixtures import SPARK_JARS

    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("DATABRICKS_RUNTIME_VERSION", None)
    done = subprocess.run(
        [sys.executable, "-c", STOP_PROBE, str(SPARK_JARS)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["ended", "ended"]
