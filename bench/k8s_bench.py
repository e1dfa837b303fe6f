"""The k8s stack on the local three-node Kubernetes (local_kubernetes/), measured beside a
reference from the same run.

1. Fresh `pulumi up` to `cluster_state:ok`; reference: a second `pulumi up` of the same stack,
   which changes nothing (the engine's and the provider's own cost of a run).
2. A master pod deleted (`--trials`, shards in turn), with a SET + WAIT 1 writer (redis-py's
   cluster client in this process, reaching pods at their IPs); recovery = from the delete to
   the writer's last failed write. Reference: `bench/failover_bench.py --mode stop` on 3+3
   redis-server processes at the same node timeout (the same graceful stop, no Kubernetes), run
   right after in the same session.
3. Every pod deleted at once (every IP new) to `cluster_state:ok` with the same node ids;
   reference: the one-pod restarts of step 2 (delete to back and in sync).

    python bench/k8s_bench.py [--trials 10]    # root; builds nothing (scripts/test.sh does)

Exit status 1 when an acknowledged write was lost; the timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from clusterops.core.poll import Deadline, poll  # noqa: E402
from local_kubernetes import cluster  # noqa: E402
from local_kubernetes.__main__ import local_images  # noqa: E402
from tests.e2e import test_k8s_cluster as k8s  # noqa: E402
from tests.support.live_writer import LiveWriter, acknowledged_missing  # noqa: E402
from tests.support.local_k8s import address_remap  # noqa: E402
from tests.support.pulumi_cli import new_stack  # noqa: E402

TIMEOUT_S = 180.0


def timed(action) -> float:  # noqa: ANN001 - any callable
    started = time.monotonic()
    action()
    return time.monotonic() - started


def master_pod_trials(secret: str, trials: int) -> tuple[list[float], list[float], int, int]:
    """-> (recovery per trial, back-in-sync per trial, acknowledged writes, lost)."""
    [seed, *_] = k8s.redis_pod_ips()
    writer = LiveWriter([(seed, 6379)], secret, "k8s-bench", interval_s=0.005,
                        address_remap=address_remap(k8s.NAMESPACE))
    writer.start()
    starts, back = [], []
    for trial in range(trials):
        view = k8s.role_view(secret)
        shard = str(trial % 3 + 1)
        [master] = [p for p, e in view.items() if e["shard"] == shard and e["role"] == "master"]
        started = time.monotonic()
        k8s.api().request("DELETE", f"/api/v1/namespaces/{k8s.NAMESPACE}/pods/{master}")
        done, seen = poll(lambda m=master, uid=view[master]["uid"]: (
            (now := k8s.role_view(secret)).get(m, {}).get("uid") not in (None, uid)
            and k8s.settled(now), now), Deadline.after(TIMEOUT_S), 0.2)
        if not done:
            raise SystemExit(f"trial {trial + 1}: not settled: {seen}")
        starts.append(started)
        back.append(time.monotonic() - started)
        print(f"  trial {trial + 1}: {master} back and in sync after {back[-1]:.1f} s",
              file=sys.stderr)
    result = writer.stop()
    ends = starts[1:] + [result.stopped]
    recovery = [max(k8s.errors_between(result, s, e), default=s) - s
                for s, e in zip(starts, ends, strict=True)]
    lost = acknowledged_missing(k8s.cluster_client(secret), result)
    return recovery, back, len(result.acked), len(lost)


def full_restart(secret: str) -> float:
    before = k8s.cluster_view(secret)
    started = time.monotonic()
    old_ips = k8s.delete_every_redis_pod()

    def reformed() -> tuple[bool, object]:
        back, ips = k8s.all_back_at_new_ips(old_ips)
        return back and k8s.cluster_view(secret) == before, ips

    done, seen = poll(reformed, Deadline.after(TIMEOUT_S), 0.5)
    if not done:
        raise SystemExit(f"full restart: not re-formed: {seen}")
    return time.monotonic() - started


def process_reference(trials: int) -> dict:
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "failover_bench.py"), "--mode", "stop",
         "--trials", str(trials), "--reference-node-timeout-ms", "0", "--json"],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failover_bench.py failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)["series"][0]


def quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    return (f"p50 {k8s.percentile(ordered, 0.5):.2f} s, p95 {k8s.percentile(ordered, 0.95):.2f} s"
            f" (min {ordered[0]:.2f}, max {ordered[-1]:.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="master pod deletes [10]")
    args = parser.parse_args()
    images = local_images()
    kubeconfig = cluster.up(list(images.values()))
    try:
        with tempfile.TemporaryDirectory(prefix="k8s-bench-") as root:
            handle = new_stack(Path(root), "k8s", k8s.stack_settings(images))
            handle.remove_config("renderDir")
            handle.env["KUBECONFIG"] = str(kubeconfig)
            try:
                fresh = timed(handle.up)
                noop = timed(handle.up)
                secret = k8s.password(handle)
                recovery, back, acked, lost = master_pod_trials(secret, args.trials)
                restart = full_restart(secret)
            finally:
                handle.destroy(check=False)
                handle.remove()
    finally:
        cluster.down()
    reference = process_reference(args.trials)
    print(f"k8s bench: local three-node Kubernetes v1.35.0, 3 masters + 3 replicas, "
          f"node timeout 1000 ms, {args.trials} trials")
    print(f"  fresh `pulumi up` to cluster_state:ok   {fresh:6.1f} s   reference: a no-change "
          f"`pulumi up` {noop:.1f} s")
    print(f"  master pod deleted, client recovery     {quantiles(recovery)}")
    print(f"    reference, redis-server stopped (SIGTERM), same node timeout: p50 "
          f"{reference['p50_s']:.2f} s, p95 {reference['p95_s']:.2f} s "
          f"({reference['recovered']} of {reference['trials']} recovered)")
    print(f"    acknowledged writes {acked}, lost {lost}")
    print(f"  every pod deleted at once, re-formed    {restart:6.1f} s   reference: one pod "
          f"back and in sync, median {statistics.median(back):.1f} s")
    return 1 if lost or reference["acked_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
