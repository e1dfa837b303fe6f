"""What every Redis node runs with, on either target: images, memory, persistence, failover,
passwords. Each reader function returns a frozen value; problems go to the ConfigReader."""

from __future__ import annotations

from dataclasses import dataclass

from clusterops.core.engines import ENGINES
from clusterops.core.units import format_memory
from components.config_reader import PROJECT, ConfigReader
from components.layout import MAX_REPLICAS_PER_MASTER, Shape

MAXMEMORY_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
APPENDFSYNC_MODES = ("always", "everysec", "no")
PASSWORD_POLICIES = ("generate", "required")

# Pinned official images; tests and air-gapped hosts name their own via redisImage/exporterImage.
DEFAULT_REDIS_IMAGE = "redis:7.0.15-bookworm"
# `engine` picks the server family and, unless redisImage names one, its pinned image. The
# server behind the image is checked on the first node before the cluster forms
# (clusterops/core/engines.py), never trusted from the tag.
DEFAULT_ENGINE_IMAGES = {"redis": DEFAULT_REDIS_IMAGE, "valkey": "valkey/valkey:8.0.1-bookworm"}
DEFAULT_EXPORTER_IMAGE = "oliver006/redis_exporter:v1.45.0"
DEFAULT_PROMETHEUS_IMAGE = "prom/prometheus:v2.42.0"

# The ACL users' own password keys, judged like `password`.
ACL_PASSWORD_KEYS = {"admin": "adminPassword", "exporter": "exporterPassword",
                     "replication": "replicationPassword"}


def read_name_prefix(reader: ConfigReader) -> str:
    """`namePrefix`: the start of every container, volume and network name."""
    prefix = reader.text("namePrefix", "alphapulse")
    if not prefix or not all(c.isalnum() or c in "-_" for c in prefix) or not prefix[0].isalnum():
        reader.fail("namePrefix", f"{prefix!r} is not a valid Docker name prefix. Fix: use "
                    "letters, digits, '-' or '_', starting with a letter or digit")
    return prefix


@dataclass(frozen=True)
class Images:
    engine: str  # "redis" | "valkey": which server the nodes run (their binary and CLI names)
    redis_image: str
    exporter_image: str
    prometheus_image: str
    pull_images: bool  # False: use images already on the Docker host


def read_images(reader: ConfigReader) -> Images:
    engine = reader.choice("engine", "redis", tuple(ENGINES))
    images = Images(
        engine=engine,
        redis_image=reader.text("redisImage",
                                DEFAULT_ENGINE_IMAGES.get(engine, DEFAULT_REDIS_IMAGE)),
        exporter_image=reader.text("exporterImage", DEFAULT_EXPORTER_IMAGE),
        prometheus_image=reader.text("prometheusImage", DEFAULT_PROMETHEUS_IMAGE),
        pull_images=reader.boolean("pullImages", True),
    )
    for key, image in (("redisImage", images.redis_image),
                       ("exporterImage", images.exporter_image),
                       ("prometheusImage", images.prometheus_image)):
        if not image or " " in image:
            reader.fail(key, "is empty or contains spaces. Fix: name an image like redis:7.0.15")
    return images


@dataclass(frozen=True)
class MemorySettings:
    maxmemory_bytes: int
    maxmemory_policy: str
    memory_limit_bytes: int  # the container's limit: maxmemory plus the fork's headroom


def read_memory(reader: ConfigReader) -> MemorySettings:
    """`maxmemory`, `maxmemoryPolicy` and `memoryLimit` (default: 2 x maxmemory)."""
    maxmemory = reader.memory("maxmemory", "512mb")
    if maxmemory < 16 * 1024**2:
        reader.fail("maxmemory", f"{format_memory(maxmemory)} is below 16mb (0 would mean no "
                    "limit). Fix: set maxmemory to 16mb or more, e.g. 512mb")
    memory_limit = reader.memory("memoryLimit", format_memory(2 * maxmemory))
    # The fork of BGSAVE/AOF rewrite copies pages on write: the container needs headroom.
    if memory_limit < maxmemory + 64 * 1024**2:
        reader.fail("memoryLimit", f"{format_memory(memory_limit)} leaves less than 64mb above "
                    f"maxmemory {format_memory(maxmemory)}. Fix: set memoryLimit to at least "
                    f"{format_memory(maxmemory + 64 * 1024**2)} (default: 2 x maxmemory)")
    return MemorySettings(
        maxmemory_bytes=maxmemory,
        maxmemory_policy=reader.choice("maxmemoryPolicy", "allkeys-lru", MAXMEMORY_POLICIES),
        memory_limit_bytes=memory_limit,
    )


@dataclass(frozen=True)
class Persistence:
    appendonly: bool
    appendfsync: str
    rdb_save: tuple[tuple[int, int], ...]  # (seconds, changes) pairs; () disables RDB


def _parse_rdb_save(reader: ConfigReader) -> tuple[tuple[int, int], ...]:
    text = reader.text("rdbSave", "900 1 300 10 60 10000")
    parts = text.split()
    fix = 'use pairs of "<seconds> <changes>", e.g. "900 1 300 10", or "" to disable RDB'
    if len(parts) % 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        reader.fail("rdbSave", f"{text!r} is not a save schedule. Fix: {fix}")
        return ()
    return tuple((int(parts[i]), int(parts[i + 1])) for i in range(0, len(parts), 2))


def read_persistence(reader: ConfigReader) -> Persistence:
    return Persistence(
        appendonly=reader.boolean("appendonly", True),
        appendfsync=reader.choice("appendfsync", "everysec", APPENDFSYNC_MODES),
        rdb_save=_parse_rdb_save(reader),
    )


@dataclass(frozen=True)
class FailoverSettings:
    node_timeout_ms: int
    replica_validity_factor: int
    min_replicas_to_write: int


def read_failover(reader: ConfigReader, shape: Shape) -> FailoverSettings:
    """`nodeTimeoutMs`, `replicaValidityFactor`, `minReplicasToWrite` (<= replicasPerMaster)."""
    settings = FailoverSettings(
        node_timeout_ms=reader.integer(
            "nodeTimeoutMs", 1000, 100, 60000,
            "use 500-2000 ms; failover takes about nodeTimeoutMs + 1 s, so <= 2000 keeps it < 5 s",
        ),
        replica_validity_factor=reader.integer(
            "replicaValidityFactor", 0, 0, 100,
            "0 lets any replica fail over however long its link was down",
        ),
        min_replicas_to_write=reader.integer(
            "minReplicasToWrite", 0, 0, MAX_REPLICAS_PER_MASTER,
            "use 0 (availability first) or at most replicasPerMaster",
        ),
    )
    replicas = shape.replicas_per_master
    if settings.min_replicas_to_write > replicas:
        reader.fail("minReplicasToWrite", f"{settings.min_replicas_to_write} is more than "
                    f"replicasPerMaster ({replicas}): every master would refuse writes. "
                    "Fix: set it to at most replicasPerMaster (0 recommended, see README)")
    return settings


@dataclass(frozen=True)
class Protection:
    """Prod stacks default to both: a password must be set, data outlives the stack."""

    password_policy: str  # generate: make one when unset; required: fail when unset
    protect_data: bool


def read_protection(reader: ConfigReader, stack: str, prod: bool,
                    password_set: bool) -> Protection:
    """`passwordPolicy`, `protectData`, and the passwords themselves (never kept here)."""
    protection = Protection(
        password_policy=reader.choice(
            "passwordPolicy", "required" if prod else "generate", PASSWORD_POLICIES),
        protect_data=reader.boolean("protectData", prod),
    )
    if protection.password_policy == "required" and not password_set:
        reader.fail("password", f"stack {stack!r} requires a password and none is set. Fix: "
                    f"pulumi config set --secret {PROJECT}:password <value>")
    for key in ("password", *ACL_PASSWORD_KEYS.values()):
        _check_password(reader, key)
    return protection


def _check_password(reader: ConfigReader, key: str) -> None:
    password = reader.verbatim(key)
    if password is None:
        return
    if len(password) < 16:
        reader.fail(key, "is shorter than 16 characters. Fix: use a longer secret")
    if any(c in password for c in "\r\n\0"):
        reader.fail(key, "contains a line break or NUL, which redis.conf cannot hold. "
                    "Fix: choose a password without them")
