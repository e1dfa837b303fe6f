"""The cluster's vocabulary: the one node type, slot ranges, and what makes a plan valid.

Pure code, no I/O. Every layer speaks these terms: the Pulumi plan (components/topology.py
converts its Docker placement into :class:`NodeTarget` once), formation and verification,
and the operator commands. A plan is a sequence of NodeTargets; masters carry slot ranges,
replicas name the master they follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.crc import REDIS_CLUSTER_HASH_SLOTS as HASH_SLOTS
from redis.crc import key_slot

# Redis puts a node's cluster bus on its client port + 10000 (cluster.h CLUSTER_PORT_INCR).
BUS_PORT_OFFSET = 10000
MIN_MASTERS = 3
ROLES = ("master", "replica")

SlotRange = tuple[int, int]  # inclusive


@dataclass(frozen=True)
class NodeTarget:
    """One node: where THIS process reaches it, where the cluster knows it, its planned role.

    The two addresses differ when the process goes through published ports (Docker Desktop,
    ``--via-host-ports``) while the cluster announces container IPs.
    """

    name: str  # e.g. "alphapulse-redis-master-1"
    host: str  # where this process connects
    port: int
    cluster_host: str  # the address the node announces (CLUSTER NODES, CLUSTER MEET)
    cluster_port: int
    role: str | None = None  # planned role; None where unknown (--node without ROLE)
    master: str | None = None  # replicas: the planned master's name
    slots: tuple[SlotRange, ...] = ()  # masters: planned slot ranges
    container_name: str | None = None  # Docker deployments: for fault injection
    # The machine (Docker host) it runs on, where known: the identity replica placement is
    # judged by. None: unknown, the announced address stands in for it.
    machine: str | None = None
    # The cluster's CA certificate (PEM) when the node speaks only TLS; None: plaintext.
    tls_ca: str | None = field(default=None, repr=False, compare=False)
    # The ACL user this process authenticates as (the admin user with acl: true); None: the
    # default user, which is the only one a stack without ACL users has.
    username: str | None = field(default=None, compare=False)

    @property
    def is_master(self) -> bool:
        return self.role == "master"

    @property
    def bus_port(self) -> int:
        return self.cluster_port + BUS_PORT_OFFSET

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def cluster_address(self) -> str:
        return f"{self.cluster_host}:{self.cluster_port}"

    # The bootstrap resource stores nodes as plain JSON whose address keys are admin_host and
    # admin_port; renaming them would show a change on every deployed stack.
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeTarget:
        """From the bootstrap resource's JSON shape (slots as [[first, last], ...]); a field of
        the wrong type is a ValueError naming it (the providers' check reports it)."""
        for key in ("master", "username"):
            if data.get(key) and not isinstance(data[key], str):
                raise ValueError(f"{key} must be a node name (a string), not {data[key]!r}")
        return cls(
            name=str(data["name"]),
            host=str(data["admin_host"]),
            port=int(data["admin_port"]),
            cluster_host=str(data["cluster_host"]),
            cluster_port=int(data["cluster_port"]),
            role=str(data["role"]),
            master=data.get("master") or None,
            slots=tuple((int(a), int(b)) for a, b in (data.get("slots") or ())),
            username=data.get("username") or None,
        )

    def to_dict(self) -> dict[str, Any]:
        # `username` only where there is one: the nodes of a stack without ACL users keep
        # exactly the shape they were stored with.
        user = {"username": self.username} if self.username else {}
        return {
            **user,
            "name": self.name,
            "role": self.role,
            "admin_host": self.host,
            "admin_port": self.port,
            "cluster_host": self.cluster_host,
            "cluster_port": self.cluster_port,
            "slots": [[a, b] for a, b in self.slots],
            "master": self.master,
        }


@dataclass(frozen=True)
class ClusterReport:
    """What :func:`clusterops.provision.formation.form_cluster` did and what the cluster looks
    like now."""

    action: str  # "created", "resumed" or "adopted"
    node_ids: dict[str, str]  # planned name -> node id
    slot_ranges: dict[str, list[list[int]]]  # planned master name -> ranges its shard serves
    live_roles: dict[str, str]  # planned name -> live role (a failover may have swapped them)
    state: str  # "ok"
    elapsed_s: float = 0.0
    commands: list[str] = field(default_factory=list)  # admin commands sent (no secrets)


def split_slots(masters: int) -> tuple[SlotRange, ...]:
    """Split the hash slots into contiguous ranges the way `redis-cli --cluster create` does.

    redis-cli walks a float cursor of slots/N per master and rounds with lround (half away
    from zero), giving 0-5460, 5461-10922, 10923-16383 for three masters.
    """
    if masters < 1:
        raise ValueError("at least one master is needed to hold slots")
    per_master = HASH_SLOTS / masters
    ranges: list[SlotRange] = []
    first = 0
    cursor = 0.0
    for index in range(masters):
        last = int(cursor + per_master - 1 + 0.5)
        if last > HASH_SLOTS - 1 or index == masters - 1:
            last = HASH_SLOTS - 1
        last = max(last, first)
        ranges.append((first, last))
        first = last + 1
        cursor += per_master
    return tuple(ranges)


def masters_of(nodes: Iterable[NodeTarget]) -> list[NodeTarget]:
    return [node for node in nodes if node.is_master]


def shard_of(nodes: Sequence[NodeTarget], node: NodeTarget) -> NodeTarget:
    """The planned master whose shard ``node`` belongs to (itself for a master)."""
    if node.is_master:
        return node
    for candidate in nodes:
        if candidate.name == node.master:
            return candidate
    raise KeyError(f"{node.name} follows unknown master {node.master!r}")


def shard_members(nodes: Sequence[NodeTarget]) -> dict[str, list[str]]:
    """Planned master name -> the names of its shard's members (itself and its replicas), in
    plan order."""
    members: dict[str, list[str]] = {master.name: [] for master in masters_of(nodes)}
    for node in nodes:
        members[shard_of(nodes, node).name].append(node.name)
    return members


def shard_ids(nodes: Sequence[NodeTarget], ids: Mapping[str, str], master: NodeTarget) -> set[str]:
    """Node ids (``ids``: name -> id, where known) of ``master``'s planned shard."""
    return {ids[name] for name in shard_members(nodes)[master.name] if name in ids}


def merge_ranges(slots: Iterable[int]) -> list[list[int]]:
    """Slot numbers -> sorted inclusive [[first, last], ...] ranges."""
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


def format_ranges(ranges: Iterable[Sequence[int]], limit: int | None = None) -> str:
    """``0-5460,5461`` (at most ``limit`` ranges, then "...")."""
    shown = [f"{a}-{b}" if a != b else str(a) for a, b in ranges]
    if limit is not None and len(shown) > limit:
        shown = [*shown[:limit], "..."]
    return ",".join(shown)


def hash_tags(slot_ranges: Iterable[Sequence[int]], count: int, prefix: str) -> list[str]:
    """``count`` hash tags (``{prefix}N``) whose keys land in ``slot_ranges``, each in its own
    slot: a key ``x:{tag}:y`` is then stored by whoever serves that slot."""
    ranges = [tuple(r) for r in slot_ranges]
    tags: list[str] = []
    used: set[int] = set()
    for index in range(1_000_000):
        slot = key_slot(f"{prefix}{index}".encode())
        if slot not in used and any(first <= slot <= last for first, last in ranges):
            tags.append(f"{prefix}{index}")
            used.add(slot)
            if len(tags) == count:
                return tags
    raise ValueError(f"no {count} hash tags found in slots {format_ranges(ranges)}")


def plan_problems(nodes: Sequence[NodeTarget]) -> list[tuple[str, str]]:
    """Every structural problem of a plan as (field, reason); empty when the plan is valid.

    Checks: >= 3 masters; roles; unique names and addresses; replicas follow a planned master
    and carry no slots; masters' slot ranges are valid, disjoint and cover every hash slot.
    """
    problems: list[tuple[str, str]] = []
    names = [node.name for node in nodes]
    master_names = {node.name for node in nodes if node.is_master}

    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(("name", f"node name {name!r} is used more than once"))
    for label, key in (("admin", "address"), ("cluster", "cluster_address")):
        addresses = [getattr(node, key) for node in nodes]
        for address in sorted({a for a in addresses if addresses.count(a) > 1}):
            users = [node.name for node in nodes if getattr(node, key) == address]
            problems.append(
                (f"{label}_host", f"{label} address {address} is used by {', '.join(users)}")
            )

    for node in nodes:
        if node.role not in ROLES:
            problems.append(("role", f"{node.name}: role {node.role!r} is not one of {ROLES}"))
        for label, port in (("admin_port", node.port), ("cluster_port", node.cluster_port)):
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
            if not 0 <= first <= last < HASH_SLOTS:
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
    if master_names and len(owner) != HASH_SLOTS:
        missing = merge_ranges(set(range(HASH_SLOTS)) - set(owner))
        problems.append(
            ("slots", f"{HASH_SLOTS - len(owner)} slot(s) not assigned to any master: "
                      f"{format_ranges(missing, limit=5)}")
        )
    return problems
