"""The planned cluster as plain data, and the checks that make a plan valid.

Pure code, no I/O. A plan is a sequence of :class:`NodeTarget`; masters carry slot ranges,
replicas name the master they follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CLUSTER_SLOTS = 16384
BUS_PORT_OFFSET = 10000
MIN_MASTERS = 3
ROLES = ("master", "replica")

SlotRange = tuple[int, int]


@dataclass(frozen=True)
class NodeTarget:
    """One planned node: where we reach it, how the cluster reaches it, and its planned role."""

    name: str  # e.g. "alphapulse-redis-master-1"
    role: str  # "master" | "replica"
    admin_host: str  # where THIS process connects (container IP on Linux, 127.0.0.1 in tests)
    admin_port: int
    cluster_host: str  # the IP other nodes reach it at (used for CLUSTER MEET)
    cluster_port: int  # client port other nodes use; bus port = cluster_port + 10000
    slots: tuple[SlotRange, ...] = ()  # masters only, inclusive ranges
    master: str | None = None  # replicas only: name of the master it follows

    @property
    def is_master(self) -> bool:
        return self.role == "master"

    @property
    def bus_port(self) -> int:
        return self.cluster_port + BUS_PORT_OFFSET

    @property
    def admin_address(self) -> str:
        return f"{self.admin_host}:{self.admin_port}"

    @property
    def cluster_address(self) -> str:
        return f"{self.cluster_host}:{self.cluster_port}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeTarget:
        """Build from the plain-JSON shape used by the Pulumi resource (slots as [[a, b], ...])."""
        return cls(
            name=str(data["name"]),
            role=str(data["role"]),
            admin_host=str(data["admin_host"]),
            admin_port=int(data["admin_port"]),
            cluster_host=str(data["cluster_host"]),
            cluster_port=int(data["cluster_port"]),
            slots=tuple((int(a), int(b)) for a, b in (data.get("slots") or ())),
            master=data.get("master") or None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "admin_host": self.admin_host,
            "admin_port": self.admin_port,
            "cluster_host": self.cluster_host,
            "cluster_port": self.cluster_port,
            "slots": [[a, b] for a, b in self.slots],
            "master": self.master,
        }


@dataclass(frozen=True)
class ClusterReport:
    """What :func:`clusterops.formation.form_cluster` did and what the cluster looks like now."""

    action: str  # "created", "resumed" or "adopted"
    node_ids: dict[str, str]  # planned name -> node id
    slot_ranges: dict[str, list[list[int]]]  # planned master name -> ranges its shard serves
    live_roles: dict[str, str]  # planned name -> live role (a failover may have swapped them)
    state: str  # "ok"
    elapsed_s: float = 0.0
    commands: list[str] = field(default_factory=list)  # admin commands sent (no secrets)


def masters_of(nodes: Iterable[NodeTarget]) -> list[NodeTarget]:
    return [node for node in nodes if node.is_master]


def replicas_of(nodes: Iterable[NodeTarget], master_name: str) -> list[NodeTarget]:
    return [node for node in nodes if not node.is_master and node.master == master_name]


def shard_of(nodes: Sequence[NodeTarget], node: NodeTarget) -> NodeTarget:
    """The planned master whose shard ``node`` belongs to (itself for a master)."""
    if node.is_master:
        return node
    for candidate in nodes:
        if candidate.name == node.master:
            return candidate
    raise KeyError(f"{node.name} follows unknown master {node.master!r}")


def merge_ranges(slots: Iterable[int]) -> list[list[int]]:
    """Sorted slot numbers -> inclusive [[first, last], ...] ranges."""
    ranges: list[list[int]] = []
    for slot in sorted(set(slots)):
        if ranges and slot == ranges[-1][1] + 1:
            ranges[-1][1] = slot
        else:
            ranges.append([slot, slot])
    return ranges


def expand_ranges(ranges: Iterable[Sequence[int]]) -> set[int]:
    slots: set[int] = set()
    for first, last in ranges:
        slots.update(range(first, last + 1))
    return slots


def plan_problems(nodes: Sequence[NodeTarget]) -> list[tuple[str, str]]:
    """Every structural problem of a plan as (field, reason); empty when the plan is valid.

    Checks: >= 3 masters; roles; unique names and addresses; replicas follow a planned master
    and carry no slots; masters' slot ranges are valid, disjoint and cover all 16384 slots.
    """
    problems: list[tuple[str, str]] = []
    names = [node.name for node in nodes]
    master_names = {node.name for node in nodes if node.is_master}

    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(("name", f"node name {name!r} is used more than once"))
    for label, key in (("admin", "admin_address"), ("cluster", "cluster_address")):
        addresses = [getattr(node, key) for node in nodes]
        for address in sorted({a for a in addresses if addresses.count(a) > 1}):
            users = [node.name for node in nodes if getattr(node, key) == address]
            problems.append(
                (f"{label}_host", f"{label} address {address} is used by {', '.join(users)}")
            )

    for node in nodes:
        if node.role not in ROLES:
            problems.append(("role", f"{node.name}: role {node.role!r} is not one of {ROLES}"))
        for label, port in (("admin_port", node.admin_port), ("cluster_port", node.cluster_port)):
            if not 1 <= port <= 65535 - (BUS_PORT_OFFSET if label == "cluster_port" else 0):
                problems.append((label, f"{node.name}: {label} {port} is out of range"))
        if node.role == "replica":
            if node.slots:
                problems.append(("slots", f"replica {node.name} must not own slots"))
            if node.master not in master_names:
                problems.append(
                    ("master", f"replica {node.name} follows {node.master!r}, "
                               "which is not a planned master")
                )
        if node.role == "master" and node.master:
            problems.append(("master", f"master {node.name} must not name a master"))

    if len(master_names) < MIN_MASTERS:
        problems.append(
            ("role", f"{len(master_names)} master(s) planned; Redis Cluster needs at least "
                     f"{MIN_MASTERS} for failover majority")
        )

    owner: dict[int, str] = {}
    for node in masters_of(nodes):
        if not node.slots:
            problems.append(("slots", f"master {node.name} has no slots"))
        for first, last in node.slots:
            if not 0 <= first <= last < CLUSTER_SLOTS:
                problems.append(("slots", f"{node.name}: bad slot range [{first}, {last}]"))
                continue
            clashes = {owner[s] for s in range(first, last + 1) if s in owner}
            if clashes:
                problems.append(
                    ("slots", f"{node.name}: slots {first}-{last} overlap "
                              f"{', '.join(sorted(clashes))}")
                )
            for slot in range(first, last + 1):
                owner.setdefault(slot, node.name)
    if master_names and len(owner) != CLUSTER_SLOTS:
        missing = merge_ranges(set(range(CLUSTER_SLOTS)) - set(owner))
        shown = ", ".join(f"{a}-{b}" for a, b in missing[:5])
        problems.append(
            ("slots", f"{CLUSTER_SLOTS - len(owner)} slot(s) not assigned to any master: {shown}")
        )
    return problems
