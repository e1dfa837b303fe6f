"""The stack outputs are a versioned contract (clusterops/client.py), and the client helper
turns them into the right RedisCluster for each client location.

The program runs under Pulumi's mocks for dev and prod; its outputs must match the schema of
the version it exports. Changing an output's shape without a new version fails here, and so does
editing a schema that was already released (its fingerprint is pinned below).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from clusterops.client import (
    OUTPUTS_SCHEMAS,
    OUTPUTS_VERSION,
    SECRET_OUTPUTS,
    OutputsContractError,
    connection_plan,
    from_stack_outputs,
    schema_problems,
)
from tests.support.program_runner import ProgramRun, run_program, stack_config_file

# sha256 of each released schema (canonical JSON). A released version never changes: a new
# shape is a new version. Add the new version's fingerprint here when you add its schema.
RELEASED_SCHEMAS = {
    1: "a874a4ab92afed1439f792ac7d816c628979595a81411c244ae851311f2b5a02",
    2: "f4d6945ad3b1cfd57b4b796b5fea8dce7810e3c827a810977f578d212b216cac",
    3: "2720a3c05d6346e248cd4c145aa337cd94ecb80b38bc0cc6ae90c19385f0947e",
    # v4 gained location.tools_image before its first release (not on main yet then).
    4: "8dfb1354e33a2cbced5844318dbbdbf42cb1b3d21aa9f83ea579b2d1eea99bf3",
}
PASSWORD = "prod-secret-password-0123456789"


def fingerprint(schema: Any) -> str:
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module", params=["dev", "prod", "k8s"])
def run(request: pytest.FixtureRequest) -> ProgramRun:
    config = stack_config_file(request.param)
    if request.param != "dev":
        config["password"] = PASSWORD
    return run_program(request.param, config)


def test_the_program_exports_the_current_version(run: ProgramRun):
    assert run.outputs["outputs_version"] == OUTPUTS_VERSION


def test_every_output_has_the_shape_its_version_promises(run: ProgramRun):
    problems = schema_problems(run.outputs, OUTPUTS_SCHEMAS[run.outputs["outputs_version"]])
    assert problems == [], (
        "the stack outputs changed shape without a new outputs_version: "
        f"{problems}. Fix: add OUTPUTS_SCHEMAS[{OUTPUTS_VERSION + 1}] in clusterops/client.py, "
        "set OUTPUTS_VERSION to it and pin its fingerprint in this test"
    )


def test_secret_outputs_are_secret(run: ProgramRun):
    assert run.secret_outputs == set(SECRET_OUTPUTS)


def test_each_target_exports_its_own_variant(run: ProgramRun):
    target = "kubernetes" if run.outputs.get("render_dir") else "docker"
    assert run.outputs["target"] == target
    location = run.outputs["location"]
    if target == "kubernetes":
        assert location["reachable_from"] == "inside-cluster"
        assert location["namespace"] == "alphapulse-redis"
        # `host` meant a Docker host on one target and a pod DNS name on the other.
        assert all("host" not in n and n["dns_name"].endswith(".svc.cluster.local")
                   for n in run.outputs["nodes"])
    else:
        assert location["network_name"] == run.outputs["network_name"]
        assert sorted(location["published_endpoints"].values()) == sorted(
            run.outputs["host_seed_endpoints"])


def test_a_variant_is_chosen_by_target_and_an_unknown_target_is_refused(run: ProgramRun):
    other = "docker" if run.outputs["target"] == "kubernetes" else "kubernetes"
    assert schema_problems({**run.outputs, "target": other}, OUTPUTS_SCHEMAS[4]) != []
    assert schema_problems({**run.outputs, "target": "moon"}, OUTPUTS_SCHEMAS[4]) == [
        "outputs.target: 'moon' is not one of docker, kubernetes"]


def test_released_schemas_are_never_edited():
    assert set(OUTPUTS_SCHEMAS) == set(RELEASED_SCHEMAS), "pin the new schema's fingerprint"
    for version, schema in OUTPUTS_SCHEMAS.items():
        assert fingerprint(schema) == RELEASED_SCHEMAS[version], (
            f"OUTPUTS_SCHEMAS[{version}] was edited after release; add a new version instead")


@pytest.fixture(scope="module")
def outputs() -> dict[str, Any]:
    return run_program("dev", stack_config_file("dev")).outputs


@pytest.mark.parametrize("change", [
    lambda o: o.update(seed_endpoints=",".join(o["seed_endpoints"])),  # list -> string
    lambda o: o["nodes"][0].pop("host_port"),  # a field removed
    lambda o: o["nodes"][0].update(zone="a"),  # a field added
    lambda o: o.update(maxmemory_bytes="512mb"),  # int -> string
    lambda o: o.update(new_output="x"),  # an output added
])
def test_a_shape_change_is_caught(outputs: dict[str, Any], change):
    changed = copy.deepcopy(outputs)
    change(changed)
    assert schema_problems(changed, OUTPUTS_SCHEMAS[OUTPUTS_VERSION]) != []


def test_network_clients_start_at_the_container_ips(outputs: dict[str, Any]):
    plan = connection_plan(outputs, "network")
    assert plan.startup_nodes == [(n["ip"], n["port"]) for n in outputs["nodes"]]
    assert plan.address_map == {}


def test_docker_host_clients_use_published_ports_for_every_announced_address(outputs):
    plan = connection_plan(outputs, "docker-host")
    assert plan.startup_nodes[0] == ("127.0.0.1", 7001)
    replica = outputs["nodes"][-1]
    assert plan.remap((replica["ip"], 6379)) == ("127.0.0.1", replica["host_port"])


def test_remote_clients_need_the_hosts_address(outputs: dict[str, Any]):
    with pytest.raises(OutputsContractError, match="host_address"):
        connection_plan(outputs, "remote")
    plan = connection_plan(outputs, "remote", host_address="10.1.2.3")
    assert plan.startup_nodes[0] == ("10.1.2.3", 7001)
    assert set(plan.address_map.values()) == {("10.1.2.3", n["host_port"])
                                               for n in outputs["nodes"]}


def test_older_versions_are_read_and_unknown_ones_refused_with_the_fix(outputs: dict[str, Any]):
    # What a client reads kept its meaning since version 1: old stacks' outputs still work.
    for version in (1, 2, 3):
        assert connection_plan({**outputs, "outputs_version": version}, "network")
    with pytest.raises(OutputsContractError, match="outputs_version 5; this client understands "
                                                   "1, 2, 3, 4"):
        connection_plan({**outputs, "outputs_version": 5})
    with pytest.raises(OutputsContractError, match="outputs_version None"):
        connection_plan({k: v for k, v in outputs.items() if k != "outputs_version"})
    with pytest.raises(OutputsContractError, match="one of network, docker-host, remote"):
        connection_plan(outputs, "moon")


def test_the_client_is_built_without_connecting(outputs: dict[str, Any]):
    # RedisCluster connects in its constructor; a refused connection proves which seed it
    # tried first (no cluster listens on these test addresses).
    with pytest.raises(Exception) as caught:
        from_stack_outputs(outputs, "remote", host_address="127.0.0.1",
                           socket_connect_timeout=0.2)
    assert "7001" in str(caught.value) or "Redis Cluster cannot be connected" in str(
        caught.value)


def test_kubernetes_outputs_give_in_cluster_clients_and_refuse_published_ports():
    outputs = run_program("k8s", {**stack_config_file("k8s"), "password": PASSWORD}).outputs
    plan = connection_plan(outputs, "network")
    assert plan.startup_nodes == [(n["dns_name"], n["port"]) for n in outputs["nodes"]]
    for location in ("docker-host", "remote"):
        with pytest.raises(OutputsContractError, match="reachable only inside the Kubernetes"):
            connection_plan(outputs, location, host_address="10.1.2.3")
