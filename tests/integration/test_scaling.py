"""Reshaping a live cluster on real redis-server processes: grow, shrink, resume, refuse."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pytest
from redis.cluster import ClusterNode, RedisCluster

from clusterops.core.errors import NodesUnreachableError
from clusterops.core.model import NodeTarget, hash_tags, split_slots
from clusterops.node.access import Access
from clusterops.node.observe import observe_nodes
from clusterops.provision.formation import form_cluster
from clusterops.repair.fix import preview_fix
from clusterops.reshape.scaling import (
    ReshapeReport,
    UnsafeReshapeError,
    preview_reshape,
    reshape_cluster,
)
from clusterops.state.verify import verify_cluster
from tests.support.cluster_writer import ClusterWriter, only_known_client_errors
from tests.support.process_plans import wait_for_replica_links
from tests.support.redis_nodes import RedisNode, RedisNodes
from tests.support.waiting import wait_for

PRELOAD_KEYS = 20_000


def layout(nodes: Sequence[RedisNode], masters: Sequence[int],
           replicas: Sequence[tuple[int, int]]) -> list[NodeTarget]:
    """Masters ``nodes[i]`` (master-1..M in order) and replicas ``(node index, master ordinal)``
    named replica-1.. in order: the deployed naming."""
    ranges = split_slots(len(masters))
    plan = []
    for ordinal, index in enumerate(masters, start=1):
        node = nodes[index]
        plan.append(NodeTarget(f"ap-master-{ordinal}", node.host, node.port, node.host,
                               node.port, role="master", slots=(ranges[ordinal - 1],)))
    for ordinal, (index, master) in enumerate(replicas, start=1):
        node = nodes[index]
        plan.append(NodeTarget(f"ap-replica-{ordinal}", node.host, node.port, node.host,
                               node.port, role="replica", master=f"ap-master-{master}"))
    return plan


THREE = ([0, 1, 2], [(3, 1), (4, 2), (5, 3)])


def one_and_two_replicas(nine: RedisNodes) -> tuple[list[NodeTarget], list[NodeTarget]]:
    """Three masters with one replica each, and the same with a second replica each."""
    return (layout(nine, [0, 1, 2], [(3, 1), (4, 2), (5, 3)]),
            layout(nine, [0, 1, 2], [(3, 1), (4, 2), (5, 3), (6, 1), (7, 2), (8, 3)]))
FOUR = ([0, 1, 2, 6], [(3, 1), (4, 2), (5, 3), (7, 4)])


def cluster_client(nodes: RedisNodes) -> RedisCluster:
    return RedisCluster(startup_nodes=[ClusterNode(nodes[0].host, nodes[0].port)],
                        password=nodes.password, decode_responses=True)


def formed_with_two_replicas_each(factory: Callable[..., RedisNodes]
                                  ) -> tuple[RedisNodes, list[NodeTarget], list[NodeTarget]]:
    """Nine nodes formed as 3 masters x 2 replicas with 2000 keys; also the 1-replica plan."""
    nine = factory(9)
    one, two = one_and_two_replicas(nine)
    form_cluster(two, Access(nine.password), 60)
    preload(nine, 2000)
    return nine, one, two


def preload(nodes: RedisNodes, count: int = PRELOAD_KEYS) -> dict[str, str]:
    data = {f"pre:{i}": f"value-{i}" for i in range(count)}
    with cluster_client(nodes) as client:
        client.mset_nonatomic(data)
    return data


def total_keys(plan: Sequence[NodeTarget], password: str) -> int:
    return sum(s.key_count for s in observe_nodes(plan, Access(password))
               if s.myself and s.myself.is_master)


def assert_all_present(nodes: RedisNodes, data: dict[str, str]) -> None:
    keys = list(data)
    with cluster_client(nodes) as client:
        values = client.mget_nonatomic(keys)
    lost = [k for k, v in zip(keys, values, strict=True) if v != data[k]]
    assert not lost, f"{len(lost)} preloaded key(s) lost or changed, e.g. {lost[:5]}"


def reshape_under_writer(nodes: RedisNodes, before: Sequence[NodeTarget],
                         after: Sequence[NodeTarget], label: str, timeout_s: float
                         ) -> tuple[ReshapeReport, ClusterWriter]:
    """reshape_cluster(before -> after) while a ClusterWriter writes: it is running before the
    first slot moves and still writing afterwards. Returns the report and the stopped writer."""
    writer = ClusterWriter([(nodes[0].host, nodes[0].port)], nodes.password, label)
    writer.start()
    try:
        writes_flowing(writer)
        report = reshape_cluster(before, after, Access(nodes.password), timeout_s)
        writes_flowing(writer)
    finally:
        writer.stop()
    return report, writer


def writes_flowing(writer: ClusterWriter, more: int = 50) -> None:
    """Wait until the writer has acknowledged `more` further writes (it is really running)."""
    start = len(writer.ok)
    wait_for(f"{more} more writes from {writer.prefix}",
             lambda: len(writer.ok) >= start + more or writer.errors[-1:], 20)


@pytest.fixture
def eight(redis_nodes_factory: Callable[..., RedisNodes]) -> RedisNodes:
    return redis_nodes_factory(8)


@pytest.mark.slow  # a large process-tier scenario: full suite only
def test_grow_to_four_masters_and_back_under_a_live_writer(
        eight: RedisNodes, caplog: pytest.LogCaptureFixture) -> None:
    pw = eight.password
    three, four = layout(eight, *THREE), layout(eight, *FOUR)
    form_cluster(three, Access(pw), 30)
    data = preload(eight)

    preview = preview_reshape(three, four, Access(pw))
    assert not preview.problems, preview.problems
    # 3 -> 4 with the plan's contiguous split: 1365 + 2731 + 4096 slots change owner.
    assert preview.slots_moving == 8192
    assert preview.added == ["ap-master-4", "ap-replica-4"]
    assert preview.keys_moving is not None and 0 < preview.keys_moving < PRELOAD_KEYS
    expected_keys = preview.keys_moving

    grown, writer = reshape_under_writer(eight, three, four, "live", 60)
    assert grown.moved.slots == 8192
    assert grown.moved.keys >= expected_keys  # plus what the writer added meanwhile
    assert grown.cluster is not None and grown.cluster.action == "adopted"
    assert verify_cluster(four, Access(pw)) == []
    assert set(grown.cluster.slot_ranges["ap-master-4"][0]) == {12288, 16383}
    assert len(writer.ok) > 100 and writer.acked
    with cluster_client(eight) as client:
        lost = writer.missing(client)
    assert lost == [], f"{len(lost)} acknowledged write(s) lost: {lost[:5]}"
    assert only_known_client_errors(writer), writer.errors[:5]
    assert writer.read_misses == []
    assert_all_present(eight, data)
    assert total_keys(four, pw) == PRELOAD_KEYS + len(writer.ok)
    writer_grow = writer

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="clusterops.reshape.migrate"):
        shrunk, writer = reshape_under_writer(eight, four, three, "shrink", 60)
    # The emptied master turns replica mid-move: said once, not refused once per later slot.
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "only with masters" in m], said[:5]
    assert sum("is a replica now" in m for m in said) <= 1, said
    print(f"grow: {grown.moved.slots} slots, {grown.moved.keys} keys in "
          f"{grown.moved.elapsed_s:.2f}s ({grown.moved.migrate_calls} MIGRATE); writer "
          f"{len(writer_grow.ok)} ok / {len(writer_grow.acked)} acked, errors "
          f"{len(writer_grow.errors)}")
    print(f"shrink: {shrunk.moved.slots} slots, {shrunk.moved.keys} keys in "
          f"{shrunk.moved.elapsed_s:.2f}s; writer {len(writer.ok)} ok / {len(writer.acked)} "
          f"acked, errors {len(writer.errors)}: {writer.errors[:3]}")
    assert shrunk.forgotten == ["ap-master-4", "ap-replica-4"]
    assert verify_cluster(three, Access(pw)) == []
    with cluster_client(eight) as client:
        assert writer.missing(client) == []
    assert only_known_client_errors(writer), writer.errors[:5]
    assert_all_present(eight, data)
    # The departed master serves no slot (emptied, Redis 7 made it a replica of the new owner
    # of its last slot: whatever it still holds is a copy); the survivors know neither node.
    departed = observe_nodes([four[3]], Access(pw))[0].myself
    assert departed is not None and not departed.slots
    for survivor in eight[:6]:
        nodes_text = survivor.client().execute_command("CLUSTER", "NODES")
        assert eight[6].address not in nodes_text and eight[7].address not in nodes_text


@pytest.mark.slow  # 12 s; resuming is also proven by the provider killed mid-move (full suite)
def test_an_interrupted_move_is_finished_by_the_next_run(eight: RedisNodes) -> None:
    pw = eight.password
    three, four = layout(eight, *THREE), layout(eight, *FOUR)
    form_cluster(three, Access(pw), 30)
    data = preload(eight)
    tag = hash_tags([(16000, 16000)], 1, "t")[0]
    in_slot = {f"{{{tag}}}:{i}": f"slot-value-{i}" for i in range(50)}
    with cluster_client(eight) as client:
        client.mset_nonatomic(in_slot)
    data.update(in_slot)
    # Get master-4 into the cluster, then interrupt a move half-way by hand: slot 16000 is
    # importing on master-4 and migrating on master-3, and only some of its keys moved.
    eight[0].client().execute_command("CLUSTER", "MEET", eight[6].host, eight[6].port)
    ids = {n.name: s.my_id for n, s in zip(four, observe_nodes(four, Access(pw)), strict=True)}
    slot = 16000
    src, dst = eight[2].client(), eight[6].client()

    def met() -> bool:
        return (ids["ap-master-4"] in src.execute_command("CLUSTER", "NODES")
                and ids["ap-master-3"] in dst.execute_command("CLUSTER", "NODES")
                and dst.execute_command("CLUSTER", "INFO").find("cluster_state:ok") >= 0)

    wait_for("master-3 and master-4 know each other", met)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids["ap-master-3"])
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids["ap-master-4"])
    keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    assert len(keys) >= 50
    with Access(pw).data_client(four[2]) as raw:
        raw.execute_command("MIGRATE", eight[6].host, eight[6].port, "", 0, 5000, "AUTH", pw,
                            "KEYS", *keys[: len(keys) // 2])
    assert dst.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(keys) // 2

    preview = preview_reshape(three, four, Access(pw))
    assert not preview.problems
    assert sorted((o.slot, o.node, o.state) for o in preview.open_slots) == [
        (slot, "ap-master-3", "migrating to"), (slot, "ap-master-4", "importing from")]

    report = reshape_cluster(three, four, Access(pw), 60)
    assert report.finished_open == 1
    assert verify_cluster(four, Access(pw)) == []
    assert_all_present(eight, data)
    assert total_keys(four, pw) == len(data)


def test_a_move_started_by_hand_off_the_plan_goes_back_to_the_planned_owner(
        eight: RedisNodes) -> None:
    """A slot opened by hand from master-1 toward master-2 (neither plan gives it to master-2),
    half its keys moved: the next run with the same plan finishes the move where it was
    going (every key readable all along) and then moves the slot back to master-1, its planned
    owner. It used to refuse the finished slot as "resharded by hand", after a preview that
    had found nothing wrong (seen on Kubernetes)."""
    pw = eight.password
    three = layout(eight, *THREE)
    form_cluster(three, Access(pw), 30)
    data = preload(eight)
    slot = three[0].slots[0][0]
    tag = hash_tags([(slot, slot)], 1, "h")[0]
    in_slot = {f"{{{tag}}}:{i}": f"hand-{i}" for i in range(40)}
    with cluster_client(eight) as client:
        client.mset_nonatomic(in_slot)
    data.update(in_slot)
    ids = {n.name: s.my_id for n, s in zip(three, observe_nodes(three, Access(pw)), strict=True)}
    src, dst = eight[0].client(), eight[1].client()
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids["ap-master-1"])
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids["ap-master-2"])
    keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    with Access(pw).data_client(three[0]) as raw:
        raw.execute_command("MIGRATE", eight[1].host, eight[1].port, "", 0, 5000, "AUTH", pw,
                            "KEYS", *keys[:20])
    preview = preview_reshape(three, three, Access(pw))
    assert not preview.problems, preview.problems

    report = reshape_cluster(three, three, Access(pw), 60)

    assert report.finished_open == 1
    assert verify_cluster(three, Access(pw)) == []
    assert src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(in_slot)
    assert dst.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    for node in eight[:6]:
        text = node.client().execute_command("CLUSTER", "NODES")
        assert f"[{slot}-" not in text, text
    assert_all_present(eight, data)


def test_an_open_slot_with_two_importers_is_refused_by_the_reshape_as_by_fix(
        eight: RedisNodes) -> None:
    """pulumi up and `clusterops fix` finish interrupted moves by one rule: a slot two masters
    import is ambiguous for both, and neither picks one (the reshape used to take the first)."""
    pw = eight.password
    three, four = layout(eight, *THREE), layout(eight, *FOUR)
    form_cluster(three, Access(pw), 30)
    eight[0].client().execute_command("CLUSTER", "MEET", eight[6].host, eight[6].port)
    ids = {n.name: s.my_id for n, s in zip(four, observe_nodes(four, Access(pw)), strict=True)}
    wait_for("master-4 joined", lambda: all(
        ids["ap-master-4"] in node.client().execute_command("CLUSTER", "NODES")
        for node in eight[:3])
        and ids["ap-master-3"] in eight[6].client().execute_command("CLUSTER", "NODES"))
    slot = 16000
    for importer in (eight[0], eight[6]):
        importer.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING",
                                          ids["ap-master-3"])
    importing = f"[{slot}-<-{ids['ap-master-3']}]"

    def still_open() -> bool:
        return all(importing in node.client().execute_command("CLUSTER", "NODES")
                   for node in (eight[0], eight[6]))

    assert still_open()
    # The three original masters' views (master-4's own view of the others still settles by
    # gossip after its MEET, whatever the reshape does).
    before = node_states(eight)[:3]

    with pytest.raises(UnsafeReshapeError, match=f"slot {slot} is open toward ap-master-1, "
                                                 "ap-master-4: not one master"):
        reshape_cluster(three, four, Access(pw), 20)
    fix_plan = preview_fix(four, Access(pw))
    assert [p for p in fix_plan.problems if f"slot {slot}" in p] == [
        f"slot {slot} is open toward ap-master-1, ap-master-4: not one master among the "
        "targets; close it by hand"]
    # Nothing moved: both still import it, master-3 still owns it.
    assert still_open() and node_states(eight)[:3] == before


def test_a_hand_modified_cluster_is_refused_and_left_untouched(eight: RedisNodes) -> None:
    pw = eight.password
    three, four = layout(eight, *THREE), layout(eight, *FOUR)
    form_cluster(three, Access(pw), 30)
    preload(eight, 2000)
    # Someone moved slot 0 from master-1 to master-2 by hand (no keys in it on purpose).
    ids = {n.name: s.my_id for n, s in zip(three, observe_nodes(three, Access(pw)), strict=True)}
    m1, m2 = eight[0].client(), eight[1].client()
    for key in m1.execute_command("CLUSTER", "GETKEYSINSLOT", 0, 100):
        m1.delete(key)
    m2.execute_command("CLUSTER", "SETSLOT", 0, "IMPORTING", ids["ap-master-1"])
    m1.execute_command("CLUSTER", "SETSLOT", 0, "MIGRATING", ids["ap-master-2"])
    for client in (m2, m1, eight[2].client()):
        client.execute_command("CLUSTER", "SETSLOT", 0, "NODE", ids["ap-master-2"])
    before = eight[6].client().execute_command("CLUSTER", "NODES")

    preview = preview_reshape(three, four, Access(pw))
    assert any("slot(s) are served by a master that neither" in p for p in preview.problems)
    with pytest.raises(UnsafeReshapeError, match="resharded by hand"):
        reshape_cluster(three, four, Access(pw), 20)
    # Nothing was written: the new node was not even met.
    assert eight[6].client().execute_command("CLUSTER", "NODES") == before


def test_two_replicas_per_master_and_back(redis_nodes_factory: Callable[..., RedisNodes]) -> None:
    nine = redis_nodes_factory(9)
    pw = nine.password
    one, two = one_and_two_replicas(nine)
    form_cluster(one, Access(pw), 30)
    data = preload(nine, 5000)

    preview = preview_reshape(one, two, Access(pw))
    assert preview.moves == [] and not preview.problems
    assert preview.added == ["ap-replica-4", "ap-replica-5", "ap-replica-6"]

    grown = reshape_cluster(one, two, Access(pw), 60)
    assert sorted(r for r, _m in grown.plan.attach) == [
        "ap-replica-4", "ap-replica-5", "ap-replica-6"]
    assert grown.moved.slots == 0
    assert verify_cluster(two, Access(pw)) == []  # every replica's link is up: synced
    for index, master in ((6, 0), (7, 1), (8, 2)):
        assert nine[index].client().dbsize() == nine[master].client().dbsize()

    shrunk = reshape_cluster(two, one, Access(pw), 60)
    assert shrunk.forgotten == ["ap-replica-4", "ap-replica-5", "ap-replica-6"]
    assert verify_cluster(one, Access(pw)) == []
    for master in nine[:3]:
        assert master.client().info("replication")["connected_slaves"] >= 1
    assert_all_present(nine, data)


RESHAPE_SCRIPT = """
import json, logging, sys
from clusterops.node.access import Access
from clusterops.core.model import NodeTarget
from clusterops.reshape.scaling import reshape_cluster
logging.basicConfig(level=logging.INFO)
job = json.load(sys.stdin)
old = [NodeTarget.from_dict(n) for n in job["old"]]
new = [NodeTarget.from_dict(n) for n in job["new"]]
reshape_cluster(old, new, Access(job["password"]), 60)
"""


def open_slots(nodes: RedisNodes) -> list[str]:
    found = []
    for node in nodes:
        text = node.client().execute_command("CLUSTER", "NODES")
        found += [t for line in text.splitlines() for t in line.split() if t.startswith("[")]
    return found


@pytest.mark.slow  # a large process-tier scenario: full suite only
def test_a_provider_killed_mid_migration_loses_nothing_and_the_rerun_finishes(
    eight: RedisNodes,
) -> None:
    import json
    import signal
    import subprocess
    import sys

    from tests.support.pulumi_cli import PROJECT_ROOT

    pw = eight.password
    three, four = layout(eight, *THREE), layout(eight, *FOUR)
    form_cluster(three, Access(pw), 30)
    # Enough keys (with 2 KB values) that the move takes a while: it is killed while a slot is
    # open, between a MIGRATE and the SETSLOT NODE that would close it.
    data = {f"big:{i}": f"{i}:" + "x" * 2000 for i in range(60_000)}
    with cluster_client(eight) as client:
        for start in range(0, len(data), 5000):
            client.mset_nonatomic(dict(list(data.items())[start : start + 5000]))
    job = json.dumps({"old": [n.to_dict() for n in three], "new": [n.to_dict() for n in four],
                      "password": pw})
    process = subprocess.Popen([sys.executable, "-c", RESHAPE_SCRIPT], cwd=PROJECT_ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdin is not None
    process.stdin.write(job)
    process.stdin.close()

    def opened_while_running() -> list[str]:
        if process.poll() is not None:  # the reshape ended (or failed) before any slot opened
            assert process.stdout is not None
            pytest.fail(f"the reshape exited {process.returncode} first: {process.stdout.read()}")
        return open_slots(eight)

    seen = wait_for("a slot open mid-move", opened_while_running, timeout_s=60, interval_s=0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL
    assert seen, "the kill must land while a move is in progress"

    # Killed: slots may be open, keys split between source and target; none is lost.
    preview = preview_reshape(three, four, Access(pw))
    assert not preview.problems, preview.problems
    report = reshape_cluster(three, four, Access(pw), 120)
    assert verify_cluster(four, Access(pw)) == []
    assert open_slots(eight) == []
    assert_all_present(eight, data)
    assert total_keys(four, pw) == len(data)
    print(f"\nkilled with open slots {seen[:4]}; rerun finished {report.finished_open} open "
          f"slot(s), moved {report.moved.keys} key(s) more")


def test_a_node_down_with_an_unchanged_plan_is_not_a_reshape(eight: RedisNodes) -> None:
    # As while pulumi up replaces containers: the bootstrap's check reads the live cluster
    # and must neither refuse nor plan an update because a node is down.
    from components.bootstrap import PROVIDER_VERSION, ClusterBootstrapProvider

    pw = eight.password
    three = layout(eight, *THREE)
    form_cluster(three, Access(pw), 30)
    eight[1].kill()  # master-2
    eight[3].kill()  # replica-1
    plan = preview_reshape(three, three, Access(pw))
    assert plan.foreign_owners == [] and plan.nothing_to_do, plan.summary()
    assert sorted(plan.unknown_nodes) == ["ap-master-2", "ap-replica-1"]
    props = {"nodes": [n.to_dict() for n in three], "password": pw,
             "provider_version": PROVIDER_VERSION, "timeout_seconds": 30}
    checked = ClusterBootstrapProvider().check(props, props)
    assert checked.failures == [] and "reshape_plan" not in checked.inputs


def test_a_preview_off_the_clusters_network_shows_the_planned_moves_with_keys_unknown() -> None:
    # A pull-request preview on a CI runner reaches no node: the plan still shows every move.
    def unreachable(masters: int, replicas: int) -> list[NodeTarget]:
        ranges = split_slots(masters)
        nodes = [NodeTarget(f"m{i + 1}", "127.0.0.1", 1 + i, "10.0.0.1", 6379 + i,
                            role="master", slots=(ranges[i],)) for i in range(masters)]
        return nodes + [NodeTarget(f"r{k + 1}", "127.0.0.1", 50 + k, "10.0.0.2", 6379 + k,
                                   role="replica", master=f"m{k % masters + 1}")
                        for k in range(masters * replicas)]

    plan = preview_reshape(unreachable(3, 1), unreachable(4, 1), Access("pw"), timeout_s=0.5)
    assert plan.problems == []
    assert plan.summary()[:3] == [
        "add nodes: m4, r4",
        "move 8192 slot(s) in 3 range(s), keys unknown (not all sources reachable)",
        "  slots 4096-5460 (1365): m1 -> m2, ? keys",
    ]


def node_states(nodes: RedisNodes) -> list[list[str]]:
    """Every running node's view of who is in the cluster and which node serves which slots
    (not flags, links or who follows whom, which settle on their own after a failover)."""
    views = []
    for node in nodes:
        if not node.is_running():
            continue
        text = node.client().execute_command("CLUSTER", "NODES")
        lines = [line.split() for line in text.splitlines()]
        # Who is in the cluster, and which node serves which slots: what a reshape changes.
        views.append(sorted(parts[0] for parts in lines)
                     + sorted(" ".join([parts[0], *parts[8:]]) for parts in lines if parts[8:]))
    return views


@pytest.mark.slow  # a large process-tier scenario: full suite only
def test_a_scale_in_whose_keys_cannot_be_placed_is_refused_and_changes_nothing(
    redis_nodes_factory: Callable[..., RedisNodes],
) -> None:
    # maxmemory 32mb on every node, about 18 MB of values on each of the 4 masters: the
    # leaving master's share (~6 MB per remaining master) would push them past 90%.
    eight = redis_nodes_factory(8, settings={"maxmemory": "32mb",
                                             "maxmemory-policy": "allkeys-lru"})
    pw = eight.password
    three, four = layout(eight, *THREE), layout(eight, *FOUR)
    form_cluster(four, Access(pw), 30)
    value = "x" * 1000
    with cluster_client(eight) as client:
        for start in range(0, 72_000, 2000):
            client.mset_nonatomic({f"big:{i}": value for i in range(start, start + 2000)})
    keys_before = total_keys(four, pw)
    views_before = node_states(eight)

    preview = preview_reshape(four, three, Access(pw))
    placed = [p for p in preview.problems if "the keys cannot be placed" in p]
    # 4 -> 3 re-splits the slots: master-3 receives all of master-4's 4096 slots and
    # master-2 2731 of master-3's (~12 MiB each); neither has room for them.
    assert sorted(p.split(" would move to ")[1].split(",")[0] for p in placed) == [
        "ap-master-2", "ap-master-3"], preview.problems
    assert all("Raise maxmemory first" in p for p in placed)
    assert keys_before == 72_000  # nothing evicted before the test even starts
    with pytest.raises(UnsafeReshapeError, match="the keys cannot be placed"):
        reshape_cluster(four, three, Access(pw), 30)
    assert total_keys(four, pw) == keys_before
    assert node_states(eight) == views_before


@pytest.mark.slow  # a large process-tier scenario: full suite only
def test_removing_the_last_working_replica_of_a_shard_is_refused(
    redis_nodes_factory: Callable[..., RedisNodes],
) -> None:
    nine, one, two = formed_with_two_replicas_each(redis_nodes_factory)
    pw = nine.password
    # replica-1 (master-1's replica that stays) is down; replica-4 is master-1's only
    # working replica, and the scale-in to one replica per master would remove it.
    nine[3].stop()
    wait_for("the peers to flag the stopped replica",
             lambda: " fail " in nine[0].client().execute_command("CLUSTER", "NODES")
             or ",fail " in nine[0].client().execute_command("CLUSTER", "NODES"), 10)

    preview = preview_reshape(two, one, Access(pw))
    assert any("ap-master-1's shard would be left without a working replica" in p
               and "ap-replica-4 would be removed" in p for p in preview.problems), \
        preview.problems
    # The run itself stops even earlier: it waits for every node it keeps, and names it.
    with pytest.raises(NodesUnreachableError, match="ap-replica-1"):
        reshape_cluster(two, one, Access(pw), 5)
    assert nine[6].client().info("replication")["master_link_status"] == "up"


@pytest.mark.slow  # a large process-tier scenario: full suite only
def test_a_leaving_node_that_is_live_master_after_a_failover_is_refused(
    redis_nodes_factory: Callable[..., RedisNodes],
) -> None:
    nine, one, two = formed_with_two_replicas_each(redis_nodes_factory)
    pw = nine.password
    # replica-4 (node 6) takes over master-1's shard, which stays; going back to one replica
    # per master would remove replica-4, the shard's live master.
    nine[6].client().execute_command("CLUSTER", "FAILOVER")
    wait_for("replica-4 to become master",
             lambda: nine[6].client().info("replication")["role"] == "master", 10)
    wait_for_replica_links(nine)
    # Every node has learned the new slot owner (gossip takes a moment after the failover).
    wait_for("every node to agree on the slot map after the failover",
             lambda: len({str(view) for view in node_states(nine)}) == 1, 10)
    before = node_states(nine)

    preview = preview_reshape(two, one, Access(pw))
    assert any("ap-replica-4 is leaving but is the live master of ap-master-1's shard" in p
               and "fail back first" in p for p in preview.problems), preview.problems
    with pytest.raises(UnsafeReshapeError, match="fail back first"):
        reshape_cluster(two, one, Access(pw), 30)
    assert node_states(nine) == before


@pytest.mark.slow  # a large process-tier scenario: full suite only
def test_three_to_five_masters_with_two_replicas_each_and_back_in_one_step(
    redis_nodes_factory: Callable[..., RedisNodes],
) -> None:
    """Masters and replicas change together, by more than one shard, under a live writer."""
    nodes = redis_nodes_factory(15)
    pw = nodes.password
    small = layout(nodes, [0, 1, 2], [(5, 1), (6, 2), (7, 3)])
    large = layout(nodes, [0, 1, 2, 3, 4],
                   [(5, 1), (6, 2), (7, 3), (8, 4), (9, 5), (10, 1), (11, 2), (12, 3), (13, 4),
                    (14, 5)])
    form_cluster(small, Access(pw), 30)
    data = preload(nodes, 10_000)
    for before, after, label in ((small, large, "grow"), (large, small, "shrink")):
        preview = preview_reshape(before, after, Access(pw))
        assert not preview.problems, preview.problems
        done, writer = reshape_under_writer(nodes, before, after, label, 120)
        print(f"{label}: {done.moved.slots} slots, {done.moved.keys} keys in "
              f"{done.moved.elapsed_s:.2f}s; writer {len(writer.ok)} ok / {len(writer.acked)} "
              f"acked, errors {len(writer.errors)}: {writer.errors[:3]}")
        assert done.moved.slots == preview.slots_moving
        assert verify_cluster(after, Access(pw)) == []
        with cluster_client(nodes) as client:
            assert writer.missing(client) == []
        assert only_known_client_errors(writer), writer.errors[:5]
        assert_all_present(nodes, data)
    kept = {n.name for n in small}
    assert sorted(done.forgotten) == sorted(n.name for n in large if n.name not in kept)
