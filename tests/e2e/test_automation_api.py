"""`pulumi up` / `preview` / `destroy` through the Automation API, wherever a pulumi CLI exists.

This is the real engine path the deploy harness stands in for. It is skipped, with that
reason, on machines without the CLI (this project's build machines cannot install one).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.support.deploy_fixtures import purge_leftovers, require_docker
from tests.support.deploy_harness import local_image_config
from tests.support.program_runner import PROJECT_ROOT, stack_config_file

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("pulumi") is None,
        reason="no pulumi CLI on PATH: the Automation API drives the CLI; "
        "tests/support/deploy_harness.py covers the same program on this machine",
    ),
]


def test_up_then_preview_shows_no_change_then_destroy(tmp_path: Path):
    from pulumi import automation as auto

    require_docker()
    stack_name = f"e2e-{uuid.uuid4().hex[:8]}"
    config = {**stack_config_file("dev"), **local_image_config()}
    purge_leftovers(config, stack_name)
    options = auto.LocalWorkspaceOptions(
        work_dir=str(PROJECT_ROOT),
        env_vars={
            "PULUMI_BACKEND_URL": f"file://{tmp_path}",
            "PULUMI_CONFIG_PASSPHRASE": "automation-test-only",
        },
    )
    stack = auto.create_stack(stack_name, work_dir=str(PROJECT_ROOT), opts=options)
    stack_file = PROJECT_ROOT / f"Pulumi.{stack_name}.yaml"
    try:
        stack.set_all_config(
            {f"alphapulse-redis-cluster:{k}": auto.ConfigValue(value=v) for k, v in config.items()}
        )
        up = stack.up(on_output=print)
        assert up.outputs["cluster_state"].value == "ok"
        assert up.outputs["password"].secret
        preview = stack.preview(on_output=print)
        changed = {op: n for op, n in preview.change_summary.items() if op != "same" and n}
        assert changed == {}, f"second preview wants changes: {preview.change_summary}"
    finally:
        stack.destroy(on_output=print)
        stack.workspace.remove_stack(stack_name)
        stack_file.unlink(missing_ok=True)
