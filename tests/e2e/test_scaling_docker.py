"""Scaling through the real `pulumi up` on real Docker: 3 -> 4 -> 3 masters under a live writer.

What it proves with the real engine: the preview tells the plan (nodes, slot ranges, keys);
new containers exist before the bootstrap update moves slots to them; the departing nodes are
drained and forgotten by the bootstrap update BEFORE the engine deletes their containers
(watched live from a second thread while `pulumi up` runs); the departed dev volumes are
gone; every key is there afterwards and no write that returned OK was lost.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
from redis.cluster import ClusterNode, RedisCluster

from clusterops.core.model import NodeTarget, split_slots
from clusterops.node.access import Access
from clusterops.node.observe import observe_node
from tests.support.cluster_writer import ClusterWriter, only_known_client_errors
from tests.support.deploy_fixtures import DeployedStack, deploy_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Names, subnet and ports of our own: CI and other engineers' stacks run beside this one.
ISOLATED = {"namePrefix": "apscale", "networkName": "apscale_redis-cluster",
            "subnet": "172.31.82.0/24", "basePort": "7501", "exporterPort": "9521",
            "prometheusPort": "9590"}
PRELOAD = 20_000


def client_for(stack: DeployedStack) -> RedisCluster:
    settings = stack.outputs["client_settings"]
    return RedisCluster(startup_nodes=[ClusterNode(**n) for n in settings["startup_nodes"]],
                        password=stack.password, decode_responses=True, socket_timeout=5)


def total_keys(stack: DeployedStack) -> int:
    total = 0
    for node in stack.outputs["nodes"]:
        target = NodeTarget(node["name"], node["ip"], node["port"], node["ip"], node["port"])
        snap = observe_node(target, Access(stack.password))
        if snap.myself and snap.myself.is_master:
            total += snap.key_count
    return total


def container_exists(name: str) -> bool:
    done = subprocess.run(["docker", "inspect", name], capture_output=True, check=False)
    return done.returncode == 0


def volume_names() -> set[str]:
    done = subprocess.run(["docker", "volume", "ls", "--format", "{{.Name}}"],
                          capture_output=True, text=True, check=True)
    return set(done.stdout.split())


class DepartureWatch(threading.Thread):
    """While `pulumi up` runs: what master-1 knows of the leaving node at the moment the
    leaving node's container disappears."""

    def __init__(self, stack: DeployedStack, leaving: dict, survivor: dict) -> None:
        super().__init__(daemon=True)
        self.leaving, self.password = leaving, stack.password
        self.survivor = NodeTarget(survivor["name"], survivor["ip"], survivor["port"],
                                   survivor["ip"], survivor["port"])
        self.last_known: bool | None = None
        self.known_when_gone: bool | None = None
        self.slots_when_gone: int | None = None
        self.stop_flag = threading.Event()

    def run(self) -> None:
        address = f"{self.leaving['ip']}:{self.leaving['port']}"
        last_slots = None
        while not self.stop_flag.is_set():
            snap = observe_node(self.survivor, Access(self.password))
            entry = next((e for e in snap.entries if e.address == address), None)
            known = entry is not None
            slots = sum(b - a + 1 for a, b in entry.slots) if entry else 0
            if not container_exists(self.leaving["container_name"]):
                self.known_when_gone, self.slots_when_gone = self.last_known, last_slots
                return
            self.last_known, last_slots = known, slots
            time.sleep(0.05)


def test_scale_masters_3_to_4_to_3_under_a_live_writer(tmp_path: Path) -> None:
    deploy = deploy_stack(tmp_path, "dev", **ISOLATED)
    stack = next(deploy)
    try:
        handle = stack.stack
        data = {f"pre:{i}": f"value-{i}" for i in range(PRELOAD)}
        with client_for(stack) as client:
            client.mset_nonatomic(data)

        # --- scale out: the preview tells the plan, the engine creates before it updates ---
        handle.set_config({"masters": "4"})
        steps = {(op, name) for op, name in handle.changes()}
        assert ("update", "redis-cluster-bootstrap") in steps
        creates = {name for op, name in steps if op == "create"}
        assert {"redis-cluster-master-4", "redis-cluster-replica-4"} <= creates, steps
        # No existing node is touched (the exporter is recreated: its node list changed).
        touched = {s for s in steps if s[0] in ("replace", "delete")
                   and ("-master-" in s[1] or "-replica-" in s[1])}
        assert not touched, steps
        diff = handle.run("preview", "--stack", handle.name, "--diff").stdout
        print("\n" + "\n".join(line for line in diff.splitlines()
                                if "reshape_plan" in line or '"  slots' in line
                                or "move " in line or "nodes:" in line or "attach" in line))
        assert "add nodes: apscale-redis-master-4, apscale-redis-replica-4" in diff, diff
        # The fewest slots move (a quarter, from each old master), not a fresh split's half.
        assert "move 4096 slot(s) in 3 range(s)" in diff, diff
        for moving in ("4096-5460 (1365): apscale-redis-master-1",
                       "9557-10922 (1366): apscale-redis-master-2",
                       "15019-16383 (1365): apscale-redis-master-3"):
            assert f"slots {moving} -> apscale-redis-master-4" in diff, diff

        seeds = [(n["ip"], n["port"]) for n in stack.outputs["nodes"][:3]]
        writer = ClusterWriter(seeds, stack.password, "grow")
        writer.start()
        started = time.monotonic()
        try:
            handle.up()
        finally:
            writer.stop()
        grow_s = time.monotonic() - started
        stack.reload_outputs()
        assert stack.outputs["slot_ranges"]["apscale-redis-master-4"] == [
            [4096, 5460], [9557, 10922], [15019, 16383]]
        with client_for(stack) as client:
            lost = writer.missing(client)
            assert client.mget_nonatomic(list(data)) == list(data.values())
        assert lost == [], f"{len(lost)} write(s) that returned OK are gone: {lost[:5]}"
        assert total_keys(stack) == PRELOAD + len(writer.ok)
        print(f"\nscale-out 3->4: pulumi up {grow_s:.1f}s; writer {len(writer.ok)} OK, "
              f"{len(writer.acked)} WAIT-acked, {len(writer.errors)} client error(s) "
              f"{writer.errors[:3]}; keys counted {total_keys(stack)}")
        assert only_known_client_errors(writer), writer.errors[:5]
        assert handle.changes() == []  # nothing left to do

        # --- scale in: drained and forgotten by the bootstrap update, then deleted ---
        leaving = stack.node("apscale-redis-master-4")
        handle.set_config({"masters": "3"})
        steps = set(handle.changes())
        assert {("delete", "redis-cluster-master-4"), ("delete", "redis-cluster-replica-4"),
                ("delete", "redis-cluster-master-4-data"),
                ("update", "redis-cluster-bootstrap")} <= steps, steps
        diff = handle.run("preview", "--stack", handle.name, "--diff").stdout
        print("\n".join(line for line in diff.splitlines()
                        if "reshape_plan" in line or '"  slots' in line or "move " in line
                        or "nodes" in line))
        assert "remove nodes (drained and forgotten first): apscale-redis-master-4, " \
               "apscale-redis-replica-4" in diff, diff
        # Only the leaving shard's slots move, each back to where a fresh split has it.
        assert "move 4096 slot(s) in 3 range(s)" in diff, diff
        assert "slots 15019-16383 (1365): apscale-redis-master-4 -> apscale-redis-master-3" \
            in diff, diff

        watch = DepartureWatch(stack, leaving, stack.node("apscale-redis-master-1"))
        watch.start()
        writer = ClusterWriter(seeds, stack.password, "shrink")
        writer.start()
        started = time.monotonic()
        try:
            shrink_output = handle.run("up", "--stack", handle.name, "--yes",
                                       "--skip-preview").stdout
        finally:
            writer.stop()
            watch.stop_flag.set()
            watch.join(10)
        shrink_s = time.monotonic() - started
        # What the reshape printed: a line per step, never one per slot (it once printed
        # 8,320 lines here). The outputs' diff that follows is the engine's.
        printed = shrink_output.partition("Diagnostics:")[2].partition("\nOutputs:")[0]
        assert 0 < len(printed.splitlines()) < 60, printed[-3000:]
        # The engine deleted the container only after master-1 had forgotten the node, which
        # the bootstrap update does after draining it.
        assert watch.known_when_gone is False, (watch.known_when_gone, watch.slots_when_gone)
        assert not container_exists("apscale-redis-master-4")
        assert not {"apscale-redis-master-4-data", "apscale-redis-replica-4-data"} & \
            volume_names()
        stack.reload_outputs()
        assert stack.outputs["slot_ranges"] == {
            f"apscale-redis-master-{i + 1}": [list(r)] for i, r in enumerate(split_slots(3))}
        with client_for(stack) as client:
            lost = writer.missing(client)
            assert client.mget_nonatomic(list(data)) == list(data.values())
        assert lost == [], f"{len(lost)} write(s) that returned OK are gone: {lost[:5]}"
        lines = len(printed.splitlines())
        print(f"scale-in 4->3 ({lines} lines printed by the reshape): pulumi up {shrink_s:.1f}s; "
              f"writer {len(writer.ok)} OK, "
              f"{len(writer.acked)} WAIT-acked, {len(writer.errors)} client error(s) "
              f"{writer.errors[:3]}; keys counted {total_keys(stack)}")
        assert only_known_client_errors(writer), writer.errors[:5]
        assert handle.changes() == []
    finally:
        deploy.close()


def test_protected_volumes_refuse_the_whole_scale_in_until_unprotected(tmp_path: Path) -> None:
    """prod's protectData: the engine will not delete a protected volume, and it says so at
    preview, before any step: the scale-in is not started at all (not half-done). Unprotecting
    the two leaving volumes lets it run; their volumes stay on the host (retainOnDelete)."""
    deploy = deploy_stack(tmp_path, "dev", **ISOLATED, protectData="true")
    stack = next(deploy)
    leaving_volumes = {"apscale-redis-master-4-data", "apscale-redis-replica-4-data"}
    try:
        handle = stack.stack
        data = {f"pre:{i}": f"value-{i}" for i in range(5000)}
        with client_for(stack) as client:
            client.mset_nonatomic(data)
        handle.set_config({"masters": "4"})
        handle.up()
        stack.reload_outputs()
        master_4 = stack.node("apscale-redis-master-4")
        target = NodeTarget("m4", master_4["ip"], 6379, master_4["ip"], 6379)
        keys_on_4 = observe_node(target, Access(stack.password)).key_count
        assert keys_on_4 > 0

        handle.set_config({"masters": "3"})
        refused = handle.run("up", "--stack", handle.name, "--yes", check=False)  # with preview
        assert refused.returncode != 0
        assert "redis-cluster-master-4-data\" cannot be deleted" in refused.stdout
        assert "because it is protected" in refused.stdout
        # Nothing started: master-4 still serves its slots with its keys, still a member.
        snap = observe_node(target, Access(stack.password))
        assert snap.myself is not None and snap.myself.slots == (
            (4096, 5460), (9557, 10922), (15019, 16383))
        assert snap.key_count == keys_on_4
        assert container_exists("apscale-redis-master-4")

        for resource in handle.state()["deployment"]["resources"]:
            if resource["urn"].endswith(("::redis-cluster-master-4-data",
                                         "::redis-cluster-replica-4-data")):
                handle.run("state", "unprotect", "--stack", handle.name, resource["urn"], "--yes")
        handle.up()
        stack.reload_outputs()
        assert not container_exists("apscale-redis-master-4")
        assert leaving_volumes <= volume_names()  # retained on the host, out of the stack
        with client_for(stack) as client:
            assert client.mget_nonatomic(list(data)) == list(data.values())
        assert handle.changes() == []
    finally:
        for resource in stack.stack.state()["deployment"]["resources"]:
            if resource.get("protect"):
                stack.stack.run("state", "unprotect", "--stack", stack.stack.name,
                                resource["urn"], "--yes", check=False)
        deploy.close()
        subprocess.run(["docker", "volume", "rm", "-f", *leaving_volumes,
                        *(f"apscale-redis-{n}-data" for n in
                          ("master-1", "master-2", "master-3", "replica-1", "replica-2",
                           "replica-3"))], capture_output=True, check=False)


def test_replacing_every_container_is_not_taken_for_a_reshape(tmp_path: Path) -> None:
    """The bootstrap's check reads the live cluster on every preview and up; while the engine
    replaces every node container (a redis.conf change) nodes are down or restarting, which
    must neither refuse the update nor plan a reshape."""
    deploy = deploy_stack(tmp_path, "dev", **ISOLATED)
    stack = next(deploy)
    try:
        handle = stack.stack
        with client_for(stack) as client:
            client.set("kept", "yes")
        handle.set_config({"maxmemory": "256mb"})
        diff = handle.run("preview", "--stack", handle.name, "--diff").stdout
        assert "reshape_plan" not in diff
        handle.up()
        assert handle.changes() == []
        with client_for(stack) as client:
            assert client.get("kept") == "yes"
    finally:
        deploy.close()


def test_replicas_per_master_1_to_2_to_1_under_a_live_writer(tmp_path: Path) -> None:
    deploy = deploy_stack(tmp_path, "dev", **ISOLATED)
    stack = next(deploy)
    try:
        handle = stack.stack
        data = {f"pre:{i}": f"value-{i}" for i in range(5000)}
        with client_for(stack) as client:
            client.mset_nonatomic(data)
        seeds = [(n["ip"], n["port"]) for n in stack.outputs["nodes"][:3]]
        for replicas, prefix in (("2", "two"), ("1", "one")):
            handle.set_config({"replicasPerMaster": replicas})
            diff = handle.run("preview", "--stack", handle.name, "--diff").stdout
            assert "move 0 slot(s)" in diff, diff
            writer = ClusterWriter(seeds, stack.password, prefix)
            writer.start()
            started = time.monotonic()
            try:
                handle.up()
            finally:
                writer.stop()
            stack.reload_outputs()
            with client_for(stack) as client:
                lost = writer.missing(client)
                assert client.mget_nonatomic(list(data)) == list(data.values())
            print(f"\nreplicasPerMaster -> {replicas}: pulumi up {time.monotonic() - started:.1f}s;"
                  f" writer {len(writer.ok)} OK, {len(writer.acked)} WAIT-acked, "
                  f"{len(writer.errors)} client error(s) {writer.errors[:3]}")
            assert lost == [], f"{len(lost)} write(s) that returned OK are gone: {lost[:5]}"
            assert len(stack.outputs["nodes"]) == 3 * (1 + int(replicas))
            assert handle.changes() == []
        assert not {"apscale-redis-replica-4-data", "apscale-redis-replica-6-data"} & \
            volume_names()
    finally:
        deploy.close()


def test_bad_scaling_requests_are_refused_at_preview_and_change_nothing(tmp_path: Path) -> None:
    """Through the real engine: 2 masters (config), a scale-in whose keys would not fit on
    the masters that stay, and a cluster resharded by hand. Each is a clear error from
    `pulumi preview`; no container is replaced and no key moves."""
    deploy = deploy_stack(tmp_path, "dev", **ISOLATED, masters="4", maxmemory="32mb",
                          memoryLimit="128mb")
    stack = next(deploy)
    try:
        handle = stack.stack
        # ~24 MB on each of the 4 masters, maxmemory 32 MB: 4 -> 3 moves only master-4's
        # slots, a third of its ~24 MB to each, and ~32 MB is over the 90% the check allows.
        value = "x" * 1000
        with client_for(stack) as client:
            for start in range(0, 88_000, 2000):
                client.mset_nonatomic({f"big:{i}": value for i in range(start, start + 2000)})
        keys = total_keys(stack)
        assert keys == 88_000
        ids_before = {n["name"]: subprocess.run(
            ["docker", "inspect", "-f", "{{.Id}}", n["container_name"]], capture_output=True,
            text=True, check=True).stdout.strip() for n in stack.outputs["nodes"]}

        def refused(config: dict[str, str], expected: str) -> None:
            handle.set_config(config)
            done = handle.run("preview", "--stack", handle.name, check=False)
            text = done.stdout + done.stderr
            assert done.returncode != 0 and expected in text, text[-3000:]
            assert total_keys(stack) == keys
            for name, container_id in ids_before.items():
                now = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name],
                                     capture_output=True, text=True, check=True).stdout.strip()
                assert now == container_id, name

        refused({"masters": "2"}, "Redis Cluster needs at least 3 masters")
        refused({"masters": "3"}, "the keys cannot be placed")

        # By hand: slot 0 (emptied first) moved from master-1 to master-2.
        handle.set_config({"masters": "4"})
        with client_for(stack) as client:
            m1 = client.get_node(host=stack.node("apscale-redis-master-1")["ip"], port=6379)
            conn = client.get_redis_connection(m1)
            for key in conn.execute_command("CLUSTER", "GETKEYSINSLOT", 0, 1000):
                client.delete(key)
            keys = total_keys(stack)
            ids = {n: client.get_redis_connection(client.get_node(
                host=stack.node(f"apscale-redis-{n}")["ip"], port=6379)).execute_command(
                "CLUSTER", "MYID") for n in ("master-1", "master-2")}
            for name in ("master-1", "master-2", "master-3", "master-4"):
                node = client.get_node(host=stack.node(f"apscale-redis-{name}")["ip"], port=6379)
                client.get_redis_connection(node).execute_command(
                    "CLUSTER", "SETSLOT", 0, "NODE", ids["master-2"])
        refused({"masters": "4"}, "resharded by hand")
    finally:
        deploy.close()
