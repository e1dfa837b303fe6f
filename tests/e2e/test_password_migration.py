"""A stack made before the switch to pulumi-random keeps its generated password.

Stacks deployed before then hold the password in our own GeneratedPassword dynamic resource.
The stand-in for such a stack is the project with a first `__main__.py` that declares just that
resource, as the old program did (same name, same type, same provider code); then the real
program takes over, as an upgraded checkout would, after scripts/keep_generated_passwords.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deploy_fixtures import (
    local_image_config,
    purge_leftovers,
    require_docker_and_pulumi,
    stack_file_config,
)
from tests.support.pulumi_cli import PROJECT_ROOT, PulumiStack, new_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LEGACY_TYPE = "pulumi-python:dynamic/alphapulse:GeneratedPassword"
RANDOM_TYPE = "random:index/randomPassword:RandomPassword"
LEGACY_PROGRAM = (
    "from components.generated_password import GeneratedPassword\n"
    "GeneratedPassword('redis-password', length=32)\n"
)


def legacy_password(stack: PulumiStack) -> str:
    state = json.loads(stack.run("stack", "export", "--stack", stack.name,
                                 "--show-secrets").stdout)
    (resource,) = [r for r in state["deployment"]["resources"] if r["type"] == LEGACY_TYPE]
    return json.loads(resource["outputs"]["result"]["plaintext"])


def planned(stack: PulumiStack) -> dict[str, set[str]]:
    """resource type -> the operations the preview plans for it."""
    ops: dict[str, set[str]] = {}
    for step in stack.preview()["steps"]:
        ops.setdefault(step["urn"].split("::")[-2], set()).add(step["op"])
    return ops


def test_the_generated_password_survives_the_switch_to_random(tmp_path: Path):
    require_docker_and_pulumi()
    config = local_image_config()
    purge_leftovers({**stack_file_config("dev"), **config}, "dev")
    stack = new_stack(tmp_path, "dev", config)
    program = stack.workdir / "__main__.py"
    real_program = program.read_text()
    try:
        program.write_text(LEGACY_PROGRAM)
        stack.up()
        old = legacy_password(stack)
        program.write_text(real_program)

        # Without the carry-over, the upgrade would make a new password: say so in the plan.
        assert "create" in planned(stack).get(RANDOM_TYPE, set())

        done = subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "scripts" / "keep_generated_passwords.py"),
             "--stack", stack.name, "--cwd", str(stack.workdir)],
            env=stack.env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        assert old not in done.stdout + done.stderr  # never printed
        assert "alphapulse-redis-cluster:password: set (secret)" in done.stdout, done.stdout
        assert "secure:" in (stack.workdir / "Pulumi.dev.yaml").read_text()

        plan = planned(stack)
        assert plan.get(LEGACY_TYPE) == {"delete"}, plan
        assert RANDOM_TYPE not in plan, plan
        outputs = stack.up()
        assert outputs["password"] == old
        assert outputs["cluster_state"] == "ok"
        assert LEGACY_TYPE not in {r["type"] for r in stack.state()["deployment"]["resources"]}
    finally:
        stack.destroy(check=False)
        stack.remove()
        purge_leftovers({**stack_file_config("dev"), **config}, "dev")
