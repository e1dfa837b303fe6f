"""One key in each of the 16384 hash slots, written and read back through a cluster client."""

from __future__ import annotations

from redis.cluster import RedisCluster

from clusterops.core.model import HASH_SLOTS, hash_tags


def keys_in_every_slot(prefix: str) -> list[str]:
    return [f"{prefix}:{{{tag}}}" for tag in hash_tags([(0, HASH_SLOTS - 1)], HASH_SLOTS, "s")]


def written_and_read_back(client: RedisCluster, prefix: str) -> int:
    """How many of the per-slot keys came back with the value written (HASH_SLOTS: all)."""
    keys = keys_in_every_slot(prefix)
    pipe = client.pipeline()
    for key in keys:
        pipe.set(key, key)
    pipe.execute()
    values = client.mget_nonatomic(keys)
    return sum(value in (key, key.encode()) for key, value in zip(keys, values, strict=True))
