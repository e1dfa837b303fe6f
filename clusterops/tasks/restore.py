"""Restore a backup into a cluster of any shape, verified (``python -m clusterops restore``).

The backup (``python -m clusterops backup``) is one RDB per master plus ``manifest.json``
(each file's slots and sha256). The target cluster may have any number of masters, so files
are not copied onto nodes: each RDB is loaded into a temporary standalone server (Redis' or
Valkey's, one that reads the file's format: clusterops/core/server_tools.py; a unix socket in a
private directory, no TCP port, no persistence), and its
keys move into the target through the target's own slot map with ``MIGRATE ... COPY KEYS``,
batched per target master. MIGRATE ships Redis' own serialization (every data type, TTLs kept)
server to server; this process only handles key names. Into a TLS cluster the same payloads
travel through this process instead (pipelined DUMP + PTTL, then RESTORE over TLS with the
cluster's CA): a MIGRATE from the temporary server would need a client certificate the
cluster's CA signed, which an operator's machine does not have. Into a server that reads
only an older RDB format than the loader writes (Valkey 8 or Redis 7.2 into Redis 7.0), values
go by command instead (:func:`copy_values`): strings, lists, sets, sorted sets and hashes with
their expiry; a stream or a module's type is refused before the first write.

Order, so that a bad backup or a wrong target changes nothing:

1. every file's sha256 is checked against the manifest, and the files' slots must cover all
   16384 slots exactly once (a failed node in the backup leaves a gap);
2. the target must hold no key at all, unless ``--merge`` (then ``--replace`` decides who wins
   a conflict; without it the target's value is kept and counted);
3. keys move, with progress (keys done / total, rate) on stderr;
4. verification, sample-free: every backup key is read back from the target and its DUMP
   payload (value and encoding) and whether it expires are compared; without ``--merge`` the
   per-slot key counts and the total must match too. Any difference: exit 1.

Exit codes (clusterops' policy): 0 restored and verified; 1 the backup is damaged or
incomplete, or the target differs from the backup afterwards; 2 usage/target/auth problems,
including a target that already holds keys.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from clusterops.core.engines import ServerIdentity
from clusterops.core.errors import AuthError, ClusterOpsError, UsageError
from clusterops.core.model import HASH_SLOTS, format_ranges, merge_ranges
from clusterops.core.poll import Deadline, poll
from clusterops.core.server_tools import find_tool, newer_format_fix
from clusterops.node.connection import tls_options
from clusterops.node.observe import observe_nodes, parse_info, reply_text, server_identity
from clusterops.node.targets import Targets
from clusterops.state.open_slots import count_keys_in_slots, find_open_slots
from clusterops.tasks.backup import sha256_of

BATCH_KEYS = 1000  # keys per SCAN page and per MIGRATE call
MIGRATE_TIMEOUT_MS = 30_000
SERVER_START_TIMEOUT_S = 300.0  # loading a large RDB takes a while
PROGRESS_EVERY_S = 1.0
READY_TIMEOUT_S = 30.0


class BackupIntegrityError(ClusterOpsError):
    """The backup is damaged or incomplete; nothing was written to the target."""


class TargetNotEmptyError(UsageError):
    """The target holds keys and --merge was not given; nothing was written."""


class TargetNotReadyError(ClusterOpsError):
    """The target cluster is not serving every slot (cluster_state is not ok)."""


@dataclass(frozen=True)
class BackupFile:
    node: str
    path: Path
    slots: tuple[tuple[int, int], ...]
    sha256: str


@dataclass
class RestoreReport:
    backup: str
    files: int
    keys_in_backup: int = 0
    keys_moved: int = 0
    conflicts_kept: int = 0  # --merge without --replace: the target's value stayed
    conflicts_replaced: int = 0
    seconds: float = 0.0
    keys_per_second: float = 0.0
    verified_keys: int = 0
    missing: int = 0
    different: int = 0
    slot_count_mismatches: int = 0
    examples: list[str] = field(default_factory=list)  # a few keys that differ or are missing
    backup_digest: str = ""
    target_digest: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------------------ the backup
def load_backup(folder: Path) -> list[BackupFile]:
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{manifest_path} does not exist: --from must name a folder written "
                         "by `python -m clusterops backup`") from None
    except (OSError, ValueError) as exc:
        raise BackupIntegrityError(f"{manifest_path} cannot be read: {exc}") from None
    files, problems = [], []
    for entry in manifest.get("nodes", []):
        if entry.get("error"):
            problems.append(f"{entry.get('node')}: its snapshot failed at backup time "
                            f"({entry['error']})")
            continue
        files.append(BackupFile(
            node=str(entry["node"]), path=folder / str(entry["file"]),
            slots=tuple((int(a), int(b)) for a, b in entry.get("slots", [])),
            sha256=str(entry["sha256"]),
        ))
    problems += check_files(files) + check_coverage(files)
    if problems:
        raise BackupIntegrityError(
            f"the backup in {folder} cannot be restored; nothing was written:\n  - "
            + "\n  - ".join(problems))
    return files


def check_files(files: Sequence[BackupFile]) -> list[str]:
    problems = []
    for backup in files:
        if not backup.path.is_file():
            problems.append(f"{backup.node}: {backup.path.name} is missing")
        elif (actual := sha256_of(backup.path)) != backup.sha256:
            problems.append(f"{backup.node}: {backup.path.name} has sha256 {actual[:16]}..., the "
                            f"manifest says {backup.sha256[:16]}...: the file is damaged")
    return problems


def check_coverage(files: Sequence[BackupFile]) -> list[str]:
    owners: list[list[str]] = [[] for _ in range(HASH_SLOTS)]
    for backup in files:
        for first, last in backup.slots:
            for slot in range(first, last + 1):
                owners[slot].append(backup.node)
    missing = [slot for slot, names in enumerate(owners) if not names]
    doubled = [slot for slot, names in enumerate(owners) if len(names) > 1]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of {HASH_SLOTS} slots are in no file "
                        f"({format_ranges(merge_ranges(missing), limit=3)})")
    if doubled:
        problems.append(f"{len(doubled)} slots are in more than one file "
                        f"({format_ranges(merge_ranges(doubled), limit=3)})")
    return problems


# ------------------------------------------------------------------- a temporary redis-server
@contextmanager
def loaded_rdb(path: Path, *, tcp_port: int = 0) -> Iterator[redis.Redis]:
    """A standalone redis-server that has loaded ``path``: unix socket in a private directory,
    no persistence, so it never writes over anything. ``tcp_port`` > 0 also listens on
    127.0.0.1 (only the benchmark's redis-cli reference needs that)."""
    server = find_tool("server")  # $CLUSTEROPS_SERVER_BIN first: one that reads the format
    with tempfile.TemporaryDirectory(prefix="clusterops-restore-") as work:
        workdir = Path(work)
        workdir.chmod(0o700)
        shutil.copyfile(path, workdir / "dump.rdb")
        socket = workdir / "redis.sock"
        process = subprocess.Popen(
            [server, "--port", str(tcp_port), "--bind", "127.0.0.1",
             "--unixsocket", str(socket), "--unixsocketperm", "700",
             "--dir", str(workdir), "--dbfilename", "dump.rdb", "--appendonly", "no",
             "--save", "", "--daemonize", "no", "--logfile", str(workdir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(unix_socket_path=str(socket), socket_timeout=60)
        try:
            _wait_loaded(process, client, workdir / "redis.log", path)
            yield client
        finally:
            client.close()
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_loaded(process: subprocess.Popen[bytes], client: redis.Redis, log: Path,
                 path: Path) -> None:
    def loaded() -> tuple[bool, str]:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
            if fix := newer_format_fix(tail, str(process.args[0])):  # type: ignore[index]
                raise UsageError(f"{path.name}: {fix}. Nothing was written")
            raise BackupIntegrityError(f"the server could not load {path.name}:\n{tail}")
        try:
            return client.info("persistence").get("loading") == 0, "still loading"
        except (redis.ConnectionError, redis.BusyLoadingError) as exc:
            return False, str(exc)

    done, seen = poll(loaded, Deadline.after(SERVER_START_TIMEOUT_S), 0.05)
    if not done:
        raise BackupIntegrityError(
            f"redis-server did not finish loading {path.name} in {SERVER_START_TIMEOUT_S:g}s "
            f"(last seen: {seen})")


def scan_batches(source: redis.Redis) -> Iterator[list[bytes]]:
    cursor = 0
    while True:
        cursor, keys = source.scan(cursor=cursor, count=BATCH_KEYS)
        if keys:
            yield keys
        if cursor == 0:
            return


# ------------------------------------------------------------------------------- the target
class Target:
    """The target cluster as the restore sees it: the master serving each slot, and one
    binary-safe connection per master (values are bytes)."""

    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self.tls = tls_options(targets.nodes[0].tls_ca if targets.nodes else None)
        self.cluster = RedisCluster(**targets.cluster_client_options(), socket_timeout=30,
                                    require_full_coverage=True)
        self._clients: dict[tuple[str, int], redis.Redis] = {}
        self._owner = [self._owner_of(slot) for slot in range(HASH_SLOTS)]
        # True: the masters read an older RDB format than the loader's DUMP payloads carry,
        # so values go by command (copy_values).
        self.older_format = False

    def _owner_of(self, slot: int) -> tuple[str, int]:
        node = self.cluster.nodes_manager.get_node_from_slot(slot)
        return node.host, int(node.port)  # already remapped to where we connect

    def owner(self, key: bytes) -> tuple[str, int]:
        return self._owner[key_slot(key)]

    def announced(self, address: tuple[str, int]) -> tuple[str, int]:
        """The address the master announces: MIGRATE runs on the temporary server, which
        reaches the node where the cluster says it is."""
        for node in self.targets.nodes:
            if (node.host, node.port) == address:
                return node.cluster_host, node.cluster_port
        return address

    def client(self, address: tuple[str, int]) -> redis.Redis:
        if address not in self._clients:
            self._clients[address] = redis.Redis(host=address[0], port=address[1],
                                                 username=self.targets.username,
                                                 password=self.targets.password,
                                                 socket_timeout=30,
                                                 **self.tls)  # type: ignore[arg-type]
        return self._clients[address]

    def masters(self) -> list[tuple[str, int]]:
        return sorted(set(self._owner))

    def wait_ready(self, timeout_s: float) -> None:
        """Every master reports cluster_state:ok: a freshly formed cluster refuses writes
        (CLUSTERDOWN) for up to its node-timeout after getting its slots."""

        def states() -> tuple[bool, dict[tuple[str, int], str]]:
            seen = {}
            for address in self.masters():
                try:
                    text = reply_text(self.client(address).execute_command("CLUSTER", "INFO"))
                    seen[address] = parse_info(text).get("cluster_state", "?")
                except redis.ConnectionError as exc:
                    seen[address] = f"unreachable ({exc})"
            return all(state == "ok" for state in seen.values()), seen

        ready, seen = poll(states, Deadline.after(timeout_s), 0.05)
        if not ready:
            detail = ", ".join(f"{h}:{p} {s}" for (h, p), s in seen.items() if s != "ok")
            raise TargetNotReadyError(
                f"the target cluster is not ok after {timeout_s:g}s ({detail}); nothing "
                "was written. Check it with `python -m clusterops health`")

    def refuse_open_slots(self) -> None:
        """A slot left open by an interrupted move would send part of its keys to the wrong
        node: such a target is repaired first, by the one rule (clusterops.state.open_slots)."""
        snapshots = observe_nodes(self.targets.nodes, self.targets.access)
        names = {s.my_id: s.name for s in snapshots if s.my_id}
        if open_now := find_open_slots(snapshots, names):
            raise UsageError(
                "the target cluster has open slots (an interrupted move): "
                + ", ".join(o.describe() for o in open_now[:5]) + "; nothing was written. "
                "Run `python -m clusterops fix` with the same targets first, then restore")

    def total_keys(self) -> int:
        return sum(int(self.client(address).dbsize()) for address in self.masters())

    def identities(self) -> list[ServerIdentity]:
        """What each master says it is (INFO server)."""
        return [known_identity(self.client(address)) for address in self.masters()]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self.cluster.close()


def known_identity(client: redis.Redis) -> ServerIdentity:
    identity = server_identity(client)
    if identity is None:
        raise UsageError("a server did not say which version it is (INFO server)")
    return identity


def by_owner(target: Target, keys: Sequence[bytes]) -> dict[tuple[str, int], list[bytes]]:
    groups: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    for key in keys:
        groups[target.owner(key)].append(key)
    return groups


def existing(client: redis.Redis, keys: Sequence[bytes]) -> list[bool]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return [bool(n) for n in pipe.execute()]


def migrate(source: redis.Redis, target: Target, address: tuple[str, int],
            keys: Sequence[bytes], replace: bool) -> None:
    if target.older_format:
        copy_values(source, target.client(address), keys, replace)
        return
    if target.tls:
        copy_through_client(source, target.client(address), keys, replace)
        return
    host, port = target.announced(address)
    args: list[Any] = ["MIGRATE", host, port, "", 0, MIGRATE_TIMEOUT_MS, "COPY"]
    if replace:
        args.append("REPLACE")
    args += target.targets.access.migrate_auth(target.targets.nodes[0])
    source.execute_command(*args, "KEYS", *keys)


def copy_through_client(source: redis.Redis, destination: redis.Redis, keys: Sequence[bytes],
                        replace: bool) -> None:
    """MIGRATE ... COPY done by this process: the same serialized payloads (DUMP) and the
    remaining time to live (PTTL), RESTOREd on the destination. A key gone from the source
    meanwhile (it cannot be: the source is our private server) would be skipped."""
    write = destination.pipeline(transaction=False)
    for key, (payload, ttl) in zip(keys, dumps_with_ttl(source, keys), strict=True):
        if payload is not None:
            write.restore(key, max(int(ttl), 0), payload, replace=replace)
    write.execute()


def copy_values(source: redis.Redis, destination: redis.Redis, keys: Sequence[bytes],
                replace: bool) -> None:
    """Into a server that reads an older RDB format than the backup's loader writes (Valkey 8
    or Redis 7.2 into Redis 7.0: "DUMP payload version or checksum are wrong"), values go as
    commands: each key's type read, its value written with that type's own commands, and its
    remaining time to live set. Strings, lists, sets, sorted sets and hashes; a stream or a
    module's type is refused by name (its consumer groups and internals have no such path).
    """
    kinds = [reply_text(kind) for kind in _each(source, "TYPE", keys)]
    refuse_unsupported_types(keys, kinds)
    read = source.pipeline(transaction=False)
    for key, kind in zip(keys, kinds, strict=True):
        LOGICAL_TYPES[kind][0](read, key)
        read.pttl(key)
    replies = read.execute()
    write = destination.pipeline(transaction=False)
    for index, (key, kind) in enumerate(zip(keys, kinds, strict=True)):
        value, ttl = replies[2 * index], int(replies[2 * index + 1])
        if replace:
            write.delete(key)
        LOGICAL_TYPES[kind][1](write, key, value)
        if ttl > 0:
            write.pexpire(key, ttl)
    write.execute()


def refuse_unsupported_types(keys: Sequence[bytes], kinds: Sequence[str]) -> None:
    unsupported = [(key, kind) for key, kind in zip(keys, kinds, strict=True)
                   if kind not in LOGICAL_TYPES]
    if unsupported:
        key, kind = unsupported[0]
        raise UsageError(
            f"{len(unsupported)} key(s) such as {key!r} are of type {kind}, which cannot be "
            "copied into an older server's format by value; nothing was written. Fix: "
            "restore into Redis 7.2+ or Valkey, which read the backup's format as it is")


def check_copyable_by_value(sources: Sequence[redis.Redis]) -> None:
    """Before the first write of a copy by value: every key's type has a command path."""
    for source in sources:
        for keys in scan_batches(source):
            refuse_unsupported_types(keys, [reply_text(k) for k in _each(source, "TYPE", keys)])


def _each(client: redis.Redis, command: str, keys: Sequence[bytes]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command(command, key)
    return pipe.execute()


def _write_zset(pipe: Any, key: bytes, pairs: Any) -> None:
    pipe.zadd(key, dict(pairs))


# type -> (how to read the whole value, how to write it back), for copy_values.
LOGICAL_TYPES: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "string": (lambda p, k: p.get(k), lambda p, k, v: p.set(k, v)),
    "list": (lambda p, k: p.lrange(k, 0, -1), lambda p, k, v: p.rpush(k, *v)),
    "set": (lambda p, k: p.smembers(k), lambda p, k, v: p.sadd(k, *v)),
    "zset": (lambda p, k: p.zrange(k, 0, -1, withscores=True), _write_zset),
    "hash": (lambda p, k: p.hgetall(k), lambda p, k, v: p.hset(k, mapping=v)),
}


def dumps_with_ttl(client: redis.Redis, keys: Sequence[bytes]) -> list[tuple[bytes | None, int]]:
    """(DUMP payload or None, PTTL) of each key, in one pipeline."""
    read = client.pipeline(transaction=False)
    for key in keys:
        read.dump(key)
        read.pttl(key)
    replies = read.execute()
    return list(zip(replies[::2], replies[1::2], strict=True))


# ---------------------------------------------------------------------------- verification
def compare(source: redis.Redis, target: Target, keys: Sequence[bytes],
            report: RestoreReport, digests: list[int], slot_counts: Counter[int]) -> None:
    """DUMP + PTTL of each key on both sides: equal payload, and expiring on both or neither."""
    ours = dict(zip(keys, dumps_with_ttl(source, keys), strict=True))
    for address, group in by_owner(target, keys).items():
        theirs = zip(group, dumps_with_ttl(target.client(address), group), strict=True)
        for key, (their_dump, their_ttl) in theirs:
            ours_dump, ours_ttl = ours[key]
            slot_counts[key_slot(key)] += 1
            report.verified_keys += 1
            digests[0] ^= _key_digest(key, ours_dump)
            if their_dump is None:
                report.missing += 1
                _example(report, key, "missing")
                continue
            if their_dump != ours_dump:
                # A set, hash or sorted set in a hash table serializes in that table's order,
                # which differs between two servers holding the same members: compare values.
                ours_value = canonical_value(source, key)
                if canonical_value(target.client(address), key) != ours_value:
                    report.different += 1
                    _example(report, key, "different value")
                    digests[1] ^= _key_digest(key, their_dump)
                    continue
                digests[0] ^= _key_digest(key, ours_dump) ^ _key_digest(key, ours_value)
                their_dump = ours_value
            digests[1] ^= _key_digest(key, their_dump)
            if (ours_ttl == -1) != (their_ttl == -1):
                report.different += 1
                _example(report, key, f"expiry {ours_ttl} ms in the backup, {their_ttl} ms now")


def canonical_value(client: redis.Redis, key: bytes) -> bytes:
    """The key's type and value in an order that does not depend on the server's internals."""
    kind = reply_text(client.type(key))
    value: Any
    if kind == "set":
        value = sorted(client.smembers(key))
    elif kind == "hash":
        value = sorted(client.hgetall(key).items())
    elif kind == "zset":
        value = client.zrange(key, 0, -1, withscores=True)
    elif kind == "string":  # a DUMP carries the server's RDB format: compare the value
        value = client.get(key)
    elif kind == "list":
        value = client.lrange(key, 0, -1)
    elif kind == "stream":  # entries, last id and groups: newer servers add fields to DUMP
        info = client.xinfo_stream(key)
        value = (client.xrange(key), info.get("last-generated-id"),
                 sorted((g["name"], g["last-delivered-id"]) for g in client.xinfo_groups(key)))
    else:  # a module's type: its serialization
        value = client.dump(key)
    return kind.encode() + b"\0" + repr(value).encode()


def _example(report: RestoreReport, key: bytes, why: str) -> None:
    if len(report.examples) < 5:
        report.examples.append(f"{key!r}: {why}")


def _key_digest(key: bytes, payload: bytes | None) -> int:
    # XOR of per-key digests: independent of the order SCAN returns keys in.
    return int.from_bytes(hashlib.sha256(key + b"\0" + (payload or b"")).digest()[:16], "big")


def verify_slot_counts(target: Target, expected: Counter[int]) -> int:
    mismatches = 0
    slots_of: dict[tuple[str, int], list[int]] = defaultdict(list)
    for slot in range(HASH_SLOTS):
        slots_of[target._owner[slot]].append(slot)
    for address, slots in slots_of.items():
        counts = count_keys_in_slots(target.client(address), slots)
        mismatches += sum(1 for slot in slots if counts[slot] != expected.get(slot, 0))
    return mismatches


# ------------------------------------------------------------------------------- the restore
class Progress:
    def __init__(self, total: int, out: Callable[[str], None]) -> None:
        self.total, self.out = total, out
        self.started = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = done / max(now - self.started, 1e-9)
            self.out(f"restore: {done}/{self.total} keys ({rate:,.0f} keys/s)")


def run_restore(folder: Path, targets: Targets, *, merge: bool = False, replace: bool = False,
                ready_timeout_s: float = READY_TIMEOUT_S,
                progress: Callable[[str], None] = lambda line: None) -> RestoreReport:
    files = load_backup(folder)
    report = RestoreReport(backup=str(folder), files=len(files))
    try:
        target = Target(targets)
    except redis.AuthenticationError as exc:
        raise AuthError(f"the target refused the password: {targets.access.redact(str(exc))}"
                        ) from None
    try:
        target.wait_ready(ready_timeout_s)
        target.refuse_open_slots()
        before = target.total_keys()
        if before and not merge:
            raise TargetNotEmptyError(
                f"the target cluster already holds {before} key(s); nothing was written. "
                "Restore into an empty cluster, or pass --merge (and --replace to let the "
                "backup win conflicts)")
        with ExitStack() as stack:
            # Every file loaded once, kept for the move and then the verification.
            sources = [stack.enter_context(loaded_rdb(backup.path)) for backup in files]
            report.keys_in_backup = sum(int(source.dbsize()) for source in sources)
            loader = known_identity(sources[0])
            oldest = min(target.identities(), key=lambda identity: identity.rdb_version)
            target.older_format = oldest.rdb_version < loader.rdb_version
            if target.older_format:
                progress(f"the target runs {oldest.label} (RDB {oldest.rdb_version}), the "
                         f"loader {loader.label} (RDB {loader.rdb_version}): values go by "
                         "command instead of DUMP payloads")
                check_copyable_by_value(sources)
            tracker = Progress(report.keys_in_backup, progress)
            started = time.monotonic()
            for source in sources:
                for keys in scan_batches(source):
                    _move_batch(source, target, keys, merge, replace, report)
                    tracker.update(report.keys_moved + report.conflicts_kept)
            report.seconds = round(time.monotonic() - started, 3)
            report.keys_per_second = round(report.keys_moved / max(report.seconds, 1e-9), 1)
            tracker.update(report.keys_moved + report.conflicts_kept, final=True)
            _verify(sources, target, merge, report)
    finally:
        target.close()
    return report


def _move_batch(source: redis.Redis, target: Target, keys: Sequence[bytes], merge: bool,
                replace: bool, report: RestoreReport) -> None:
    for address, group in by_owner(target, keys).items():
        if merge:
            present = existing(target.client(address), group)
            clashes = sum(present)
            if replace:
                report.conflicts_replaced += clashes
            else:
                report.conflicts_kept += clashes
                group = [k for k, there in zip(group, present, strict=True) if not there]
        if group:
            migrate(source, target, address, group, replace=merge and replace)
            report.keys_moved += len(group)


def _verify(sources: Sequence[redis.Redis], target: Target, merge: bool,
            report: RestoreReport) -> None:
    digests = [0, 0]
    slot_counts: Counter[int] = Counter()
    for source in sources:
        for keys in scan_batches(source):
            compare(source, target, keys, report, digests, slot_counts)
    report.backup_digest, report.target_digest = (f"{d:032x}" for d in digests)
    if report.missing:
        report.problems.append(f"{report.missing} backup key(s) are missing in the target")
    # With --merge and no --replace the target keeps its own values for clashing keys.
    tolerated = report.conflicts_kept if merge else 0
    if report.different > tolerated:
        report.problems.append(f"{report.different - tolerated} key(s) differ from the backup "
                               "(value, encoding or expiry)")
    if not merge:
        report.slot_count_mismatches = verify_slot_counts(target, slot_counts)
        if report.slot_count_mismatches:
            report.problems.append(f"{report.slot_count_mismatches} slot(s) hold a different "
                                   "number of keys than the backup")
        if (total := target.total_keys()) != report.keys_in_backup:
            report.problems.append(f"the target holds {total} keys, the backup "
                                   f"{report.keys_in_backup}")
