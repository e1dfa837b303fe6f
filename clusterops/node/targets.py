"""The nodes an operator task acts on, how to reach them, and what the cluster should look like.

Made by the command line (:mod:`clusterops.cli.targets`: stack outputs, ``--node`` flags) or by a
test; the tasks (health, drill, backup, restore) only read it, so they never depend on how the
targets were given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.cluster import ClusterNode

from clusterops.core.model import NodeTarget
from clusterops.node.access import Access
from clusterops.node.connection import tls_options


@dataclass(frozen=True)
class Targets:
    """Everything an operator command needs to reach the cluster and judge it."""

    nodes: tuple[NodeTarget, ...]
    password: str | None = field(repr=False)
    expected_masters: int
    replicas_per_master: int
    maxmemory_bytes: int | None = None
    cluster_name: str | None = None
    network_name: str | None = None
    node_ids: Mapping[str, str] = field(default_factory=dict)  # planned name -> node id
    source: str = ""  # where the targets came from, for messages

    @property
    def username(self) -> str | None:
        """The ACL user every node is reached as (None: the default user)."""
        return self.nodes[0].username if self.nodes else None

    @property
    def expected_nodes(self) -> int:
        return len(self.nodes)

    @property
    def access(self) -> Access:
        """How this command reaches the nodes: every client is made from it."""
        return Access(self.password)

    def by_name(self, name: str) -> NodeTarget:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def address_map(self) -> dict[tuple[str, int], tuple[str, int]]:
        """Announced (cluster) address -> address this process connects to."""
        return {(n.cluster_host, n.cluster_port): (n.host, n.port) for n in self.nodes}

    def remap(self, address: tuple[str, int]) -> tuple[str, int]:
        """Usable as redis-py ``RedisCluster(address_remap=...)``; unknown addresses pass."""
        return self.address_map().get((address[0], int(address[1])), address)

    def cluster_client_options(self, seeds: Sequence[NodeTarget] | None = None
                               ) -> dict[str, Any]:
        """redis-py ``RedisCluster`` options for reaching these nodes: starting from ``seeds``
        (default: every node), as their user, through the address map, trusting their CA."""
        return {
            "startup_nodes": [ClusterNode(n.host, n.port)
                              for n in (self.nodes if seeds is None else seeds)],
            "username": self.username,
            "password": self.password,
            "address_remap": self.remap,
            **tls_options(self.nodes[0].tls_ca if self.nodes else None),
        }
