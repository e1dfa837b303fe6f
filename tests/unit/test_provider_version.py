"""PROVIDER_VERSION follows the provider's source: an edit anywhere in it changes the version."""

from __future__ import annotations

import shutil
from pathlib import Path

from components.bootstrap import (
    PROJECT_ROOT,
    PROVIDER_VERSION,
    provider_sources,
    source_version,
)


def copy_of_sources(tmp_path: Path) -> Path:
    for path in provider_sources():
        target = tmp_path / path.relative_to(PROJECT_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return tmp_path


def test_version_is_the_digest_of_the_bootstrap_and_every_clusterops_module() -> None:
    names = {p.relative_to(PROJECT_ROOT).as_posix() for p in provider_sources()}
    expected = {"components/bootstrap.py", "components/preview_values.py"} | {
        p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "clusterops").rglob("*.py")
    }
    assert names == expected and "clusterops/formation.py" in names
    assert source_version(provider_sources()) == PROVIDER_VERSION


def test_an_edit_to_any_source_file_changes_the_version(tmp_path: Path) -> None:
    root = copy_of_sources(tmp_path)
    copied = provider_sources(root)
    before = source_version(copied, root)
    assert before == PROVIDER_VERSION  # same bytes, same relative paths: same version
    for relative in ("components/bootstrap.py", "clusterops/formation.py"):
        path = root / relative
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        assert source_version(copied, root) != before, f"editing {relative} kept the version"
        path.write_bytes(original)
    assert source_version(copied, root) == before
