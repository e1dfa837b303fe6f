"""Scale 3 -> 4 masters with N keys of ~100 bytes: `clusterops rebalance` vs redis-cli's rebalance.

Each trial runs on a fresh cluster of redis-server processes on loopback: 3 masters formed by
``redis-cli --cluster create`` (no replicas: 2 cores, and both tools pay the same for them),
loaded with N keys of 100-byte values (one MSET per slot, pipelined to each slot's owner), and
a 4th empty master met and settled (``cluster_state:ok`` on every node) before the clock
starts. Then the slots move to the new master while a redis-py ``RedisCluster`` client in a
process of its own (so it shares no interpreter lock with either tool) does GET and SET (same
value back) on random existing keys, paced at ``--client-rate`` pairs/s (default 1000; 0 runs
it flat out), each call timed:

- ours: ``clusterops.reshape.rebalance`` (what ``python -m clusterops rebalance --apply`` runs): the
  plan (keys counted per range) and the move, timed together, unpaced and at each
  ``--paces`` ceiling (``--max-keys-per-second``, clusterops/reshape/pacing.py);
- reference, same run: ``redis-cli --cluster rebalance <node> --cluster-use-empty-masters
  --cluster-pipeline P`` for each ``--pipelines`` P (password in REDISCLI_AUTH).

The question it answers: at each level of client impact redis-cli reaches (its p99 at one
pipeline size), does a setting of ours move at least 2x the keys/s with a client p99 no worse?
It prints one row per trial, then that verdict per redis-cli point, and with ``--plot FILE``
draws keys/s against the client's p99 for both tools (matplotlib).

Reported per tool: keys moved (counted on the new master afterwards), keys/s, and the client's
p50 / p99 / max latency and errors, during the move and over a fixed window from its start
(``--window``, 15 s: the same client traffic for both tools, so a faster move is not judged on
a shorter, denser slice). Every key is counted afterwards. Also the CPU seconds the move cost
the four redis-servers (from /proc) and the tool itself: on 2 cores, what a move may spend per
second of wall clock is bounded.

Control, on the same cluster before our move: the same client for 4 s idle, then for 4 s while
busy loops (no Redis work at all) hold one core, then both. It shows what the client's p99
becomes when a move keeps every core busy, whatever the move does.

Usage: python bench/reshard_bench.py [--keys 1000000] [--client-rate 1000] [--pipelines 10,100,1000]
       [--paces 0,100000,50000,20000,10000] [--plot docs/reshard-tradeoff.png]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import redis  # noqa: E402
from redis.cluster import ClusterNode, RedisCluster  # noqa: E402
from redis.crc import key_slot  # noqa: E402

from clusterops.core.model import NodeTarget  # noqa: E402
from clusterops.core.poll import Deadline, poll  # noqa: E402
from clusterops.node.access import Access  # noqa: E402
from clusterops.node.observe import parse_cluster_nodes  # noqa: E402
from clusterops.reshape.rebalance import apply_rebalance, preview_rebalance  # noqa: E402
from tests.support.process_control import form_cluster_with_redis_cli  # noqa: E402
from tests.support.redis_nodes import RedisNodes  # noqa: E402

VALUE = b"v" * 100
MSETS_PER_PIPELINE = 256


def key(index: int) -> bytes:
    return b"bench:%d" % index


@dataclass
class Members:
    """The 3 nodes redis-cli forms (what form_cluster_with_redis_cli reads)."""

    nodes: list
    password: str

    def __iter__(self):  # noqa: ANN204
        return iter(self.nodes)


def wait(what: str, probe, timeout_s: float = 60.0) -> None:  # noqa: ANN001
    def guarded() -> tuple[bool, str]:
        try:
            return bool(probe()), "not yet"
        except redis.RedisError as exc:
            return False, f"{type(exc).__name__}: {exc}"

    done, seen = poll(guarded, Deadline.after(timeout_s), 0.05)
    if not done:
        raise SystemExit(f"timed out waiting for {what}: {seen}")


def fresh_cluster(base: Path, keys: int) -> RedisNodes:
    group = RedisNodes(4, base_dir=base)
    group.start()
    three = group.nodes[:3]
    form_cluster_with_redis_cli(Members(three, group.password), replicas=0)  # type: ignore[arg-type]
    wait("cluster_state:ok on the 3 masters", lambda: all(
        "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO") for n in three))
    load(group, keys)
    new = group[3]
    group[0].client().execute_command("CLUSTER", "MEET", new.host, new.port)
    new_id = new.client().execute_command("CLUSTER", "MYID")
    wait("the 4th master known and cluster_state:ok everywhere", lambda: all(
        new_id in n.client().execute_command("CLUSTER", "NODES")
        and "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO") for n in group))
    return group


def load(group: RedisNodes, keys: int) -> None:
    owner: dict[int, int] = {}
    for entry in parse_cluster_nodes(group[0].client().execute_command("CLUSTER", "NODES")):
        index = next(i for i, n in enumerate(group.nodes) if n.port == entry.port)
        for first, last in entry.slots:
            owner.update(dict.fromkeys(range(first, last + 1), index))
    by_slot: dict[int, list[bytes]] = defaultdict(list)
    for i in range(keys):
        name = key(i)
        by_slot[key_slot(name)].append(name)
    by_node: dict[int, list[list[bytes]]] = defaultdict(list)
    for slot, names in by_slot.items():
        by_node[owner[slot]].append(names)
    for index, groups in by_node.items():
        with group[index].client(decode_responses=False, socket_timeout=60) as conn:
            for start in range(0, len(groups), MSETS_PER_PIPELINE):
                pipe = conn.pipeline(transaction=False)
                for names in groups[start : start + MSETS_PER_PIPELINE]:
                    pipe.execute_command("MSET", *(x for n in names for x in (n, VALUE)))
                pipe.execute()
    total = sum(int(n.client().dbsize()) for n in group)
    if total != keys:
        raise SystemExit(f"loaded {total} keys, expected {keys}")


def client_loop(startup: list[tuple[str, int]], password: str, keys: int, rate: float,
                ready: Event, halt: Event, results: Connection) -> None:
    """In its own process (no GIL shared with the tool under test): GET then SET (the same
    value) on random existing keys, each call timed; sends (calls, errors) at the end.

    ``rate`` pairs per second, paced from a fixed schedule (a late call starts at once, so
    a stall is measured, not skipped); 0: as fast as it can (then the client itself competes
    for the CPU with the tool under test)."""
    client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in startup],
                          password=password, socket_timeout=10)
    rng = random.Random(7)
    calls: list[tuple[float, float]] = []  # (monotonic start, seconds)
    errors: list[tuple[float, str]] = []
    due = time.monotonic()
    while not halt.is_set():
        if rate:
            due += 1 / rate
            time.sleep(max(0.0, due - time.monotonic()))
        name = key(rng.randrange(keys))
        for command in (("GET", name), ("SET", name, VALUE)):
            started = time.monotonic()
            try:
                client.execute_command(*command)
            except (redis.RedisError, AttributeError) as exc:
                errors.append((started, f"{type(exc).__name__}: {exc}"))
            calls.append((started, time.monotonic() - started))
        ready.set()
    client.close()
    results.send((calls, errors))


class Client:
    """The timed client, started before the move and stopped after it and its window."""

    def __init__(self, group: RedisNodes, keys: int, rate: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.halt = context.Event(), context.Event()
        self.receive, send = context.Pipe(duplex=False)
        self.process = context.Process(target=client_loop, args=(
            [(n.host, n.port) for n in group], group.password, keys, rate, self.ready,
            self.halt, send))
        self.calls: list[tuple[float, float]] = []
        self.errors: list[tuple[float, str]] = []

    def start(self) -> None:
        """Return once the client has made its first calls (before the first slot moves)."""
        self.process.start()
        if not self.ready.wait(30):
            raise SystemExit("the benchmark client made no call within 30 s")

    def stop(self) -> None:
        self.halt.set()
        self.calls, self.errors = self.receive.recv()
        self.process.join(30)

    def between(self, first: float, last: float) -> tuple[list[float], list[str]]:
        """Latencies (ms, sorted) and errors of the calls started in [first, last]."""
        ms = sorted(s * 1000 for t, s in self.calls if first <= t <= last)
        return ms, [e for t, e in self.errors if first <= t <= last]


def p99(ms: list[float]) -> float:
    return ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan")


def describe(ms: list[float], errors: list[str]) -> str:
    if not ms:
        return "no calls"
    shown = f": {errors[:2]}" if errors else ""
    return (f"{len(ms)} calls, p50 {statistics.median(ms):.2f} ms, p99 {p99(ms):.2f} ms, max "
            f"{ms[-1]:.1f} ms, {len(errors)} error(s){shown}")


def server_cpu_s(group: RedisNodes) -> list[float]:
    """CPU seconds (user + system) each redis-server has used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = [Path(f"/proc/{n.pid}/stat").read_text().rsplit(")", 1)[1].split() for n in group]
    return [(int(f[11]) + int(f[12])) / ticks for f in fields]  # utime, stime


def tool_cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (redis-cli)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                          resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Trial:
    seconds: float
    moved: int
    during: tuple[list[float], list[str]]  # the client's calls during the move
    window: tuple[list[float], list[str]]  # ... during the fixed window from the move's start
    servers_cpu_s: list[float]  # each redis-server's CPU seconds during the move
    tool_cpu_s: float

    def line(self, tool: str, window_s: float) -> str:
        servers = " + ".join(f"{c:.2f}" for c in self.servers_cpu_s)
        return (f"{tool} moved {self.moved} keys in {self.seconds:.2f} s "
                f"({self.moved / self.seconds:,.0f} keys/s); client during the move: "
                f"{describe(*self.during)}; over the {window_s:g} s window: "
                f"{describe(*self.window)}; CPU during the move: redis-servers {servers} = "
                f"{sum(self.servers_cpu_s):.2f} s, the tool {self.tool_cpu_s:.2f} s")


def measured(group: RedisNodes, keys: int, window_s: float, rate: float, tool: str,
             move: Callable[[], None]) -> Trial:
    """Run ``move`` under the client; keep the client going to the end of the window, so
    both tools are judged on the same amount of client traffic as well as during the move."""
    client = Client(group, keys, rate)
    client.start()
    cpu_before, tool_before = server_cpu_s(group), tool_cpu_s()
    started = time.monotonic()
    move()
    ended = time.monotonic()
    cpu_after, tool_after = server_cpu_s(group), tool_cpu_s()
    time.sleep(max(0.0, started + window_s - time.monotonic()))  # a fixed measuring window
    client.stop()
    moved = check_after(group, keys, tool)
    return Trial(ended - started, moved, client.between(started, ended),
                 client.between(started, started + window_s),
                 [b - a for a, b in zip(cpu_before, cpu_after, strict=True)],
                 tool_after - tool_before)


def check_after(group: RedisNodes, keys: int, tool: str) -> int:
    total = sum(int(n.client().dbsize()) for n in group)
    if total != keys:
        raise SystemExit(f"{tool}: {total} keys in the cluster afterwards, expected {keys}")
    return int(group[3].client().dbsize())


def targets(group: RedisNodes) -> list[NodeTarget]:
    return [NodeTarget(n.name, n.host, n.port, n.host, n.port) for n in group]


def burn(seconds: float) -> None:
    """A busy loop: one core held for ``seconds`` (the contention control)."""
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        pass


def contention_control(group: RedisNodes, keys: int, rate: float, seconds: float = 4.0) -> str:
    """The client's latencies idle, with one core busy, and with both cores busy."""
    client = Client(group, keys, rate)
    client.start()
    context = multiprocessing.get_context("spawn")
    windows = []
    for burners in (0, 1, 2):
        processes = [context.Process(target=burn, args=(seconds,)) for _ in range(burners)]
        for process in processes:
            process.start()
        started = time.monotonic()
        if processes:
            for process in processes:
                process.join()
        else:
            time.sleep(seconds)
        windows.append((started, time.monotonic()))
        time.sleep(0.5)  # let the client settle between windows
    client.stop()
    return "; ".join(f"{label}: {describe(*client.between(*window))}" for label, window in zip(
        ("idle", "1 core busy", "2 cores busy"), windows, strict=True))


def run_ours(base: Path, keys: int, window_s: float, rate: float, pace: float,
             control: bool = False) -> Trial:
    group = fresh_cluster(base, keys)
    try:
        if control:
            print("control (no move; busy loops, no Redis work): "
                  + contention_control(group, keys, rate), flush=True)

        def move() -> None:
            plan = preview_rebalance(targets(group), Access(group.password))
            apply_rebalance(targets(group), Access(group.password), plan, 60,
                            max_keys_per_second=pace or None)

        return measured(group, keys, window_s, rate, "clusterops", move)
    finally:
        group.close()


def run_redis_cli(base: Path, keys: int, window_s: float, rate: float, pipeline: int) -> Trial:
    group = fresh_cluster(base, keys)
    try:
        def move() -> None:
            done = subprocess.run(
                ["redis-cli", "--cluster", "rebalance", group[0].address,
                 "--cluster-use-empty-masters", "--cluster-pipeline", str(pipeline)],
                env={**os.environ, "REDISCLI_AUTH": group.password},
                capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"redis-cli --cluster rebalance failed: {done.stdout[-800:]}")

        return measured(group, keys, window_s, rate, "redis-cli", move)
    finally:
        group.close()


@dataclass(frozen=True)
class Point:
    tool: str  # "redis-cli" or "clusterops"
    setting: str  # "pipeline 10", "unpaced", "20,000 keys/s"
    keys_per_s: float
    p50_ms: float
    p99_ms: float


def point(tool: str, setting: str, trial: Trial) -> Point:
    during = trial.during[0]
    return Point(tool, setting, trial.moved / trial.seconds,
                 statistics.median(during) if during else float("nan"), p99(during))


def verdicts(ours: list[Point], theirs: list[Point]) -> list[str]:
    """Per redis-cli point: our fastest setting whose client p99 is no worse, and whether it
    moves at least 2x the keys/s."""
    lines = []
    for ref in theirs:
        fit = [p for p in ours if p.p99_ms <= ref.p99_ms]
        best = max(fit, key=lambda p: p.keys_per_s, default=None)
        if best is None:
            lines.append(f"redis-cli {ref.setting} (p99 {ref.p99_ms:.2f} ms, "
                         f"{ref.keys_per_s:,.0f} keys/s): no setting of ours at that p99 or "
                         "lower - NOT MET")
            continue
        ratio = best.keys_per_s / ref.keys_per_s
        lines.append(f"redis-cli {ref.setting} (p99 {ref.p99_ms:.2f} ms, {ref.keys_per_s:,.0f} "
                     f"keys/s): ours at {best.setting} p99 {best.p99_ms:.2f} ms, "
                     f"{best.keys_per_s:,.0f} keys/s = {ratio:.1f}x "
                     f"({'met' if ratio >= 2 else 'NOT MET'}: goal 2x at a p99 no worse)")
    return lines


def plot(points: list[Point], path: Path, keys: int, client_rate: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"no plot: matplotlib is not installed (pip install matplotlib), {path} not "
              "written", flush=True)
        return
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for tool, marker in (("redis-cli", "s"), ("clusterops", "o")):
        mine = [p for p in points if p.tool == tool]
        axes.scatter([p.p99_ms for p in mine], [p.keys_per_s for p in mine], marker=marker,
                     label=tool)
        for p in mine:
            axes.annotate(p.setting, (p.p99_ms, p.keys_per_s), fontsize=7,
                          textcoords="offset points", xytext=(4, 4))
    axes.set_xlabel(f"client p99 during the move (ms; GET+SET at {client_rate:g} pairs/s)")
    axes.set_ylabel("keys moved per second")
    axes.set_title(f"3 -> 4 masters, {keys:,} keys of 100 bytes, 2 cores")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"plot written to {path}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--window", type=float, default=15.0, metavar="S",
                        help="the client's fixed measuring window from the move's start "
                        "[%(default)g]; longer than either move")
    parser.add_argument("--client-rate", type=float, default=1000.0, metavar="PAIRS",
                        help="the client's GET+SET pairs per second, paced [%(default)g]; 0: "
                        "flat out (it then takes a core of its own from the 2)")
    parser.add_argument("--pipelines", default="10,100,1000",
                        help="redis-cli's --cluster-pipeline values [%(default)s]")
    parser.add_argument("--paces", default="0,100000,50000,20000,10000",
                        help="our --max-keys-per-second values, 0 unpaced [%(default)s]")
    parser.add_argument("--plot", type=Path, help="write keys/s against p99 as a PNG here")
    args = parser.parse_args()
    ours: list[Point] = []
    theirs: list[Point] = []
    with tempfile.TemporaryDirectory() as tmp:
        for index, pace in enumerate(float(v) for v in args.paces.split(",")):
            trial = run_ours(Path(tmp) / f"ours{index}", args.keys, args.window,
                             args.client_rate, pace, control=index == 0)
            setting = f"{pace:,.0f} keys/s" if pace else "unpaced"
            ours.append(point("clusterops", setting, trial))
            print(trial.line(f"clusterops rebalance ({setting})", args.window), flush=True)
        for pipeline in (int(v) for v in args.pipelines.split(",")):
            trial = run_redis_cli(Path(tmp) / f"cli{pipeline}", args.keys, args.window,
                                  args.client_rate, pipeline)
            theirs.append(point("redis-cli", f"pipeline {pipeline}", trial))
            print(trial.line(f"redis-cli --cluster rebalance (pipeline {pipeline})",
                             args.window), flush=True)
    print(f"\n{args.keys:,} keys of 100 bytes, 3 -> 4 masters, client GET+SET at "
          f"{args.client_rate:g} pairs/s:")
    print("| tool | setting | keys/s | client p50 (ms) | client p99 (ms) |")
    print("|---|---|---|---|---|")
    for p in [*theirs, *ours]:
        print(f"| {p.tool} | {p.setting} | {p.keys_per_s:,.0f} | {p.p50_ms:.2f} | "
              f"{p.p99_ms:.2f} |")
    print()
    for line in verdicts(ours, theirs):
        print(line)
    if args.plot:
        plot([*theirs, *ours], args.plot, args.keys, args.client_rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
