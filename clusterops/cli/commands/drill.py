"""``python -m clusterops drill``: failover drills on the chosen masters, as a report.

Exit code: 0 when every drill passed; 1 when one failed the bar (recovery over
``--max-recovery-seconds``, an acknowledged write lost, no rejoin) or the cluster was not
ready; usage, target, control and authentication errors exit 2 (raised for the CLI).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict

import redis

from clusterops.cli.commands import progress_to_stderr, table
from clusterops.cli.targets import Targets, add_target_arguments, load_targets
from clusterops.core.errors import AuthError, ClusterOpsError, DrillError, UsageError
from clusterops.node.access import Access
from clusterops.tasks.drill import (
    DEFAULT_MAX_RECOVERY_S,
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_READY_TIMEOUT_S,
    DEFAULT_RECOVERY_TIMEOUT_S,
    DEFAULT_REJOIN_TIMEOUT_S,
    MODES,
    DrillResult,
    live_masters,
    run_master_failure_drill,
)
from clusterops.tasks.node_control import CommandNodeControl, DockerNodeControl, NodeControl
from clusterops.tasks.writes import DEFAULT_WAIT_TIMEOUT_MS, Connections


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    drill = parser.add_argument_group("drill")
    drill.add_argument(
        "--master", required=True, metavar="NAME|all",
        help="the master to fault, or 'all' for every current master in turn",
    )
    drill.add_argument("--mode", choices=MODES, default="kill",
                       help="kill (SIGKILL), stop (graceful) or partition (isolate) [kill]")
    drill.add_argument(
        "--max-recovery-seconds", type=float, default=DEFAULT_MAX_RECOVERY_S, metavar="S",
        help=f"fail when client-observed recovery exceeds this [{DEFAULT_MAX_RECOVERY_S:g}]",
    )
    drill.add_argument(
        "--control-command", metavar="CMD",
        help="program that injects faults, called as `CMD ACTION NODE` with ACTION one of "
        "kill/stop/start/isolate/heal (default: Docker, from the stack outputs)",
    )
    drill.add_argument("--hold-seconds", type=float, default=0.0, metavar="S",
                       help="keep the fault in place this long after recovery [0]")
    drill.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL_S,
                       metavar="S", help=f"recovery probe interval [{DEFAULT_POLL_INTERVAL_S:g}]")
    drill.add_argument("--wait-timeout-ms", type=int, default=DEFAULT_WAIT_TIMEOUT_MS,
                       metavar="MS", help=f"WAIT 1 timeout per write [{DEFAULT_WAIT_TIMEOUT_MS}]")
    drill.add_argument("--recovery-timeout", type=float, default=DEFAULT_RECOVERY_TIMEOUT_S,
                       metavar="S", help="give up waiting for recovery after this long")
    drill.add_argument("--rejoin-timeout", type=float, default=DEFAULT_REJOIN_TIMEOUT_S,
                       metavar="S", help="give up waiting for the node to rejoin after this long")
    drill.add_argument("--ready-timeout", type=float, default=DEFAULT_READY_TIMEOUT_S,
                       metavar="S", help="give up waiting for a drill-ready cluster after this")
    drill.add_argument("--json", action="store_true", help="print the report as JSON")
    # Set by clusterops/cli/in_pod.py in the tools pod of a Kubernetes stack: each fault is
    # asked of the command that started the pod (clusterops/cli/pod_control.py).
    drill.add_argument("--control-relay", action="store_true", help=argparse.SUPPRESS)


def build_control(args: argparse.Namespace, targets: Targets) -> NodeControl:
    if getattr(args, "control_relay", False):
        from clusterops.cli.pod_control import RelayNodeControl

        return RelayNodeControl()
    if getattr(args, "control_command", None):
        return CommandNodeControl(args.control_command)
    if not targets.network_name:
        raise UsageError(
            "no way to inject faults: give --control-command CMD, or --stack-outputs/--stack "
            "of a Docker deployment (they name the network and containers)"
        )
    return DockerNodeControl(targets)


def run(args: argparse.Namespace) -> int:
    """Drill each chosen master; 1 when any drill fails the bar.

    An error that stops the drills is raised for the CLI to print (exit 1, or 2 for usage,
    target and auth errors) after the report of the drills done so far; a JSON report names
    it too, so a consumer of stdout alone still sees why it stopped.
    """
    targets = load_targets(args)
    control = build_control(args, targets)
    results: list[DrillResult] = []
    report = render_json if args.json else render_table
    try:
        for master in _masters_to_drill(targets, args.master):
            if not args.json:
                progress_to_stderr(f"drilling {master} ({args.mode}) ...")
            results.append(
                run_master_failure_drill(
                    targets, control, master, args.mode,
                    poll_interval_s=args.poll_interval,
                    wait_timeout_ms=args.wait_timeout_ms,
                    recovery_timeout_s=args.recovery_timeout,
                    rejoin_timeout_s=args.rejoin_timeout,
                    ready_timeout_s=args.ready_timeout,
                    hold_s=args.hold_seconds,
                )
            )
    except (ClusterOpsError, redis.RedisError) as exc:
        error = _as_clusterops_error(exc, targets.access)
        if results or args.json:
            print(report(results, args.max_recovery_seconds, str(error)))
        raise error from None
    print(report(results, args.max_recovery_seconds, ""))
    return 1 if any(r.failures(args.max_recovery_seconds) for r in results) else 0


def _as_clusterops_error(exc: Exception, access: Access) -> ClusterOpsError:
    """What stopped the drills, as the error the CLI prints (a RedisError never escapes raw)."""
    if isinstance(exc, ClusterOpsError):
        return exc
    if isinstance(exc, redis.AuthenticationError):
        return AuthError(access.redact(f"the password was refused ({exc})"))
    return DrillError(access.redact(f"{type(exc).__name__}: {exc}"))


def _masters_to_drill(targets: Targets, choice: str) -> list[str]:
    names = [node.name for node in targets.nodes]
    conns = Connections(targets)
    try:
        if choice == "all":
            return live_masters(conns, names)
        if choice not in names:
            raise UsageError(f"unknown node {choice!r}; known: {', '.join(names)}")
        return [choice]
    finally:
        conns.close()


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_table(results: Sequence[DrillResult], max_recovery_s: float, setup_error: str) -> str:
    header = ("master", "mode", "new master", "recovery s", "acked", "acked lost",
              "unacked lost", "indeterminate", "rejoined", "result")
    rows = [header]
    for r in results:
        failed = r.failures(max_recovery_s)
        rows.append((
            r.master, r.mode, r.new_master or "-", _seconds(r.recovery_seconds),
            str(r.acked_writes), str(r.acked_lost), f"{r.unacked_lost}/{r.unacked_accepted}",
            str(r.indeterminate_writes),
            f"yes ({_seconds(r.rejoin_seconds)}s)" if r.rejoined else "NO",
            "FAIL" if failed else "ok",
        ))
    lines = table(rows)
    timeouts = sorted({r.node_timeout_ms for r in results if r.node_timeout_ms is not None})
    if timeouts:
        lines.append(f"cluster-node-timeout: {', '.join(map(str, timeouts))} ms; "
                     f"recovery limit {max_recovery_s:g}s")
    for r in results:
        lines += [f"note {r.master}: {note}" for note in r.notes]
        lines += [f"FAIL {r.master}: {reason}" for reason in r.failures(max_recovery_s)]
    # ``setup_error`` is the CLI's to print (on stderr): the table only reports drills.
    return "\n".join(lines)


def render_json(results: Sequence[DrillResult], max_recovery_s: float, setup_error: str) -> str:
    drills = []
    for r in results:
        entry = asdict(r)
        entry["failures"] = r.failures(max_recovery_s)
        drills.append(entry)
    ok = not setup_error and not any(d["failures"] for d in drills)
    return json.dumps(
        {"ok": ok, "max_recovery_seconds": max_recovery_s, "error": setup_error or None,
         "drills": drills},
        indent=2,
    )
