"""The k8s stack deployed for real (`pulumi up`, not render mode) on the local three-node
Kubernetes (local_kubernetes/): kubelets, containerd, CNI, CoreDNS and kube-proxy, with pods.

What only real pods show: the scheduler honouring the shard anti-affinity on three nodes, PVCs
binding, the bootstrap Job forming the cluster from inside, clients following MOVED to pod DNS
names through the Service, and a full restart (every pod IP new) re-forming with the same node
IDs thanks to components/peer-addresses.sh (init container and sidecar).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from clusterops.core.model import HASH_SLOTS, hash_tags
from clusterops.core.poll import Deadline, poll
from clusterops.node.connection import no_retry_client
from local_kubernetes import cluster as local_cluster
from local_kubernetes.api import ApiError
from tests.e2e.test_k8s_render import kubernetes_plugin_missing
from tests.support import k8s_client_pods
from tests.support.deploy_fixtures import _skip_or_fail, deploy_stack
from tests.support.live_writer import LiveWriteResult, acknowledged_missing
from tests.support.local_k8s import (
    address_remap,
    api,
    k8s_stack_up,
    local_cluster_running,
    pods,
)
from tests.support.pulumi_cli import PROJECT_ROOT, PulumiStack

pytestmark = pytest.mark.e2e

NAMESPACE = "alphapulse-redis"
REDIS_SELECTOR = "app.kubernetes.io/component=node"
SERVICE_DNS = f"alphapulse-redis.{NAMESPACE}.svc.cluster.local"
RESTART_TIMEOUT_S = 120.0
# How long the control restart (no peer address refresh) is watched staying down: several times
# what the restart with it takes here.
CONTROL_WINDOW_S = 60.0
FAILOVER_TRIALS = 10
# While a node is drained: how long it is held so, and how long a client may take to drop the
# evicted pods from its slot map (a 1 s connect timeout, then a refresh).
DRAIN_HOLD_S = 10.0
CLIENT_SETTLE_S = 5.0


def local_stack_images() -> dict[str, str]:
    """The local images the k8s stack runs (built when missing); skips (fails in CI) without
    the kubernetes plugin."""
    _skip_or_fail(kubernetes_plugin_missing())
    from local_kubernetes.__main__ import local_images

    return local_images()


def stack_settings(images: dict[str, str]) -> dict[str, str]:
    """The k8s stack on the local cluster (local_kubernetes' settings), kept small."""
    from local_kubernetes.__main__ import stack_settings as local_settings

    return {**local_settings(images), "maxmemory": "64mb", "storageSize": "1Gi"}


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    return local_stack_images()


@pytest.fixture(scope="module")
def kubeconfig(images: dict[str, str]) -> Iterator[Path]:
    with local_cluster_running(list(images.values())) as path:
        yield path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kubeconfig: Path,
          images: dict[str, str]) -> Iterator[tuple[PulumiStack, float]]:
    with k8s_stack_up(tmp_path_factory.mktemp("k8s-real"), kubeconfig,
                      stack_settings(images)) as deployed:
        yield deployed


def peer_address_logs() -> dict[str, str]:
    """pod/container -> what its peer address keeping (components/peer-addresses.sh) printed."""
    logs = {}
    for pod in redis_pods():
        name = pod["metadata"]["name"]
        for container in ("refresh-nodes-conf", "follow-peer-addresses"):
            try:
                logs[f"{name}/{container}"] = api().get(
                    f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/log?container={container}"
                ).get("text", "").strip()[-2000:]
            except Exception as exc:  # noqa: BLE001 - a diagnostic, never the failure itself
                logs[f"{name}/{container}"] = f"({exc})"
    return logs


def redis_pods() -> list[dict[str, Any]]:
    return pods(NAMESPACE, REDIS_SELECTOR)


def redis_pod_ips() -> list[str]:
    return [ip for p in redis_pods() if (ip := p.get("status", {}).get("podIP"))]


def password(stack: PulumiStack) -> str:
    return stack.outputs()["password"]


def node_client(ip: str, secret: str) -> redis.Redis:
    # No hidden retries: redis-py's default policy spends half a minute on a deleted pod's IP.
    return no_retry_client(ip, 6379, secret, socket_timeout_s=2.0, connect_timeout_s=1.0)


def cluster_view(secret: str) -> dict[str, tuple[str, str]]:
    """pod -> (node id, cluster_state), asked of every Redis pod at its current IP."""
    view = {}
    for pod in redis_pods():
        ip = pod.get("status", {}).get("podIP")
        if not ip:
            continue
        try:
            client = node_client(ip, secret)
            view[pod["metadata"]["name"]] = (client.execute_command("CLUSTER MYID"),
                                             client.cluster("info")["cluster_state"])
        except redis.RedisError as exc:
            view[pod["metadata"]["name"]] = ("?", f"{type(exc).__name__}: {exc}")
    return view


EVERY_SLOT_SCRIPT = """
import time
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from clusterops.core.model import HASH_SLOTS, hash_tags
secret = open("%s").read().strip()
keys = ["%s:{" + tag + "}" for tag in hash_tags([(0, HASH_SLOTS - 1)], HASH_SLOTS, "s")]
# Right after pods moved, a pod's DNS record can lag its new IP for a moment: a client retries,
# as applications do (for at most a minute, and says so).
deadline = time.monotonic() + 60
while True:
    try:
        client = RedisCluster(host="%s", port=6379, password=secret, decode_responses=True)
        if %s:  # write first; otherwise only read what an earlier pod wrote
            pipe = client.pipeline()
            for key in keys:
                pipe.set(key, key)
            pipe.execute()
        values = client.mget_nonatomic(keys)
        break
    except (RedisError, RedisClusterException) as exc:
        if time.monotonic() > deadline:
            raise
        print("RETRY", type(exc).__name__, exc)
        time.sleep(1)
hosts = sorted({node.host for node in client.get_nodes()})
print("READ", sum(v == k for k, v in zip(keys, values)), "OF", len(keys))
print("HOSTS", " ".join(hosts))
"""


def every_slot(pod: str, images: dict[str, str], prefix: str, write: bool,
               node_name: str | None = None) -> str:
    """A client pod writes (or only reads back) one key in each of the 16384 slots through the
    Service name; -> its log, after checking that every key read back."""
    script = EVERY_SLOT_SCRIPT % (k8s_client_pods.PASSWORD_PATH, prefix, SERVICE_DNS, write)
    log = k8s_client_pods.run_client_pod(pod, NAMESPACE, images["bootstrap"], script,
                                         node_name=node_name)
    assert "READ 16384 OF 16384" in log, log
    return log


def test_pods_spread_pvcs_bound_job_done_and_every_node_ok(stack):
    handle, up_seconds = stack
    outputs = handle.outputs()
    assert outputs["cluster_state"] == "ok", outputs["cluster_state"]
    placed = redis_pods()
    assert len(placed) == 6, [p["metadata"]["name"] for p in placed]
    by_shard: dict[str, list[str]] = {}
    for pod in placed:
        assert pod["status"]["phase"] == "Running", (pod["metadata"]["name"], pod["status"])
        shard = pod["metadata"]["labels"]["redis.alphapulse.io/shard"]
        by_shard.setdefault(shard, []).append(pod["spec"]["nodeName"])
    for shard, nodes in by_shard.items():
        assert len(set(nodes)) == len(nodes), f"shard {shard} shares a node: {nodes}"
    claims = api().get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims")["items"]
    assert sorted(c["status"]["phase"] for c in claims) == ["Bound"] * 6, claims
    jobs = api().get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")["items"]
    assert [j["status"].get("succeeded") for j in jobs] == [1], [j["status"] for j in jobs]
    view = cluster_view(password(handle))
    assert sorted(state for _, state in view.values()) == ["ok"] * 6, view
    print(f"\nfresh `pulumi up` of the k8s stack to cluster_state:ok: {up_seconds:.1f} s")


def test_a_client_pod_writes_every_slot_by_the_service_name_and_follows_pod_names(
        stack, images):
    log = every_slot("every-slot-writer", images, "k8s-every-slot", write=True)
    # The nodes the client learnt from CLUSTER SLOTS: at least every master, each by its pod
    # DNS name (a replica still syncing may be left out of CLUSTER SLOTS).
    hosts = log.split("HOSTS", 1)[1].split()
    assert len(hosts) >= 3 and all(
        h.endswith(f".alphapulse-redis-nodes.{NAMESPACE}.svc.cluster.local") for h in hosts), log


def test_a_second_up_changes_nothing(stack):
    handle, _ = stack
    assert handle.changes() == []


def clusterops_cli(handle: PulumiStack, kubeconfig: Path, tmp_path: Path,
                   *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m clusterops ARGS --stack-outputs FILE` on this machine, as an operator runs it:
    kubectl on PATH with the local cluster's kubeconfig; the command runs in a pod."""
    outputs = tmp_path / "outputs.json"
    handle.write_outputs(outputs)
    env = {**handle.env, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([sys.executable, "-m", "clusterops", *args, "--stack-outputs",
                           str(outputs)], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_operator_commands_take_the_k8s_stacks_outputs_and_run_in_a_pod(
        stack, kubeconfig, tmp_path):
    handle, _ = stack
    health = clusterops_cli(handle, kubeconfig, tmp_path, "health", "--json")
    assert health.returncode == 0, (health.stdout[-3000:], health.stderr[-3000:])
    assert "running in pod alphapulse-redis/clusterops-health-" in health.stderr
    report = json.loads(health.stdout)
    assert report["ok"] is True and report["expected"]["nodes"] == 6, report
    checks = {(c["check"], c["node"]): c["status"] for c in report["results"]}
    assert sum(1 for (check, _), status in checks.items()
               if check == "cluster_state" and status == "ok") == 6, report
    fix = clusterops_cli(handle, kubeconfig, tmp_path, "fix")
    assert fix.returncode == 0 and "nothing to fix" in fix.stdout, (fix.stdout, fix.stderr)
    leftovers = pods(NAMESPACE, "app.kubernetes.io/component=clusterops")
    assert leftovers == [] or all(p["metadata"].get("deletionTimestamp") for p in leftovers)


def statefulsets() -> list[dict[str, Any]]:
    return api().get(f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets"
                     f"?labelSelector={REDIS_SELECTOR}")["items"]


def merge_patch(statefulset: dict[str, Any], patch: dict[str, Any]) -> None:
    api().request("PATCH", f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/"
                  f"{statefulset['metadata']['name']}", patch,
                  content_type="application/merge-patch+json")


def delete_every_redis_pod() -> dict[str, str]:
    """Delete every Redis pod at once; -> pod name -> the IP it had."""
    old_ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in redis_pods()}
    api().request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector="
                  f"{REDIS_SELECTOR}")
    return old_ips


def all_back_at_new_ips(old_ips: dict[str, str]) -> tuple[bool, dict[str, Any]]:
    ips = {p["metadata"]["name"]: p.get("status", {}).get("podIP") for p in redis_pods()}
    ready = all(ips.get(name) not in (None, old) for name, old in old_ips.items())
    return ready, ips


def test_every_pod_deleted_at_once_rejoins_with_the_same_ids_and_keys(stack, images):
    handle, _ = stack
    secret = password(handle)
    every_slot("restart-writer", images, "k8s-restart", write=True)
    before = cluster_view(secret)

    # Control: the same restart with the pods' address keeping removed (no init container, no
    # sidecar; OnDelete so the patch itself restarts nothing) stays down.
    kept = {s["metadata"]["name"]: s for s in statefulsets()}
    for sts in kept.values():
        template = sts["spec"]["template"]["spec"]
        merge_patch(sts, {"spec": {
            "updateStrategy": {"type": "OnDelete", "rollingUpdate": None},
            "template": {"spec": {
                "initContainers": None,
                "containers": [c for c in template["containers"] if c["name"] == "redis"]}}}})
    old_ips = delete_every_redis_pod()
    back, ips = poll(lambda: all_back_at_new_ips(old_ips), Deadline.after(RESTART_TIMEOUT_S), 1.0)
    assert back, f"pods not back at new IPs within {RESTART_TIMEOUT_S:g} s: {ips}"
    reformed, seen = poll(lambda: (cluster_view(secret) == before, cluster_view(secret)),
                          Deadline.after(CONTROL_WINDOW_S), 2.0)
    assert not reformed, f"re-formed without the peer address refresh: {seen}"

    # The fix back (the templates as `pulumi up` made them), and every pod deleted again.
    for sts in kept.values():
        merge_patch(sts, {"spec": {"updateStrategy": sts["spec"]["updateStrategy"],
                                   "template": sts["spec"]["template"]}})
    started = time.monotonic()
    old_ips = delete_every_redis_pod()

    def reformed_again() -> tuple[bool, Any]:
        back, ips = all_back_at_new_ips(old_ips)
        if not back:
            return False, {"ips": ips}
        view = cluster_view(secret)
        return view == before, view

    done, seen = poll(reformed_again, Deadline.after(RESTART_TIMEOUT_S), 1.0)
    assert done, (f"not re-formed within {RESTART_TIMEOUT_S:g} s; before {before}, seen {seen}; "
                  f"the pods said: {peer_address_logs()}")
    print(f"\nfull restart (6 pods, every IP new) to cluster_state:ok with the same ids: "
          f"{time.monotonic() - started:.1f} s (the control without the refresh: still down "
          f"after {CONTROL_WINDOW_S:g} s)")
    every_slot("restart-reader", images, "k8s-restart", write=False)


def role_view(secret: str) -> dict[str, dict[str, str]]:
    """pod -> its shard, role, cluster_state and (replicas) replication link, asked of every
    Redis pod at its current IP; a pod that does not answer is in the view with its error."""
    view = {}
    for pod in redis_pods():
        name = pod["metadata"]["name"]
        entry = {"shard": pod["metadata"]["labels"]["redis.alphapulse.io/shard"],
                 "uid": pod["metadata"]["uid"]}
        ip = pod.get("status", {}).get("podIP")
        try:
            if not ip:
                raise redis.ConnectionError("no pod IP yet")
            client = node_client(ip, secret)
            info = client.info("replication")
            entry.update(role=info["role"], state=client.cluster("info")["cluster_state"],
                         link=str(info.get("master_link_status", "-")))
        except redis.RedisError as exc:
            entry.update(role="?", state=f"{type(exc).__name__}: {exc}", link="?")
        view[name] = entry
    return view


def settled(view: dict[str, dict[str, str]]) -> bool:
    """Six nodes answering cluster_state ok, one master per shard, every replica's link up."""
    masters = sorted(e["shard"] for e in view.values() if e["role"] == "master")
    return (len(view) == 6 and masters == ["1", "2", "3"]
            and all(e["state"] == "ok" for e in view.values())
            and all(e["link"] == "up" for e in view.values() if e["role"] == "slave"))


def served_without(gone: list[str], secret: str) -> tuple[bool, dict[str, dict[str, str]]]:
    """Whether the pods other than `gone` hold one master per shard, all at cluster_state ok."""
    others = {p: e for p, e in role_view(secret).items() if p not in gone}
    masters = sorted(e["shard"] for e in others.values() if e["role"] == "master")
    return masters == ["1", "2", "3"] and all(e["state"] == "ok" for e in others.values()), others


def cluster_client(secret: str) -> redis.RedisCluster:
    """A client in the test process, reaching pods at their IPs (see address_remap)."""
    [seed, *_] = redis_pod_ips()
    return redis.RedisCluster(host=seed, port=6379, password=secret, decode_responses=True,
                              socket_timeout=5, address_remap=address_remap(NAMESPACE))


def stopped_without_loss(writer: k8s_client_pods.WriterPod, secret: str) -> LiveWriteResult:
    """Stop the writer pod; fail when the cluster lacks an acknowledged write."""
    client = cluster_client(secret)
    result = writer.stop(client)
    lost = acknowledged_missing(client, result)
    assert lost == [], f"{len(lost)} acknowledged writes lost: {lost[:10]}; {result.summary()}"
    return result


def errors_between(result: LiveWriteResult, start: float, end: float) -> list[float]:
    return [at for at, _why in result.errors if start <= at < end]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def test_master_pod_deleted_ten_times_recovers_without_losing_an_acknowledged_write(
        stack, images):
    handle, _ = stack
    secret = password(handle)
    writer = k8s_client_pods.WriterPod("failover-writer", NAMESPACE, images["bootstrap"],
                                       SERVICE_DNS, "k8s-failover")
    writer.wait_writing()
    trials: list[tuple[float, str]] = []
    rejoined: list[float] = []
    failed_over = 0
    for trial in range(FAILOVER_TRIALS):
        shard = str(trial % 3 + 1)
        view = role_view(secret)
        [master] = [p for p, e in view.items() if e["shard"] == shard and e["role"] == "master"]
        started = time.monotonic()
        api().request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{master}")
        trials.append((started, master))

        def recovered(deleted: str = master, uid: str = view[master]["uid"]) -> tuple[bool, Any]:
            now = role_view(secret)
            return deleted in now and now[deleted]["uid"] != uid and settled(now), now

        done, seen = poll(recovered, Deadline.after(RESTART_TIMEOUT_S), 0.5)
        assert done, (f"trial {trial + 1}: {master} deleted, not settled within "
                      f"{RESTART_TIMEOUT_S:g} s: {seen}; the pods said: {peer_address_logs()}")
        rejoined.append(time.monotonic() - started)
        failed_over += seen[master]["role"] != "master"
    result = stopped_without_loss(writer, secret)
    ends = [start for start, _ in trials[1:]] + [result.stopped]
    recovery = [max(errors_between(result, start, end), default=start) - start
                for (start, _), end in zip(trials, ends, strict=True)]
    assert result.unacked + len(result.acked) > 0 and all(
        errors_between(result, start, end) for (start, _), end in zip(trials, ends, strict=True)
    ), f"a trial the writer did not notice: recovery {recovery}; {result.summary()}"
    print(f"\nmaster pod deleted, {FAILOVER_TRIALS} trials, client-observed recovery (last "
          f"failed write after the delete): p50 {percentile(recovery, 0.5):.2f} s, p95 "
          f"{percentile(recovery, 0.95):.2f} s, each {[round(r, 2) for r in recovery]}; the "
          f"deleted pod back and in sync after {[round(r, 1) for r in rejoined]} s; its replica "
          f"took over in {failed_over} of {FAILOVER_TRIALS} (in the others the pod was back, "
          "same node id, before the replica's election); "
          f"{result.summary()}; 0 acknowledged writes lost")


RESTORED = re.compile(r"verified (\d+) keys: 0 missing, 0 different, 0 slot count mismatches")


def backup_folder(stdout: str, dest: Path) -> Path:
    """The folder a backup wrote, copied into ``dest`` (the command names its place in the pod,
    which ends in the same timestamped name)."""
    found = re.search(r"backup in \S*/(\d{8}T\d{6}Z)", stdout)
    assert found, stdout
    return dest / found[1]


def test_a_k8s_backup_restores_into_a_docker_stack_and_the_other_way_round(
        stack, kubeconfig, tmp_path):
    """backup in a pod, copied here; restored into a Docker stack deployed beside it and
    verified key by key; that stack's own keys backed up and restored into the k8s stack."""
    handle, _ = stack
    secret = password(handle)
    k8s_keys = {f"k8s-backup:{i}": f"from-k8s-{i}" for i in range(2000)}
    with cluster_client(secret) as client:
        client.mset_nonatomic(k8s_keys)
    backup = clusterops_cli(handle, kubeconfig, tmp_path, "backup", "--dest",
                            str(tmp_path / "k8s-backups"))
    assert backup.returncode == 0, (backup.stdout[-3000:], backup.stderr[-3000:])
    k8s_folder = backup_folder(backup.stdout, tmp_path / "k8s-backups")
    manifest = json.loads((k8s_folder / "manifest.json").read_text())
    assert manifest["slots_covered"] == HASH_SLOTS, manifest

    with contextmanager(deploy_stack)(tmp_path / "docker") as docker:
        def on_docker(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "clusterops", *args, "--stack-outputs",
                                   str(docker.outputs_file)], cwd=PROJECT_ROOT,
                                  capture_output=True, text=True, timeout=600, check=False)

        into_docker = on_docker("restore", "--from", str(k8s_folder))
        assert into_docker.returncode == 0, (into_docker.stdout, into_docker.stderr[-3000:])
        restored = RESTORED.search(into_docker.stdout)
        assert restored and int(restored[1]) >= len(k8s_keys), into_docker.stdout
        docker_keys = {f"docker-backup:{i}": f"from-docker-{i}" for i in range(2000)}
        seeds = [redis.cluster.ClusterNode(*e.rsplit(":", 1))
                 for e in docker.outputs["seed_endpoints"]]
        with redis.RedisCluster(startup_nodes=seeds, password=docker.password,
                                decode_responses=True) as docker_client:
            docker_client.mset_nonatomic(docker_keys)
        docker_backup = on_docker("backup", "--dest", str(tmp_path / "docker-b"))
        assert docker_backup.returncode == 0, (docker_backup.stdout, docker_backup.stderr)
        docker_folder = backup_folder(docker_backup.stdout, tmp_path / "docker-b")

    # The k8s stack holds the k8s keys already, with the same values: a merge keeps them.
    into_k8s = clusterops_cli(handle, kubeconfig, tmp_path, "restore", "--from",
                              str(docker_folder), "--merge")
    assert into_k8s.returncode == 0, (into_k8s.stdout[-3000:], into_k8s.stderr[-3000:])
    with cluster_client(secret) as client:
        values = client.mget_nonatomic(list(docker_keys))
    assert values == list(docker_keys.values())
    print(f"\nk8s -> docker: {restored[0]}; docker -> k8s: {into_k8s.stdout.strip()[-200:]}")


def test_the_failover_drill_runs_in_a_pod_with_its_faults_injected_from_here(
        stack, kubeconfig, tmp_path):
    """`clusterops drill` against the k8s stack: the drill runs in the tools pod, and each
    fault it asks for is injected by this command with kubectl (clusterops/cli/pod_control.py):
    stop = SIGSTOP of redis-server through the pod's sidecar until the drill restores it (a
    failover every time), kill = SIGKILL, restarted by the kubelet (in place or failed over).
    Every verdict is the drill's own, from the cluster: promoted replica, rejoin, every
    acknowledged write read back."""
    handle, _ = stack
    stop = clusterops_cli(handle, kubeconfig, tmp_path, "drill", "--master", "all", "--mode",
                          "stop", "--json")
    assert stop.returncode == 0, (stop.stdout[-3000:], stop.stderr[-3000:])
    report = json.loads(stop.stdout)
    drills = report["drills"]
    assert len(drills) == 3, report
    for drill in drills:
        assert drill["new_master"] and drill["new_master"] != drill["master"], drill
        assert drill["acked_writes"] > 0 and drill["acked_lost"] == 0 and drill["rejoined"], drill
    kill = clusterops_cli(handle, kubeconfig, tmp_path, "drill", "--master",
                          drills[0]["new_master"], "--mode", "kill", "--json")
    assert kill.returncode == 0, (kill.stdout[-3000:], kill.stderr[-3000:])
    [killed] = json.loads(kill.stdout)["drills"]
    assert killed["acked_lost"] == 0 and killed["rejoined"], killed
    refused = clusterops_cli(handle, kubeconfig, tmp_path, "drill", "--master", "all",
                             "--mode", "partition")
    assert refused.returncode == 2 and "partition is not supported" in refused.stderr, (
        refused.stderr[-2000:])
    leftovers = pods(NAMESPACE, "app.kubernetes.io/component=clusterops")
    assert leftovers == [] or all(p["metadata"].get("deletionTimestamp") for p in leftovers)
    stops = ", ".join(f"{d['master']} -> {d['new_master']} {d['recovery_seconds']:.2f}s "
                      f"({d['acked_writes']} acked, {d['acked_lost']} lost)" for d in drills)
    print(f"\ndrill in a pod (stop): {stops}; kill: {killed['master']} -> "
          f"{killed['new_master']} {killed['recovery_seconds']:.2f}s ({killed['acked_lost']} "
          f"lost, notes {killed.get('notes')})")


def test_failback_in_a_pod_gives_every_shard_back_to_its_planned_master(
        stack, kubeconfig, tmp_path):
    """Failovers leave masters where they happened to be (the trials above); `clusterops
    failback --apply`, given the stack's outputs, runs in a pod and hands each shard back."""
    handle, _ = stack
    secret = password(handle)
    planned = {n["pod"] for n in handle.outputs()["nodes"] if n["role"] == "master"}
    view = role_view(secret)
    # At least one shard away from its planned master, whatever the trials left.
    if all(view[p]["role"] == "master" for p in planned):
        shard = view[sorted(planned)[0]]["shard"]
        other = next(p for p, e in view.items() if e["shard"] == shard and p not in planned)
        node_client(next(p["status"]["podIP"] for p in redis_pods()
                         if p["metadata"]["name"] == other), secret).execute_command(
            "CLUSTER", "FAILOVER")
        done, seen = poll(lambda: (role_view(secret)[other]["role"] == "master", None),
                          Deadline.after(30), 0.2)
        assert done, role_view(secret)
    drifted = sorted(p for p, e in role_view(secret).items() if p in planned
                     and e["role"] != "master")
    assert drifted
    back = clusterops_cli(handle, kubeconfig, tmp_path, "failback", "--apply")
    assert back.returncode == 0, (back.stdout[-3000:], back.stderr[-3000:])
    done, seen = poll(lambda: ((v := role_view(secret)) and settled(v) and all(
        v[p]["role"] == "master" for p in planned), v), Deadline.after(60), 0.5)
    assert done, (drifted, seen, back.stdout)
    print(f"\nfailback in a pod: {drifted} master again; {back.stdout.strip()[-300:]}")


def evict(pod: str) -> int:
    """POST an Eviction (what `kubectl drain` does); -> the HTTP status (201, or 429 when a
    PodDisruptionBudget forbids it)."""
    try:
        api().request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction", {
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": NAMESPACE}})
    except ApiError as exc:
        return exc.status
    return 201


def set_unschedulable(node: str, unschedulable: bool) -> None:
    api().request("PATCH", f"/api/v1/nodes/{node}", {"spec": {"unschedulable": unschedulable}},
                  content_type="application/merge-patch+json")


def test_a_drain_through_the_eviction_api_keeps_every_shard_serving(stack, images):
    handle, _ = stack
    secret = password(handle)
    placed = {p["metadata"]["name"]: p for p in redis_pods()}
    node = sorted({p["spec"]["nodeName"] for p in placed.values()})[0]
    on_node = sorted(name for name, p in placed.items() if p["spec"]["nodeName"] == node)
    assert on_node, f"no Redis pod on {node}"
    writer = k8s_client_pods.WriterPod("drain-writer", NAMESPACE, images["bootstrap"],
                                       SERVICE_DNS, "k8s-drain")
    writer.wait_writing()
    set_unschedulable(node, True)
    try:
        for pod in on_node:
            # A budget that is momentarily used up (a pod not ready yet) answers 429: a drain
            # retries, as kubectl does.
            evicted, status = poll(lambda pod=pod: (evict(pod) == 201, pod),
                                   Deadline.after(RESTART_TIMEOUT_S), 2.0)
            assert evicted, f"could not evict {status} from {node}"
        # Their volumes are local to the drained node: the evicted pods wait for it (Pending).
        # The budget holds: the other member of each of those shards may not be evicted now.
        shards = {placed[p]["metadata"]["labels"]["redis.alphapulse.io/shard"] for p in on_node}
        for name, pod in placed.items():
            if name not in on_node and pod["metadata"]["labels"][
                    "redis.alphapulse.io/shard"] in shards:
                assert evict(name) == 429, f"{name}: the budget let its shard lose both members"

        def serving_without_the_node() -> tuple[bool, Any]:
            return served_without(on_node, secret)

        serving, seen = poll(serving_without_the_node, Deadline.after(RESTART_TIMEOUT_S), 1.0)
        assert serving, f"with {node} drained the other nodes do not serve every shard: {seen}"
        drained_at = time.monotonic()
        # And it stays so while the node is drained (the writer's client meanwhile drops the
        # evicted pods' addresses from its slot map: CLIENT_SETTLE_S).
        held, seen = poll(lambda: (not serving_without_the_node()[0], role_view(secret)),
                          Deadline.after(DRAIN_HOLD_S), 1.0)
        assert not held, f"with {node} drained the others stopped serving every shard: {seen}"
        # Writes continue while the node is drained: every slot takes one (from the test
        # process), and the writer pod sees no error meanwhile.
        keys = [f"k8s-drain:{{{tag}}}" for tag in hash_tags([(0, HASH_SLOTS - 1)], HASH_SLOTS,
                                                             "d")]
        pipe = cluster_client(secret).pipeline()
        for key in keys:
            pipe.set(key, key)
        assert all(pipe.execute()), "a slot refused a write while the node was drained"
        uncordoned_at = time.monotonic()
    finally:
        set_unschedulable(node, False)
    done, seen = poll(lambda: (settled(role_view(secret)), role_view(secret)),
                      Deadline.after(RESTART_TIMEOUT_S), 1.0)
    assert done, f"after the uncordon the evicted pods did not rejoin: {seen}"
    result = stopped_without_loss(writer, secret)
    settled_at = drained_at + CLIENT_SETTLE_S
    assert errors_between(result, settled_at, uncordoned_at) == [], result.errors[-5:]
    assert [t for t in result.applied_at if settled_at <= t < uncordoned_at], (
        f"no write applied while {node} was drained; {result.summary()}")
    print(f"\ndrain of {node} ({', '.join(on_node)}) through the eviction API: budgets held, "
          f"every shard served by the other nodes {drained_at - result.started:.1f} s into the "
          f"run; {result.summary()}; 0 acknowledged writes lost")


def spread_masters(secret: str) -> dict[str, str]:
    """One master per node, by CLUSTER FAILOVER on the replicas that must take over; -> node ->
    its master pod. Failovers (the earlier tests) can leave two masters on one node, and a
    node holding two of three masters takes the majority with it when it is lost: no failover
    can be elected then (Redis Cluster's rule, not Kubernetes')."""
    placed = {p["metadata"]["name"]: p for p in redis_pods()}
    node_of = {name: pod["spec"]["nodeName"] for name, pod in placed.items()}
    members: dict[str, list[str]] = {}
    for name, pod in sorted(placed.items()):
        members.setdefault(pod["metadata"]["labels"]["redis.alphapulse.io/shard"], []).append(name)
    shards = sorted(members)
    choice = next(c for c in itertools.product(*(members[s] for s in shards))
                  if len({node_of[name] for name in c}) == len(c))
    for name in choice:
        if role_view(secret)[name]["role"] != "master":
            node_client(placed[name]["status"]["podIP"], secret).execute_command(
                "CLUSTER", "FAILOVER")

    def spread() -> tuple[bool, Any]:
        view = role_view(secret)
        return settled(view) and all(view[name]["role"] == "master" for name in choice), view

    done, seen = poll(spread, Deadline.after(RESTART_TIMEOUT_S), 0.5)
    assert done, f"could not put one master on each node ({choice}): {seen}"
    return {node_of[name]: name for name in choice}


def test_a_node_lost_leaves_every_slot_served_by_the_others_and_its_pods_rejoin(stack, images):
    handle, _ = stack
    secret = password(handle)
    masters = spread_masters(secret)
    placed = {p["metadata"]["name"]: p for p in redis_pods()}
    # A node with a master on it: losing it needs a failover, not just a missing replica.
    node = local_cluster.NODES[0]
    assert node.name in masters, masters
    on_node = sorted(name for name, p in placed.items() if p["spec"]["nodeName"] == node.name)
    survivor = next(n.name for n in local_cluster.NODES if n.name != node.name)
    writer = k8s_client_pods.WriterPod("node-loss-writer", NAMESPACE, images["bootstrap"],
                                       SERVICE_DNS, "k8s-node-loss", node_name=survivor)
    writer.wait_writing()
    started = time.monotonic()
    local_cluster.lose_node(node)
    try:
        served, seen = poll(lambda: served_without(on_node, secret),
                            Deadline.after(RESTART_TIMEOUT_S), 0.2)
        served_after = time.monotonic() - started
        assert served, f"{node.name} lost: the other nodes do not serve every slot: {seen}"
        every_slot("node-loss-every-slot", images, "k8s-node-loss", write=True,
                   node_name=survivor)
    finally:
        local_cluster.restore_node(node)
    back_started = time.monotonic()
    done, seen = poll(lambda: (settled(role_view(secret)) and pods_ready()[0],
                               (role_view(secret), pods_ready()[1])),
                      Deadline.after(RESTART_TIMEOUT_S), 1.0)
    assert done, f"{node.name} back: its pods did not rejoin (and turn Ready): {seen}"
    rejoined_after = time.monotonic() - back_started
    result = stopped_without_loss(writer, secret)
    print(f"\nnode {node.name} lost ({', '.join(on_node)}; link cut, kubelet and containerd "
          f"stopped): every slot served by the others after {served_after:.1f} s; back, its "
          f"pods rejoined in {rejoined_after:.1f} s; {result.summary()}; 0 acknowledged "
          "writes lost")


def pods_ready() -> tuple[bool, dict[str, bool]]:
    """Whether every Redis pod is Ready as Kubernetes sees it (its readiness probe)."""
    ready = {p["metadata"]["name"]: any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in p.get("status", {}).get("conditions", [])) for p in redis_pods()}
    return len(ready) == 6 and all(ready.values()), ready


def rolled_out() -> tuple[bool, dict[str, Any]]:
    """Every StatefulSet has seen its latest spec and every pod runs it, Ready. (Pod labels,
    not currentRevision: with the OnDelete strategy the controller never advances that.)"""
    sets = {s["metadata"]["name"]: s for s in statefulsets()}
    revision = {name: s["status"].get("updateRevision") for name, s in sets.items()}
    seen = {p["metadata"]["name"]: p["metadata"]["labels"].get("controller-revision-hash")
            for p in redis_pods()}
    ok = all(s["status"].get("observedGeneration") == s["metadata"]["generation"]
             for s in sets.values()) and pods_ready()[0] and all(
        seen[pod] == revision[pod.rsplit("-", 1)[0]] for pod in seen)
    return ok, {"update_revisions": revision, "pods": seen}


class ShardWatch(threading.Thread):
    """Samples, every 0.25 s, how many pods of each shard are not Ready (or missing), and how
    many shards have one down at once."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.most_down: dict[str, int] = {}
        self.most_shards_down = 0  # shards with a pod down in one sample
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            ready: dict[str, int] = {"1": 0, "2": 0, "3": 0}
            for pod in redis_pods():
                conditions = pod.get("status", {}).get("conditions", [])
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    ready[pod["metadata"]["labels"]["redis.alphapulse.io/shard"]] += 1
            for shard, count in ready.items():
                self.most_down[shard] = max(self.most_down.get(shard, 0), 2 - count)
            self.most_shards_down = max(self.most_shards_down,
                                        sum(count < 2 for count in ready.values()))
            self.samples += 1
            self._stop_event.wait(0.25)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


def test_a_redis_conf_change_rolls_shard_by_shard_with_a_handover(stack, images):
    handle, _ = stack
    secret = password(handle)
    ready, seen = poll(pods_ready, Deadline.after(RESTART_TIMEOUT_S), 1.0)
    assert ready, f"not every pod Ready before the change: {seen}"
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in redis_pods()}
    writer = k8s_client_pods.WriterPod("roll-writer", NAMESPACE, images["bootstrap"],
                                       SERVICE_DNS, "k8s-roll")
    writer.wait_writing()
    watch = ShardWatch()
    watch.start()
    try:
        handle.set_config({"maxmemory": "65mb"})
        roll_started = time.monotonic()
        handle.up()
        roll_ended = time.monotonic()
        # `pulumi up` returns when the operations resource has replaced every pod.
        rolled, seen = rolled_out()
        assert rolled, f"pods not on the new revision when `pulumi up` returned: {seen}"
        done, seen = poll(lambda: (settled(role_view(secret)), role_view(secret)),
                          Deadline.after(RESTART_TIMEOUT_S), 1.0)
    finally:
        watch.stop()
    assert done, f"not settled after the roll: {seen}"
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in redis_pods()}
    unrolled = [name for name, uid in before.items() if after.get(name) == uid]
    assert not unrolled, (f"not rolled: {unrolled}; the StatefulSets say "
                          f"{[s['status'] for s in statefulsets()]}")
    assert watch.samples > 10 and max(watch.most_down.values()) == 1, watch.most_down
    # Shard by shard (the operations resource), not all shards at once (a plain roll).
    assert watch.most_shards_down == 1, watch.most_shards_down
    for entry in role_view(secret).values():
        assert entry["state"] == "ok"
    for ip in redis_pod_ips():
        assert node_client(ip, secret).config_get("maxmemory") == {
            "maxmemory": str(65 * 1024 * 1024)}, ip
    result = stopped_without_loss(writer, secret)
    failed = errors_between(result, roll_started, roll_ended)
    window = (max(failed) - min(failed)) if failed else 0.0
    print(f"\nmaxmemory 64mb -> 65mb rolled all 6 pods in {roll_ended - roll_started:.1f}s "
          f"(`pulumi up`), one pod of a shard at a time, {watch.most_shards_down} shard(s) at "
          f"once ({watch.samples} samples); writer errors during the roll: {len(failed)} "
          f"(first to last {window:.2f}s); {result.summary()}; 0 acknowledged writes lost")

