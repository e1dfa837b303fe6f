"""Failover benchmark: client-observed recovery over N master-failure trials, two node-timeouts.

Every trial is one ``run_master_failure_drill`` (clusterops.tasks.drill): a writer doing
SET + WAIT 1 on the master's slots, the fault, a probe writing straight to the slot's owner
every 20 ms until a write succeeds (that delay is the recovery time), the node brought back as
a replica, and every acknowledged write read back. Masters are drilled in turn.

Two settings run in the same session, trials interleaved so drift hits both alike:
``--node-timeout-ms`` (the project's setting, 1000) and ``--reference-node-timeout-ms`` (the
guide-era reference, 2000), applied to every node with CONFIG SET before each trial (a
restarted node reloads its config file, so once is not enough).

    python bench/failover_bench.py                       # 3+3 redis-server processes
    python bench/failover_bench.py --stack-outputs out.json [--via-host-ports]   # Docker stack

On the Docker stack the faults go through DockerNodeControl and the original node-timeout is
restored at the end. Exit status 1 when any acknowledged write was lost or a trial failed; the
timings themselves are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import redis  # noqa: E402

from clusterops.cli.targets import (  # noqa: E402
    Targets,
    read_outputs_file,
    resolve_password,
    targets_from_outputs,
)
from clusterops.core.errors import DrillError  # noqa: E402
from clusterops.tasks.drill import (  # noqa: E402
    DrillResult,
    live_masters,
    run_master_failure_drill,
    wait_until_ready,
)
from clusterops.tasks.node_control import DockerNodeControl, NodeControl  # noqa: E402
from clusterops.tasks.writes import Connections  # noqa: E402

PROJECT_NODE_TIMEOUT_MS = 1000  # Pulumi.dev.yaml / Pulumi.prod.yaml nodeTimeoutMs
REFERENCE_NODE_TIMEOUT_MS = 2000  # the reference the issue compares against
# Failover-relevant settings of the deployed redis.conf (components/redis_conf.py).
PROCESS_SETTINGS = {
    "cluster-replica-validity-factor": "0",
    "cluster-require-full-coverage": "yes",
    "appendonly": "yes",
    "appendfsync": "everysec",
    "repl-diskless-sync": "yes",
}


@dataclass
class Series:
    node_timeout_ms: int
    label: str
    results: list[DrillResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # trials that could not run or errored

    @property
    def recoveries(self) -> list[float]:
        return sorted(r.recovery_seconds for r in self.results if r.recovery_seconds is not None)

    def summary(self) -> dict[str, object]:
        values = self.recoveries
        return {
            "setting": self.label,
            "node_timeout_ms": self.node_timeout_ms,
            "trials": len(self.results) + len(self.failed),
            "recovered": len(values),
            "p50_s": percentile(values, 50),
            "p95_s": percentile(values, 95),
            "max_s": values[-1] if values else None,
            "min_s": values[0] if values else None,
            "acked_writes": sum(r.acked_writes for r in self.results),
            "acked_lost": sum(r.acked_lost for r in self.results),
            "unacked_lost": sum(r.unacked_lost for r in self.results),
            "rejoined": sum(r.rejoined for r in self.results),
            "failed": self.failed,
        }


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), None when empty."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * pct / 100
    low, high = math.floor(position), math.ceil(position)
    weight = position - low
    return sorted_values[low] * (1 - weight) + sorted_values[high] * weight


def set_node_timeout(targets: Targets, timeout_ms: int) -> None:
    conns = Connections(targets, timeout_s=2.0)
    try:
        for node in targets.nodes:
            conns.client(node.name).config_set("cluster-node-timeout", timeout_ms)
    finally:
        conns.close()


def read_node_timeouts(targets: Targets) -> dict[str, int]:
    conns = Connections(targets, timeout_s=2.0)
    try:
        return {
            node.name: int(conns.client(node.name).config_get("cluster-node-timeout")
                           ["cluster-node-timeout"])
            for node in targets.nodes
        }
    finally:
        conns.close()


def run_trials(
    targets: Targets,
    control: NodeControl,
    series: Sequence[Series],
    trials: int,
    mode: str,
    progress: Callable[[str], None],
) -> None:
    names = [node.name for node in targets.nodes]
    for trial in range(trials):
        for one in series:
            where = f"trial {trial + 1}/{trials} node-timeout {one.node_timeout_ms} ms"
            conns = Connections(targets)
            try:
                wait_until_ready(conns, names)
                set_node_timeout(targets, one.node_timeout_ms)
                masters = live_masters(conns, names)
                master = masters[trial % len(masters)]
            except (DrillError, redis.RedisError) as exc:
                one.failed.append(f"{where}: cluster not ready: {exc}")
                progress(f"{where}: SKIPPED ({exc})")
                continue
            finally:
                conns.close()
            try:
                result = run_master_failure_drill(targets, control, master, mode)
            except DrillError as exc:
                one.failed.append(f"{where}: {master}: {exc}")
                progress(f"{where}: {master}: FAILED ({exc})")
                continue
            one.results.append(result)
            if result.node_timeout_ms != one.node_timeout_ms:
                result.errors.append(
                    f"{master} ran with cluster-node-timeout {result.node_timeout_ms}, "
                    f"not {one.node_timeout_ms}"
                )
            if result.errors:
                one.failed.append(f"{where}: {master}: {'; '.join(result.errors)}")
            recovery = (
                "never" if result.recovery_seconds is None else f"{result.recovery_seconds:.2f}s"
            )
            progress(
                f"{where}: {master} -> {result.new_master}: recovery {recovery}, "
                f"acked {result.acked_writes} lost {result.acked_lost}, "
                f"rejoined {result.rejoined}"
            )


def render(summaries: Sequence[dict[str, object]], header: str) -> str:
    def sec(value: object) -> str:
        return "-" if value is None else f"{value:.2f}"

    columns = ("setting", "trials", "p50 s", "p95 s", "max s", "min s", "acked writes",
               "acked lost", "unacked lost", "rejoined", "failed")
    rows = [columns]
    for s in summaries:
        rows.append((
            str(s["setting"]), str(s["trials"]), sec(s["p50_s"]), sec(s["p95_s"]),
            sec(s["max_s"]), sec(s["min_s"]), str(s["acked_writes"]), str(s["acked_lost"]),
            str(s["unacked_lost"]), f"{s['rejoined']}/{s['trials']}", str(len(s["failed"])),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = [header]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    for s in summaries:
        lines += [f"failed: {reason}" for reason in s["failed"]]  # type: ignore[union-attr]
    lines.append(
        "recovery = client-observed, from just before the fault until a write to the master's "
        "slots succeeds on its new owner; percentiles interpolate linearly between ranks"
    )
    return "\n".join(lines)


def process_cluster(stack: ExitStack, base_dir: Path) -> tuple[Targets, NodeControl, str]:
    # Imported here: only the process mode needs the test support code.
    from tests.support.process_control import (
        ProcessNodeControl,
        form_cluster_with_redis_cli,
        targets_for,
    )
    from tests.support.redis_nodes import RedisNodes

    group = stack.enter_context(
        RedisNodes(6, base_dir=base_dir, settings=PROCESS_SETTINGS, name_prefix="bench")
    )
    form_cluster_with_redis_cli(group)
    return targets_for(group), ProcessNodeControl(group), "3+3 redis-server processes"


def docker_cluster(args: argparse.Namespace) -> tuple[Targets, NodeControl, str]:
    outputs = read_outputs_file(args.stack_outputs)
    base = targets_from_outputs(outputs, args.via_host_ports, source=str(args.stack_outputs))
    password = resolve_password(args.password_file, base.password, os.environ)
    targets = Targets(
        nodes=base.nodes, password=password, expected_masters=base.expected_masters,
        replicas_per_master=base.replicas_per_master, network_name=base.network_name,
        source=base.source,
    )
    description = f"Docker stack {outputs.get('cluster_name', '?')} ({len(targets.nodes)} nodes)"
    return targets, DockerNodeControl(targets), description


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per setting [10]")
    parser.add_argument("--mode", choices=("kill", "stop", "partition"), default="kill")
    parser.add_argument("--node-timeout-ms", type=int, default=PROJECT_NODE_TIMEOUT_MS)
    parser.add_argument("--reference-node-timeout-ms", type=int,
                        default=REFERENCE_NODE_TIMEOUT_MS, help="0 skips the reference")
    parser.add_argument("--stack-outputs", type=Path, metavar="FILE",
                        help="bench the deployed Docker stack instead of local processes")
    parser.add_argument("--via-host-ports", action="store_true")
    parser.add_argument("--password-file", type=Path, metavar="FILE")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)

    series = [Series(args.node_timeout_ms, f"{args.node_timeout_ms} ms (project)")]
    if args.reference_node_timeout_ms:
        series.append(Series(args.reference_node_timeout_ms,
                             f"{args.reference_node_timeout_ms} ms (reference)"))

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with ExitStack() as stack:
        if args.stack_outputs:
            targets, control, description = docker_cluster(args)
            original = read_node_timeouts(targets)
            stack.callback(_restore_node_timeouts, targets, original)
        else:
            base_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fbench-")))
            targets, control, description = process_cluster(stack, base_dir)
        started = time.monotonic()
        run_trials(targets, control, series, args.trials, args.mode, progress)
        elapsed = time.monotonic() - started

    summaries = [one.summary() for one in series]
    header = (f"failover bench: {description}, mode {args.mode}, {args.trials} trials per "
              f"setting, interleaved, {elapsed:.0f}s")
    if args.json:
        print(json.dumps({"description": description, "mode": args.mode,
                          "series": summaries}, indent=2))
    else:
        print(render(summaries, header))
    bad = any(s["acked_lost"] or s["failed"] for s in summaries)
    return 1 if bad else 0


def _restore_node_timeouts(targets: Targets, original: dict[str, int]) -> None:
    conns = Connections(targets, timeout_s=2.0)
    try:
        for name, value in original.items():
            try:
                conns.client(name).config_set("cluster-node-timeout", value)
            except redis.RedisError as exc:
                print(f"could not restore cluster-node-timeout on {name}: {exc}", file=sys.stderr)
    finally:
        conns.close()


if __name__ == "__main__":
    sys.exit(main())
