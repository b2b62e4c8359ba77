"""Shared fixtures: a small simulated business (faults on and off), settings on a temporary lake."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from retreasure.lake import Lake
from retreasure.settings import Settings
from retreasure_sim.business import simulate
from retreasure_sim.config import Faults, SimConfig
from retreasure_sim.model import Truth
from tests.azure_fixtures import azurite  # noqa: F401 - the session's Azure storage, for tests marked azure
from tests.kafka_fixtures import kafka_broker  # noqa: F401 - the session's broker, for tests marked kafka
from tests.ml_fixtures import (  # noqa: F401 - a simulated year and its trained forecast
    reco_lake,
    trained,
    year_lake,
)
from tests.spark_fixtures import spark_engine  # noqa: F401 - the session's Spark, for tests marked spark

# Generated-variant tests run real files, tables and servers per example: few examples, no per-example deadline
# (a shared 2-core machine makes timings noisy), derandomised in CI so a red run can be replayed as it was.
hypothesis_settings.register_profile(
    "default", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.register_profile("ci", parent=hypothesis_settings.get_profile("default"), derandomize=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "default")

# Commands started by tests log to their stderr, where the test reads it, never into the checkout's logs/ folder;
# the tests of the log file itself start their commands without RETREASURE_* variables.
os.environ.setdefault("RETREASURE_LOG_FILE", "-")
# Builds report each model run to a Dagster instance: the tests' go to one throwaway folder, never the checkout's.
os.environ.setdefault("RETREASURE_DAGSTER_HOME", tempfile.mkdtemp(prefix="retreasure-dagster-"))

# `make test` runs the suite on two workers (pytest-xdist, `--dist loadscope`): a module's tests share a worker, so
# its module fixtures are built once. Modules that share something costly share a worker too: Spark's, so one JVM
# serves them all, and those that read one session fixture that takes a minute to build (each worker builds its own).
# The broker's tests (marked kafka) run beside them in a process of their own (see the Makefile). (xdist's own
# `xdist_group` marks do nothing under pytest 9: it renames node ids.)
SHARED_WORKER = {
    "spark": frozenset(
        {
            "tests/integration/test_spark_azure.py",
            "tests/integration/test_spark_cluster_session.py",
            "tests/integration/test_spark_parity.py",
        }
    ),
    "recommendations": frozenset(  # reco_lake
        {"tests/integration/test_recommendations.py", "tests/integration/test_api_recommendations.py"}
    ),
    "forecast": frozenset(  # trained
        {"tests/integration/test_ml_forecast.py", "tests/e2e/test_forecast_dashboard.py"}
    ),
}
SHARED_BY_MODULE = {module: scope for scope, modules in SHARED_WORKER.items() for module in modules}
# The longest units start first (Spark's is a third of the run): one begun last would be the run's tail, on one
# worker while the other idles. The rest follow in xdist's order.
LONGEST_FIRST = ("spark", "tests/e2e/test_crash_recovery.py", "tests/e2e/test_azure_flow.py", "recommendations")


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = _module(item.nodeid)
        if item.get_closest_marker("spark") and module not in SHARED_WORKER["spark"]:
            raise pytest.UsageError(f"{module} uses Spark: list it in SHARED_WORKER['spark']")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module(nodeid)
            return SHARED_BY_MODULE.get(module, module)

        def _assign_work_unit(self, node: Any) -> None:
            for scope in reversed(LONGEST_FIRST):
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return ModuleScopes(config, log) if config.getvalue("dist") == "loadscope" else None


SMALL = SimConfig(seed=11, start=date(2025, 3, 1), days=21, scale=0.2)
HMAC_KEY = "test-hmac-key-0123456789abcdef"
VAULT_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def clean_truth() -> Truth:
    """Three weeks of a small business with no faults."""
    return simulate(SMALL)


FAULTY = SimConfig(SMALL.seed, SMALL.start, SMALL.days, SMALL.scale, Faults.on())


@pytest.fixture(scope="session")
def faulty_truth() -> Truth:
    """The same business, with every fault switched on."""
    return simulate(FAULTY)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings on a fresh lake and landing folder; short backoffs so retry tests stay quick."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "lake_uri": str(tmp_path / "lake"),
            "landing_dir": tmp_path / "landing",
            "pii_hmac_key": HMAC_KEY,
            "pii_vault_key": VAULT_KEY,
            "http": {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "retry_after_max_s": 5},
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def lake(settings: Settings) -> Lake:
    return Lake.from_settings(settings)


def ingest_faulty_business(root: Path, config: SimConfig = FAULTY, **overrides: Any) -> tuple[Truth, Settings]:
    """The small faulty business (or ``config``'s) simulated, its files dropped in ``root/landing``, its servers run
    and everything ingested into the lake the settings name (``root/lake`` unless ``overrides`` say otherwise)."""
    from retreasure.bronze.ingest import run_ingest
    from retreasure_sim.files import render_files
    from retreasure_sim.stage import Credentials, running_servers

    values: dict[str, Any] = {
        "lake_uri": str(root / "lake"),
        "landing_dir": root / "landing",
        "pii_hmac_key": HMAC_KEY,
        "pii_vault_key": VAULT_KEY,
        "http": {"backoff_base_s": 0.01, "backoff_max_s": 0.05},
    }
    settings = Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]
    truth = simulate(config)  # its own copy: the file faults are added to it
    truth["faults"].extend(render_files(truth, root / "landing", config.faults, config.seed))
    with running_servers(truth, config, Credentials.fresh(), settings) as (served, _):
        runs = run_ingest(served, Lake.from_settings(served))
    assert all(r.status == "success" for r in runs), [r.error for r in runs if r.error]
    return truth, settings


@pytest.fixture(scope="session")
def bronze_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Lake]:
    """The small faulty business, simulated, served and ingested into a lake once per test session.

    Tests that build silver or gold read from it; they must not write to it (copy it if they do: see
    ``lake_copy``).
    """
    root = tmp_path_factory.mktemp("bronze")
    truth, _ = ingest_faulty_business(root)
    return truth, Lake(root / "lake")


@pytest.fixture
def lake_copy(bronze_lake: tuple[Truth, Lake], tmp_path: Path) -> Lake:
    """A private copy of the ingested lake, for a test that builds models into it."""
    import shutil

    shutil.copytree(bronze_lake[1].uri, tmp_path / "lake")
    return Lake(tmp_path / "lake")


@pytest.fixture(scope="session")
def gold_lake(bronze_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Lake]:
    """The faulty lake with every silver and gold model built, once per session; read-only for tests (serving
    reads it: the API, exports and dashboards). Its settings' PII keys are ``HMAC_KEY`` and ``VAULT_KEY``."""
    import shutil

    from retreasure.engine.build import build

    lake = Lake(shutil.copytree(bronze_lake[1].uri, tmp_path_factory.mktemp("gold") / "lake"))
    runs = build(lake)
    assert [str(r.ref) for r in runs if r.blocked] == []
    return bronze_lake[0], lake
