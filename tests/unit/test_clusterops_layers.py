"""clusterops is layered by package, and the layers are enforced here, not only described:
a module imports only its own layer and the layers below it (clusterops/<layer>/__init__.py
says what each holds). clusterops/client.py, which application images ship as a single file,
imports nothing of clusterops at all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "clusterops"
LAYERS = ("core", "node", "state", "provision", "reshape", "repair", "tasks", "cli")


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "clusterops" and parts[1] in LAYERS \
        else None


def clusterops_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a clusterops module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            if node.module == "clusterops" or node.module in {f"clusterops.{x}" for x in LAYERS}:
                found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "clusterops"]


def wrong_way_imports(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        own = layer_of("clusterops." + ".".join(path.relative_to(root).with_suffix("").parts))
        if own is None:
            continue
        for line, name in clusterops_imports(path):
            other = layer_of(name)
            if other is not None and LAYERS.index(other) > LAYERS.index(own):
                problems.append(f"{path.relative_to(root.parent)}:{line}: the {own} layer "
                                f"imports {name} ({other}, a layer above it)")
    return problems


def test_every_module_lives_in_a_layer() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "client.py"], loose
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") \
        == sorted(LAYERS)


def test_no_layer_imports_a_layer_above_it() -> None:
    assert wrong_way_imports(PACKAGE) == []


def test_the_applications_client_imports_nothing_of_clusterops() -> None:
    assert clusterops_imports(PACKAGE / "client.py") == []


@pytest.mark.parametrize(("statement", "named"), [
    ("from clusterops.tasks.health import run_health", "clusterops.tasks.health (tasks"),
    ("from clusterops.cli import targets", "clusterops.cli (cli"),
])
def test_a_wrong_way_import_is_caught(tmp_path: Path, statement: str, named: str) -> None:
    """The check can fail: a state module that imports a task or the CLI is named."""
    root = tmp_path / "clusterops"
    (root / "state").mkdir(parents=True)
    (root / "state" / "live.py").write_text(statement + "\n")
    problems = wrong_way_imports(root)
    assert problems and all(p.startswith("clusterops/state/live.py:1: the state layer imports")
                            for p in problems)
    assert any(named in p for p in problems), problems
