"""The platform installed without the simulator: its own commands work, and `sim`, `fakes` and `demo` say how
to get the simulator instead of failing on an import."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from retreasure.exitcodes import ExitCode
from tests.helpers import cli_env

pytestmark = pytest.mark.e2e

# -S: no site-packages but the one given, which is this environment's less the simulator's distribution.
RUN_CLI = "import site, sys; site.addsitedir(sys.argv[1]); from retreasure.cli import app; app(sys.argv[2:])"


CAPTURE = {"capture_output": True, "text": True, "check": False, "timeout": 120}


def site_without_simulator(root: Path) -> Path:
    site = root / "site-packages"
    site.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "retreasure_sim" not in entry.name:
            (site / entry.name).symlink_to(entry)
    return site


def run(root: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", "-c", RUN_CLI, str(site), *args],
        cwd=root,
        env=cli_env(root),
        **CAPTURE,
    )


def test_the_simulator_commands_say_how_to_get_it(tmp_path: Path) -> None:
    site = site_without_simulator(tmp_path)
    probe = "import site, sys, importlib.util as u; site.addsitedir(sys.argv[1]); print(u.find_spec(sys.argv[2]))"
    for package, found in (("retreasure_sim", False), ("retreasure", True)):
        spec = subprocess.run([sys.executable, "-S", "-c", probe, str(site), package], cwd=tmp_path, **CAPTURE)
        assert (spec.stdout.strip() != "None") is found, spec.stdout + spec.stderr
    for command in (["demo", "--days", "3"], ["sim"], ["fakes"]):
        result = run(tmp_path, site, *command)
        assert result.returncode == ExitCode.USAGE, result.stdout + result.stderr
        assert "needs the simulator, package retreasure-sim" in " ".join(result.stdout.split())
        assert "make setup" in result.stdout
    assert not (tmp_path / "sim-data").exists()


def test_the_platform_commands_work_without_it(tmp_path: Path) -> None:
    site = site_without_simulator(tmp_path)
    listed = run(tmp_path, site, "--help")
    assert listed.returncode == ExitCode.OK, listed.stderr
    assert all(command in listed.stdout for command in ("ingest", "build", "serve", "demo"))
    ingested = run(tmp_path, site, "ingest", "--source", "pos")
    assert ingested.returncode == ExitCode.OK, ingested.stdout + ingested.stderr
