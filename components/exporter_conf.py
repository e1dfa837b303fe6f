"""What the redis_exporter container runs and what Prometheus needs to scrape it. Pure code.

Why multi-target (one exporter, every node scraped through ``/scrape?target=redis://IP:6379``):

- One container and one secret file for the whole cluster instead of a sidecar per node.
- Each node is still scraped on its own: a dead node shows up as ``redis_up 0`` under its own
  ``instance``/``node`` labels while the other nodes keep reporting, which is exactly what the
  node-down rule needs. A single-address exporter (``--redis.addr``) would watch one node only.
- Labels come from the plan, not from whatever the node says about itself: every target carries
  ``node`` (the planned name), ``planned_role`` and ``cluster``, so rules can compare the live
  roles with the planned ones (fewer masters than planned, failover happened).
- ``--is-cluster`` does not help here: in exporter 1.45 it only changes how key-level checks
  (``--check-keys``) are looked up; it does not make the exporter scrape the other nodes.

The password never reaches the exporter's command line or environment (``docker inspect`` shows
both). It goes into a JSON password file, the only format the Debian 1.45.0 binary accepts for
``--redis.password-file``: a JSON object mapping the exact target URI (``redis://IP:PORT``,
scheme included) to the password. Checked by running that binary: a plain-text file makes it exit
at start-up ("password file format error"), and keys without ``redis://`` load but never match,
so every scrape reports ``redis_up 0`` (NOAUTH). The exporter adds ``redis://`` to a target given
without a scheme before the lookup, so the URIs below are written with the scheme on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

DEFAULT_EXPORTER_PORT = 9121
# Where the exporter finds its password file: the component mounts a read-only secrets
# volume on this directory (components/secret_files.py).
EXPORTER_PASSWORD_FILE = "/etc/redis_exporter/passwords.json"
# Below Prometheus' default 10 s scrape timeout: a dead node's IP in Docker does not refuse the
# connection, it just stays silent, and the exporter's default 15 s would time out the whole scrape.
EXPORTER_CONNECTION_TIMEOUT = "5s"

EXPORTER_CA_FILE = "ca.crt"  # with TLS, the cluster CA beside the password file
NODES_JOB = "redis_nodes"
EXPORTER_JOB = "redis_exporter"

NodeDict = Mapping[str, Any]


def node_target_uri(node: NodeDict) -> str:
    """The target URI of one node: the same string in the scrape config and the password file.
    ``rediss://`` for a node that only speaks TLS (the node dict says ``"tls": True``)."""
    scheme = "rediss" if node.get("tls") else "redis"
    return f"{scheme}://{node['ip']}:{int(node['port'])}"


def exporter_args(
    listen_port: int = DEFAULT_EXPORTER_PORT,
    password_file: str = EXPORTER_PASSWORD_FILE,
    listen_host: str = "0.0.0.0",
    connection_timeout: str = EXPORTER_CONNECTION_TIMEOUT,
    tls_ca_file: str | None = None,
    user: str | None = None,
) -> list[str]:
    """Arguments for the redis_exporter binary (the image's entrypoint); no secret among them.

    ``--redis.addr=`` (empty) turns off the default single target (redis://localhost:6379), so
    ``/metrics`` only describes the exporter itself and every node goes through ``/scrape``.
    """
    if not 1 <= int(listen_port) <= 65535:
        raise ValueError(f"exporter listen port {listen_port} is not a TCP port")
    if not password_file:
        raise ValueError("the exporter needs a password file path")
    return [
        "--redis.addr=",
        f"--redis.password-file={password_file}",
        f"--web.listen-address={listen_host}:{int(listen_port)}",
        f"--connection-timeout={connection_timeout}",
        "--log-format=json",
        # With TLS: rediss:// targets, checked against the cluster's CA (1.45's flag).
        *([f"--tls-ca-cert-file={tls_ca_file}"] if tls_ca_file else []),
        # With ACL users: the read-only exporter user (its password is in the password file).
        *([f"--redis.user={user}"] if user else []),
    ]


def exporter_password_file(nodes: Sequence[NodeDict], password: str) -> str:
    """JSON content of ``--redis.password-file``: ``{"redis://IP:PORT": password, ...}``."""
    if not password:
        raise ValueError("the cluster password is empty")
    _check_nodes(nodes)
    mapping = {node_target_uri(node): password for node in nodes}
    return json.dumps(mapping, indent=2, sort_keys=True) + "\n"


def prometheus_config(
    nodes: Sequence[NodeDict],
    exporter_address: str,
    rules_files: Sequence[str],
    cluster_name: str = "alphapulse",
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
    scrape_timeout: str = "10s",
) -> str:
    """prometheus.yml text: every node via the exporter's ``/scrape``, the exporter itself, rules.

    ``exporter_address`` is host:port as Prometheus reaches the exporter (the exporter's IP on
    the cluster network for an in-stack Prometheus, 127.0.0.1:PORT on the Docker host).
    """
    _check_nodes(nodes)
    if ":" not in exporter_address:
        raise ValueError(f"exporter address {exporter_address!r} must be host:port")
    node_targets = [
        {
            "targets": [node_target_uri(node)],
            "labels": {
                "node": str(node["name"]),
                "planned_role": str(node["role"]),
                "cluster": cluster_name,
            },
        }
        for node in nodes
    ]
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
            "scrape_timeout": scrape_timeout,
        },
        "rule_files": list(rules_files),
        "scrape_configs": [
            {
                "job_name": NODES_JOB,
                "metrics_path": "/scrape",
                "static_configs": node_targets,
                "relabel_configs": [
                    # The redis URI becomes the ?target= parameter ...
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    # ... instance is the node's address without the scheme ...
                    {
                        "source_labels": ["__param_target"],
                        "regex": "rediss?://(.+)",
                        "target_label": "instance",
                        "replacement": "$1",
                    },
                    # ... and the HTTP request itself goes to the exporter.
                    {"target_label": "__address__", "replacement": exporter_address},
                ],
            },
            {
                "job_name": EXPORTER_JOB,
                "static_configs": [
                    {"targets": [exporter_address], "labels": {"cluster": cluster_name}}
                ],
            },
        ],
    }
    if _shorter_than(scrape_interval, scrape_timeout):
        # Prometheus refuses a timeout longer than the interval; short test intervals need this.
        config["global"]["scrape_timeout"] = scrape_interval
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def _check_nodes(nodes: Sequence[NodeDict]) -> None:
    if not nodes:
        raise ValueError("no nodes to monitor")
    problems = []
    seen_names: set[str] = set()
    seen_targets: set[str] = set()
    for index, node in enumerate(nodes):
        missing = [key for key in ("name", "role", "ip", "port") if node.get(key) in (None, "")]
        if missing:
            problems.append(f"node #{index} lacks {', '.join(missing)}")
            continue
        if node["role"] not in ("master", "replica"):
            problems.append(f"{node['name']}: role {node['role']!r} is not master or replica")
        if node["name"] in seen_names:
            problems.append(f"{node['name']}: duplicate node name")
        target = node_target_uri(node)
        if target in seen_targets:
            problems.append(f"{node['name']}: duplicate address {target}")
        seen_names.add(node["name"])
        seen_targets.add(target)
    if problems:
        raise ValueError("; ".join(problems))


_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def _seconds(duration: str) -> float:
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit) and duration[: -len(unit)].isdigit():
            return int(duration[: -len(unit)]) * _UNIT_SECONDS[unit]
    raise ValueError(f"duration {duration!r}: use a whole number with ms, s, m or h")


def _shorter_than(first: str, second: str) -> bool:
    return _seconds(first) < _seconds(second)
