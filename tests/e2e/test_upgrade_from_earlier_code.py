"""A stack deployed by the code before the redesign (issue 26) is previewed, updated and destroyed
by today's: nothing is replaced, created or deleted, the cluster keeps its node ids and keys.

The redesign moved every clusterops module into layer packages, split the components into a
target-neutral core and typed settings, and changed the outputs to contract v4. Pulumi keeps each
dynamic resource's provider as a pickle in the state and unpickles the stored one to delete it,
so today's code must load the pickles the earlier code wrote (they name classes by module path).
The earlier code is the repository at BASELINE, taken with `git archive`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from redis.cluster import ClusterNode, RedisCluster

from tests.support.deploy_fixtures import (
    local_image_config,
    purge_leftovers,
    require_docker_and_pulumi,
    stack_file_config,
)
from tests.support.pulumi_cli import PROJECT_FILES, PROJECT_ROOT, PulumiStack, new_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The last commit before the redesign's moves (main when this session began).
BASELINE = "596fcfb"
DYNAMIC = "pulumi-python:dynamic"
KEYS = 500

# Run in the stack's directory with today's code: unpickle every dynamic resource's stored
# provider, as `pulumi destroy` does, and name the classes they are.
UNPICKLE = """
import base64, json, sys
import dill
state = json.load(sys.stdin)
for resource in state["deployment"]["resources"]:
    if resource["type"].startswith("pulumi-python:dynamic"):
        stored = resource["inputs"]["__provider"]
        if isinstance(stored, dict):  # a secret: `stack export --show-secrets` gives plaintext
            stored = json.loads(stored["plaintext"])
        provider = dill.loads(base64.b64decode(stored))
        print(type(provider).__module__ + "." + type(provider).__qualname__)
"""


def put_code(workdir: Path, revision: str | None) -> None:
    """The program's files in ``workdir``: the repository's at ``revision`` (None: today's)."""
    for name in PROJECT_FILES:
        target = workdir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    if revision is None:
        for name in PROJECT_FILES:
            source = PROJECT_ROOT / name
            if source.is_dir():
                shutil.copytree(source, workdir / name,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, workdir / name)
        return
    archive = subprocess.run(["git", "archive", revision, *PROJECT_FILES], cwd=PROJECT_ROOT,
                             capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.fail(f"`git archive {revision}` failed (a shallow clone?): "
                    f"{archive.stderr.decode()[-500:]}")
    subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive.stdout, check=True)


def cluster_client(outputs: dict) -> RedisCluster:
    seeds = [ClusterNode(*endpoint.rsplit(":", 1)) for endpoint in outputs["seed_endpoints"]]
    return RedisCluster(startup_nodes=seeds, password=outputs["password"],
                        username=outputs.get("username"), socket_timeout=5,
                        decode_responses=True)


def planned_ops(stack: PulumiStack) -> dict[str, set[str]]:
    """resource name -> the operations the preview plans for it."""
    preview = stack.preview("--diff")
    assert "steps" in preview, preview
    ops: dict[str, set[str]] = {}
    for step in preview["steps"]:
        ops.setdefault(step["urn"].rsplit("::", 1)[-1], set()).add(step["op"])
    return ops


def test_a_stack_of_the_earlier_code_is_updated_in_place_by_todays(tmp_path: Path) -> None:
    require_docker_and_pulumi()
    config = local_image_config()
    purge_leftovers({**stack_file_config("dev"), **config}, "dev")
    stack = new_stack(tmp_path, "dev", config)
    try:
        put_code(stack.workdir, BASELINE)
        before = stack.up()
        assert "target" not in before, "the baseline must be the earlier outputs contract"
        with cluster_client(before) as client:
            client.mset_nonatomic({f"upgrade:{i}": f"value-{i}" for i in range(KEYS)})

        put_code(stack.workdir, None)
        state = stack.run("stack", "export", "--stack", stack.name, "--show-secrets").stdout
        loaded = subprocess.run([sys.executable, "-c", UNPICKLE], cwd=stack.workdir,
                                input=state, capture_output=True, text=True, check=False)
        assert loaded.returncode == 0, f"today's code cannot load a stored provider: " \
                                       f"{loaded.stderr[-2000:]}"
        classes = set(loaded.stdout.split())
        assert classes and all(c.startswith("components.") for c in classes), classes

        ops = planned_ops(stack)
        unexpected = {name: sorted(o) for name, o in ops.items() if o - {"same", "update"}}
        if unexpected:
            diff = stack.run("preview", "--stack", stack.name, "--diff", check=False).stdout
            (tmp_path / "preview-diff.txt").write_text(diff)
            pytest.fail(f"the upgrade would replace, create or delete: {unexpected}; "
                        f"the whole diff is in {tmp_path / 'preview-diff.txt'}")

        after = stack.up()
        assert after["outputs_version"] == 4 and after["target"] == "docker"
        assert after["node_ids"] == before["node_ids"], "a node was reset or replaced"
        with cluster_client(after) as client:
            values = client.mget_nonatomic([f"upgrade:{i}" for i in range(KEYS)])
        assert values == [f"value-{i}" for i in range(KEYS)]
        settled = planned_ops(stack)
        assert settled and all(o == {"same"} for o in settled.values()), settled
    finally:
        stack.destroy(check=False)
        stack.remove()
        purge_leftovers({**stack_file_config("dev"), **config}, "dev")
