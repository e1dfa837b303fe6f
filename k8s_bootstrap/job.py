"""Form (or adopt) the planned cluster from inside Kubernetes, then prove ``cluster_state:ok``.

Why a Job and not the dynamic provider: pod IPs are only reachable from inside the cluster, and
the machine that runs ``pulumi up`` usually is not (a port-forward per pod through the API
server would be one fragile tunnel per node). The Job runs the same
:func:`clusterops.provision.formation.form_cluster` as the Docker target's dynamic provider,
so adopt-or-refuse and the validation are the same code; pulumi-kubernetes awaits the Job,
so ``pulumi up`` fails when it fails.

What is different on Kubernetes: a node is named by its stable DNS name, but ``CLUSTER MEET``
takes IP addresses only (Redis 7.0: "Invalid node address specified" for a name) and ``CLUSTER
NODES`` reports IPs. So each name is resolved to the pod's current IP once, at the start, and
the plan handed to clusterops uses those IPs (waiting, until the deadline, for pods whose DNS
record does not exist yet).

Input: ``--plan`` (JSON from the ConfigMap: ``{"nodes": [{name, role, host, port, slots,
master}]}``), ``--password-file`` (the mounted Secret) and ``--timeout``. Output: one JSON line
on stdout (action, node ids, slot ranges, state; never the password), the same summary in
``/dev/termination-log`` (``kubectl describe`` shows it), exit 0; on failure the reason, with
clusterops' exit code for it (:mod:`clusterops.core.errors`: 2 for a refused password, which no
retry fixes, 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis

from clusterops.core.errors import EXIT_FAILED, EXIT_USAGE, ClusterOpsError, redact
from clusterops.core.model import NodeTarget
from clusterops.node.access import Access
from clusterops.provision.engine_check import refuse_other_engine
from clusterops.provision.formation import form_cluster
from k8s_bootstrap.pinned_dns import pinned

TERMINATION_LOG = Path("/dev/termination-log")
RESOLVE_POLL_S = 0.5

Resolver = Callable[[str], str]


class ResolveError(ClusterOpsError):
    """A planned node's DNS name did not resolve before the deadline."""


def resolve_ipv4_or_ipv6(host: str) -> str:
    """The first address the system resolver gives for ``host`` (the pod's current IP)."""
    return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]


def load_plan(path: Path) -> list[dict[str, Any]]:
    document = json.loads(path.read_text())
    nodes = document.get("nodes") if isinstance(document, Mapping) else None
    if not isinstance(nodes, list) or not nodes:
        raise ValueError(f"{path}: no 'nodes' list in the plan")
    return nodes


def resolve_hosts(
    hosts: Sequence[str], deadline: float, resolve: Resolver = resolve_ipv4_or_ipv6
) -> dict[str, str]:
    """Each DNS name's current IP, waiting (until the deadline) for names not published yet."""
    addresses: dict[str, str] = {}
    last_error: dict[str, str] = {}
    while True:
        for host in hosts:
            if host in addresses:
                continue
            try:
                addresses[host] = resolve(host)
            except OSError as exc:
                last_error[host] = str(exc)
        missing = [host for host in dict.fromkeys(hosts) if host not in addresses]
        if not missing:
            return addresses
        if time.monotonic() >= deadline:
            detail = "; ".join(f"{h}: {last_error.get(h, '?')}" for h in missing)
            raise ResolveError(
                f"{len(missing)} planned node name(s) did not resolve in time: {detail}. Are "
                "the StatefulSets' pods scheduled (kubectl get pods), and does the headless "
                "Service publish not-ready addresses?"
            )
        time.sleep(RESOLVE_POLL_S)


def resolve_plan(
    nodes: Sequence[Mapping[str, Any]], deadline: float, resolve: Resolver = resolve_ipv4_or_ipv6
) -> tuple[list[NodeTarget], dict[str, str]]:
    """The plan with each node's cluster address at its pod's current IP (where this process
    connects stays the DNS name: see k8s_bootstrap/pinned_dns.py), and the addresses found."""
    addresses = resolve_hosts([str(node["host"]) for node in nodes], deadline, resolve)
    return [
        NodeTarget.from_dict({
            "name": node["name"],
            "role": node["role"],
            "admin_host": str(node["host"]),
            "admin_port": node["port"],
            "cluster_host": addresses[str(node["host"])],
            "cluster_port": node["port"],
            "slots": node.get("slots") or [],
            "master": node.get("master"),
        })
        for node in nodes
    ], addresses


def _report(payload: Mapping[str, Any], termination_log: Path) -> None:
    line = json.dumps(payload, sort_keys=True)
    print(line, flush=True)
    # Not in a pod (tests, a shell) there is no termination log: stdout is enough.
    with contextlib.suppress(OSError):
        termination_log.write_text(line[:4000])  # the kubelet keeps at most 4096 bytes


def run(
    plan_path: Path,
    password_file: Path,
    timeout_s: float,
    resolve: Resolver = resolve_ipv4_or_ipv6,
    termination_log: Path = TERMINATION_LOG,
    user: str | None = None,
    tls_ca_file: Path | None = None,
    engine: str = "redis",
) -> int:
    """``user``: the ACL user to act as (the admin user, with ACL users); ``tls_ca_file``: the
    cluster CA when the nodes speak only TLS; ``engine``: the server every pod must run
    (clusterops/core/engines.py), checked before anything is written."""
    deadline = time.monotonic() + timeout_s
    password = password_file.read_text().rstrip("\n")
    if not password:
        _report({"error": f"{password_file} is empty"}, termination_log)
        return EXIT_USAGE
    try:
        targets, addresses = resolve_plan(load_plan(plan_path), deadline, resolve)
        tls_ca = tls_ca_file.read_text() if tls_ca_file else None
        targets = [replace(t, username=user, tls_ca=tls_ca) for t in targets]
        with pinned(addresses):
            refuse_other_engine(targets, Access(password), engine,
                                max(1.0, deadline - time.monotonic()))
            report = form_cluster(targets, Access(password),
                                  max(1.0, deadline - time.monotonic()))
    except ClusterOpsError as exc:
        # clusterops redacts the password from every message it builds; its exit code says
        # whether a retry can help (an AuthError cannot), as the CLI's does.
        _report({"error": f"{type(exc).__name__}: {exc}"}, termination_log)
        return exc.exit_code
    except redis.AuthenticationError as exc:
        # What clusterops' CLI exits with for a refused password that reached it unwrapped.
        _report({"error": f"{type(exc).__name__}: {redact(str(exc), password)}"},
                termination_log)
        return EXIT_USAGE
    except ValueError as exc:  # an unreadable plan
        _report({"error": f"{type(exc).__name__}: {exc}"}, termination_log)
        return EXIT_FAILED
    _report(
        {
            "action": report.action,
            "cluster_state": report.state,
            "node_ids": report.node_ids,
            "slot_ranges": report.slot_ranges,
            "live_roles": report.live_roles,
            "addresses": {t.name: t.cluster_address for t in targets},
            "elapsed_s": round(report.elapsed_s, 3),
        },
        termination_log,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s_bootstrap", allow_abbrev=False)
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--password-file", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--user", help="ACL user to act as (default: the default user)")
    parser.add_argument("--tls-ca-file", type=Path, help="the cluster CA (nodes speak TLS)")
    parser.add_argument("--engine", default="redis", choices=("redis", "valkey"),
                        help="the server every pod must run (default: redis)")
    args = parser.parse_args(argv)
    return run(args.plan, args.password_file, args.timeout, user=args.user,
               tls_ca_file=args.tls_ca_file, engine=args.engine)


if __name__ == "__main__":
    sys.exit(main())
