"""Shared fixtures: a small simulated business (faults on and off), settings on a temporary lake."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from retreasure.lake import Lake
from retreasure.settings import Settings
from retreasure.sim.business import simulate
from retreasure.sim.config import Faults, SimConfig
from retreasure.sim.model import Truth

SMALL = SimConfig(seed=11, start=date(2025, 3, 1), days=21, scale=0.2)
HMAC_KEY = "test-hmac-key-0123456789abcdef"
VAULT_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def clean_truth() -> Truth:
    """Three weeks of a small business with no faults."""
    return simulate(SMALL)


@pytest.fixture(scope="session")
def faulty_truth() -> Truth:
    """The same business, with every fault switched on."""
    return simulate(SimConfig(SMALL.seed, SMALL.start, SMALL.days, SMALL.scale, Faults.on()))


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
