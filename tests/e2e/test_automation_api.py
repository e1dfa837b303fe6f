"""`up` / `preview` / `destroy` through Pulumi's Automation API, the way a platform team's own
tooling would drive this project: the real CLI and engine underneath (scripts/install-pulumi.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.support.deploy_fixtures import (
    local_image_config,
    purge_leftovers,
    require_docker_and_pulumi,
    stack_file_config,
)
from tests.support.pulumi_cli import TOOLS_BIN, cli_env, new_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_up_then_preview_shows_no_change_then_destroy(tmp_path: Path):
    require_docker_and_pulumi()
    config = local_image_config()
    purge_leftovers({**stack_file_config("dev"), **config}, "dev")
    # The project copy and its stack file come from the same helper the CLI tests use.
    project = new_stack(tmp_path, "dev", config)
    env = {**cli_env(), "PULUMI_BACKEND_URL": project.env["PULUMI_BACKEND_URL"]}
    stack = auto.select_stack(
        "dev",
        work_dir=str(project.workdir),
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(project.workdir),
            env_vars=env,
            pulumi_command=auto.PulumiCommand(root=str(TOOLS_BIN.parent), skip_version_check=True),
        ),
    )
    try:
        up = stack.up(on_output=print)
        assert up.outputs["cluster_state"].value == "ok"
        assert up.outputs["password"].secret
        preview = stack.preview(on_output=print)
        changed = {op: n for op, n in preview.change_summary.items() if op != "same" and n}
        assert changed == {}, f"second preview wants changes: {preview.change_summary}"
    finally:
        stack.destroy(on_output=print)
        stack.workspace.remove_stack("dev")
        purge_leftovers({**stack_file_config("dev"), **config}, "dev")
