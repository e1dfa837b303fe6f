"""Failover drills against a real 3+3 cluster of redis-server processes.

The cluster is formed by ``redis-cli --cluster create --cluster-replicas 1`` with
cluster-node-timeout 1000 and cluster-replica-validity-factor 0, as deployed. Every check reads
the cluster's own answers afterwards (CLUSTER NODES, INFO, a cluster client's write) instead of
trusting the drill's report alone.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from clusterops.node.targets import Targets
from clusterops.tasks.drill import (
    DrillResult,
    account_writes,
    live_masters,
    run_master_failure_drill,
    wait_until_ready,
)
from clusterops.tasks.writes import ACKED, UNACKED, Connections, WriteRecord
from tests.support.process_control import (
    LoopbackPartitionControl,
    ProcessNodeControl,
    form_cluster_with_redis_cli,
    kill_registry_processes,
    targets_for,
    write_registry,
)
from tests.support.redis_nodes import RedisNodes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"cluster-node-timeout": "1000", "cluster-replica-validity-factor": "0"}


def _cluster(base_dir: Path, hosts: list[str] | None = None,
             before_forming: Callable[[RedisNodes], object] | None = None,
             settings: dict[str, str] | None = None) -> RedisNodes:
    group = RedisNodes(6, base_dir=base_dir, settings={**SETTINGS, **(settings or {})},
                       name_prefix="drill", hosts=hosts)
    group.start()
    try:
        if before_forming is not None:
            before_forming(group)
        form_cluster_with_redis_cli(group)
        conns = Connections(targets_for(group))
        wait_until_ready(conns, [n.name for n in group], timeout_s=30)
        conns.close()
    except BaseException:
        group.close()
        raise
    return group


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisNodes]:
    group = _cluster(tmp_path_factory.mktemp("drill-cluster"))
    yield group
    group.close()


def _myself(client: redis.Redis) -> tuple[str, str, str]:
    """(node id, flags, master id) of the node ``client`` talks to."""
    for line in str(client.execute_command("CLUSTER", "NODES")).splitlines():
        parts = line.split()
        if "myself" in parts[2].split(","):
            return parts[0], parts[2], parts[3]
    raise AssertionError("CLUSTER NODES has no myself line")


def _replica_of(group: RedisNodes, master: str) -> str:
    master_id = _myself(group.by_name(master).client())[0]
    followers = [n.name for n in group if _myself(n.client())[2] == master_id]
    assert len(followers) == 1, f"{master} should have exactly one replica, has {followers}"
    return followers[0]


def _assert_failed_over_and_rejoined(
    group: RedisNodes, result: DrillResult, old_master: str, replica: str
) -> None:
    """Check, from the servers themselves, what the drill claims."""
    assert result.errors == [], result.errors
    assert result.new_master == replica, f"expected {replica} promoted, report: {result}"
    assert result.recovery_seconds is not None and result.recovery_seconds > 0
    new_master = group.by_name(replica).client()
    new_id, new_flags, _ = _myself(new_master)
    assert "master" in new_flags.split(","), f"{replica} is {new_flags}, not a master"
    old = group.by_name(old_master).client()
    _, old_flags, old_master_id = _myself(old)
    assert "slave" in old_flags.split(","), f"{old_master} is {old_flags}, not a replica"
    assert old_master_id == new_id, f"{old_master} follows {old_master_id}, not {replica}"
    assert old.info("replication")["master_link_status"] == "up"
    # A real cluster client writes to the failed-over slots (owned by the new master now).
    startup = [redis.cluster.ClusterNode(n.host, n.port) for n in group]
    with redis.RedisCluster(startup_nodes=startup, password=group.password) as client:
        slot_owner_key = f"after-drill-{time.time_ns()}"
        for attempt in range(1000):
            key = f"{slot_owner_key}-{attempt}"
            if new_master.execute_command("CLUSTER", "KEYSLOT", key) in _slots_of(new_master):
                break
        assert client.set(key, "ok")
        assert new_master.get(key) == "ok", "the cluster client's write did not land on it"
        client.delete(key)
    # Zero acknowledged writes lost, and there were plenty of them to lose.
    assert result.acked_writes >= 100, result
    assert result.acked_lost == 0, result.lost_keys_sample
    assert result.rejoined


def _slots_of(client: redis.Redis) -> set[int]:
    for line in str(client.execute_command("CLUSTER", "NODES")).splitlines():
        parts = line.split()
        if "myself" in parts[2].split(","):
            slots: set[int] = set()
            for item in parts[8:]:
                if not item.startswith("["):
                    first, _, last = item.partition("-")
                    slots.update(range(int(first), int(last or first) + 1))
            return slots
    return set()


@pytest.mark.parametrize("mode", ["kill", "partition"])
def test_master_failure_promotes_replica_and_keeps_acknowledged_writes(
    cluster: RedisNodes, mode: str
) -> None:
    targets = targets_for(cluster)
    conns = Connections(targets)
    master = live_masters(conns, [n.name for n in cluster])[0]
    conns.close()
    replica = _replica_of(cluster, master)

    result = run_master_failure_drill(targets, ProcessNodeControl(cluster), master, mode)

    assert result.mode == mode
    _assert_failed_over_and_rejoined(cluster, result, master, replica)


class RestartingControl(ProcessNodeControl):
    """Like the kubelet: a killed node is started again at once, by the platform, not by the
    drill (on Kubernetes the container restarts by itself: clusterops/cli/pod_control.py)."""

    recovers_in_place = ("kill",)

    def kill(self, node: str) -> None:
        super().kill(node)
        super().start(node)

    def start(self, node: str) -> None:
        if not self.node(node).is_running():
            super().start(node)


# The control (no persistence) runs in the full suite only: the quick tiers are at their limit.
@pytest.mark.parametrize("appendonly", ["yes", pytest.param("no", marks=pytest.mark.slow)])
def test_a_node_restarted_by_the_platform_counts_as_recovered_in_place(
        tmp_path: Path, appendonly: str) -> None:
    """The kill drill where the node comes back before its replica is promoted: a recovery in
    place, not "writes never succeeded again" (the drill once skipped the faulted node). With
    the AOF (as deployed: everysec, and a SIGKILL loses nothing already written) every
    acknowledged write survives. The control: without persistence the master comes back empty
    under the same node id and its replica resyncs the empty data set, and the drill says so
    (why `appendonly` stays on for Kubernetes, where the kubelet restarts a crashed node)."""
    cluster = _cluster(tmp_path, settings={"appendonly": appendonly,
                                           "appendfsync": "everysec"})
    try:
        _restarted_in_place(cluster, appendonly == "yes")
    finally:
        cluster.close()


def _restarted_in_place(cluster: RedisNodes, persisted: bool) -> None:
    targets = targets_for(cluster)
    conns = Connections(targets)
    master = live_masters(conns, [n.name for n in cluster])[0]
    conns.close()
    replica = _replica_of(cluster, master)

    result = run_master_failure_drill(targets, RestartingControl(cluster), master, "kill")

    if not persisted:
        if result.new_master == master:  # (the election may win the race: nothing to see)
            assert result.acked_lost > 0, result
        return
    assert result.errors == [] and result.rejoined, result
    assert result.acked_writes >= 100 and result.acked_lost == 0, result
    if result.new_master == master:
        assert any("recovered in place" in note for note in result.notes), result.notes
        _, flags, _ = _myself(cluster.by_name(master).client())
        assert "master" in flags.split(","), flags
    else:  # the election won the race: an ordinary failover
        _assert_failed_over_and_rejoined(cluster, result, master, replica)
    print(f"restarted at once: recovered on {result.new_master} in "
          f"{result.recovery_seconds:.2f}s")


def test_real_partition_counts_writes_the_isolated_master_accepted_and_lost(
    tmp_path: Path,
) -> None:
    """Split brain: clients still reach the cut-off master, which accepts writes for a while.

    Those writes can never be acknowledged by a replica (replication is cut too), and they
    vanish when the old master rejoins as a replica; the drill must count them, and still lose
    no acknowledged write.
    """
    reason = LoopbackPartitionControl.available()
    if reason:
        pytest.skip(reason)
    # Addresses nothing else here uses, so the DROP rules can only touch these six nodes.
    hosts = [f"127.0.83.{i}" for i in range(1, 7)]
    chain = f"DRILL-{os.getpid()}"
    controls: list[LoopbackPartitionControl] = []
    group = _cluster(tmp_path, hosts=hosts,
                     before_forming=lambda g: controls.append(LoopbackPartitionControl(g, chain)))
    (control,) = controls
    try:
        targets = targets_for(group)
        conns = Connections(targets)
        master = live_masters(conns, [n.name for n in group])[0]
        conns.close()
        replica = _replica_of(group, master)

        result = run_master_failure_drill(targets, control, master, "partition")

        _assert_failed_over_and_rejoined(group, result, master, replica)
        assert result.faulted_node_accepted_after_fault >= 1, result
        assert result.faulted_node_accepted_lost >= 1, result
        assert result.unacked_lost >= result.faulted_node_accepted_lost, result
    finally:
        control.remove_rules()
        group.close()


def test_loss_check_counts_acknowledged_writes_that_are_missing(cluster: RedisNodes) -> None:
    """The read-back that proves 'zero lost' must see a loss when there is one."""
    targets: Targets = targets_for(cluster)
    names = [n.name for n in cluster]
    conns = Connections(targets)
    id_to_name = {s.my_id: s.name for s in wait_until_ready(conns, names)}
    stamp = time.time_ns()
    present = [WriteRecord(i, f"loss-check:{{t}}:{stamp}:{i}", f"v{i}", "", 1.0, ACKED)
               for i in range(3)]
    missing_acked = WriteRecord(3, f"loss-check:{{t}}:{stamp}:3", "v3", "", 1.0, ACKED)
    missing_unacked = WriteRecord(4, f"loss-check:{{t}}:{stamp}:4", "v4", "", 1.0, UNACKED)
    startup = [redis.cluster.ClusterNode(n.host, n.port) for n in cluster]
    with redis.RedisCluster(startup_nodes=startup, password=cluster.password) as client:
        for record in present:
            client.set(record.key, record.value)
        result = DrillResult("x", "kill")
        account_writes(result, conns, names, id_to_name,
                       [*present, missing_acked, missing_unacked], fault_started=0.0)
        client.delete(*[r.key for r in present])
    conns.close()
    assert (result.acked_writes, result.acked_lost) == (4, 1), result
    assert (result.unacked_accepted, result.unacked_lost) == (1, 1), result
    assert result.lost_keys_sample == [missing_acked.key]


# --- the command, as an operator runs it --------------------------------------------------------


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisNodes, Path]]:
    """A cluster whose faults the drill CLI injects through the registry-based control."""
    base = tmp_path_factory.mktemp("drill-cli")
    group = _cluster(base / "nodes")
    registry = base / "registry.json"
    write_registry(group, registry)
    yield group, registry
    try:
        kill_registry_processes(registry)  # nodes the CLI restarted are not our children
    finally:
        group.close()


def _drill_cli(group: RedisNodes, registry: Path, *extra: str) -> subprocess.CompletedProcess:
    password_file = registry.parent / "password"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(group.password)
    control = shlex.join([sys.executable, "-m", "tests.support.process_control",
                          "--registry", str(registry)])
    nodes = [arg for n in group for arg in ("--node", f"{n.name}={n.host}:{n.port}")]
    argv = [sys.executable, "-m", "clusterops", "drill", *nodes,
            "--password-file", str(password_file), "--control-command", control, *extra]
    assert group.password not in " ".join(argv)
    return subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180)


@pytest.mark.slow  # a drill that waits out its recovery limit: full suite only
def test_drill_command_fails_and_says_why_when_recovery_is_over_the_limit(
    cli_cluster: tuple[RedisNodes, Path],
) -> None:
    group, registry = cli_cluster
    master = live_masters(Connections(targets_for(group)), [n.name for n in group])[0]

    done = _drill_cli(group, registry, "--master", master, "--mode", "kill",
                      "--max-recovery-seconds", "0.01")

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"FAIL {master}: recovery took" in done.stdout, output
    assert "more than --max-recovery-seconds 0.01" in done.stdout, output
    # Only the threshold failed: no data lost, the node came back.
    assert "acknowledged writes lost" not in done.stdout, output
    assert "did not rejoin" not in done.stdout, output
    assert group.password not in output


@pytest.mark.slow  # ~10 s; the kill and partition drills stay in the quick tiers
def test_drill_command_stop_mode_passes_with_json_report(
    cli_cluster: tuple[RedisNodes, Path],
) -> None:
    group, registry = cli_cluster
    master = live_masters(Connections(targets_for(group)), [n.name for n in group])[0]
    replica = _replica_of(group, master)

    done = _drill_cli(group, registry, "--master", master, "--mode", "stop", "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    (drill,) = report["drills"]
    assert drill["master"] == master and drill["mode"] == "stop"
    assert drill["new_master"] == replica
    assert drill["rejoined"] is True and drill["acked_lost"] == 0
    assert drill["acked_writes"] >= 100
    assert 0 < drill["recovery_seconds"] <= 5
    old = group.by_name(master).client()
    assert _myself(old)[2] == _myself(group.by_name(replica).client())[0]
