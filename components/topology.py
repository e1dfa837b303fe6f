"""The node plan: names, roles, ports, static IPs and slot ranges, computed once from the spec.

Pure code. Every later step (redis.conf, containers, bootstrap, outputs, operator tools) reads
this plan; nothing re-derives names, ports or slots on its own. A PlannedNode is the Docker
placement of a node; :meth:`PlannedNode.target` turns it into clusterops' one node type.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from clusterops.core.model import BUS_PORT_OFFSET, NodeTarget, SlotRange, split_slots
from components.hosts import DEFAULT_HOST_NAME, host_index
from components.layout import FIRST_NODE_HOST_OFFSET, REDIS_PORT, node_index
from components.spec import ClusterSpec

EXPORTER_HOST_OFFSET = 5
PROMETHEUS_HOST_OFFSET = 6


@dataclass(frozen=True)
class PlannedNode:
    name: str  # container name, hostname and the node's name in every output
    role: str  # planned role: "master" or "replica"
    ordinal: int  # the N of master-N / replica-N
    ip: str  # static IP on the cluster network: nodes.conf survives a full restart
    port: int  # client port inside the container
    bus_port: int
    host_port: int  # published client port on the Docker host
    host_bus_port: int
    volume_name: str
    slots: tuple[SlotRange, ...] = ()  # masters only
    master: str | None = None  # replicas only: the master it follows
    host: str = DEFAULT_HOST_NAME  # the Docker host it runs on (components/hosts.py)
    # With announce host-address: the host's address, which the node announces with its
    # published ports. None: the node announces its container IP and port.
    host_address: str | None = None

    @property
    def is_master(self) -> bool:
        return self.role == "master"

    @property
    def announce_ip(self) -> str:
        """The address the cluster, its clients and MOVED/ASK redirections know this node by."""
        return self.host_address or self.ip

    @property
    def announce_port(self) -> int:
        return self.host_port if self.host_address else self.port

    @property
    def announce_bus_port(self) -> int:
        return self.host_bus_port if self.host_address else self.bus_port

    def target(self, host: str, port: int) -> NodeTarget:
        """This node in clusterops' terms, reached by the deploying process at host:port.

        The one conversion from the Docker placement to the cluster vocabulary: the cluster
        knows the node at its static IP and container port.
        """
        return NodeTarget(
            name=self.name, host=host, port=port, cluster_host=self.announce_ip,
            cluster_port=self.announce_port, role=self.role, master=self.master,
            slots=self.slots, container_name=self.name, machine=self.host,
        )


@dataclass(frozen=True)
class ClusterPlan:
    nodes: tuple[PlannedNode, ...]
    gateway_ip: str
    exporter_ip: str
    prometheus_ip: str

    @property
    def masters(self) -> tuple[PlannedNode, ...]:
        return tuple(n for n in self.nodes if n.is_master)

    @property
    def replicas(self) -> tuple[PlannedNode, ...]:
        return tuple(n for n in self.nodes if not n.is_master)

    def node(self, name: str) -> PlannedNode:
        for candidate in self.nodes:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


def plan_cluster(spec: ClusterSpec) -> ClusterPlan:
    """Masters first (master-1..M), then replicas: replica-k follows master-((k-1) % M + 1).

    Addresses and host ports come from :func:`components.layout.node_index`: stable when
    ``masters`` or ``replicasPerMaster`` change, so scaling only adds or removes nodes.

    With one replica per master this is the guide's layout: replica-1 follows master-1, etc.
    Every node gets its own container, volume and IP, so no replica shares a container with
    its master; with several hosts, never a host either (components/hosts.py).
    """
    network = ipaddress.ip_network(spec.subnet)
    slot_ranges = split_slots(spec.masters)
    nodes: list[PlannedNode] = []

    hosts = spec.hosts

    def make(role: str, ordinal: int, **extra: object) -> PlannedNode:
        name = f"{spec.name_prefix}-redis-{role}-{ordinal}"
        index = node_index(role, ordinal)
        host = hosts[host_index(role, ordinal, spec.masters, len(hosts))] if hosts else None
        return PlannedNode(
            name=name,
            role=role,
            ordinal=ordinal,
            ip=str(network[FIRST_NODE_HOST_OFFSET + index]),
            port=REDIS_PORT,
            bus_port=REDIS_PORT + BUS_PORT_OFFSET,
            host_port=spec.base_port + index,
            host_bus_port=spec.base_port + index + BUS_PORT_OFFSET,
            volume_name=f"{name}-data",
            host=host.name if host else DEFAULT_HOST_NAME,
            host_address=host.address if host and spec.announces_host_address else None,
            **extra,  # type: ignore[arg-type]
        )

    for m in range(spec.masters):
        nodes.append(make("master", m + 1, slots=(slot_ranges[m],)))
    for r in range(spec.masters * spec.replicas_per_master):
        master_name = nodes[r % spec.masters].name
        nodes.append(make("replica", r + 1, master=master_name))

    return ClusterPlan(
        nodes=tuple(nodes),
        gateway_ip=str(network[1]),
        exporter_ip=str(network[EXPORTER_HOST_OFFSET]),
        prometheus_ip=str(network[PROMETHEUS_HOST_OFFSET]),
    )
