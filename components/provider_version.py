"""Version strings for dynamic providers, derived from the code they run.

Pulumi never re-runs a dynamic provider because its pickled code changed (pulumi/pulumi#12401):
only a changed input does. Each provider therefore carries a version input: the digest of every
project module its own module imports, directly or not, found by reading the imports (nothing is
executed). A hand-written file list went stale (a module imported later was missing from it, so
existing stacks kept running the old pickled code); the closure cannot, and it leaves out what
the provider never runs (the CLI's commands), so editing those changes no stack's preview.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def source_version(paths: Sequence[Path], root: Path = PROJECT_ROOT) -> str:
    """A digest of the files' paths (relative to ``root``) and bytes: changes with any edit."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _module_file(name: str, root: Path) -> Path | None:
    """The project file that defines module `name`, or None (not the project's: redis, pulumi)."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(name: str, path: Path) -> list[str]:
    """Every module name an import statement of `path` can load: `from a import b` may load the
    submodule a.b, and importing a.b.c runs a/__init__ and a/b/__init__ first."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[:len(parts) - (node.level - 1)])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    with_parents = []
    for imported in names:
        parts = imported.split(".")
        with_parents += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return with_parents


def import_closure(module: str, root: Path = PROJECT_ROOT) -> list[Path]:
    """The project files `module` runs: itself and every project module it imports, transitively."""
    found: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = _module_file(name, root)
        if path is None:
            continue
        found[name] = path
        pending += _imported_names(name, path)
    if module not in found:
        raise ValueError(f"{module} is not a module under {root}")
    return sorted(set(found.values()))


def module_version(module: str, root: Path = PROJECT_ROOT) -> str:
    """The version input of the dynamic provider defined in `module`."""
    return source_version(import_closure(module, root), root)
