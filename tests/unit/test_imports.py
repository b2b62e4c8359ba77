"""Import contract: the platform package (src/retreasure) imports nothing from the simulator (retreasure_sim).

The simulator is a development dependency that imports the platform; an arrow the other way would make the shipped
wheel need a package it does not carry. Imports inside functions count too, as do `import_module("...")` calls."""

from __future__ import annotations

import ast
from pathlib import Path

PLATFORM = Path(__file__).resolve().parents[2] / "src" / "retreasure"
SIMULATOR = "retreasure_sim"
DYNAMIC_IMPORTS = {"import_module", "__import__"}


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in DYNAMIC_IMPORTS and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def imports_of(package: Path, forbidden: str) -> list[str]:
    """Every `file:line module` under `package` that imports `forbidden` or one of its submodules."""
    return [
        f"{path.relative_to(package.parent)}:{line} {module}"
        for path in sorted(package.rglob("*.py"))
        for line, module in _imported_modules(ast.parse(path.read_text(), filename=str(path)))
        if module == forbidden or module.startswith(forbidden + ".")
    ]


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
