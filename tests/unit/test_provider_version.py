"""A dynamic provider's version follows the code it runs: the import closure of its module."""

from __future__ import annotations

import shutil
from pathlib import Path

import components.bootstrap
import components.node_handover
import components.secret_files
from components.provider_version import PROJECT_ROOT, import_closure, module_version

PROVIDERS = {
    "components.bootstrap": components.bootstrap.PROVIDER_VERSION,
    "components.node_handover": components.node_handover.PROVIDER_VERSION,
    "components.secret_files": components.secret_files.PROVIDER_VERSION,
}


def closure_names(module: str, root: Path = PROJECT_ROOT) -> set[str]:
    return {p.relative_to(root).as_posix() for p in import_closure(module, root)}


def test_each_version_is_the_digest_of_its_modules_import_closure() -> None:
    for module, version in PROVIDERS.items():
        assert module_version(module) == version, module


def test_the_closure_holds_what_each_provider_runs_and_not_the_cli() -> None:
    handover = closure_names("components.node_handover")
    # Once a hand-written list of two files: the takeover it delegates to was missing.
    assert {"components/node_handover.py", "clusterops/provision/handover.py",
            "clusterops/node/admin.py",
            "clusterops/node/observe.py", "clusterops/core/poll.py", "clusterops/node/access.py",
            "clusterops/node/connection.py"} <= handover
    secret_files = closure_names("components.secret_files")
    assert {"components/docker_host.py", "clusterops/core/child_env.py"} <= secret_files
    bootstrap = closure_names("components.bootstrap")
    assert {"clusterops/provision/formation.py", "clusterops/reshape/scaling.py",
            "components/preview_values.py"} <= bootstrap
    for closure in (handover, secret_files, bootstrap):
        assert not any(name.startswith("clusterops/cli/commands/") for name in closure)
        assert "clusterops/cli/main.py" not in closure


def test_an_edit_inside_the_closure_changes_the_version_and_one_outside_does_not(
        tmp_path: Path) -> None:
    for package in ("components", "clusterops"):
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    before = module_version("components.node_handover", tmp_path)
    assert before == PROVIDERS["components.node_handover"]  # same files, same version
    # The failover it delegates to (a transitive import) is in; the CLI, never run, is out.
    for relative, changes in (("clusterops/node/admin.py", True),
                              ("clusterops/cli/main.py", False)):
        path = tmp_path / relative
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        changed = module_version("components.node_handover", tmp_path) != before
        assert changed == changes, f"editing {relative}: version changed={changed}"
        path.write_bytes(original)
