"""Import contracts of the platform package (src/retreasure): its layers only point down, and it imports nothing
from the simulator (retreasure_sim).

A layer may import the layers below it, never one above: the vocabulary and the mechanisms at the bottom know
nothing of the connectors, engines and commands built on them, so any of those can change or be added without
touching what they stand on. The simulator is a development dependency that imports the platform; an arrow the
other way would make the shipped wheel need a package it does not carry. Imports inside functions count too, as
do `import_module("...")` calls; docs/architecture.md draws the same table.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PLATFORM = Path(__file__).resolve().parents[2] / "src" / "retreasure"
SIMULATOR = "retreasure_sim"
DYNAMIC_IMPORTS = {"import_module", "__import__"}


@dataclass(frozen=True)
class Layer:
    """One row of the layer table: top-level modules and subpackages of the platform that sit at one height."""

    name: str
    members: tuple[str, ...]
    # Members of one layer may not import each other unless the layer says why they may (a non-empty reason).
    siblings: str = ""


# Top to bottom. A module inside a subpackage belongs to its subpackage's layer; imports within one member
# (engine.build -> engine.runner) are that member's own business.
LAYERS: tuple[Layer, ...] = (
    Layer("entry point", ("__main__",)),  # python -m retreasure
    Layer("commands", ("cli",)),  # every command; plugins mount theirs on it
    Layer("console", ("terminal",)),  # what the commands show: progress, tables, ingest summaries
    Layer("orchestration", ("pipeline",)),  # Dagster: assets, schedules, sensors, alerts, the export job
    Layer("serving", ("serving",)),  # API, dashboards, exports, reports, the KPI table
    # Reads gold and writes its own tables through the lake; serving reads those tables, never this code.
    Layer("machine learning", ("ml",)),  # demand forecasts, recommendations, the record of training runs
    # Above the engine: the stream lands in bronze and brings what it landed on through the models.
    Layer("streaming", ("streaming",)),  # the Kafka broker, the stream's consumer and its landing
    Layer("engine", ("engine",)),  # SQL models: discovery, windows, write modes, builds
    Layer("quality", ("quality",)),  # row rules, table checks, conservation, ops.dq_results
    Layer("bronze", ("bronze",)),  # landing, ingest runs, PII masking and vault
    Layer("connectors", ("connectors",)),  # one module per source system, and its own settings section
    Layer("storage and wire", ("lake", "http")),  # Delta tables and DuckDB; the one HTTP client and its paging
    # Declarations every layer above reads: what a record is (PII, paths, instants, sizes), what a table promises
    # (contracts, newest versions), and the SQL models with their YAML (read by the engine by path).
    Layer("vocabulary", ("records", "contracts", "models")),
    Layer("settings", ("settings",)),  # typed settings; connectors' sections are theirs, read raw here
    Layer("settings sources", ("settings_vault",)),  # settings' secrets from an Azure Key Vault
    Layer("logging", ("log",)),
    Layer("foundations", ("redact", "exitcodes")),
)


def _imports(tree: ast.AST, package: str) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, module, names) of every import in a module of ``package`` (dotted): ``import a.b`` is
    ``("a.b", ())``, ``from a import b, c`` is ``("a", ("b", "c"))`` with relative modules resolved, and
    ``import_module("a.b")`` is ``("a.b", ())``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module, tuple(alias.name for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in DYNAMIC_IMPORTS and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value, ()


def _modules(package: Path) -> Iterator[tuple[Path, str, ast.AST]]:
    """(file, its package as a dotted name, its syntax tree) for every module under ``package``."""
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        yield path, ".".join(parts[:-1]), ast.parse(path.read_text(), filename=str(path))


def imports_of(package: Path, forbidden: str) -> list[str]:
    """Every `file:line module` under `package` that imports `forbidden` or one of its submodules."""
    return [
        f"{path.relative_to(package.parent)}:{line} {module}"
        for path, here, tree in _modules(package)
        for line, module, _ in _imports(tree, here)
        if module == forbidden or module.startswith(forbidden + ".")
    ]


def members_of(package: Path) -> set[str]:
    """The top-level modules and subpackages of ``package``: what the layer table places."""
    found = {path.stem for path in package.glob("*.py") if path.name != "__init__.py"}
    return found | {path.parent.name for path in package.glob("*/__init__.py")}


def _member(dotted: str, package: str) -> str | None:
    """The top-level member of ``package`` a dotted name lies in, or None (outside, or the package itself)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == package else None


def upward_imports(package: Path, layers: Sequence[Layer]) -> list[str]:
    """Every import under ``package`` of a member in a higher layer, or of a sibling its layer does not allow,
    as ``file:line imports <module>: <layer> (<member>) -> <layer> (<member>) ...``."""
    height = {member: (index, layer) for index, layer in enumerate(layers) for member in layer.members}
    # The package's own __init__ runs before any of its modules: below every layer, it may import none of them.
    height["__init__"] = (len(layers), Layer("package root", ("__init__",)))
    found = []
    for path, here, tree in _modules(package):
        source = _member(f"{here}.{path.stem}" if path.name != "__init__.py" else here, package.name)
        if path == package / "__init__.py":
            source = "__init__"
        if source is None:
            continue
        for line, module, names in _imports(tree, here):
            # `from retreasure import log` imports the member log; `from retreasure.lake import Lake`, lake.
            for target in [f"{module}.{name}" for name in names] if module == package.name else [module]:
                member = _member(target, package.name)
                if member is None or member == source or source not in height or member not in height:
                    continue
                (low, low_layer), (high, high_layer) = height[source], height[member]
                where = f"{path.relative_to(package.parent)}:{line} imports {target}"
                if high < low:
                    found.append(f"{where}: {low_layer.name} ({source}) -> {high_layer.name} ({member}), a layer above")
                elif high == low and not low_layer.siblings:
                    found.append(f"{where}: {low_layer.name} ({source}) -> {member}, a sibling in the same layer")
    return found


def test_every_member_of_the_platform_has_one_layer() -> None:
    placed = [member for layer in LAYERS for member in layer.members]
    assert len(placed) == len(set(placed)), "a member is in two layers"
    assert set(placed) == members_of(PLATFORM), "the layer table and src/retreasure list different members"


def test_no_layer_imports_a_layer_above_it() -> None:
    assert upward_imports(PLATFORM, LAYERS) == []


def test_the_platform_imports_nothing_from_the_simulator() -> None:
    assert PLATFORM.is_dir()
    assert imports_of(PLATFORM, SIMULATOR) == []


def test_the_simulator_is_not_inside_the_platform_package() -> None:
    assert not (PLATFORM / "sim").exists()


def test_the_check_reports_each_kind_of_import_with_file_and_line(tmp_path: Path) -> None:
    package = tmp_path / "platform"
    (package / "deep").mkdir(parents=True)
    (package / "__init__.py").write_text("import retreasure_simulated\nfrom retreasure import sim\n")
    (package / "deep" / "cli.py").write_text(
        "import os\n"
        "from retreasure_sim.stage import build\n"
        "def run():\n"
        "    import retreasure_sim\n"
        "    import importlib\n"
        "    return importlib.import_module('retreasure_sim.model')\n"
    )
    assert imports_of(package, SIMULATOR) == [
        "platform/deep/cli.py:2 retreasure_sim.stage",
        "platform/deep/cli.py:4 retreasure_sim",
        "platform/deep/cli.py:6 retreasure_sim.model",
    ]


def test_the_layer_check_reports_upward_and_sibling_imports_with_file_line_and_layers(tmp_path: Path) -> None:
    package = tmp_path / "shop"
    for folder in ("engine", "connectors", "vocabulary"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    files = {
        "__init__.py": "from shop.log import setup\n",  # runs before every module: may import none of them
        "cli.py": "from shop.engine import run\nimport shop.vocabulary.words\nfrom shop import log\n",
        "log.py": "",
        "clock.py": "from shop import log\n",  # a sibling of log, in a layer that allows it
        "engine/run.py": "from shop.connectors import shopify\nfrom . import plan\nfrom .plan import steps\n",
        "engine/plan.py": "",
        "connectors/shopify.py": (
            "from ..vocabulary import words\n"
            "def later():\n"
            "    from shop.engine.run import go\n"
            "    import importlib\n"
            "    return importlib.import_module('shop.cli')\n"
        ),
        "connectors/csv.py": "from shop import http, log\n",
        "http.py": "from shop.connectors import base\n",
        "vocabulary/words.py": "from ..vocabulary import more\nimport shop.log\n",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    layers = (
        Layer("top", ("cli",)),
        Layer("middle", ("engine",)),
        Layer("low", ("connectors", "http")),
        Layer("words", ("vocabulary",)),
        Layer("base", ("log", "clock"), siblings="a clock logs"),
    )
    assert members_of(package) == {"cli", "log", "clock", "engine", "connectors", "http", "vocabulary"}
    assert upward_imports(package, layers) == [
        "shop/__init__.py:1 imports shop.log: package root (__init__) -> base (log), a layer above",
        "shop/connectors/csv.py:1 imports shop.http: low (connectors) -> http, a sibling in the same layer",
        "shop/connectors/shopify.py:3 imports shop.engine.run: low (connectors) -> middle (engine), a layer above",
        "shop/connectors/shopify.py:5 imports shop.cli: low (connectors) -> top (cli), a layer above",
        "shop/http.py:1 imports shop.connectors: low (http) -> connectors, a sibling in the same layer",
    ]
    # The table's order is what is checked: with the top two rows swapped, the command line's arrow points up.
    swapped = upward_imports(package, (layers[1], layers[0], *layers[2:]))
    assert "shop/cli.py:1 imports shop.engine: top (cli) -> middle (engine), a layer above" in swapped


# Libraries that take a noticeable part of a second to import, each needed by some commands only: the command line
# must start (`retreasure --help`) without any of them. pyarrow.dataset brings pandas; the lake brings DuckDB,
# Delta and Arrow; the engine SQLGlot; the pipeline Dagster; serving FastAPI, Uvicorn and Streamlit; ML the
# forecasting and recommendation libraries; HTTP clients httpx.
HEAVY_MODULES = (
    "pandas",
    "pyarrow",
    "pyarrow.dataset",
    "numpy",
    "duckdb",
    "deltalake",
    "sqlglot",
    "dagster",
    "fastapi",
    "uvicorn",
    "streamlit",
    "statsforecast",
    "implicit",
    "scipy",
    "pyspark",
    "confluent_kafka",
    "httpx",
    "pydantic_settings",
    "retreasure.lake.store",
    "retreasure.engine.models",
)


def heavy_loaded_by(module: str) -> set[str]:
    """The heavy modules a fresh interpreter has loaded once it imported ``module``."""
    listed = f"[m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]"
    probe = f"import json, sys; import {module}; print(json.dumps({listed}))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_command_line_loads_none_of_the_heavy_libraries() -> None:
    """The command line (with the simulator's commands its entry points mount) starts without any of them."""
    assert heavy_loaded_by("retreasure.cli") == set()


def test_the_heavy_module_probe_sees_a_heavy_import() -> None:
    """The probe would notice one: importing the lake does load DuckDB, Delta and Arrow."""
    assert {"duckdb", "deltalake", "pyarrow", "retreasure.lake.store"} <= heavy_loaded_by("retreasure.lake.store")


# Every command's and group's `--help`, in one interpreter: the root callback runs before each (click calls a
# group's callback before its subcommand parses `--help`), so what it imports every command pays for.
EVERY_HELP = """
import json, sys
import click, typer
from retreasure.cli import app
root = typer.main.get_command(app)
paths = [[name] for name in root.commands]
groups = {name: group for name, group in root.commands.items() if isinstance(group, click.Group)}
paths += [[name, sub] for name, group in groups.items() for sub in group.commands]
for path in paths:
    try:
        app([*path, "--help"], prog_name="retreasure")
    except SystemExit as done:
        assert done.code == 0, (path, done.code)
print(len(paths))
print(json.dumps(%s))
"""


def test_every_commands_help_loads_none_of_the_heavy_libraries() -> None:
    """`retreasure <command> --help` starts as fast as `retreasure --help`: its root callback imports no connector,
    settings model or lake, and no command's options need one to be described."""
    listed = f"[m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]"
    done = subprocess.run(
        [sys.executable, "-c", EVERY_HELP % listed], capture_output=True, text=True, check=True, timeout=300
    )
    *_, count, loaded = done.stdout.strip().splitlines()
    assert int(count) > 10, "the probe found too few commands to say anything"
    assert set(json.loads(loaded)) == set()
