"""The bootstrap provider's methods called directly against real redis-server processes.

The gRPC path through ``python -m pulumi.dynamic`` is covered in test_provider_process.py; here
we cover behaviour that needs more set-up: read after a failover and with a dead node, updates
that must not write, refused topology changes, delete, and the resource class under mocks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc
from redis.cluster import RedisCluster

from clusterops.tasks.reconcile import TopologyChangeError
from components.bootstrap import PROVIDER_VERSION, ClusterBootstrapProvider
from tests.integration.test_formation import write_counts
from tests.support.process_plans import plan_for, wait_for_replica_links
from tests.support.redis_nodes import RedisNodes
from tests.support.waiting import wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def inputs_for(redis_nodes, **overrides: Any) -> dict[str, Any]:
    props = {
        "nodes": [t.to_dict() for t in plan_for(redis_nodes)],
        "password": redis_nodes.password,
        "provider_version": PROVIDER_VERSION,
        "timeout_seconds": 30,
    }
    props.update(overrides)
    return props


def created(nodes: RedisNodes) -> tuple[ClusterBootstrapProvider, str, dict[str, Any]]:
    provider = ClusterBootstrapProvider()
    checked = provider.check({}, inputs_for(nodes))
    assert checked.failures == []
    result = provider.create(checked.inputs)
    assert result.outs is not None
    return provider, result.id, result.outs


def test_read_after_a_failover_reports_swapped_roles_as_healthy(six_nodes: RedisNodes) -> None:
    provider, id_, outs = created(six_nodes)
    wait_for_replica_links(six_nodes)
    six_nodes[4].client().execute_command("CLUSTER", "FAILOVER")  # replica-2 takes over
    wait_for("replica-2 promoted",
             lambda: six_nodes[4].client().info("replication")["role"] == "master")

    read = wait_for("read healthy after the swap", lambda: (
        r := provider.read(id_, outs)).outs["cluster_state"] == "ok" and r)

    live = read.outs
    assert live["cluster_problems"] == []
    assert live["live_roles"]["alphapulse-redis-replica-2"] == "master"
    assert live["live_roles"]["alphapulse-redis-master-2"] == "replica"
    # Not drift: ids and per-shard slot ranges are what create reported.
    assert live["node_ids"] == outs["node_ids"]
    assert live["slot_ranges"] == outs["slot_ranges"]
    assert rpc.is_rpc_secret(live["password"])
    # And a re-run (update after a version bump) adopts it without a write.
    before = write_counts(six_nodes)
    updated = provider.update(id_, outs, {**inputs_for(six_nodes), "provider_version": "next"})
    assert updated.outs is not None and updated.outs["node_ids"] == outs["node_ids"]
    assert write_counts(six_nodes) == before


def test_read_reports_a_dead_node(six_nodes: RedisNodes) -> None:
    provider, id_, outs = created(six_nodes)
    six_nodes[5].kill()  # replica-3

    live = provider.read(id_, outs).outs

    assert live["cluster_state"] == "fail"
    assert any("alphapulse-redis-replica-3 is unreachable" in p for p in live["cluster_problems"])
    assert live["node_ids"] == outs["node_ids"]  # still known, by its peers and from state
    assert six_nodes.password not in str(live["cluster_problems"])


def test_update_of_timeout_or_version_writes_nothing(six_nodes: RedisNodes) -> None:
    provider, id_, outs = created(six_nodes)
    before = write_counts(six_nodes)
    news = inputs_for(six_nodes, timeout_seconds=45, provider_version="2")

    diff = provider.diff(id_, outs, news)
    updated = provider.update(id_, outs, news)

    assert diff.changes is True and diff.replaces == []
    assert write_counts(six_nodes) == before
    assert updated.outs is not None
    assert updated.outs["timeout_seconds"] == 45 and updated.outs["provider_version"] == "2"
    for key in ("node_ids", "slot_ranges", "cluster_state", "nodes"):
        assert updated.outs[key] == outs[key]


def test_moving_or_re_roling_a_surviving_node_is_refused_and_leaves_everything_untouched(
    six_nodes: RedisNodes,
) -> None:
    provider, id_, outs = created(six_nodes)
    before = write_counts(six_nodes)
    plan = [t.to_dict() for t in plan_for(six_nodes)]
    cases = {
        "move a node": [{**n, "cluster_port": n["cluster_port"] + 1} if i == 4 else n
                        for i, n in enumerate(plan)],
        "re-role a node": [{**n, "role": "master", "master": None, "slots": [[0, 0]]}
                           if i == 5 else n for i, n in enumerate(plan)],
    }
    for case, nodes in cases.items():
        news = inputs_for(six_nodes, nodes=nodes)
        with pytest.raises(TopologyChangeError, match="not supported by this provider"):
            provider.diff(id_, outs, news)
        with pytest.raises(TopologyChangeError) as refused:
            provider.update(id_, outs, news)
        assert "Nothing was changed" in str(refused.value), case
    assert write_counts(six_nodes) == before


def test_scaling_out_is_previewed_with_its_moves_and_applied_by_update(
    six_nodes: RedisNodes, redis_nodes_factory
) -> None:
    provider, id_, outs = created(six_nodes)
    extra = redis_nodes_factory(2, password=six_nodes.password, name_prefix="extra")
    with RedisCluster(host="127.0.0.1", port=six_nodes[0].port, password=six_nodes.password,
                      decode_responses=True) as client:
        client.mset_nonatomic({f"k{i}": str(i) for i in range(3000)})
    # Master-4 (extra[0]) and its replica-4 (extra[1]): plan_for puts the first 4 first.
    grown = plan_for([*six_nodes[:3], extra[0], *six_nodes[3:], extra[1]], masters=4)
    news = inputs_for(six_nodes, nodes=[t.to_dict() for t in grown])

    checked = provider.check(inputs_for(six_nodes), news)
    assert checked.failures == []
    summary = checked.inputs["reshape_plan"]
    assert summary[0] == ("add nodes: alphapulse-redis-master-4, alphapulse-redis-replica-4")
    # The fewest slots: a quarter, from each old master (not a fresh split's half).
    assert summary[1].startswith("move 4096 slot(s) in 3 range(s), ")
    moved_keys = int(summary[1].split(", ")[1].split()[0])
    assert 0 < moved_keys < 3000
    assert summary[4].startswith("  slots 15019-16383 (1365): alphapulse-redis-master-3 -> "
                                 "alphapulse-redis-master-4")
    assert provider.diff(id_, outs, checked.inputs).changes is True

    updated = provider.update(id_, outs, checked.inputs)
    assert updated.outs is not None
    assert updated.outs["slot_ranges"]["alphapulse-redis-master-4"] == [
        [4096, 5460], [9557, 10922], [15019, 16383]]
    assert "reshape_plan" not in updated.outs
    # Applied: the next check finds nothing left to do, and no key was lost.
    again = provider.check(checked.inputs, news)
    assert again.failures == [] and "reshape_plan" not in again.inputs
    assert provider.diff(id_, updated.outs, again.inputs).changes is False
    with RedisCluster(host="127.0.0.1", port=six_nodes[0].port, password=six_nodes.password,
                      decode_responses=True) as client:
        assert client.mget_nonatomic([f"k{i}" for i in range(3000)]) == [
            str(i) for i in range(3000)]


def test_admin_address_change_is_an_update_not_a_topology_change(six_nodes: RedisNodes) -> None:
    provider, id_, outs = created(six_nodes)
    # Same servers reached through another loopback address (as with --via-host-ports).
    nodes = [{**t.to_dict(), "admin_host": "localhost"} for t in plan_for(six_nodes)]
    news = inputs_for(six_nodes, nodes=nodes)
    assert provider.diff(id_, outs, news).changes is True
    updated = provider.update(id_, outs, news)
    assert updated.outs is not None and updated.outs["node_ids"] == outs["node_ids"]


def test_delete_forgets_and_keeps_the_cluster_and_its_data(six_nodes: RedisNodes) -> None:
    provider, id_, outs = created(six_nodes)
    client = RedisCluster(host="127.0.0.1", port=six_nodes[0].port,
                          password=six_nodes.password, decode_responses=True)
    client.set("survives-delete", "yes")
    before = write_counts(six_nodes)

    provider.delete(id_, outs)  # outputs only, as the engine calls it

    assert write_counts(six_nodes) == before
    assert client.get("survives-delete") == "yes"
    client.close()


MOCK_PROGRAM = textwrap.dedent("""
    import json

    import pulumi
    from pulumi.runtime import rpc

    registered = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            registered.append((args.typ, args.inputs))
            return args.name + "-id", {**args.inputs, "cluster_state": "ok"}

        def call(self, args):
            return {}

    pulumi.runtime.set_mocks(Mocks(), preview=False)

    from components.bootstrap import PROVIDER_VERSION, ClusterBootstrap

    nodes = [{"name": "m", "role": "master", "admin_host": "127.0.0.1", "admin_port": 1,
              "cluster_host": "127.0.0.1", "cluster_port": 1, "slots": [[0, 16383]]}]
    resource = ClusterBootstrap("boot", nodes=nodes, password="mock-password-xyz",
                                provider_version=PROVIDER_VERSION, timeout_seconds=30,
                                rewrite_config=True)

    def report(values):
        state, password_output_secret = values
        typ, inputs = registered[0]
        print(json.dumps({
            "typ": typ,
            "keys": sorted(inputs),
            "version": inputs["provider_version"],
            "state": state,
            "password_input_secret": rpc.is_rpc_secret(inputs["password"]),
            "provider_input_secret": rpc.is_rpc_secret(inputs["__provider"]),
            "password_output_secret": password_output_secret,
        }, sort_keys=True))

    @pulumi.runtime.test
    def program():
        return pulumi.Output.all(
            resource.cluster_state, pulumi.Output.is_secret(resource.password)
        ).apply(report)

    program()
""")


def test_resource_class_registers_under_pulumi_mocks(tmp_path: Path) -> None:
    """The typed resource class pickles its provider, registers, and keeps the password secret."""
    script = tmp_path / "program.py"
    script.write_text(MOCK_PROGRAM)
    env = {"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, str(script)], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "typ": "pulumi-python:dynamic/alphapulse:ClusterBootstrap",
        "keys": ["__provider", "nodes", "password", "provider_version", "rewrite_config",
                 "settings", "timeout_seconds"],
        "version": PROVIDER_VERSION,
        "state": "ok",
        "password_input_secret": True,
        "provider_input_secret": True,
        "password_output_secret": True,
    }
    assert "mock-password-xyz" not in result.stdout + result.stderr
