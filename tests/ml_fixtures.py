"""The ML tests' lakes, built once per session and read-only for tests (copy one to write): a simulated year's
daily sales with the demand forecast trained on it, and a learnable four-month business whose customers shop to
their taste, served, ingested and built, with one recommendation run over it (long enough for a four-week holdout
with returning customers on both sides of it)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date

import pytest

from retreasure.lake import Lake
from retreasure.lake.store import TableRef
from retreasure.ml import forecast as fc
from retreasure.ml import reco_run
from retreasure.settings import Settings
from retreasure_sim.business import simulate
from retreasure_sim.config import SimConfig
from retreasure_sim.demand import sold_by_day
from retreasure_sim.model import Truth

YEAR = SimConfig(seed=5, start=date(2025, 1, 6), days=364, scale=0.2)


@pytest.fixture(scope="session")
def year_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A lake holding a simulated year's daily sales; read-only for tests (copy it to write)."""
    lake = Lake(tmp_path_factory.mktemp("year") / "lake")
    lake.overwrite(fc.SALES, sold_by_day(simulate(YEAR)), partition_by=["day"])
    return lake


@pytest.fixture(scope="session")
def trained(year_lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, fc.ForecastRun]:
    """One promoted training run over a copy of the year."""
    lake = Lake(shutil.copytree(year_lake.uri, tmp_path_factory.mktemp("trained") / "lake"))
    fc.write_features(lake)
    return lake, fc.run_forecast(lake)


LEARNABLE = SimConfig(seed=11, start=date(2025, 1, 1), days=120, scale=0.2)


@dataclass
class RecoLake:
    truth: Truth
    lake: Lake
    settings: Settings
    result: reco_run.RunResult


@pytest.fixture(scope="session")
def reco_lake(tmp_path_factory: pytest.TempPathFactory) -> RecoLake:
    from retreasure.bronze.ingest import run_ingest
    from retreasure.engine.build import build
    from retreasure_sim.files import render_files
    from retreasure_sim.stage import Credentials, running_servers
    from tests.conftest import HMAC_KEY, VAULT_KEY

    root = tmp_path_factory.mktemp("reco")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        lake_uri=str(root / "lake"),
        landing_dir=root / "landing",
        pii_hmac_key=HMAC_KEY,
        pii_vault_key=VAULT_KEY,
        http={"backoff_base_s": 0.01, "backoff_max_s": 0.05},
    )
    truth = simulate(LEARNABLE)
    render_files(truth, root / "landing", LEARNABLE.faults, LEARNABLE.seed)
    with running_servers(truth, LEARNABLE, Credentials.fresh(), settings) as (served, _):
        runs = run_ingest(served, Lake.from_settings(served))
    assert all(r.status == "success" for r in runs), [r.error for r in runs if r.error]
    lake = Lake(root / "lake")
    assert [str(r.ref) for r in build(lake) if r.blocked] == []
    return RecoLake(truth, lake, settings, reco_run.run(lake))


def assert_documented(lake: Lake, refs: list[TableRef]) -> None:
    """Each table, as written, has exactly the columns its contract documents, in order, and a section of the
    data dictionary: the dictionary cannot drift from what the runs write."""
    from retreasure.engine.dictionary import render
    from retreasure.ml.catalog import documented_tables
    from retreasure.ml.tables import contract

    dictionary = render(documented_tables())
    for ref in refs:
        written = lake.query(f"SELECT * FROM {ref} LIMIT 0", [ref]).column_names
        assert written == list(contract(ref).columns), ref
        assert f"\n## {ref}\n" in dictionary, ref
