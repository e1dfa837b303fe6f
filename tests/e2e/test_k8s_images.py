"""The local Kubernetes cluster's images (tests/support/k8s_images.py) behave like the official
ones, checked with the plain docker CLI against the Dockerfiles they stand in for.

The expected users, entrypoints and versions are read from those Dockerfiles (k8s_bootstrap's,
and Kubernetes' build/pause/Dockerfile beside the pause.c the image is compiled from) and from
requirements.txt, so a change there that the images do not follow fails here.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import docker
from tests.support import k8s_images
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
# docker stop -t: the grace period after which docker sends SIGKILL.
STOP_GRACE_S = 10
# pause exits on SIGTERM at once; anything near the grace period means it ignored the signal.
PROMPT_STOP_S = 3.0


def dockerfile_config(path: Path) -> dict[str, object]:
    """USER, WORKDIR and ENTRYPOINT (exec form) of a Dockerfile, as `docker inspect` shows them."""
    text = path.read_text()

    def instruction(name: str) -> str:
        found = re.findall(rf"^{name}\s+(.+?)\s*$", text, re.MULTILINE)
        assert found, f"no {name} in {path}"
        return found[-1]

    config: dict[str, object] = {
        "User": instruction("USER"), "Entrypoint": json.loads(instruction("ENTRYPOINT"))
    }
    if "WORKDIR" in text:
        config["WorkingDir"] = instruction("WORKDIR")
    return config


def image_config(ref: str) -> dict[str, object]:
    return json.loads(docker("image", "inspect", "--format", "{{json .Config}}", ref).stdout)


def pinned_version(project: str) -> str:
    pins = dict(line.split("==", 1) for line in
                (REPO_ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    return pins[project].strip()


@pytest.fixture(scope="module")
def k8s_refs(docker_engine_ready: None) -> dict[str, str]:
    return k8s_images.ensure_k8s_images()


def test_bootstrap_image_has_the_dockerfile_config(k8s_refs: dict[str, str]):
    wanted = dockerfile_config(REPO_ROOT / "k8s_bootstrap" / "Dockerfile")
    config = image_config(k8s_refs["bootstrap"])
    assert {key: config[key] for key in wanted} == wanted


def test_bootstrap_image_imports_its_code_as_the_unprivileged_user(k8s_refs: dict[str, str]):
    user = str(dockerfile_config(REPO_ROOT / "k8s_bootstrap" / "Dockerfile")["User"])
    result = docker(
        "run", "--rm", "--network", "none", "--entrypoint", "python", k8s_refs["bootstrap"], "-c",
        "import os, redis, clusterops, k8s_bootstrap, k8s_bootstrap.job, redis.cluster; "
        "print(f'{os.getuid()}:{os.getgid()}', redis.__version__, k8s_bootstrap.__file__)",
    )
    ids, version, module_file = result.stdout.split()
    assert ids == user
    assert version == pinned_version("redis")
    assert module_file == "/app/k8s_bootstrap/__init__.py"


def test_bootstrap_entrypoint_fails_like_the_repository_code_without_arguments(
    k8s_refs: dict[str, str],
):
    # Its own usage error (no --plan/--password-file), exactly as the checkout's code says it.
    local = subprocess.run([sys.executable, "-m", "k8s_bootstrap"], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=False)
    image = docker("run", "--rm", "--network", "none", k8s_refs["bootstrap"], check=False)
    assert local.returncode != 0 and "usage:" in local.stderr  # the reference itself is sane
    assert (image.returncode, image.stderr) == (local.returncode, local.stderr)
    assert "Traceback" not in image.stderr


def test_bootstrap_tag_follows_the_code(
    k8s_refs: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    repository, tag = k8s_refs["bootstrap"].rsplit(":", 1)
    assert repository == k8s_images.BOOTSTRAP_REPOSITORY
    # Recipes only (nothing is built): a copy of the code with one changed line gets a new tag.
    for package in ("clusterops", "k8s_bootstrap"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(k8s_images, "REPO_ROOT", tmp_path)
    copied = k8s_images.bootstrap_recipe().tag
    job = tmp_path / "k8s_bootstrap" / "job.py"
    job.write_text(job.read_text() + "\n# changed\n")
    changed = k8s_images.bootstrap_recipe().tag
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    assert changed != copied


def test_pause_image_runs_until_sigterm_and_exits_zero_promptly(k8s_refs: dict[str, str]):
    ref = k8s_refs["pause"]
    assert ref == k8s_images.PAUSE_REF
    official = dockerfile_config(k8s_images.pause_source().parents[1] / "Dockerfile")
    config = image_config(ref)
    assert {key: config[key] for key in official} == official

    name = f"e2e-pause-{secrets.token_hex(4)}"
    try:
        docker("run", "--detach", "--network", "none", "--name", name, ref)

        def state() -> tuple[bool, dict]:
            seen = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
            return seen["Running"], seen

        wait_until(f"{name} running", state, timeout_s=15)
        time.sleep(0.5)  # still running a moment later: pause waits, it does not exit
        running, seen = state()
        assert running, seen

        started = time.monotonic()
        docker("stop", "--time", str(STOP_GRACE_S), name)
        stop_s = time.monotonic() - started
        _, seen = state()
        assert (seen["Status"], seen["ExitCode"], seen["OOMKilled"]) == ("exited", 0, False)
        assert stop_s < PROMPT_STOP_S, f"docker stop took {stop_s:.1f}s (grace {STOP_GRACE_S}s)"
        # pause's own SIGTERM handler ran (psignal), not docker's SIGKILL.
        logs = docker("logs", name)
        assert "Shutting down, got signal" in logs.stdout + logs.stderr
    finally:
        docker("rm", "--force", name, check=False)


def test_a_second_ensure_builds_nothing(k8s_refs: dict[str, str]):
    started = time.monotonic()
    results = k8s_images.ensure_k8s_images_report()
    elapsed = time.monotonic() - started
    assert {result.role: result.ref for result in results} == k8s_refs
    assert [result.action for result in results] == ["cached"] * len(results)
    assert elapsed < 10, f"a cached ensure took {elapsed:.1f}s"
