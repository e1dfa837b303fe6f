"""Write and read back a key in every one of the 16384 hash slots, then report and exit.

Runs inside the cluster's Docker network: `python3 slot_check.py /app/cluster.json`, where the
JSON holds the cluster stack's outputs the client helper needs (alphapulse_client.py, the
project's clusterops/client.py uploaded beside this file). One line on stdout says what
happened; the exit code is 0 when every slot was written and read back, 1 when some were not,
2 when the cluster could not be reached. The keys are deleted afterwards.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from alphapulse_client import from_stack_outputs
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

BATCH = 1024  # commands per pipeline round: few round trips, bounded memory


def key_per_slot(prefix: str) -> list[str]:
    """A key name for each slot, index = slot (found by hashing candidates: CRC16 is fast)."""
    keys: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    missing, candidate = REDIS_CLUSTER_HASH_SLOTS, 0
    while missing:
        key = f"{prefix}:{candidate}"
        slot = key_slot(key.encode())
        if keys[slot] is None:
            keys[slot] = key
            missing -= 1
        candidate += 1
    return [k for k in keys if k is not None]


def run(outputs_file: Path) -> int:
    started = time.monotonic()
    outputs = json.loads(outputs_file.read_text())
    try:
        client = from_stack_outputs(outputs, location="network", socket_timeout=5)
        masters = len(client.get_primaries())
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the report
        print(f"slot-check: FAILED: cannot reach the cluster: {exc}", flush=True)
        return 2
    token = f"slot-check-{time.time_ns()}"
    keys = key_per_slot(token)
    wrong: list[int] = []
    for first in range(0, len(keys), BATCH):
        batch = keys[first:first + BATCH]
        writes = client.pipeline(transaction=False)
        for key in batch:
            writes.set(key, f"{token}|{key}")
        writes.execute()
        reads = client.pipeline(transaction=False)
        for key in batch:
            reads.get(key)
        for offset, value in enumerate(reads.execute()):
            if value != f"{token}|{batch[offset]}".encode():
                wrong.append(first + offset)
        cleanup = client.pipeline(transaction=False)
        for key in batch:
            cleanup.delete(key)
        cleanup.execute()
    elapsed = time.monotonic() - started
    good = len(keys) - len(wrong)
    if wrong:
        print(f"slot-check: FAILED: {good}/{REDIS_CLUSTER_HASH_SLOTS} slots written and read "
              f"back; first wrong slots: {wrong[:10]}", flush=True)
        return 1
    print(f"slot-check: ok: {good}/{REDIS_CLUSTER_HASH_SLOTS} slots written and read back "
          f"on {masters} masters in {elapsed:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
