"""What the Docker and Kubernetes targets declare the same way, defined once.

Both targets deploy the same plan (components/topology.py) with the same images: the ports the
nodes listen on, the images' users, what a client is told to start from and how planned nodes
become the `nodes` output are the same on both. A target supplies only how a node is addressed
(an :class:`AddressedNode` per planned node) and how it is created (its resources).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import pulumi

from clusterops.client import OUTPUTS_VERSION
from clusterops.core.model import BUS_PORT_OFFSET
from components.layout import REDIS_PORT
from components.topology import PlannedNode

# The node's client port and cluster bus port inside its container (or pod).
BUS_PORT = REDIS_PORT + BUS_PORT_OFFSET
EXPORTER_LISTEN_PORT = 9121  # the exporter's metrics port inside its container (or pod)

# The users the images run as: files a container reads are owned by (or group-readable to) them.
REDIS_UID = 999  # the official redis image's redis user
EXPORTER_UID = 59000  # the official oliver006/redis_exporter image's USER
BOOTSTRAP_UID = 65532  # k8s_bootstrap/Dockerfile's USER

MIB = 1024 * 1024


@dataclass(frozen=True)
class AddressedNode:
    """A planned node as one target addresses it.

    `announced_host:announced_port` is what the node announces: what MOVED/ASK redirects name
    and what clients start from. `host_key` is the name the `nodes` output gives that host on
    this target ("ip" on Docker, "dns_name" on Kubernetes: the two mean different things, so
    they are different keys), and `target_fields` the target's own identity fields.
    """

    node: PlannedNode
    announced_host: str
    announced_port: int
    host_key: str
    target_fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"{self.announced_host}:{self.announced_port}"

    def output(self) -> dict[str, Any]:
        """This node as the `nodes` output describes it."""
        return {
            "name": self.node.name,
            "role": self.node.role,
            "master": self.node.master,
            self.host_key: self.announced_host,
            "port": self.announced_port,
            **self.target_fields,
        }


def node_outputs(nodes: Iterable[AddressedNode]) -> list[dict[str, Any]]:
    return [n.output() for n in nodes]


def seed_endpoints(nodes: Iterable[AddressedNode]) -> list[str]:
    return [n.endpoint for n in nodes]


def client_settings(nodes: Iterable[AddressedNode]) -> dict[str, Any]:
    """redis-py RedisCluster settings: start from the masters, refuse a partial slot map."""
    return {
        "startup_nodes": [{"host": n.announced_host, "port": n.announced_port}
                          for n in nodes if n.node.is_master],
        "require_full_coverage": True,
    }


def planned_slot_ranges(nodes: Iterable[PlannedNode]) -> dict[str, list[list[int]]]:
    """Each planned master's slot ranges, as the `slot_ranges` output gives them."""
    return {n.name: [list(r) for r in n.slots] for n in nodes if n.is_master}


def monitored_nodes(nodes: Sequence[AddressedNode], tls: bool) -> list[dict[str, Any]]:
    """The nodes as the exporter addresses them (components/exporter_conf.py keys each node by
    `ip`, whatever the target calls the announced host; rediss:// with TLS)."""
    return [{"name": n.node.name, "role": n.node.role, "ip": n.announced_host,
             "port": n.announced_port, "tls": tls} for n in nodes]


@dataclass(frozen=True, kw_only=True)
class ClusterOutputs:
    """The stack outputs both targets export, each named once: the component registers them
    and __main__.py exports them with one loop (clusterops/client.py: OUTPUTS_SCHEMAS, whose
    variant for each target says which outputs it adds)."""

    target: str  # "docker" or "kubernetes": which variant of the outputs these are
    location: pulumi.Input[dict[str, Any]]  # how to reach the nodes, and from where
    cluster_name: str
    password: pulumi.Output[str]
    seed_endpoints: pulumi.Input[list[str]]
    nodes: pulumi.Input[list[dict[str, Any]]]
    exporter_internal_url: pulumi.Input[str]
    client_settings: pulumi.Input[dict[str, Any]]
    node_ids: pulumi.Input[dict[str, str]]
    slot_ranges: pulumi.Input[dict[str, Any]]
    cluster_state: pulumi.Input[str]
    maxmemory_bytes: int
    tls_ca_cert: pulumi.Input[str | None]
    username: pulumi.Input[str | None]  # the application user (acl: true)
    admin_username: pulumi.Input[str | None]
    admin_password: pulumi.Output[str | None]  # a secret even when null
    outputs_version: int = OUTPUTS_VERSION

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies the values, and an Output is not copyable.
        return {f.name: getattr(self, f.name) for f in fields(self)}
