"""`clusterops fix`, `failback` and `rebalance` through the CLI, on real redis-server processes.

Each test breaks a cluster the way an operator meets it (a move interrupted by a kill or a
restart, slots served by nobody, a failover, a new empty master), runs the command as an
operator would (a subprocess, the password in $REDIS_PASSWORD), and counts every key after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from clusterops.core.model import hash_tags
from tests.support.process_control import form_cluster_with_redis_cli
from tests.support.pulumi_cli import PROJECT_ROOT
from tests.support.redis_nodes import RedisNode, RedisNodes, pick_free_port
from tests.support.waiting import wait_for, wait_until

pytestmark = pytest.mark.integration
CLI_TIMEOUT_S = 180.0
WRONG_PASSWORD = "not-the-right-one-5d1a"
Factory = Callable[..., RedisNodes]


def clusterops(*args: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_PASSWORD": password}
    return subprocess.run(
        [sys.executable, "-m", "clusterops", *args], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL,
        check=False)


def node_flags(nodes: RedisNodes, masters: int = 0) -> list[str]:
    """--node flags; with ``masters``, the first ones are the planned masters (roles given)."""
    flags = []
    for index, node in enumerate(nodes):
        role = "" if not masters else (":master" if index < masters else ":replica")
        flags += ["--node", f"{node.name}={node.address}{role}"]
    return flags


def cluster(factory: Factory, masters: int = 3, replicas: int = 0, extra: int = 0,
            **options: object) -> RedisNodes:
    """``masters`` x (1 + ``replicas``) nodes formed by redis-cli, plus ``extra`` loose nodes."""
    group = factory(masters * (1 + replicas) + extra, **options)
    members = Members(group.nodes[: masters * (1 + replicas)], group.password)
    form_cluster_with_redis_cli(members, replicas)  # type: ignore[arg-type]
    wait_for("cluster_state:ok on every member", lambda: all(
        "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO")
        for n in members), timeout_s=30)
    return group


@dataclass
class Members:
    """The part of a group redis-cli forms (what form_cluster_with_redis_cli reads)."""

    nodes: list[RedisNode]
    password: str

    def __iter__(self) -> Iterator[RedisNode]:
        return iter(self.nodes)


def client(nodes: RedisNodes) -> RedisCluster:
    return RedisCluster(startup_nodes=[ClusterNode(nodes[0].host, nodes[0].port)],
                        password=nodes.password, decode_responses=True)


def fill(nodes: RedisNodes, count: int, prefix: str = "k", size: int = 20) -> dict[str, str]:
    data = {f"{prefix}:{i}": f"{i}:" + "v" * size for i in range(count)}
    items = list(data.items())
    with client(nodes) as conn:
        for start in range(0, count, 5000):
            conn.mset_nonatomic(dict(items[start : start + 5000]))
    return data


def assert_every_key(nodes: RedisNodes, data: dict[str, str]) -> None:
    """Every key present with its value, and no extra copy anywhere (masters' DBSIZE sum)."""
    keys = list(data)
    with client(nodes) as conn:
        values = []
        for start in range(0, len(keys), 5000):
            values += conn.mget_nonatomic(keys[start : start + 5000])
    lost = [k for k, v in zip(keys, values, strict=True) if v != data[k]]
    assert not lost, f"{len(lost)} of {len(keys)} key(s) lost or changed, e.g. {lost[:5]}"
    total = sum(n.client().dbsize() for n in nodes if is_master(n))
    assert total == len(data), f"masters hold {total} keys, expected {len(data)}"


def is_master(node: RedisNode) -> bool:
    return node.client().info("replication")["role"] == "master"


def node_id(node: RedisNode) -> str:
    return node.client().execute_command("CLUSTER", "MYID")


def open_slots(nodes: RedisNodes) -> list[str]:
    found = []
    for node in nodes:
        if not node.is_running():
            continue
        text = node.client().execute_command("CLUSTER", "NODES")
        found += [f"{node.name}{t}" for line in text.splitlines() if "myself" in line
                  for t in line.split() if t.startswith("[")]
    return found


def slot_of_tag(first: int, last: int, prefix: str) -> tuple[int, str]:
    tag = hash_tags([(first, last)], 1, prefix)[0]
    return key_slot(tag.encode()), tag


def leave_slot_open(nodes: RedisNodes, source: RedisNode, target: RedisNode, slot: int,
                    importing: bool = True, migrating: bool = True, moved: float = 0.5) -> int:
    """Open ``slot`` by hand as an interrupted move does; MIGRATE ``moved`` of its keys."""
    if importing:
        target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(source))
    if migrating:
        source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))
    keys = source.client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10_000)
    part = keys[: int(len(keys) * moved)]
    if part:
        source.client().execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "AUTH",
                                        nodes.password, "KEYS", *part)
    return len(part)


def tagged(nodes: RedisNodes, tag: str, count: int) -> dict[str, str]:
    data = {f"{{{tag}}}:{i}": f"tagged-{i}" for i in range(count)}
    with client(nodes) as conn:
        conn.mset_nonatomic(data)
    return data


# --- fix -----------------------------------------------------------------------------------


def test_fix_finishes_moves_left_open_with_keys_split_and_loses_no_key(
        redis_nodes_factory: Factory) -> None:
    nodes = cluster(redis_nodes_factory)
    m1, m2, m3 = nodes[0], nodes[1], nodes[2]
    data = fill(nodes, 20_000)
    both, tag_a = slot_of_tag(100, 5000, "a")  # m1 -> m2, importing and migrating, half moved
    only_mig, tag_b = slot_of_tag(5500, 10000, "b")  # m2 -> m3, migrating only, nothing moved
    only_imp, tag_c = slot_of_tag(11000, 16000, "c")  # m3 -> m1, importing only
    for tag in (tag_a, tag_b, tag_c):
        data.update(tagged(nodes, tag, 300))
    assert leave_slot_open(nodes, m1, m2, both) > 0
    leave_slot_open(nodes, m2, m3, only_mig, importing=False, moved=0)
    leave_slot_open(nodes, m3, m1, only_imp, migrating=False, moved=0)
    assert len(open_slots(nodes)) == 4

    dry = clusterops("fix", *node_flags(nodes), password=nodes.password)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    for slot in (both, only_mig, only_imp):
        assert f"finish slot {slot}" in dry.stdout, dry.stdout
    assert len(open_slots(nodes)) == 4, "a dry run changed the cluster"

    done = clusterops("fix", *node_flags(nodes), "--apply", password=nodes.password)
    assert done.returncode == 0, done.stdout + done.stderr
    assert open_slots(nodes) == []
    holders = {slot: [n.name for n in (m1, m2, m3)
                      if n.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)]
               for slot in (both, only_mig, only_imp)}
    # Each slot's keys all went the way its move was going, none stayed behind.
    assert holders == {both: [m2.name], only_mig: [m3.name], only_imp: [m1.name]}
    assert_every_key(nodes, data)
    again = clusterops("fix", *node_flags(nodes), password=nodes.password)
    assert again.returncode == 0 and "nothing to fix" in again.stdout, again.stdout


def test_fix_after_a_node_restarted_mid_migration(redis_nodes_factory: Factory) -> None:
    # Data and nodes.conf survive the restart (AOF on), so the slot is still open afterwards.
    nodes = cluster(redis_nodes_factory, settings={"appendonly": "yes"})
    m1, m2 = nodes[0], nodes[1]
    data = fill(nodes, 10_000)
    slot, tag = slot_of_tag(200, 5000, "r")
    data.update(tagged(nodes, tag, 400))
    assert leave_slot_open(nodes, m1, m2, slot, moved=0.3) > 0
    m1.stop()
    m1.start()
    wait_for("cluster_state:ok after the restart", lambda: all(
        "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO") for n in nodes),
        timeout_s=30)
    assert any(f"[{slot}->-" in s for s in open_slots(nodes)), open_slots(nodes)

    done = clusterops("fix", *node_flags(nodes), "--apply", password=nodes.password)
    assert done.returncode == 0, done.stdout + done.stderr
    assert open_slots(nodes) == []
    assert m1.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    assert m2.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) >= 400
    assert_every_key(nodes, data)


def cluster_with_an_empty_master(factory: Factory) -> tuple[RedisNodes, RedisNode]:
    """The 3-master cluster plus a 4th master met but holding no slot (what a scale-out adds)."""
    nodes = cluster(factory, extra=1)
    new = nodes[3]
    nodes[0].client().execute_command("CLUSTER", "MEET", new.host, new.port)
    wait_for("the new master known to all, cluster_state:ok", lambda: all(
        node_id(new) in n.client().execute_command("CLUSTER", "NODES")
        and "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO")
        for n in nodes), timeout_s=30)
    return nodes, new


@pytest.mark.slow  # a large process-tier scenario: full suite only
def test_fix_finishes_a_rebalance_killed_mid_move(redis_nodes_factory: Factory) -> None:
    nodes, new = cluster_with_an_empty_master(redis_nodes_factory)
    # 2 KB values: the move takes long enough to be killed while a slot is open.
    data = fill(nodes, 30_000, size=2000)
    process = subprocess.Popen(
        [sys.executable, "-m", "clusterops", "rebalance", "--apply", *node_flags(nodes)],
        cwd=PROJECT_ROOT, env={**os.environ, "REDIS_PASSWORD": nodes.password},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen = wait_for("a slot open mid-move", lambda: open_slots(nodes), timeout_s=60,
                    interval_s=0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL, "the kill must land while the move runs"
    assert seen

    done = clusterops("fix", *node_flags(nodes), "--apply", password=nodes.password)
    assert done.returncode == 0, done.stdout + done.stderr
    assert open_slots(nodes) == []
    assert_every_key(nodes, data)


def test_fix_serves_unserved_slots_with_their_keys_where_they_are(
        redis_nodes_factory: Factory) -> None:
    nodes = cluster(redis_nodes_factory, replicas=1)
    data = fill(nodes, 10_000)
    m1 = nodes[0]
    # 6000-6009 (master 2's) without keys, 100-199 (master 1's) with: unassigned everywhere.
    for slot in range(6000, 6010):
        for key in nodes[1].client().execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
            nodes[1].client().delete(key)
            data.pop(key)
    held = sum(m1.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", s)
               for s in range(100, 200))
    assert held > 0
    for node in nodes:
        for first, last in ((100, 199), (6000, 6009)):
            node.client().execute_command("CLUSTER", "DELSLOTSRANGE", first, last)
    wait_for("the cluster down (slots unserved)", lambda: "cluster_state:fail" in
             m1.client().execute_command("CLUSTER", "INFO"))

    dry = clusterops("fix", *node_flags(nodes), password=nodes.password)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert f"assign unserved slots 100-199 to {m1.name} (holds {held} key(s) there)" in dry.stdout
    # Counted as the plan goes: once 100-199 are master 1's again, master 2 has the fewest.
    assert f"assign unserved slots 6000-6009 to {nodes[1].name} (fewest slots)" in dry.stdout

    done = clusterops("fix", *node_flags(nodes), "--apply", password=nodes.password)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for("cluster_state:ok everywhere", lambda: all(
        "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO") for n in nodes))
    assert slot_counts(nodes)[m1.address] == 5461  # 0-5460 again: its own slots came back
    assert slot_counts(nodes)[nodes[1].address] == 5462
    assert_every_key(nodes, data)
    assert held == sum(m1.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", s)
                       for s in range(100, 200))


# --- failback ------------------------------------------------------------------------------


def test_failback_restores_the_planned_masters_with_every_key(
        redis_nodes_factory: Factory) -> None:
    nodes = cluster(redis_nodes_factory, replicas=1)
    data = fill(nodes, 10_000)
    masters = nodes.nodes[:3]

    for master in masters[:2]:
        replica = next(n for n in nodes.nodes[3:]
                       if n.client().info("replication").get("master_port") == master.port)
        wait_for(f"{replica.name} synced", lambda r=replica: r.client().info("replication").get(
            "master_link_status") == "up")
        replica.client().execute_command("CLUSTER", "FAILOVER")
        wait_for(f"{replica.name} promoted", lambda r=replica: is_master(r))
        wait_for(f"{master.name} demoted", lambda m=master: not is_master(m))
    flags = node_flags(nodes, masters=3)

    dry = clusterops("failback", *flags, password=nodes.password)
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert dry.stdout.count("CLUSTER FAILOVER on") == 2, dry.stdout
    assert not is_master(masters[0]) and not is_master(masters[1]), "a dry run failed back"

    done = clusterops("failback", *flags, "--apply", password=nodes.password)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(is_master(m) for m in masters)
    assert not any(is_master(n) for n in nodes.nodes[3:])
    wait_until("every node sees the planned masters with slots", lambda: (all(
        sum(1 for line in n.client().execute_command("CLUSTER", "NODES").splitlines()
            if "master" in line.split()[2] and len(line.split()) > 8) == 3
        and "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO")
        for n in nodes), "not yet"))
    assert_every_key(nodes, data)
    again = clusterops("failback", *flags, password=nodes.password)
    assert again.returncode == 0 and "nothing to fail back" in again.stdout, again.stdout


def test_failback_without_planned_roles_is_a_usage_error(redis_nodes_factory: Factory) -> None:
    nodes = cluster(redis_nodes_factory)
    done = clusterops("failback", *node_flags(nodes), password=nodes.password)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no planned master among the targets" in done.stderr


# --- rebalance -----------------------------------------------------------------------------


def slot_counts(nodes: RedisNodes) -> dict[str, int]:
    text = nodes[0].client().execute_command("CLUSTER", "NODES")
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if "master" in parts[2]:
            counts[parts[1].split("@")[0]] = sum(
                int(b or a) - int(a) + 1 for a, _, b in (r.partition("-") for r in parts[8:]
                                                          if not r.startswith("[")))
    return counts


@pytest.mark.slow  # a large process-tier scenario: full suite only
def test_rebalance_dry_run_changes_nothing_and_apply_spreads_evenly(
        redis_nodes_factory: Factory) -> None:
    nodes, new = cluster_with_an_empty_master(redis_nodes_factory)
    data = fill(nodes, 20_000)
    before = slot_counts(nodes)
    assert before[new.address] == 0

    dry = clusterops("rebalance", *node_flags(nodes), password=nodes.password)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "move 4096 slot(s) in 3 range(s)" in dry.stdout, dry.stdout
    ranges = [line for line in dry.stdout.splitlines() if line.startswith("  slots ")]
    assert len(ranges) == 3 and all(f"-> {new.name}," in line for line in ranges), ranges
    planned_keys = sum(int(line.rsplit(", ", 1)[1].split()[0]) for line in ranges)
    assert 0 < planned_keys < len(data)
    assert slot_counts(nodes) == before and new.client().dbsize() == 0, "dry run moved"

    done = clusterops("rebalance", *node_flags(nodes), "--apply", password=nodes.password)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(slot_counts(nodes).values()) == [4096] * 4
    assert new.client().dbsize() == planned_keys
    assert_every_key(nodes, data)
    again = clusterops("rebalance", *node_flags(nodes), password=nodes.password)
    assert again.returncode == 0 and "already even" in again.stdout, again.stdout


@pytest.mark.slow  # 11 s of paced moving; the pacer itself is unit-tested (test_pacing.py)
def test_a_paced_rebalance_holds_its_ceiling_and_moves_every_key(
        redis_nodes_factory: Factory) -> None:
    """`--max-keys-per-second`: the move takes at least keys / rate (less one round), every
    key arrives, and the pace is reported. A pace that did nothing would finish these few
    thousand keys in well under the time asserted."""
    nodes, new = cluster_with_an_empty_master(redis_nodes_factory)
    data = fill(nodes, 4_000)
    rate = 1500
    done = clusterops("rebalance", *node_flags(nodes), "--apply", "--max-keys-per-second",
                      str(rate), password=nodes.password)
    assert done.returncode == 0, done.stdout + done.stderr
    moved = new.client().dbsize()
    [result] = [line for line in done.stdout.splitlines() if line.startswith("moved ")]
    elapsed = float(result.split(" in ", 1)[1].split("s", 1)[0])
    assert moved > 500 and elapsed >= (moved - rate * 0.05) / rate, (moved, elapsed)
    assert sorted(slot_counts(nodes).values()) == [4096] * 4
    assert_every_key(nodes, data)
    bad = clusterops("rebalance", *node_flags(nodes), "--max-keys-per-second", "0",
                     password=nodes.password)
    assert bad.returncode == 2 and "positive number of keys per second" in bad.stderr


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fix", "failback", "rebalance"])
def test_unknown_target_and_wrong_password_exit_2_with_a_clear_message(
        redis_nodes_factory: Factory, command: str) -> None:
    nodes = cluster(redis_nodes_factory)
    flags = node_flags(nodes, masters=3)
    nowhere = ["--node", f"ghost=127.0.0.1:{pick_free_port()}:master"]
    down = clusterops(command, *flags, *nowhere, "--apply", password=nodes.password)
    assert down.returncode == 2, down.stdout + down.stderr
    assert f"python -m clusterops {command}: error: ghost (127.0.0.1:" in down.stderr
    assert "nothing was changed" in down.stderr and "Traceback" not in down.stderr

    wrong = clusterops(command, *flags, "--apply", password=WRONG_PASSWORD)
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "password was refused" in wrong.stderr and "Traceback" not in wrong.stderr
    assert WRONG_PASSWORD not in wrong.stdout + wrong.stderr
    assert nodes.password not in wrong.stdout + wrong.stderr
