"""The stack outputs as a contract, and a redis-py RedisCluster built from them.

Application stacks and services read this stack's outputs (`pulumi.StackReference`, or
`pulumi stack output --json --show-secrets`). Their shape is versioned: `outputs_version` is
exported by __main__.py, and OUTPUTS_SCHEMAS[OUTPUTS_VERSION] describes every output. Changing
an output's shape means a new version and a new schema entry (never editing an old one);
tests/unit/test_outputs_contract.py fails otherwise.

`from_stack_outputs(outputs, location=...)` gives a client for where it runs:

  location        startup nodes             addresses the cluster announces (MOVED/ASK)
  "network"       seed_endpoints            used as they are: container IPs, reachable inside
                  (container IPs)           the Docker network and from a Linux Docker host
  "docker-host"   host_seed_endpoints       mapped to the published port of that node on the
                  (published ports)         host_seed_endpoints address (Docker Desktop, or a
                                            host that cannot route to container IPs)
  "remote"        host_address:host_port    mapped to host_address:host_port; the stack must
                                            publish on an address that client reaches
                                            (bindAddress), e.g. 0.0.0.0 behind a firewall

On a Kubernetes stack (outputs `target` "kubernetes") only "network" exists, from a pod of that
Kubernetes cluster: the seeds are the pods' DNS names, which resolve nowhere else. (The outputs'
own `location` record says the same for either target: how the nodes are reached, from where.)

This module imports only redis-py and the standard library: application images can ship it as a
single file (examples/app-stack does). It works with redis-py 4.3 (Debian bookworm's) for
"network"; the two mapped locations need redis-py >= 5 (RedisCluster's address_remap).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.cluster import ClusterNode, RedisCluster

OUTPUTS_VERSION = 4

# Type language: "str", "int", "bool", "endpoint" ("host:port"), a trailing "?" allows null
# or absent (the engine does not store a null stack output: `prometheus_url` without
# deployPrometheus is missing from `pulumi stack output`, while mocks show it as None);
# [schema] is a list of schema; {"key": schema, ...} is a record with exactly these keys;
# {"*": schema} is a map from any string key to schema; {"@variants": "key", "a": schema, ...}
# is a record whose `key` says which schema it has ("a", ...).
OUTPUTS_SCHEMAS: dict[int, dict[str, Any]] = {
    1: {
        "outputs_version": "int",
        "cluster_name": "str",
        "password": "str",  # a Pulumi secret (SECRET_OUTPUTS)
        "network_name": "str",
        "seed_endpoints": ["endpoint"],
        "host_seed_endpoints": ["endpoint"],
        "nodes": [{
            "name": "str", "role": "str", "master": "str?", "ip": "str", "port": "int",
            "host_port": "int", "bus_host_port": "int", "container_name": "str",
        }],
        "exporter_url": "str",
        "exporter_internal_url": "str",
        "prometheus_url": "str?",
        "client_settings": {
            "startup_nodes": [{"host": "str", "port": "int"}],
            "require_full_coverage": "bool",
        },
        "node_ids": {"*": "str"},
        "slot_ranges": {"*": [["int"]]},
        "cluster_state": "str",
        "maxmemory_bytes": "int",
    },
}
# 2: the nodes' Docker host (`host`, the identity replica placement is judged by) and container
# IP (`container_ip`); `ip`/`port` are what a node announces, which with announce host-address is
# its host's address and published port; `announce` says which.
# `tls_ca_cert`: the cluster CA's certificate (PEM) when the nodes speak only TLS, else null.
OUTPUTS_SCHEMAS[2] = {
    **OUTPUTS_SCHEMAS[1],
    "announce": "str",
    "tls_ca_cert": "str?",
    "exporter_urls": ["str"],  # one exporter per Docker host, each scraping every node
    "nodes": [{**OUTPUTS_SCHEMAS[1]["nodes"][0], "container_ip": "str", "host": "str"}],
}
# 3: ACL users (acl: true). `username` is the application user (`password` is its password);
# `admin_username`/`admin_password` are for operators and clusterops (CLUSTER, CONFIG). All
# three are null on a stack without ACL users, where `password` is the default user's.
OUTPUTS_SCHEMAS[3] = {
    **OUTPUTS_SCHEMAS[2],
    "username": "str?",
    "admin_username": "str?",
    "admin_password": "str?",
}
# 4: both targets under the contract, one variant each, told apart by `target`. `location`
# says how to reach the nodes and from where (`reachable_from`). A node's announced host has
# its own key per meaning: `ip` on Docker (an address; `host` stays the Docker host it runs
# on), `dns_name` on Kubernetes (the pod's stable DNS name). Docker: v3 + target + location.
# Kubernetes: node_ids is an empty map, because only the bootstrap Job learns the ids (its
# report) and pulumi-kubernetes hands nothing of a Job's output back to the program.
_COMMON_V4 = {
    key: OUTPUTS_SCHEMAS[3][key] for key in (
        "outputs_version", "cluster_name", "password", "seed_endpoints", "exporter_internal_url",
        "client_settings", "node_ids", "slot_ranges", "cluster_state", "maxmemory_bytes",
        "tls_ca_cert", "username", "admin_username", "admin_password")
}
OUTPUTS_SCHEMAS[4] = {
    "@variants": "target",
    "docker": {
        **OUTPUTS_SCHEMAS[3],
        "target": "str",
        "location": {
            "reachable_from": "str",  # "docker-network", or "host-addresses" (announce)
            "network_name": "str",
            "published_endpoints": {"*": "endpoint"},  # node name -> published host:port
        },
    },
    "kubernetes": {
        **_COMMON_V4,
        "target": "str",
        "location": {
            "reachable_from": "str",  # "inside-cluster": pod names resolve nowhere else
            "namespace": "str",
            "headless_service": "str",  # the pods' DNS names: <pod>.<this>.<namespace>.svc
            "client_service": "str",
            "client_endpoint": "endpoint",  # the client Service, a seed for cluster clients
            "client_pod_label": "str",  # pods of other namespaces need it (NetworkPolicy)
            "auth_secret": "str",  # the Secret holding the password (key `password`)
            "tools_image": "str",  # an image with clusterops: operator commands run in its pods
        },
        "nodes": [{
            "name": "str", "role": "str", "master": "str?", "dns_name": "str", "port": "int",
            "pod": "str", "statefulset": "str", "shard": "int",
        }],
        "bootstrap_job": "str",
        "render_dir": "str?",
    },
}
SUPPORTED_VERSIONS = tuple(sorted(OUTPUTS_SCHEMAS))
SECRET_OUTPUTS = frozenset({"password", "admin_password"})

LOCATIONS: tuple[str, ...] = ("network", "docker-host", "remote")
Address = tuple[str, int]


class OutputsContractError(ValueError):
    """The outputs do not match what this module understands; the message names the fix."""


def schema_problems(value: Any, schema: Any, path: str = "outputs") -> list[str]:
    """Every place where `value` does not have the shape `schema` describes."""
    if isinstance(schema, str):
        nullable = schema.endswith("?")
        kind = schema.rstrip("?")
        if value is None:
            return [] if nullable else [f"{path}: null, expected {kind}"]
        checks = {
            "str": lambda v: isinstance(v, str),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "bool": lambda v: isinstance(v, bool),
            "endpoint": lambda v: isinstance(v, str) and _ENDPOINT.fullmatch(v) is not None,
        }
        return [] if checks[kind](value) else [f"{path}: {value!r} is not {kind}"]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, expected a list"]
        return [p for i, item in enumerate(value)
                for p in schema_problems(item, schema[0], f"{path}[{i}]")]
    if not isinstance(value, Mapping):
        return [f"{path}: {type(value).__name__}, expected an object"]
    if "@variants" in schema:
        key = schema["@variants"]
        variants = sorted(k for k in schema if k != "@variants")
        if value.get(key) not in variants:
            return [f"{path}.{key}: {value.get(key)!r} is not one of {', '.join(variants)}"]
        return schema_problems(value, schema[value[key]], path)
    if set(schema) == {"*"}:
        return [p for key, item in value.items()
                for p in schema_problems(item, schema["*"], f"{path}.{key}")]
    problems = [f"{path}.{key}: missing" for key in schema
                if key not in value and not _nullable(schema[key])]
    problems += [f"{path}.{key}: not in the schema" for key in value if key not in schema]
    problems += [p for key in schema if key in value
                 for p in schema_problems(value[key], schema[key], f"{path}.{key}")]
    return problems


_ENDPOINT = re.compile(r"[^\s:]+:\d{1,5}")


def _nullable(schema: Any) -> bool:
    return isinstance(schema, str) and schema.endswith("?")


def parse_endpoint(endpoint: str) -> Address:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


@dataclass(frozen=True)
class ConnectionPlan:
    """Where a client at `location` starts, and how it rewrites the addresses Redis announces."""

    location: str
    startup_nodes: list[Address]
    address_map: dict[Address, Address] = field(default_factory=dict)

    def remap(self, address: Address) -> Address:
        return self.address_map.get(address, address)


def _integer(value: Any) -> Any:
    """Numbers read through a StackReference are protobuf doubles (6379 -> 6379.0)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def check_version(outputs: Mapping[str, Any]) -> None:
    """Every released version is understood: the addresses a client needs (seed_endpoints,
    host_seed_endpoints, the nodes' ip/port/host_port) kept their meaning since version 1."""
    version = _integer(outputs.get("outputs_version"))
    if version not in SUPPORTED_VERSIONS:
        raise OutputsContractError(
            f"the stack outputs have outputs_version {version!r}; this client understands "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}. Fix: use the clusterops/client.py of "
            "the cluster's deployed revision (or redeploy the cluster stack so it exports "
            "outputs_version)"
        )


def connection_plan(outputs: Mapping[str, Any], location: str = "network",
                    host_address: str | None = None) -> ConnectionPlan:
    """The startup nodes and address map for a client at `location` (see the module doc)."""
    check_version(outputs)
    if location not in LOCATIONS:
        raise OutputsContractError(
            f"location {location!r} is unknown. Fix: use one of {', '.join(LOCATIONS)}")
    nodes = outputs["nodes"]
    if location == "network":
        return ConnectionPlan(location, [parse_endpoint(e) for e in outputs["seed_endpoints"]])
    if outputs.get("target") == "kubernetes":
        raise OutputsContractError(
            f"location {location!r} needs published ports, and a Kubernetes stack has none: its "
            "nodes are reachable only inside the Kubernetes cluster. Fix: run the client in a "
            "pod there (another namespace's pod needs the label in location.client_pod_label) "
            "and use location='network'")
    if location == "docker-host":
        published = [parse_endpoint(e) for e in outputs["host_seed_endpoints"]]
        host = published[0][0]
    else:
        if not host_address:
            raise OutputsContractError(
                "location 'remote' needs host_address: the Docker host's address as this client "
                "reaches it (the stack must publish there: bindAddress)")
        host = host_address
        published = [(host, _integer(node["host_port"])) for node in nodes]
    address_map = {(node["ip"], _integer(node["port"])): (host, _integer(node["host_port"]))
                   for node in nodes}
    return ConnectionPlan(location, published, address_map)


def from_stack_outputs(outputs: Mapping[str, Any], location: str = "network", *,
                       host_address: str | None = None, password: str | None = None,
                       **redis_options: Any) -> RedisCluster:
    """A RedisCluster for a client at `location`, from the cluster stack's outputs (with the
    password shown: `pulumi stack output --json --show-secrets`, or a StackReference's value).
    `password` overrides the outputs' one; `redis_options` go to RedisCluster. With ACL users the
    client is the application user (`username`), which may not run admin commands."""
    plan = connection_plan(outputs, location, host_address)
    options: dict[str, Any] = {
        "startup_nodes": [ClusterNode(host, port) for host, port in plan.startup_nodes],
        "password": password if password is not None else outputs["password"],
        "username": outputs.get("username"),
        "require_full_coverage": outputs.get("client_settings", {}).get(
            "require_full_coverage", True),
        **redis_options,
    }
    if outputs.get("tls_ca_cert"):
        # Every node speaks only TLS: trust the cluster's CA, check the node's name.
        options = {"ssl": True, "ssl_ca_data": outputs["tls_ca_cert"],
                   "ssl_cert_reqs": "required", "ssl_check_hostname": True, **options}
    if plan.address_map:
        if "address_remap" not in inspect.signature(RedisCluster.__init__).parameters:
            raise OutputsContractError(
                f"location {location!r} rewrites the nodes' announced addresses, which needs "
                "redis-py >= 5 (RedisCluster(address_remap=...)). Fix: upgrade redis-py, or run "
                "the client inside the cluster's Docker network (location='network')")
        options["address_remap"] = plan.remap
    return RedisCluster(**options)
