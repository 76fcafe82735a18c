"""Every library the training code imports is declared in pyproject.toml, so a fresh install
(pip install .) has it instead of finding it only where something else pulled it in."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FIRST_PARTY = {"schemas", "feedback", "training", "services", "tests"}


def imported_roots(package: Path) -> Iterator[tuple[Path, str]]:
    """(file, top-level module) for every absolute import, lazy ones inside functions too."""
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                yield path, module.split(".")[0]


def declared_distributions() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {
        _normalise(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
        for requirement in pyproject["project"]["dependencies"]
    }


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_of_training_is_declared():
    declared = declared_distributions()
    providers = packages_distributions()
    undeclared = [
        f"{path.relative_to(ROOT)} imports {module} (from {sorted(providers.get(module, []))})"
        for path, module in imported_roots(ROOT / "training")
        if module not in sys.stdlib_module_names
        and module not in FIRST_PARTY
        and not {_normalise(d) for d in providers.get(module, [])} & declared
    ]
    assert not undeclared, "declare these in pyproject.toml [project] dependencies: " + (
        "; ".join(undeclared)
    )
