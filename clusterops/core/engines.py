"""Which server a node runs, asked of the server itself: Redis or Valkey, and its version.

A stack names its engine (`engine`: redis | valkey) and an image; nothing here trusts the
image's tag. ``INFO server`` says what runs: Valkey answers ``server_name:valkey`` and
``valkey_version`` (and, for clients that test it, ``redis_version:7.2.4``); Redis answers
``redis_version`` alone. What differs between the engines and versions we support is derived
from that identity, so a later engine or version plugs in here:

- the binary and CLI names (``valkey-server``/``valkey-cli``; Valkey's own images are not
  guaranteed to carry the ``redis-*`` links),
- the RDB format a server writes and reads (a DUMP payload or backup of a newer format is
  refused by an older server: "DUMP payload version or checksum are wrong"),
- whether ``CLUSTER SETSLOT`` waits for the replicas (Valkey 8.0+), which the mover answers by
  sending them over several connections at once,
- whether a server has an atomic slot migration command (none of Redis 7.0/7.2 or Valkey 8.0
  has one; ``COMMAND INFO`` tells, see :func:`atomic_slot_migration`), else the key-by-key
  mover (clusterops/reshape/migrate.py) moves slots, as it does today.

Pure functions over INFO text, except :func:`atomic_slot_migration`, which asks a live node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Engine:
    """One server family: its binaries, and the oldest version whose features we use."""

    name: str
    server_binary: str
    cli_binary: str
    # Cluster-announce-hostname, CONFIG SET of several parameters at once, ACL key selectors
    # and `CLUSTER SHARDS` arrived in Redis 7.0; Valkey began as a fork of 7.2.4.
    minimum_version: tuple[int, int, int]


ENGINES: dict[str, Engine] = {
    "redis": Engine("redis", "redis-server", "redis-cli", (7, 0, 0)),
    "valkey": Engine("valkey", "valkey-server", "valkey-cli", (7, 2, 0)),
}

# Commands that move a slot with its keys in one step, newest first, as each engine names
# them; a server that has one may be used by a later mover. None of our engines has one.
ATOMIC_SLOT_MIGRATION_COMMANDS = ("cluster|migrateslots", "cluster|migration")


def parse_version(text: str) -> tuple[int, int, int]:
    """'7.2.6' -> (7, 2, 6); missing parts are 0; anything unparsable is (0, 0, 0)."""
    parts = (text.split(".") + ["0", "0", "0"])[:3]
    try:
        major, minor, patch = (int(p) for p in parts)
    except ValueError:
        return (0, 0, 0)
    return (major, minor, patch)


def format_version(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


@dataclass(frozen=True)
class ServerIdentity:
    """What a node says it is (``INFO server``)."""

    engine: str  # "redis" | "valkey" | whatever else server_name says
    version: tuple[int, int, int]

    @property
    def label(self) -> str:
        return f"{self.engine} {format_version(self.version)}"

    @property
    def known(self) -> Engine | None:
        return ENGINES.get(self.engine)

    @property
    def rdb_version(self) -> int:
        """The RDB format this server writes (and the newest it reads): Redis 7.0 writes 10,
        7.2 and Valkey 7.2-8.0 write 11, Redis 7.4 writes 12. DUMP payloads carry it too."""
        if self.engine == "valkey":
            return 11
        if self.version >= (7, 4, 0):
            return 12
        return 11 if self.version >= (7, 2, 0) else 10


    @property
    def setslot_waits_for_replicas(self) -> bool:
        """Valkey 8.0+ replicates CLUSTER SETSLOT to a primary's replicas and answers only
        once they acknowledged it (cluster_legacy.c, blockClientForReplicaAck): one replica
        round trip per command, so a mover spreads them over connections (the same ack
        releases all that wait). Redis 7.0/7.2 answer at once."""
        return self.engine == "valkey" and self.version >= (8, 0, 0)


def identity_from_info(fields: Mapping[str, str]) -> ServerIdentity | None:
    """Parse ``INFO server`` fields; None when they name no version at all."""
    name = fields.get("server_name", "").strip().lower() or "redis"
    version = fields.get(f"{name}_version") or fields.get("redis_version")
    if not version:
        return None
    return ServerIdentity(name, parse_version(version))


def engine_problem(expected: str, identity: ServerIdentity, node: str,
                   image_key: str = "redisImage") -> str | None:
    """Why a node may not join a stack that asked for ``expected`` (None when it may): the
    other engine behind the image, or a version older than the features we use."""
    if identity.engine != expected:
        return (f"{node} runs {identity.label}, but the stack's engine is {expected!r}. "
                f"Nothing was formed. Fix: set `engine: {identity.engine}` if that server is "
                f"what you want, or point `{image_key}` at a {expected} image")
    minimum = ENGINES[expected].minimum_version
    if identity.version < minimum:
        return (f"{node} runs {identity.label}; this stack needs {expected} "
                f"{format_version(minimum)} or newer (cluster-announce-hostname, CONFIG SET of "
                f"several parameters, ACL selectors). Nothing was formed. Fix: point "
                f"`{image_key}` at {expected} {format_version(minimum)} or newer")
    return None


def atomic_slot_migration(conn: Any) -> str | None:
    """The name of the server's atomic slot migration command, or None (the key-by-key mover
    is then the only way). Asked with ``COMMAND INFO``, which answers nil for a command the
    server does not have."""
    # "COMMAND INFO" as one word: redis-py then sends both words but skips its own parser of
    # COMMAND's reply, which fails on the nil entries of commands the server lacks.
    replies = conn.execute_command("COMMAND INFO", *ATOMIC_SLOT_MIGRATION_COMMANDS)
    for name, reply in zip(ATOMIC_SLOT_MIGRATION_COMMANDS, replies or [], strict=False):
        if reply:
            return name
    return None
