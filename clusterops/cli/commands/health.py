"""``python -m clusterops health``: run the health checks (clusterops.tasks.health) and print them.

Exit code: 0 when nothing failed (warnings allowed), 1 when any check failed; usage, target
and authentication errors are raised for the CLI (exit 2).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from clusterops.cli.commands import table
from clusterops.cli.targets import add_target_arguments, load_targets
from clusterops.tasks.health import (
    DEFAULT_MAX_LAG_BYTES,
    DEFAULT_MAX_LAG_SECONDS,
    DEFAULT_MEMORY_FAIL_PERCENT,
    DEFAULT_MEMORY_WARN_PERCENT,
    DEFAULT_TIMEOUT_S,
    HealthRun,
    Status,
    Thresholds,
    failing_nodes,
    run_health,
)


def summary_line(run: HealthRun) -> str:
    if run.ok:
        head = "HEALTHY" if not run.warnings else f"HEALTHY with {len(run.warnings)} warning(s)"
        return f"{head}: {len(run.results)} results, no failures"
    named = "; ".join(
        f"{node} ({', '.join(checks)})" for node, checks in failing_nodes(run).items()
    )
    return f"UNHEALTHY: {len(run.failures)} failure(s) on {named}"


def render_table(run: HealthRun) -> str:
    rows = [("CHECK", "NODE", "STATUS", "MESSAGE")]
    rows += [(r.check, r.node, r.status.upper(), r.message) for r in run.results]
    lines = [
        f"Redis cluster health: {run.targets.source or 'targets'} - {run.targets.expected_nodes} "
        f"nodes, {run.targets.expected_masters} masters x {run.targets.replicas_per_master} "
        f"replica(s) expected ({run.duration_s:.2f}s)",
        "",
        *table(rows),
        "",
        summary_line(run),
    ]
    return "\n".join(lines)


def render_json(run: HealthRun) -> str:
    counts = Counter(str(r.status) for r in run.results)
    document = {
        "ok": run.ok,
        "exit_code": run.exit_code,
        "source": run.targets.source,
        "expected": {
            "nodes": run.targets.expected_nodes,
            "masters": run.targets.expected_masters,
            "replicas_per_master": run.targets.replicas_per_master,
            "maxmemory_bytes": run.targets.maxmemory_bytes,
        },
        "summary": {status.value: counts.get(status.value, 0) for status in Status},
        "failing_nodes": failing_nodes(run),
        "failures": [r.as_dict() for r in run.failures],
        "results": [r.as_dict() for r in run.results],
        "duration_seconds": round(run.duration_s, 3),
    }
    return json.dumps(document, indent=2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON document")
    parser.add_argument("--skip-write", action="store_true",
                        help="skip the write/read round trip (read-only health check)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help="per-node connect/read timeout (default %(default)s)")
    limits.add_argument("--max-lag-seconds", type=float, default=DEFAULT_MAX_LAG_SECONDS,
                        metavar="SECONDS",
                        help="replica ack lag that fails the check (default %(default)s)")
    limits.add_argument("--max-lag-bytes", type=int, default=DEFAULT_MAX_LAG_BYTES,
                        metavar="BYTES",
                        help="replication offset lag that warns (default %(default)s)")
    limits.add_argument("--memory-warn-percent", type=float,
                        default=DEFAULT_MEMORY_WARN_PERCENT, metavar="PERCENT",
                        help="used/maxmemory that warns (default %(default)s)")
    limits.add_argument("--memory-fail-percent", type=float,
                        default=DEFAULT_MEMORY_FAIL_PERCENT, metavar="PERCENT",
                        help="used/maxmemory that fails (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    targets = load_targets(args)
    thresholds = Thresholds(
        max_lag_seconds=args.max_lag_seconds,
        max_lag_bytes=args.max_lag_bytes,
        memory_warn_percent=args.memory_warn_percent,
        memory_fail_percent=args.memory_fail_percent,
    )
    result = run_health(targets, timeout_s=args.timeout, thresholds=thresholds,
                        write_read=not args.skip_write)
    print(render_json(result) if args.json else render_table(result))
    return result.exit_code
