"""Backups: a fresh RDB snapshot of every master, verified, with a manifest of its slots.

The guide's §7 copies ``dump.rdb`` out of each container, which backs up whatever the last
BGSAVE left on disk (possibly minutes old) and needs ``docker`` on the same host. Instead each
current master streams a fresh snapshot over the network (``redis-cli --rdb``: the replication
handshake, so no file access and no restart), the file is checked with ``redis-check-rdb``,
and a manifest records which slots it holds, so a restore knows where each file belongs.

The password reaches redis-cli on its standard input (``--askpass``): never its argv, never its
environment (clusterops.core.child_env).
``python -m clusterops backup`` is clusterops/cli/commands/backup.py.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from clusterops.core.child_env import child_env
from clusterops.core.errors import ClusterOpsError, TargetsError
from clusterops.core.model import NodeTarget
from clusterops.core.server_tools import find_tool, newer_format_fix
from clusterops.node.access import Access
from clusterops.node.observe import observe_nodes, refuse_on_auth
from clusterops.node.targets import Targets

DEFAULT_TIMEOUT_S = 300.0


@dataclass
class NodeBackup:
    node: str
    node_id: str = ""
    slots: list[list[int]] = field(default_factory=list)
    keys_before: int = 0
    file: str = ""
    bytes: int = 0
    sha256: str = ""
    seconds: float = 0.0
    error: str = ""


class SnapshotError(ClusterOpsError):
    """One node's snapshot could not be taken or did not check out (recorded per node)."""


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in blocks (an RDB can be larger than the memory to spare)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def current_masters(targets: Targets) -> list[tuple[NodeTarget, str, list[list[int]]]]:
    """(target, node id, slot ranges) of every node that is a master serving slots now."""
    snapshots = observe_nodes(targets.nodes, targets.access)
    # A wrong password is not a missing master: say so (exit 2), do not look elsewhere.
    refuse_on_auth(snapshots)
    # An unreachable node is simply not a source: the manifest's coverage shows the gap.
    return [(s.node, s.my_id, [list(r) for r in s.myself.slots])
            for s in snapshots if s.serves_slots and s.myself]


def backup_node(
    node: NodeTarget, node_id: str, slots: list[list[int]], access: Access, folder: Path,
    timeout_s: float,
) -> NodeBackup:
    result = NodeBackup(node=node.name, node_id=node_id, slots=slots)
    target = folder / f"{node.name}.rdb"
    started = time.monotonic()
    try:
        with access.client(node) as conn:
            result.keys_before = int(conn.dbsize())
        tls: list[str] = []
        if node.tls_ca:
            ca_file = folder / ".cluster-ca.crt"  # public; removed after the snapshot
            ca_file.write_text(node.tls_ca)
            tls = ["--tls", "--cacert", str(ca_file)]
        try:
            fetched = subprocess.run(
                [find_tool("cli"), *tls, *(["--user", node.username] if node.username else []),
                 *(["--askpass"] if access.password else []), "--no-auth-warning", "-h", node.host,
                 "-p", str(node.port), "--rdb", str(target)],
                input=f"{access.password}\n" if access.password else "", env=child_env(),
                capture_output=True, text=True, timeout=timeout_s, check=False,
            )
        finally:
            if tls:
                (folder / ".cluster-ca.crt").unlink(missing_ok=True)
        if fetched.returncode != 0 or not target.exists():
            raise SnapshotError(f"redis-cli --rdb failed: {fetched.stderr.strip()[-300:]}")
        checker = find_tool("check-rdb")
        checked = subprocess.run([checker, str(target)], capture_output=True,
                                 text=True, timeout=timeout_s, check=False)
        if checked.returncode != 0:
            raise SnapshotError(newer_format_fix(checked.stdout, Path(checker).name)
                                or f"{Path(checker).name} rejected the file: "
                                f"{checked.stdout[-300:]}")
        result.file = target.name
        result.bytes = target.stat().st_size
        result.sha256 = sha256_of(target)
    except (SnapshotError, redis.RedisError, OSError, subprocess.SubprocessError) as exc:
        # Reported per node (the others are still backed up), never with the password.
        result.error = access.redact(f"{type(exc).__name__}: {exc}")
    result.seconds = round(time.monotonic() - started, 3)
    return result


def run_backup(targets: Targets, dest: Path, timeout_s: float) -> tuple[Path, list[NodeBackup]]:
    masters = current_masters(targets)
    if not masters:
        raise TargetsError("no reachable master serves slots: nothing to back up")
    folder = dest / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder.mkdir(parents=True, exist_ok=False)
    results = [backup_node(node, node_id, slots, targets.access, folder, timeout_s)
               for node, node_id, slots in masters]
    covered = sum(b - a + 1 for r in results if not r.error for a, b in r.slots)
    manifest = {"created": folder.name, "slots_covered": covered,
                "nodes": [asdict(r) for r in results]}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder, results
