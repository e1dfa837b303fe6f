"""Engine benchmark: the same operations on each engine of the matrix, in one run.

For Redis 7.0.15 (Debian's), Redis 7.2.6 and Valkey 8.0.1 (scripts/build-engines.sh), on
loopback redis-server/valkey-server processes with the deployed failure settings
(cluster-node-timeout 1000, cluster-replica-validity-factor 0):

- failover: ``--trials`` kills of a master under a SET + WAIT 1 writer
  (clusterops.tasks.drill): client-observed recovery, median and worst, and acknowledged
  writes lost (must be 0);
- reshape: 3 -> 4 -> 3 masters (clusterops.reshape.scaling, unpaced) holding ``--keys`` keys
  of 100 bytes: seconds and keys/s each way.

Engines run one after the other, their trials interleaved per round so drift hits all alike.
Redis 7.0 is the reference: every figure is printed beside its own.

    python bench/engine_bench.py [--trials 3] [--keys 100000]

Exit status 1 when an acknowledged write was lost or an operation failed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from redis.cluster import ClusterNode, RedisCluster  # noqa: E402

from clusterops.node.access import Access  # noqa: E402
from clusterops.provision.formation import form_cluster  # noqa: E402
from clusterops.reshape.scaling import reshape_cluster  # noqa: E402
from clusterops.tasks.drill import run_master_failure_drill  # noqa: E402
from tests.integration.test_scaling import FOUR, THREE, layout, total_keys  # noqa: E402
from tests.support.engines import ENGINE_LABELS, EngineBuild, find_engine  # noqa: E402
from tests.support.process_control import ProcessNodeControl, targets_for  # noqa: E402
from tests.support.process_plans import plan_for, wait_for_replica_links  # noqa: E402
from tests.support.redis_nodes import RedisNodes  # noqa: E402

SETTINGS = {"cluster-node-timeout": "1000", "cluster-replica-validity-factor": "0"}


def failover_once(build: EngineBuild, base: Path, master_index: int) -> tuple[float, int, int]:
    """(recovery s, acknowledged writes, acknowledged lost) of one master kill."""
    with RedisNodes(6, base_dir=base, settings=SETTINGS, server=build.server) as six:
        form_cluster(plan_for(six), Access(six.password), 30)
        wait_for_replica_links(six)
        result = run_master_failure_drill(targets_for(six), ProcessNodeControl(six),
                                          six[master_index].name, "kill")
        if result.errors or result.recovery_seconds is None:
            raise RuntimeError(f"{build.label}: drill failed: {result.errors}")
        return result.recovery_seconds, result.acked_writes, result.acked_lost


def reshape_once(build: EngineBuild, base: Path, keys: int) -> tuple[float, float, int]:
    """(3 -> 4 s, 4 -> 3 s, keys moved in all) with ``keys`` keys of 100 bytes."""
    with RedisNodes(8, base_dir=base, settings=SETTINGS, server=build.server) as eight:
        access = Access(eight.password)
        three, four = layout(eight, *THREE), layout(eight, *FOUR)
        form_cluster(three, access, 30)
        client = RedisCluster(startup_nodes=[ClusterNode(eight[0].host, eight[0].port)],
                              password=eight.password)
        value = b"v" * 100
        for start in range(0, keys, 5000):
            client.mset_nonatomic({f"bench:{i}": value for i in range(start,
                                                                       min(keys, start + 5000))})
        grow = reshape_cluster(three, four, access, 600)
        shrink = reshape_cluster(four, three, access, 600)
        client.close()
        if total_keys(three, eight.password) != keys:
            raise RuntimeError(f"{build.label}: keys lost in the reshape")
        return grow.moved.elapsed_s, shrink.moved.elapsed_s, grow.moved.keys + shrink.moved.keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args(argv)
    builds = []
    for label in ENGINE_LABELS:
        found = find_engine(label)
        if isinstance(found, str):
            print(f"skipped: {found}")
            continue
        builds.append(found)
    failovers: dict[str, list[tuple[float, int, int]]] = {b.label: [] for b in builds}
    reshapes: dict[str, list[tuple[float, float, int]]] = {b.label: [] for b in builds}
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as work:
        for trial in range(args.trials):
            for build in builds:
                base = Path(work) / f"{build.label}-{trial}"
                failovers[build.label].append(failover_once(build, base / "f", trial % 3))
                reshapes[build.label].append(reshape_once(build, base / "r", args.keys))
                print(f"round {trial + 1}: {build.label} failover "
                      f"{failovers[build.label][-1][0]:.2f} s, reshape 3->4 "
                      f"{reshapes[build.label][-1][0]:.2f} s", flush=True)
    lost = sum(entry[2] for runs in failovers.values() for entry in runs)
    reference = builds[0].label if builds else ""
    print(f"\n{args.trials} trial(s) per engine, {args.keys:,} keys of 100 B; reference: "
          f"{reference}")
    print(f"{'engine':<12} {'failover median':>16} {'worst':>7} {'acked':>7} {'lost':>5} "
          f"{'3->4 s':>8} {'4->3 s':>8} {'keys/s':>9} {'x ref':>6}")
    ref_rate = None
    for build in builds:
        recoveries = [r for r, _a, _l in failovers[build.label]]
        grows = [g for g, _s, _k in reshapes[build.label]]
        shrinks = [s for _g, s, _k in reshapes[build.label]]
        moved = sum(k for _g, _s, k in reshapes[build.label])
        rate = moved / max(sum(grows) + sum(shrinks), 1e-9)
        ref_rate = ref_rate or rate
        print(f"{build.label:<12} {statistics.median(recoveries):>14.2f} s "
              f"{max(recoveries):>5.2f} s {sum(a for _r, a, _l in failovers[build.label]):>7} "
              f"{sum(x for _r, _a, x in failovers[build.label]):>5} "
              f"{statistics.median(grows):>8.2f} {statistics.median(shrinks):>8.2f} "
              f"{rate:>9,.0f} {rate / ref_rate:>6.2f}")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
