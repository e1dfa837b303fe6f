"""``python -m k8s_bootstrap reconcile``: `pulumi up`'s cluster work, run where the pods are.

The Kubernetes target's dynamic provider (components/k8s_operations.py) starts a pod of this
image and runs this entry in it with one JSON request on stdin (stdin, so that no password is
on a command line, in the pod spec or in an environment):

    {"op": "form" | "update" | "preview", "olds": <property bag> | null, "news": <bag>}
    {"op": "handover", "news": <bag>, "node": <name>}  (before a rolling replacement takes
                                                        that node's pod down)

and optionally "addresses": {DNS name: IP} for names the caller knows better than DNS does.

Bags are those of clusterops.tasks.reconcile, with every node named by its pod's DNS name. Each
name is resolved to the pod's current IP once, here: the node's cluster address becomes that IP
(CLUSTER MEET takes IPs only, and CLUSTER NODES reports IPs), while connections keep the name
and this process looks it up as that IP (k8s_bootstrap/pinned_dns.py: with TLS the name is what
the certificate is checked against). Then the same function as on Docker runs: form, update
(credentials, reshape, settings, verify), the read-only preview, or the handover of one node.

Output: one JSON line on stdout, {"report": {...}} for form and update, {"preview": {"summary":
[...] | null, "refusals": [...]}}, or {"error": "..."} with clusterops' exit code (2 for a
refused password, which no retry fixes). Progress (the reshape's steps) goes to stderr, which
the provider passes on to `pulumi up`'s output. Nothing printed holds a password: clusterops
redacts it from every message it builds, and this redacts both bags' passwords once more.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import redis

from clusterops.core.errors import EXIT_FAILED, EXIT_USAGE, ClusterOpsError, redact
from clusterops.tasks import reconcile
from k8s_bootstrap.job import Resolver, resolve_hosts, resolve_ipv4_or_ipv6
from k8s_bootstrap.pinned_dns import pinned

OPS = ("form", "update", "preview", "handover")
HOST_FIELDS = ("admin_host", "cluster_host")


def _hosts(bag: Mapping[str, Any] | None) -> list[str]:
    return [str(node[f]) for node in (bag or {}).get("nodes") or [] for f in HOST_FIELDS]


def resolved(bag: Mapping[str, Any], addresses: Mapping[str, str]) -> dict[str, Any]:
    """The bag with every node's cluster address at its pod's current IP (where this process
    connects stays the DNS name, looked up as that IP by ``pinned``)."""
    nodes = [{**node, "cluster_host": addresses[str(node["cluster_host"])]}
             for node in bag["nodes"]]
    return {**bag, "nodes": nodes}


def handle(request: Mapping[str, Any], resolve: Resolver = resolve_ipv4_or_ipv6
           ) -> dict[str, Any]:
    """The answer to one request (raises clusterops' errors)."""
    op, olds, news = request.get("op"), request.get("olds"), request.get("news")
    if op not in OPS or not isinstance(news, Mapping) or (op in ("update", "preview") and
                                                          not isinstance(olds, Mapping)):
        raise ValueError(f"a request is {{op: {'|'.join(OPS)}, olds, news}}, got op {op!r}")
    # Names the caller resolved already, from the Kubernetes API: right after a pod was
    # replaced, DNS can still answer with its old IP for a while (caches, endpoint lag).
    known = {str(k): str(v) for k, v in (request.get("addresses") or {}).items()}
    hosts = [host for host in _hosts(olds) + _hosts(news) if host not in known]
    if op == "preview":
        # Pods the change adds do not exist yet: a name that does not resolve stays a name
        # (the node reads as not there), and the preview does not wait for it.
        addresses = {host: _resolved_now(host, resolve) for host in hosts}
    else:
        deadline = time.monotonic() + reconcile.timeout_of(news)
        addresses = resolve_hosts(hosts, deadline, resolve)
    addresses.update(known)
    with pinned({host: ip for host, ip in addresses.items() if host != ip}):
        return _answer(op, request, olds, resolved(news, addresses), addresses)


def _answer(op: str, request: Mapping[str, Any], olds: Mapping[str, Any] | None,
            news: dict[str, Any], addresses: Mapping[str, str]) -> dict[str, Any]:
    if op == "form":
        return {"report": reconcile.report_fields(reconcile.form(news))}
    if op == "handover":
        return {"handover": reconcile.hand_over(news, str(request.get("node")))}
    assert isinstance(olds, Mapping)
    olds = resolved(olds, addresses)
    if op == "update":
        return {"report": reconcile.report_fields(reconcile.update(olds, news))}
    summary, refusals = reconcile.preview(olds, news)
    return {"preview": {"summary": summary, "refusals": refusals}}


def _resolved_now(host: str, resolve: Resolver) -> str:
    try:
        return resolve(host)
    except OSError:
        return host


def _passwords(request: Any) -> list[str]:
    """Every secret a request carries: the admin password and, with ACL users, the
    replication user's (masterauth)."""
    bags = [request.get(k) for k in ("olds", "news")] if isinstance(request, Mapping) else []
    found = []
    for bag in (b for b in bags if isinstance(b, Mapping)):
        acl = bag.get("acl") if isinstance(bag.get("acl"), Mapping) else {}
        found += [v for v in (bag.get("password"), acl.get("masterauth")) if isinstance(v, str)]
    return found


def run(stdin: IO[str], stdout: IO[str], resolve: Resolver = resolve_ipv4_or_ipv6) -> int:
    request: Any = None
    try:
        request = json.loads(stdin.read())
        answer, code = handle(request, resolve), 0
    except ClusterOpsError as exc:
        answer, code = {"error": f"{type(exc).__name__}: {exc}"}, exc.exit_code
    except redis.AuthenticationError as exc:
        answer, code = {"error": f"{type(exc).__name__}: {exc}"}, EXIT_USAGE
    except (ValueError, KeyError, TypeError) as exc:  # a malformed request
        answer, code = {"error": f"{type(exc).__name__}: {exc}"}, EXIT_FAILED
    if "error" in answer:
        answer["error"] = redact(answer["error"], *_passwords(request))
    print(json.dumps(answer, sort_keys=True), file=stdout, flush=True)
    return code


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    return run(sys.stdin, sys.stdout)
