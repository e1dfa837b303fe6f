"""Move hash slots between live masters without losing a key, the way Redis Cluster intends.

Per slot (redis-cli's order, so ASK-aware clients keep working throughout):

1. the target: ``CLUSTER SETSLOT s IMPORTING <source>``, then the source ``SETSLOT s MIGRATING
   <target>``: from now on the source answers ASK for a key it no longer has, and the target
   serves it after ASKING;
2. ``CLUSTER GETKEYSINSLOT s N`` on the source and ``MIGRATE host port "" 0 timeout AUTH pw KEYS
   k1..kN`` until the slot is empty on the source. MIGRATE deletes a key on the source only
   after the target stored it, so an interruption can never lose a key;
3. ``SETSLOT s NODE <target>`` on the target first (it bumps its epoch, so its claim wins),
   then on the source, then on every other master.

Speed: slots go in chunks; each step of a chunk is one pipeline per node (all IMPORTINGs, all
MIGRATINGs, one GETKEYSINSLOT per slot, one MIGRATE of up to ``batch`` keys per slot, all
SETSLOT NODEs), and independent (source, target) pairs move in parallel threads. A server whose
SETSLOT waits for its replicas' acknowledgment (Valkey 8.0+, asked with INFO server) gets the
SETSLOTs of a step over several connections at once (SETSLOT_LANES), as each waits alone.

Resumable: every step is decided from the nodes' own view of the slot at the start of the
chunk, so a move interrupted anywhere (killed provider, restarted node) is finished by running
it again: a slot already importing/migrating is not re-opened, a slot the target already owns
only has its remaining keys (if any) moved and its owner set everywhere. This module never sends
CLUSTER RESET, FLUSHALL, FLUSHDB or DEL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import redis
from redis.connection import Connection

from clusterops.core.errors import ClusterCommandError
from clusterops.core.model import NodeTarget
from clusterops.core.poll import Deadline, poll
from clusterops.node.access import Access
from clusterops.node.observe import (
    ClusterNodeEntry,
    parse_cluster_nodes,
    parse_info,
    reply_text,
    server_identity,
)
from clusterops.reshape.pacing import KeyPacer

log = logging.getLogger(__name__)

BATCH_KEYS = 1000  # keys per GETKEYSINSLOT and per MIGRATE
CHUNK_SLOTS = 64  # slots opened, emptied and closed together
PACED_CHUNK_SLOTS = 4  # ... when paced (see SlotMover)
PACED_MIGRATE_KEYS = 10  # keys per MIGRATE when paced
MIGRATE_TIMEOUT_MS = 10_000
# Connections per node for the SETSLOTs of a chunk on a server that answers each only after
# its replicas acknowledged it (Valkey 8.0+): one replica round trip then releases this many
# slots instead of one. 32: half a chunk per round trip; 64 sent more than it saved (Valkey
# 8.0.1, 3 -> 4 masters: 8.7 s at 64 lanes, 7.0-7.8 at 32 and 16, 9.1 at 8, 45 s at 1).
SETSLOT_LANES = 32
SOCKET_TIMEOUT_S = 30.0  # a MIGRATE of a large batch may take a while


class SlotMoveError(ClusterCommandError):
    """A slot could not be moved; the message names the slot, both nodes and what to do."""


@dataclass
class MoveStats:
    slots: int = 0
    keys: int = 0
    migrate_calls: int = 0
    busy_retries: int = 0  # batches re-sent with REPLACE after an interrupted MIGRATE
    elapsed_s: float = 0.0

    def add(self, other: MoveStats) -> None:
        """Count ``other``'s moves into these (elapsed time too: the moves ran one after the
        other)."""
        self.slots += other.slots
        self.keys += other.keys
        self.migrate_calls += other.migrate_calls
        self.busy_retries += other.busy_retries
        self.elapsed_s += other.elapsed_s


def _myself(conn: redis.Redis) -> ClusterNodeEntry:
    text = reply_text(conn.execute_command("CLUSTER", "NODES"))
    return next(e for e in parse_cluster_nodes(text) if e.is_myself)


def groups_of_keys(sizes: Sequence[int], keys: int, most: int | None) -> list[range]:
    """Consecutive commands (by index; ``sizes``: the keys each carries), each group at most
    ``keys`` keys (one command at least) and at most ``most`` commands."""
    groups: list[range] = []
    start, count = 0, 0
    for index, size in enumerate(sizes):
        if index > start and (count + size > keys or (most and index - start >= most)):
            groups.append(range(start, index))
            start, count = index, 0
        count += size
    if sizes:
        groups.append(range(start, len(sizes)))
    return groups


def _turned_replica(reply: Exception) -> bool:
    """The node answering became a replica: it refuses SETSLOT ("only with masters"), or, on
    Valkey, a SETSLOT waiting for its replicas was released when the node was demoted (its
    last slot moved away and it now follows the slot's new owner)."""
    text = str(reply)
    return "only with masters" in text or ("UNBLOCKED" in text and "replica" in text)


class _SentCommands:
    """Commands written to lane connections (command i on lane i % lanes) whose replies are
    read later: :meth:`read` (or :meth:`wait`, which keeps them) gives them back in order."""

    def __init__(self, connections: Sequence[Connection],
                 commands: Sequence[tuple[Any, ...]]) -> None:
        self.lanes = max(1, min(len(connections), len(commands)))
        self.connections, self.count = list(connections[: self.lanes]), len(commands)
        self.replies: list[Any] | None = None
        try:
            for lane, connection in enumerate(self.connections):
                connection.send_packed_command(
                    connection.pack_commands(commands[lane :: self.lanes]))
        except BaseException:
            self._disconnect()
            raise

    def wait(self) -> None:
        if self.replies is None:
            self.replies = self._read()

    def read(self) -> list[Any]:
        self.wait()
        assert self.replies is not None
        return self.replies

    def _read(self) -> list[Any]:
        replies: list[Any] = [None] * self.count
        try:
            for lane, connection in enumerate(self.connections):
                for index in range(lane, self.count, self.lanes):
                    try:
                        replies[index] = connection.read_response()
                    except redis.ResponseError as exc:
                        replies[index] = exc
        except BaseException:
            self._disconnect()
            raise
        return replies

    def _disconnect(self) -> None:
        for connection in self.connections:
            connection.disconnect()  # replies may be left unread on it; reconnects on use


class SlotMover:
    """Moves slots between the named nodes of one cluster (``ids``: name -> node id)."""

    def __init__(self, nodes: Sequence[NodeTarget], ids: Mapping[str, str], access: Access,
                 batch: int = BATCH_KEYS, chunk: int = CHUNK_SLOTS,
                 progress: Callable[[str], None] | None = None,
                 parallel_sources: bool = False, slots_per_round: int | None = None,
                 keys_per_migrate: int | None = None,
                 max_keys_per_second: float | None = None) -> None:
        """``parallel_sources``: the pairs of one target move at once, one thread per source
        (targets still go one at a time, see :meth:`move`). ``slots_per_round``: at most this
        many MIGRATEs (one per slot) per pipeline (None: the whole chunk at once).
        A source runs a pipeline's commands back to back while its other clients wait, so
        smaller rounds keep a live client's latency down at the price of more round trips.
        ``keys_per_migrate``: at most this many keys per MIGRATE (None: ``batch``). MIGRATE
        blocks the source until the target has stored every key of it, so a smaller one is a
        shorter stall for the source's clients, most of all when the target is busy.
        ``max_keys_per_second``: pace the whole move at most this fast (None: unpaced), in
        small rounds with pauses between them (clusterops/reshape/pacing.py)."""
        self.nodes = {n.name: n for n in nodes}
        self.ids = dict(ids)
        self.access = access
        self.batch = batch
        self.chunk = chunk
        self.progress = progress or log.info
        self.parallel_sources = parallel_sources
        self.slots_per_round = slots_per_round
        self.keys_per_migrate = keys_per_migrate
        self.pacer = KeyPacer(max_keys_per_second) if max_keys_per_second else None
        if self.pacer is not None:
            # A paced round carries one round's worth of keys, whatever else was asked; and
            # few slots are open at once: while a slot is open, a client asking for a key
            # that already moved pays an ASK redirect (two round trips), so a chunk open for
            # long at a low pace cost more client latency than the MIGRATEs did (measured
            # with bench/reshard_bench.py).
            self.keys_per_migrate = min(keys_per_migrate or batch, self.pacer.round_keys,
                                        PACED_MIGRATE_KEYS)
            self.chunk = min(chunk, PACED_CHUNK_SLOTS)
            # One source at a time, one small MIGRATE per round trip: a client then waits
            # behind at most one MIGRATE of 10 keys, on one node, not on three. On 2 cores the
            # clients' p99 follows CPU contention: three sources in parallel at the same
            # keys/s cost it 1.6 ms instead of 0.9 (bench/reshard_bench.py). This shape tops
            # out near 16,000 keys/s here; unpaced is the fast one.
            self.parallel_sources = False
            self.slots_per_round = 1
        # Masters that turned replica during the move (emptied of their last slot): no longer
        # told new owners, so a scale-in does not log one refusal per slot for each of them.
        self.demoted: set[str] = set()
        # id of a node's connection pool -> (pool, the connections its SETSLOTs go on).
        self._held: dict[int, tuple[redis.ConnectionPool, list[Connection]]] = {}

    def _error(self, action: str, slot: int, source: str, target: str, exc: BaseException) -> str:
        return (
            f"moving slot {slot} from {source} ({self.nodes[source].address}) to {target} "
            f"({self.nodes[target].address}): {action} failed: {self.access.redact(str(exc))}. "
            "No key is lost (MIGRATE removes a key from the source only once the target has it); "
            "the slot may stay open (importing/migrating). Fix the cause, then run `pulumi up` "
            "again: it finishes the move."
        )

    def move(self, pairs: Mapping[tuple[str, str], Sequence[int]],
             everyone: Sequence[str]) -> MoveStats:
        """Move the slots of each (source, target) pair, one pair after the other. ``everyone``:
        the masters told the new owner at the end of each chunk.

        Pairs do not run in parallel on purpose: a target claims its slots with a config epoch
        it bumps itself (SETSLOT NODE while importing). Two targets bumping at once can end
        with the older owner holding the higher epoch, and then the nodes that have not heard
        of the move keep the old owner (measured here: slots stuck on the old owner in the
        replicas' maps). One target at a time, each made the holder of the highest epoch
        (:meth:`claim`), converges every time.
        """
        started = time.monotonic()
        total = MoveStats()
        by_target: dict[str, list[tuple[str, list[int]]]] = {}
        for (source, target), slots in pairs.items():
            if slots:
                by_target.setdefault(target, []).append((source, list(slots)))
        for target, sources in by_target.items():
            if self.parallel_sources and len(sources) > 1:
                # One target, several sources: only the target bumps its epoch, so the race
                # described above cannot happen; each source works on its own slots.
                with ThreadPoolExecutor(max_workers=len(sources)) as pool:
                    results = list(pool.map(
                        lambda job, target=target: self._move_pair(job[0], target, job[1],
                                                                   everyone), sources))
            else:
                results = [self._move_pair(source, target, slots, everyone)
                           for source, slots in sources]
            self.claim(target, everyone)
            for stats in results:
                total.add(stats)
        total.elapsed_s = time.monotonic() - started
        return total

    def claim(self, target: str, masters: Sequence[str], timeout_s: float = 10.0) -> None:
        """Make ``target``'s config epoch the highest of all masters, so its claim on the slots it
        just received wins everywhere: wait until it has heard of every master's epoch, then
        CLUSTER BUMPEPOCH (a no-op when it already holds the unique maximum)."""
        names = sorted(set(masters) | {target})

        def epochs() -> tuple[int, int, int]:
            own: dict[str, int] = {}
            current = 0
            for name in names:
                with self.access.data_client(self.nodes[name]) as conn:
                    me = _myself(conn)
                    # A master emptied by the move turns replica (Redis 7) and gives up its
                    # claims: only masters' epochs compete.
                    if me.is_master or name == target:
                        own[name] = me.config_epoch
                    if name == target:
                        text = reply_text(conn.execute_command("CLUSTER", "INFO"))
                        current = int(parse_info(text).get("cluster_current_epoch", 0))
            others = max((e for n, e in own.items() if n != target), default=0)
            log.debug("epochs %s, %s current %s", own, target, current)
            return own[target], others, current

        def settled() -> tuple[bool, tuple[int, int, int]]:
            mine, others, current = epochs()
            if mine > others:
                return True, (mine, others, current)
            if current >= others:  # it knows the highest epoch: a bump now beats it
                with self.access.data_client(self.nodes[target]) as conn:
                    conn.execute_command("CLUSTER", "BUMPEPOCH")
            return False, (mine, others, current)

        done, seen = poll(settled, Deadline.after(timeout_s), 0.05)
        if not done:
            raise SlotMoveError(
                f"{target} ({self.nodes[target].address}) could not take the highest config "
                f"epoch within {timeout_s:g}s (its epoch, the others' highest, its current "
                f"epoch: {seen}); its new slots may not be recognised everywhere. Run `pulumi up` "
                "again.")

    def _move_pair(self, source: str, target: str, slots: list[int],
                   everyone: Sequence[str]) -> MoveStats:
        stats = MoveStats()
        with ExitStack() as stack:
            conns = {name: stack.enter_context(self.access.data_client(self.nodes[name]))
                     for name in {source, target, *everyone}}
            stack.callback(self._release_lanes, conns)
            for index in range(0, len(slots), self.chunk):
                chunk = slots[index : index + self.chunk]
                self._move_chunk(conns, source, target, chunk, everyone, stats)
                stats.slots += len(chunk)
            self.progress(f"moved {stats.slots} slot(s), {stats.keys} key(s) from {source} to "
                          f"{target} ({stats.migrate_calls} MIGRATE call(s))")
        return stats

    def _lane_connections(self, conn: redis.Redis) -> list[Connection]:
        """The connections SETSLOTs go on for the node ``conn`` reaches, held until the pair's
        move ends (:meth:`_move_pair` gives them back): several where the node's SETSLOT
        waits for its replicas, else one."""
        key = id(conn.connection_pool)
        if key not in self._held:
            identity = server_identity(conn)
            waits = identity is not None and identity.setslot_waits_for_replicas
            pool = conn.connection_pool
            self._held[key] = (pool, [pool.get_connection()
                                      for _ in range(SETSLOT_LANES if waits else 1)])
        return self._held[key][1]

    def _release_lanes(self, conns: Mapping[str, redis.Redis]) -> None:
        for conn in conns.values():
            pool, connections = self._held.pop(id(conn.connection_pool), (None, []))
            for connection in connections:
                assert pool is not None
                pool.release(connection)

    def _setslots(self, conn: redis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """SETSLOT ``commands`` (distinct slots, any order), replies in order."""
        return self._send_setslots(conn, commands).read()

    def _send_setslots(self, conn: redis.Redis,
                       commands: Sequence[tuple[Any, ...]]) -> _SentCommands:
        """Send SETSLOT ``commands`` without reading the replies yet, so several nodes work on
        theirs at once. Where each SETSLOT waits for the replicas, lane i's commands (i, i +
        lanes, ...) go on a connection of its own: the server then holds one waiting SETSLOT
        per lane, and one replica ack releases them all."""
        return _SentCommands(self._lane_connections(conn), commands)

    def _pipeline(self, conn: redis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        pipe = conn.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return pipe.execute(raise_on_error=False)

    def _rounds(self, conn: redis.Redis, commands: Sequence[tuple[Any, ...]],
                sizes: Sequence[int]) -> list[Any]:
        """MIGRATE ``commands`` (``sizes``: keys in each) in pipelines of at most
        ``slots_per_round`` (paced: of about one round's worth of keys, each after the pacer
        lets it go), replies in order."""
        if self.pacer is None:
            step = self.slots_per_round or max(1, len(commands))
            return [reply for start in range(0, len(commands), step)
                    for reply in self._pipeline(conn, commands[start : start + step])]
        replies: list[Any] = []
        for group in groups_of_keys(sizes, self.pacer.round_keys, self.slots_per_round):
            self.pacer.before_sending(sum(sizes[i] for i in group))
            replies += self._pipeline(conn, [commands[i] for i in group])
        return replies

    def _move_chunk(self, conns: Mapping[str, redis.Redis], source: str, target: str,
                    chunk: Sequence[int], everyone: Sequence[str], stats: MoveStats) -> None:
        src, dst = conns[source], conns[target]
        src_id, dst_id = self.ids[source], self.ids[target]
        # Decide from the nodes' own views: a resumed chunk is not re-opened.
        src_me, dst_me = _myself(src), _myself(dst)
        importing = {slot for slot, _peer in dst_me.importing}
        migrating = {slot for slot, _peer in src_me.migrating}
        open_on_dst = [("CLUSTER", "SETSLOT", s, "IMPORTING", src_id) for s in chunk
                       if not dst_me.owns(s) and s not in importing]
        open_on_src = [("CLUSTER", "SETSLOT", s, "MIGRATING", dst_id) for s in chunk
                       if src_me.owns(s) and s not in migrating]
        for name, commands, what in ((target, open_on_dst, "SETSLOT IMPORTING"),
                                     (source, open_on_src, "SETSLOT MIGRATING")):
            replies = self._setslots(conns[name], commands)
            for command, reply in zip(commands, replies, strict=True):
                if isinstance(reply, Exception):
                    raise SlotMoveError(self._error(what, int(command[2]), source, target, reply))

        pending = list(chunk)
        host, port = self.nodes[target].cluster_host, self.nodes[target].cluster_port
        auth = self.access.migrate_auth(self.nodes[target])
        while pending:
            keys_of = self._pipeline(src, [("CLUSTER", "GETKEYSINSLOT", s, self.batch)
                                           for s in pending])
            work = []
            for slot, keys in zip(pending, keys_of, strict=True):
                if isinstance(keys, Exception):
                    raise SlotMoveError(self._error("GETKEYSINSLOT", slot, source, target, keys))
                if keys:
                    work.append((slot, list(keys)))
            if not work:
                break
            size = self.keys_per_migrate or self.batch
            parts = [(slot, keys[i : i + size]) for slot, keys in work
                     for i in range(0, len(keys), size)]
            commands = [("MIGRATE", host, port, "", 0, MIGRATE_TIMEOUT_MS, *auth, "KEYS", *keys)
                        for _slot, keys in parts]
            replies = self._rounds(src, commands, [len(keys) for _slot, keys in parts])
            stats.migrate_calls += len(commands)
            for (slot, keys), reply in zip(parts, replies, strict=True):
                if isinstance(reply, Exception) and "BUSYKEY" in str(reply):
                    # An earlier MIGRATE stored these keys on the target but was cut off before
                    # the source deleted them: the source still holds the current value.
                    stats.busy_retries += 1
                    reply = self._pipeline(src, [("MIGRATE", host, port, "", 0,
                                                  MIGRATE_TIMEOUT_MS, "REPLACE", *auth,
                                                  "KEYS", *keys)])[0]
                if isinstance(reply, Exception):
                    raise SlotMoveError(self._error("MIGRATE", slot, source, target, reply))
                stats.keys += len(keys)
            pending = [slot for slot, _keys in work]

        # Target first: its SETSLOT NODE ends importing and bumps its config epoch, so its claim
        # wins over any stale one; then the source and the other masters, all at once.
        others = [n for n in everyone if n not in (source, target) and n not in self.demoted]
        commands = [("CLUSTER", "SETSLOT", s, "NODE", dst_id) for s in chunk]
        closing = {target: self._send_setslots(conns[target], commands)}
        closing[target].wait()
        closing.update({name: self._send_setslots(conns[name], commands)
                        for name in [source, *others]})
        for name, sent in closing.items():
            replies = sent.read()
            refused = [(int(c[2]), r) for c, r in zip(commands, replies, strict=True)
                       if isinstance(r, Exception)]
            # A node emptied of its last slot turned replica (Redis 7) and learnt the owner by
            # gossip: it already agrees, and it holds no key.
            demoted = [] if name == target else \
                [slot for slot, reply in refused if _turned_replica(reply)]
            if demoted:
                self.demoted.add(name)
                log.info("%s is a replica now: it learns new owners by gossip", name)
            others_refused = [(slot, r) for slot, r in refused if slot not in demoted]
            if others_refused and name in (source, target):
                slot, reply = others_refused[0]
                raise SlotMoveError(self._error(f"SETSLOT NODE on {name}", slot, source, target,
                                                reply))
            if others_refused:
                # Another master learns the owner by gossip anyway (the target's epoch is
                # higher); telling it directly only saves it a redirect. One line per chunk.
                slot, reply = others_refused[0]
                log.warning("SETSLOT NODE %s refused on %s for %d slot(s), e.g. %d: %s",
                            target, name, len(others_refused), slot,
                            self.access.redact(str(reply)))
