"""What a user of Pulumi's own CLI, language host and providers sees, run here on the official
builds (scripts/install-pulumi.sh): the plugins it loads, how a config problem is reported, and
the first preview of a fresh clone."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.support.deploy_fixtures import require_docker_and_pulumi
from tests.support.pulumi_cli import PROJECT_FILES, PROJECT_ROOT, PulumiStack, new_stack

pytestmark = pytest.mark.e2e

# scripts/build-python-language-host.sh: the host at 1b594989 (main after v3.259.0).
LANGUAGE_HOST_VERSION = "3.259.0+1b594989"


def pinned(package: str) -> str:
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


def plugin_rows(stack: PulumiStack) -> set[tuple[str, str, str]]:
    """(name, kind, version) of every plugin `pulumi plugin ls` shows (the plugin cache)."""
    listing = stack.run("plugin", "ls").stdout
    rows = set()
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] in ("resource", "language"):
            rows.add((fields[0], fields[1], fields[2]))
    return rows


def test_the_cli_runs_the_official_host_and_providers(tmp_path: Path):
    """`pulumi about` names the language plugin the engine started for this project; `pulumi
    plugin ls` the providers installed at the SDKs' pinned versions."""
    require_docker_and_pulumi()
    stack = new_stack(tmp_path, "dev", {})
    about = stack.run("about", "--stack", stack.name).stdout
    assert re.search(rf"language\s+python\s+v?{re.escape(LANGUAGE_HOST_VERSION)}", about), about
    rows = plugin_rows(stack)
    for package in ("docker", "kubernetes", "random"):
        assert (package, "resource", pinned(f"pulumi-{package}")) in rows, rows


def test_a_bad_config_prints_just_the_list_of_problems(tmp_path: Path):
    """Every problem at once, each naming its key, and nothing else: no traceback, no
    'unhandled error', no exit-code noise from the host."""
    require_docker_and_pulumi()
    stack = new_stack(tmp_path, "dev", {"masters": "2", "maxmemory": "512 potatoes"})
    done = stack.run("preview", "--stack", stack.name, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "has 2 problem(s); nothing was created or changed" in output, output
    assert "alphapulse-redis-cluster:masters: 2 is out of range" in output, output
    assert "alphapulse-redis-cluster:maxmemory: '512 potatoes'" in output, output
    for noise in ("unhandled error", "non-zero exit code", "Traceback", "RunError"):
        assert noise not in output, f"{noise!r} in:\n{output}"


def test_the_first_preview_of_a_fresh_clone_makes_the_virtualenv(tmp_path: Path):
    """A clone has no venv/: Pulumi's host creates it from requirements.txt (Pulumi.yaml:
    toolchain pip, virtualenv venv) and then runs the program, as README's quick start says."""
    require_docker_and_pulumi()
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, clone / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, clone / name)
    shutil.copy2(PROJECT_ROOT / "Pulumi.dev.yaml", clone / "Pulumi.dev.yaml")
    backend = tmp_path / "backend"
    backend.mkdir()
    stack = PulumiStack("dev", clone, backend)
    stack.run("stack", "init", "dev", "--secrets-provider", "passphrase")
    assert not (clone / "venv").exists()

    plan = stack.preview()
    assert (clone / "venv" / "bin" / "python").exists()
    ops = {step["op"] for step in plan.get("steps", [])}
    assert ops == {"create"}, plan
