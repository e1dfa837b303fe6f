"""Day-2 operations of a Kubernetes stack through `pulumi up`, on the local three-node cluster.

The operations resource (components/k8s_operations.py) runs clusterops in a pod: node ids in the
stack outputs, a password rotation and a live setting with no pod restart (the exporter
following the password), scaling 3->4->3 masters and 1->2->1 replicas per master under a SET +
WAIT 1 writer pod (the reshape plan in the preview, no pod that stays replaced, pods removed
only after their nodes were drained and forgotten, their claims deleted), and a rolling image
upgrade shard by shard with a handover before each master goes (components/k8s_rolling.py).
One test, one stack: each step starts from the one before.
"""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from clusterops.core.model import HASH_SLOTS
from clusterops.core.poll import Deadline, poll
from tests.e2e.test_k8s_cluster import (
    NAMESPACE,
    REDIS_SELECTOR,
    SERVICE_DNS,
    ShardWatch,
    cluster_client,
    errors_between,
    local_stack_images,
    node_client,
    stack_settings,
    stopped_without_loss,
)
from tests.support import k8s_client_pods
from tests.support.local_k8s import api, k8s_stack_up, local_cluster_running, pods
from tests.support.pulumi_cli import PulumiCommandError, PulumiStack

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "k8s-rotated-password-0123456789"
NEXT_REDIS_IMAGE = "alphapulse-local/redis:7.0.15-next"
KEYS = 2000
SETTLE_S = 180.0


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    found = local_stack_images()
    # The same Redis under a second name: a new image for the rolling upgrade, without a
    # registry (pods never pull here).
    subprocess.run(["docker", "tag", found["redis"], NEXT_REDIS_IMAGE], check=True)
    return found


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, images: dict[str, str]
             ) -> Iterator[tuple[PulumiStack, float]]:
    with local_cluster_running([*images.values(), NEXT_REDIS_IMAGE]) as kubeconfig, \
            k8s_stack_up(tmp_path_factory.mktemp("k8s-day2"), kubeconfig,
                         stack_settings(images)) as deployed:
        yield deployed


def pod_states() -> dict[str, tuple[str, int]]:
    """pod -> (uid, redis container restarts)."""
    return {p["metadata"]["name"]: (p["metadata"]["uid"], sum(
        c.get("restartCount", 0) for c in p.get("status", {}).get("containerStatuses", [])))
        for p in pods(NAMESPACE, REDIS_SELECTOR)}


def pod_ips() -> dict[str, str]:
    return {p["metadata"]["name"]: p["status"]["podIP"]
            for p in pods(NAMESPACE, REDIS_SELECTOR) if p.get("status", {}).get("podIP")}


def claims() -> set[str]:
    items = api().get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims")["items"]
    return {c["metadata"]["name"] for c in items if not c["metadata"].get("deletionTimestamp")}


def healthy(secret: str, masters: int, replicas: int) -> tuple[bool, Any]:
    """Every pod's node ok, `masters` masters serving all slots, each with `replicas`."""
    view: dict[str, Any] = {}
    try:
        for pod, ip in pod_ips().items():
            info = node_client(ip, secret).execute_command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            view[pod] = dict(re.findall(r"(\w+):(\S+)", text))
    except redis.RedisError as exc:
        return False, f"{exc!r}; {view}"
    states = {p: (v.get("cluster_state"), v.get("cluster_size"), v.get("cluster_known_nodes"))
              for p, v in view.items()}
    total = masters * (1 + replicas)
    ok = len(view) == total and all(
        s == ("ok", str(masters), str(total)) for s in states.values())
    return ok, states


def wait_healthy(secret: str, masters: int, replicas: int) -> None:
    ok, seen = poll(lambda: healthy(secret, masters, replicas), Deadline.after(SETTLE_S), 1.0)
    assert ok, f"not {masters}x(1+{replicas}) and ok in {SETTLE_S}s: {seen}"


def preview_lines(handle: PulumiStack) -> str:
    done = handle.run("preview", "--stack", handle.name, "--diff")
    return done.stdout


def exporter_scrape_up(pod: str) -> tuple[bool, str]:
    """redis_up of one node through the exporter's multi-target /scrape (the exporter pod
    that stays, once its roll is over)."""
    exporters = [p for p in pods(NAMESPACE, "app.kubernetes.io/component=exporter")
                 if not p["metadata"].get("deletionTimestamp")]
    if len(exporters) != 1:
        return False, f"{len(exporters)} exporter pods: still rolling"
    ip = exporters[0].get("status", {}).get("podIP")
    if not ip:
        return False, "exporter has no IP yet"
    up = scraped_redis_up(ip, f"redis://{pod}.alphapulse-redis-nodes.{NAMESPACE}"
                              ".svc.cluster.local:6379")
    return up == "1", up


def scraped_redis_up(exporter_ip: str, target: str) -> str:
    """`redis_up` of one node through the exporter's multi-target /scrape ("1": up), or what
    went wrong instead."""
    try:
        with urllib.request.urlopen(f"http://{exporter_ip}:9121/scrape?target={target}",
                                    timeout=10) as answer:
            text = answer.read().decode()
    except OSError as exc:
        return repr(exc)
    up = re.search(r"^redis_up(?:\{[^}]*\})? (\S+)$", text, re.M)
    return up.group(1) if up else text[-500:]


def timed_up(handle: PulumiStack) -> tuple[float, str]:
    """`pulumi up`'s wall time and its output."""
    started = time.monotonic()
    done = handle.run("up", "--stack", handle.name, "--yes", "--skip-preview")
    return time.monotonic() - started, done.stdout


def keys_moved(output: str) -> int:
    """The keys the reshape reported moving ("moved N slot(s), K key(s) from ...")."""
    return sum(int(k) for k in re.findall(r"moved \d+ slot\(s\), (\d+) key\(s\)", output))


def open_slots(secret: str) -> list[str]:
    """Every `[slot->-id]`/`[slot-<-id]` entry any node reports (a move in progress)."""
    found = []
    for ip in pod_ips().values():
        nodes = node_client(ip, secret).execute_command("CLUSTER", "NODES")
        text = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
        found += re.findall(r"\[\d+-[<>]-\w+\]", text)
    return found


def interrupt_a_move_then_up(handle: PulumiStack, secret: str) -> tuple[float, dict[str, str]]:
    """Open one slot of a master towards another master by hand, migrate half its keys, then
    `pulumi up` with the config unchanged: it must close the slot with every key served.
    -> (the up's seconds, the slot's keys and values)."""
    masters = masters_by_id(secret)
    (src_id, (src_ip, src)), (dst_id, (dst_ip, dst)) = sorted(masters.items())[:2]
    slots = src.execute_command("CLUSTER", "SLOTS")
    slot = next(int(first) for first, _last, owner, *_ in slots if owner[2] == src_id)
    tag = next(f"t{i}" for i in range(100000)
               if src.execute_command("CLUSTER", "KEYSLOT", f"t{i}") == slot)
    keys = {f"{{{tag}}}:moving:{i}": str(i) for i in range(20)}
    for key, value in keys.items():
        src.set(key, value)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    src.execute_command("MIGRATE", dst_ip, 6379, "", 0, 5000, "AUTH", secret, "KEYS",
                        *list(keys)[:10])
    assert len(open_slots(secret)) == 2, open_slots(secret)
    plan = preview_lines(handle)
    assert "reshape_plan" in plan, plan[-3000:]
    took, _ = timed_up(handle)
    assert open_slots(secret) == [], open_slots(secret)
    wait_healthy(secret, 3, 1)
    return took, keys


def masters_by_id(secret: str) -> dict[str, Any]:
    found = {}
    for ip in pod_ips().values():
        client = node_client(ip, secret)
        if client.info("replication")["role"] == "master":
            found[client.execute_command("CLUSTER", "MYID")] = (ip, client)
    return found


def give_empty_slot(slot: int, src: tuple[str, Any], dst: tuple[str, Any],
                    everyone: list[Any]) -> None:
    """Move an empty slot the way an operator would by hand: open it, then assign it."""
    (src_id, src_client), (dst_id, dst_client) = src, dst
    dst_client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src_client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    for client in [dst_client, src_client, *everyone]:
        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)


def reshard_by_hand_then_preview(handle: PulumiStack, secret: str) -> str:
    """-> the refused preview's message. The slot goes back afterwards."""
    masters = masters_by_id(secret)
    (src_id, (_ip, src)), (dst_id, (_ip2, dst)) = sorted(masters.items())[:2]
    others = [c for i, (_ip3, c) in masters.items() if i not in (src_id, dst_id)]
    ranges = [(int(first), int(last)) for first, last, owner, *_ in
              src.execute_command("CLUSTER", "SLOTS") if owner[2] == src_id]
    slot = next(slot for first, last in ranges for slot in range(first, last + 1)
                if src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0)
    give_empty_slot(slot, (src_id, src), (dst_id, dst), others)
    try:
        with pytest.raises(PulumiCommandError) as refused:
            handle.preview()
    finally:
        give_empty_slot(slot, (dst_id, dst), (src_id, src), others)
    wait_healthy(secret, 3, 1)
    steps = handle.preview().get("steps", [])
    assert [s["urn"] for s in steps if s["op"] != "same"] == [], "not clean after moving back"
    return str(refused.value)


def test_node_ids_rotation_and_scaling_through_pulumi_up(deployed, images):
    handle, first_up_s = deployed
    outputs = handle.outputs()
    secret = outputs["password"]

    # 1. The node ids are the live ones, by planned name, in the stack outputs.
    ips = pod_ips()
    live_ids = {pod: node_client(ip, secret).execute_command("CLUSTER", "MYID")
                for pod, ip in ips.items()}
    by_pod = {n["name"]: n["pod"] for n in outputs["nodes"]}
    assert {name: (live_ids[by_pod[name]].decode() if isinstance(live_ids[by_pod[name]], bytes)
                   else live_ids[by_pod[name]]) for name in by_pod} == outputs["node_ids"]
    assert outputs["cluster_state"] == "ok"
    client = cluster_client(secret)
    for i in range(KEYS):
        client.set(f"day2:{i}", str(i))

    # 2. Password rotation: no pod restarted, old password refused, exporter follows.
    before = pod_states()
    handle.set_config({"password": NEW_PASSWORD}, secret=True)
    rotation_s, _ = timed_up(handle)
    assert pod_states() == before, "a Redis pod was restarted or replaced by the rotation"
    some_ip = next(iter(pod_ips().values()))
    with pytest.raises(redis.AuthenticationError):
        node_client(some_ip, secret).ping()
    assert node_client(some_ip, NEW_PASSWORD).ping()
    secret = NEW_PASSWORD
    ok, seen = poll(lambda: exporter_scrape_up(next(iter(pod_ips()))), Deadline.after(120), 2.0)
    assert ok, f"the exporter does not scrape with the new password: {seen}"
    assert handle.outputs()["password"] == NEW_PASSWORD

    # 3. A live setting: CONFIG SET on every node, no pod restarted.
    handle.set_config({"maxmemoryPolicy": "volatile-lru"})
    handle.up()
    assert pod_states() == before, "a Redis pod was restarted by a live setting"
    for ip in pod_ips().values():
        assert node_client(ip, secret).config_get("maxmemory-policy") == {
            "maxmemory-policy": "volatile-lru"}, ip

    # 3b. A move interrupted half-way (as a killed reshape leaves it) is finished by the next
    #     `pulumi up` with the same config: the same code as on Docker, here on the pods.
    interrupted_up_s, moved_keys = interrupt_a_move_then_up(handle, secret)
    client = cluster_client(secret)
    assert all(client.get(k) == v for k, v in moved_keys.items()), "a key of the open slot lost"

    # 3c. A slot resharded by hand (empty, moved to another master) is refused by the preview,
    #     read from the pods, with nothing changed; moved back, the preview is clean again.
    refusal = reshard_by_hand_then_preview(handle, secret)
    assert "resharded by hand" in refusal, refusal[-3000:]

    # 4. Scaling under a SET + WAIT 1 writer (it reads the rotated password from the Secret).
    writer = k8s_client_pods.WriterPod("day2-writer", NAMESPACE, images["bootstrap"],
                                       SERVICE_DNS, "k8s-day2", max_seconds=1500)
    writer.wait_writing()
    timings: dict[str, str] = {}
    for step, (masters, replicas) in enumerate(((4, 1), (3, 1), (3, 2), (3, 1))):
        handle.set_config({"masters": str(masters), "replicasPerMaster": str(replicas)})
        staying = pod_states()
        plan = preview_lines(handle)
        assert "reshape_plan" in plan, plan[-3000:]
        took, output = timed_up(handle)
        moved = keys_moved(output)
        timings[f"{step + 1}: {masters}x(1+{replicas})"] = (
            f"{took:.1f}s, {moved} keys moved ({moved / took:.0f}/s over the whole up), "
            f"{len(output.splitlines())} lines")
        if step == 0:
            assert "move 4096 slot(s)" in plan, plan[-3000:]  # the fewest, not 8192
        wait_healthy(secret, masters, replicas)
        outputs = handle.outputs()
        assert len(outputs["node_ids"]) == masters * (1 + replicas)
        assert sum(b - a + 1 for ranges in outputs["slot_ranges"].values()
                   for a, b in ranges) == HASH_SLOTS
        pods_now = set(pod_ips())
        assert pods_now == {n["pod"] for n in outputs["nodes"]}
        now = pod_states()
        replaced = [p for p in staying if p in now and now[p][0] != staying[p][0]]
        assert replaced == [], f"scaling replaced pods that stay: {replaced}"
        # The claims of the pods that went are deleted; every pod that stays has its own.
        assert {f"data-{p}" for p in pods_now} <= claims()
        ok, left = poll(lambda: (claims() <= {f"data-{p}" for p in set(pod_ips())},
                                 claims()), Deadline.after(60), 1.0)
        assert ok, f"claims of removed pods remain: {left}"
    # 5. A rolling image upgrade: shard by shard, a handover before each master goes.
    before = pod_states()
    watch = ShardWatch()
    watch.start()
    try:
        handle.set_config({"redisImage": NEXT_REDIS_IMAGE})
        roll_started = time.monotonic()
        roll_s, roll_output = timed_up(handle)
        roll_ended = roll_started + roll_s
    finally:
        watch.stop()
    after = pod_states()
    assert all(after[p][0] != before[p][0] for p in before), "not every pod was replaced"
    assert "handed its slots to" in roll_output, roll_output[-3000:]
    images_now = {c["image"] for p in pods(NAMESPACE, REDIS_SELECTOR)
                  for c in p["spec"]["containers"] if c["name"] == "redis"}
    assert images_now == {NEXT_REDIS_IMAGE}
    assert watch.most_shards_down == 1 and max(watch.most_down.values()) == 1, (
        watch.most_shards_down, watch.most_down)
    wait_healthy(secret, 3, 1)
    result = stopped_without_loss(writer, secret)
    failed = errors_between(result, roll_started, roll_ended)
    acked = sorted(t for t in result.applied_at if roll_started <= t < roll_ended)
    longest_gap = max((b - a for a, b in zip(acked, acked[1:], strict=False)), default=0.0)
    client = cluster_client(secret)
    missing = [i for i in range(KEYS) if client.get(f"day2:{i}") != str(i)]
    assert missing == [], f"{len(missing)} keys lost by the reshapes"
    # A second up after all that changes nothing.
    steps = handle.preview().get("steps", [])
    assert [s["urn"] for s in steps if s["op"] != "same"] == []
    print(f"\nk8s day-2: first up {first_up_s:.1f}s, rotation up {rotation_s:.1f}s, "
          f"interrupted move finished by an up of {interrupted_up_s:.1f}s, "
          f"reshape ups {timings}, image roll up {roll_s:.1f}s: {len(failed)} failed writes, "
          f"longest gap between acknowledged writes {longest_gap:.2f}s, "
          f"writer {result.summary()}")
