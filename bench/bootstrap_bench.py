"""Time from six fresh running nodes to cluster_state:ok: clusterops vs redis-cli, same run.

Each trial starts six new password-protected, cluster-enabled redis-server processes on
loopback, lets them idle ``--settle-seconds`` (a deployment starts the bootstrap only after the
containers are healthy; it also keeps Redis' 2 s startup write delay out of both numbers), then
starts the clock and runs one tool:

- ours: ``clusterops.provision.formation.form_cluster`` (what the Pulumi provider runs);
- reference: ``redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`` with the
  password in the REDISCLI_AUTH environment variable (never on argv).

The clock stops when every node, polled independently every 5 ms from a separate thread,
reports cluster_state:ok. The same watcher also stamps when the topology was formed (all nodes
met, all slots assigned, replicas attached), which is the part a formation tool controls: Redis
itself keeps each master at cluster_state:fail for its rejoin delay, clamp(cluster-node-timeout,
500 ms, 5 s), after the master got its slots, and both tools wait that out. Trials alternate
between the tools so drift affects both alike.

Usage: python bench/bootstrap_bench.py [--repetitions 5] [--node-timeouts 1000[,500,2000]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from clusterops.node.access import Access  # noqa: E402
from clusterops.provision.formation import form_cluster  # noqa: E402
from tests.support.process_plans import plan_for  # noqa: E402
from tests.support.redis_nodes import RedisNodes  # noqa: E402

OK_DEADLINE_S = 60.0
POLL_S = 0.005
# Redis delays a master's switch to cluster_state:ok by this long after it last saw itself in a
# minority (which every node does until it owns slots): clamp(node-timeout, 500, 5000) ms.
MIN_REJOIN_DELAY_MS, MAX_REJOIN_DELAY_MS = 500, 5000


def replicas(cluster_nodes: str) -> int:
    return sum("slave" in line.split()[2].split(",") for line in cluster_nodes.splitlines())


class Watcher(threading.Thread):
    """Polls every node on its own connections and stamps two moments after ``started``:

    - ``formed``: every node knows all 6 nodes (no handshakes), 16384 slots are assigned and
      3 replicas are attached — the part a formation tool controls;
    - ``ok``: every node reports cluster_state:ok — what the benchmark times.
    """

    def __init__(self, nodes: RedisNodes) -> None:
        super().__init__(daemon=True)
        self.clients = [node.client() for node in nodes]
        self.started = 0.0
        self.formed: float | None = None
        self.ok: float | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        deadline = self.started + OK_DEADLINE_S
        try:
            while time.monotonic() < deadline and (self.formed is None or self.ok is None):
                infos = [c.execute_command("CLUSTER", "INFO") for c in self.clients]
                now = time.monotonic() - self.started
                if self.ok is None and all("cluster_state:ok" in i for i in infos):
                    self.ok = now
                if self.formed is None and all(
                    "cluster_known_nodes:6\r" in i and "cluster_slots_assigned:16384\r" in i
                    for i in infos
                ):
                    views = [c.execute_command("CLUSTER", "NODES") for c in self.clients]
                    if all(replicas(v) == 3 and "handshake" not in v for v in views):
                        self.formed = now
                time.sleep(POLL_S)
        except Exception as exc:  # reported by the main thread
            self.error = exc
        finally:
            for client in self.clients:
                client.close()


def run_ours(nodes: RedisNodes) -> None:
    form_cluster(plan_for(nodes), Access(nodes.password), timeout_s=OK_DEADLINE_S)


def run_redis_cli(nodes: RedisNodes) -> None:
    env = dict(os.environ, REDISCLI_AUTH=nodes.password)
    subprocess.run(
        ["redis-cli", "--cluster", "create", *[n.address for n in nodes],
         "--cluster-replicas", "1", "--cluster-yes"],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        timeout=OK_DEADLINE_S,
    )


TOOLS = {"clusterops.form_cluster": run_ours, "redis-cli --cluster create": run_redis_cli}


METRICS = {
    "complete": "tool finished AND cluster_state:ok on all 6 nodes (headline)",
    "ok": "cluster_state:ok first seen on all 6 nodes (redis-cli gets here before it has "
          "attached the replicas)",
    "formed": "topology formed: all met, 16384 slots assigned, 3 replicas seen by every node",
}


def one_trial(tool: str, node_timeout_ms: int, settle_s: float) -> dict[str, float]:
    """Seconds from the start to each moment in METRICS."""
    settings = {"cluster-node-timeout": str(node_timeout_ms)}
    with RedisNodes(6, settings=settings, name_prefix="bench") as nodes:
        time.sleep(settle_s)
        watcher = Watcher(nodes)
        watcher.started = time.monotonic()
        watcher.start()
        TOOLS[tool](nodes)
        finished = time.monotonic() - watcher.started
        watcher.join(OK_DEADLINE_S)
        if watcher.error is not None or watcher.ok is None or watcher.formed is None:
            raise RuntimeError(f"{tool}: cluster_state:ok not seen everywhere "
                               f"({watcher.error or 'deadline passed'})")
        return {"complete": max(finished, watcher.ok), "ok": watcher.ok,
                "formed": watcher.formed}


def summarize(times: list[float]) -> str:
    return (f"median {statistics.median(times):6.3f} s  min {min(times):6.3f}  "
            f"max {max(times):6.3f}")


def bench(node_timeout_ms: int, repetitions: int, settle_s: float) -> float:
    results: dict[str, dict[str, list[float]]] = {
        tool: {metric: [] for metric in METRICS} for tool in TOOLS
    }
    order = list(TOOLS)
    for rep in range(repetitions):
        for tool in order if rep % 2 == 0 else reversed(order):
            for metric, seconds in one_trial(tool, node_timeout_ms, settle_s).items():
                results[tool][metric].append(seconds)
    floor_ms = min(max(node_timeout_ms, MIN_REJOIN_DELAY_MS), MAX_REJOIN_DELAY_MS)
    print(f"\ncluster-node-timeout {node_timeout_ms} ms, settle {settle_s} s, {repetitions} "
          f"repetitions per tool, same run. Redis keeps every master at cluster_state:fail for "
          f"{floor_ms} ms after it got its slots (rejoin delay), whoever forms the cluster.")
    ours_tool, ref_tool = list(TOOLS)
    ratio = 0.0
    for metric, meaning in METRICS.items():
        print(f"  {metric}: {meaning}")
        for tool in TOOLS:
            times = results[tool][metric]
            print(f"    {tool:28s} {summarize(times)}   all: "
                  + " ".join(f"{t:.3f}" for t in times))
        metric_ratio = (statistics.median(results[ours_tool][metric])
                        / statistics.median(results[ref_tool][metric]))
        print(f"    ratio of medians ours/redis-cli: {metric_ratio:.2f}")
        if metric == "complete":
            ratio = metric_ratio
    verdict = "met" if ratio <= 0.5 else "NOT met"
    print(f"  goal (complete, ours <= 0.50 x redis-cli): {verdict} ({ratio:.2f})")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--node-timeouts", default="1000",
                        help="comma-separated cluster-node-timeout values in ms (default 1000)")
    parser.add_argument("--settle-seconds", type=float, default=2.5)
    args = parser.parse_args()
    if args.repetitions < 1:
        parser.error("--repetitions must be >= 1")
    for value in args.node_timeouts.split(","):
        bench(int(value), args.repetitions, args.settle_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
