"""The address layout of the nodes, and the cluster's shape (masters x replicas).

Address layout, stable under scaling: a node's index (its IP is FIRST_NODE_HOST_OFFSET + index,
its host port basePort + index) depends only on its name, never on how many masters or
replicas there are, so adding or removing a shard never moves an existing node (a moved IP
would replace its container and strand its peers' nodes.conf). Masters 1-3 and replicas
1-15 keep the layout every 3-master stack has always had; masters 4+ and replicas 16+ (only
possible with 4+ masters) come after them.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config_reader import ConfigReader

# Addresses below this host offset are kept for the gateway, exporter and Prometheus.
FIRST_NODE_HOST_OFFSET = 11
REDIS_PORT = 6379
MAX_MASTERS = 100
MAX_REPLICAS_PER_MASTER = 5

BASE_MASTERS = 3
_BASE_REPLICAS = BASE_MASTERS * MAX_REPLICAS_PER_MASTER
_EXTRA_MASTERS_INDEX = BASE_MASTERS + _BASE_REPLICAS
_EXTRA_REPLICAS_INDEX = _EXTRA_MASTERS_INDEX + MAX_MASTERS - BASE_MASTERS


def node_index(role: str, ordinal: int) -> int:
    """The address index of master-N / replica-N (see the layout note above)."""
    if role == "master":
        return ordinal - 1 if ordinal <= BASE_MASTERS else _EXTRA_MASTERS_INDEX + ordinal - 4
    if ordinal <= _BASE_REPLICAS:
        return BASE_MASTERS + ordinal - 1
    return _EXTRA_REPLICAS_INDEX + ordinal - _BASE_REPLICAS - 1


def index_span(masters: int, replicas_per_master: int) -> int:
    """1 + the highest address index the nodes of this shape use."""
    replicas = masters * replicas_per_master
    highest = [node_index("master", masters)]
    if replicas:
        highest.append(node_index("replica", replicas))
    return max(highest) + 1


@dataclass(frozen=True)
class Shape:
    """How many masters, and how many replicas follow each."""

    masters: int
    replicas_per_master: int

    @property
    def node_count(self) -> int:
        return self.masters * (1 + self.replicas_per_master)

    @property
    def index_span(self) -> int:
        """Addresses and ports in use span the highest node index, not the node count."""
        return index_span(self.masters, self.replicas_per_master)


def read_shape(reader: ConfigReader) -> Shape:
    """`masters` and `replicasPerMaster`."""
    masters = reader.integer(
        "masters", 3, 3, MAX_MASTERS,
        "Redis Cluster needs at least 3 masters to elect a failover; set masters to 3 or more",
    )
    replicas = reader.integer(
        "replicasPerMaster", 1, 0, MAX_REPLICAS_PER_MASTER,
        f"set replicasPerMaster between 0 and {MAX_REPLICAS_PER_MASTER} (1 gives failover)",
    )
    return Shape(masters=masters, replicas_per_master=replicas)
