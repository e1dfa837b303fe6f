"""The Docker target's settings: published ports, the network and the hosts.

Each reader function returns a frozen value; problems go to the ConfigReader. Ports and the
network are read on either target (their defaults fill ClusterSpec); hosts only on Docker
(read_docker_settings). TLS and ACL users apply to both targets (security_settings.py).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from clusterops.core.model import BUS_PORT_OFFSET
from components.config_reader import ConfigReader
from components.hosts import HostSettings, check_hosts
from components.layout import FIRST_NODE_HOST_OFFSET, Shape

ADMIN_ACCESS_MODES = ("container-ip", "host-ports")


@dataclass(frozen=True)
class PublishedPorts:
    """What the Docker host publishes: node i at base_port + index, bus + BUS_PORT_OFFSET."""

    base_port: int
    exporter_port: int
    prometheus_port: int
    deploy_prometheus: bool
    bind_address: str  # as set; HostSettings.bind_address is the one the stack uses


def read_ports(reader: ConfigReader, shape: Shape) -> PublishedPorts:
    ports = PublishedPorts(
        exporter_port=reader.integer("exporterPort", 9121, 1, 65535, "use a free host port"),
        prometheus_port=reader.integer("prometheusPort", 9090, 1, 65535, "use a free host port"),
        deploy_prometheus=reader.boolean("deployPrometheus", False),
        base_port=reader.integer("basePort", 7001, 1024, 65535,
                                 "use an unprivileged port such as 7001"),
        bind_address=reader.text("bindAddress", "127.0.0.1"),
    )
    try:
        ipaddress.ip_address(ports.bind_address)
    except ValueError:
        reader.fail("bindAddress", f"{ports.bind_address!r} is not an IP address. "
                    "Fix: use 127.0.0.1 (this host only) or 0.0.0.0 (all interfaces)")
    _check_node_ports(reader, ports, shape.index_span)
    return ports


def _check_node_ports(reader: ConfigReader, ports: PublishedPorts, count: int) -> None:
    """`count` ports from basePort (the highest node index, not the node count) and their bus
    ports fit below 65536 and leave the exporter's and Prometheus' ports free."""
    base = ports.base_port
    last_bus = base + count - 1 + BUS_PORT_OFFSET
    if last_bus > 65535:
        reader.fail(
            "basePort",
            f"{base} + {count} nodes puts the last cluster-bus port at {last_bus} (> 65535). "
            f"Fix: set basePort to at most {65535 - BUS_PORT_OFFSET - count + 1}",
        )
    bus = base + BUS_PORT_OFFSET
    node_ports = set(range(base, base + count)) | set(range(bus, bus + count))
    others = [("exporterPort", ports.exporter_port)]
    if ports.deploy_prometheus:
        others.append(("prometheusPort", ports.prometheus_port))
    for key, port in others:
        if port in node_ports:
            reader.fail(
                key,
                f"port {port} collides with a node port (client {base}-{base + count - 1}, bus "
                f"{bus}-{bus + count - 1}). Fix: choose a port outside those ranges or move "
                "basePort",
            )
    if ports.deploy_prometheus and ports.exporter_port == ports.prometheus_port:
        reader.fail("prometheusPort", "equals exporterPort. Fix: give them different ports")


@dataclass(frozen=True)
class DockerNetwork:
    network_name: str
    subnet: str
    admin_access: str  # how the deploying host reaches nodes: container-ip or host-ports


def read_network(reader: ConfigReader, name_prefix: str, shape: Shape) -> DockerNetwork:
    network = DockerNetwork(
        network_name=reader.text("networkName", f"{name_prefix}_redis-cluster"),
        subnet=reader.text("subnet", "172.28.0.0/24"),
        admin_access=reader.choice("adminAccess", "container-ip", ADMIN_ACCESS_MODES),
    )
    _check_subnet(reader, network.subnet, shape)
    return network


def _check_subnet(reader: ConfigReader, subnet: str, shape: Shape) -> None:
    try:
        network = ipaddress.ip_network(subnet, strict=True)
    except ValueError as err:
        reader.fail("subnet", f"{subnet!r} is not an IPv4 network ({err}). Fix: e.g. 172.28.0.0/24")
        return
    if network.version != 4:
        reader.fail("subnet", f"{subnet} is IPv6. Fix: use an IPv4 subnet such as 172.28.0.0/24")
        return
    needed = FIRST_NODE_HOST_OFFSET + shape.index_span + 1  # + broadcast address
    if network.num_addresses < needed:
        prefix = 32
        while 2 ** (32 - prefix) < needed:
            prefix -= 1
        reader.fail(
            "subnet",
            f"{subnet} has {network.num_addresses} addresses but {shape.node_count} nodes need "
            f"{needed} (gateway, exporter, Prometheus, then nodes from host offset "
            f"{FIRST_NODE_HOST_OFFSET}). "
            f"Fix: use a /{prefix} or larger",
        )


@dataclass(frozen=True)
class DockerSettings:
    """What only the Docker target reads: where nodes run."""

    hosts: HostSettings

    @classmethod
    def unused(cls, bind_address: str) -> DockerSettings:
        """The Kubernetes target's: one host (ClusterSpec's defaults)."""
        return cls(hosts=HostSettings(bind_address=bind_address))


def read_docker_settings(reader: ConfigReader, shape: Shape, ports: PublishedPorts
                         ) -> DockerSettings:
    return DockerSettings(hosts=check_hosts(reader, shape, ports.bind_address))
