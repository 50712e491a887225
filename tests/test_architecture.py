"""The dependency direction of docs/architecture.md, checked on every import of the package:
adapters -> wiring -> services -> models / index / db / storage / imaging -> runtime -> the
shared bottom (errors, settings, atomic files). Nothing points back up."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "viewfinder"

LAYERS: dict[str, int] = {
    **dict.fromkeys(("errors", "settings", "atomic", "logging_setup", "__init__"), 0),
    "runtime": 1,
    **dict.fromkeys(("models", "index", "db", "storage", "imaging"), 2),
    **dict.fromkeys(("library", "analysis", "faces", "classifiers", "analyzer", "access"), 3),
    **dict.fromkeys(("container", "model_registry"), 4),
    **dict.fromkeys(("api", "cli", "web"), 5),
    **dict.fromkeys(("testing", "__main__"), 6),
}
# The settings check the fetch allow-list's syntax at start-up; the parser imports nothing of
# Viewfinder, so this is no cycle.
ALLOWED_UPWARD = {("settings", "viewfinder.imaging.allowlist")}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("viewfinder.")}


def test_every_package_has_a_layer() -> None:
    tops = {
        p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()
    }
    tops -= {"__pycache__", "py"}
    assert tops <= set(LAYERS), f"give these a layer: {sorted(tops - set(LAYERS))}"


def test_no_import_points_up_a_layer() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for module in _imports(path):
            target = module.split(".")[1]
            if LAYERS[target] > LAYERS[top] and (top, module) not in ALLOWED_UPWARD:
                upward.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert upward == []


def test_nothing_below_the_adapters_imports_fastapi() -> None:
    web_framework = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        if LAYERS[path.relative_to(PACKAGE).parts[0].removesuffix(".py")] < LAYERS["api"]
        and any(
            line.startswith(("import fastapi", "from fastapi", "from starlette"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert web_framework == []


def test_every_benchmark_still_imports() -> None:
    """mypy checks the package only: a benchmark importing a moved module would go unnoticed."""
    benchmarks = sorted(PACKAGE.parents[1].joinpath("benchmarks").glob("[a-z]*.py"))
    assert benchmarks
    for path in benchmarks:
        importlib.import_module(f"benchmarks.{path.stem}")
