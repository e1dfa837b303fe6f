"""The nemesis: one fault at a time, chosen at random from a seed, undone by the nemesis itself.

Fault kinds (``KINDS``), each on a node (or host) picked at random among the live roles:

- kill_master / kill_replica: SIGKILL the container, leave it down 1-4 s, start it again;
- pause_master / pause_replica: SIGSTOP the server for node-timeout + 0.5-3 s, then SIGCONT
  (a process that was failed over while it slept, waking up);
- partition_node: cut one node's container off the cluster network for node-timeout + 0.5-4 s;
- partition_shard: a master and its replica cut off together for 2-5 s (no copy of their slots
  stays reachable: the one fault whose window is its own length);
- restart_container: ``docker restart`` (SIGTERM, then start), as an engine or operator does;
- host_cut: a whole Docker host's link cut for node-timeout + 1-5 s (several hosts only);
  recorded as host_cut_masters when that host holds half the masters or more;
- pulumi_setting / pulumi_reshape: ``pulumi up`` changing maxmemory, or masters 3 <-> 4, while a
  kill or pause runs on some node;
- rebalance: ``clusterops rebalance --apply`` while a kill or pause runs.

A ``pulumi up`` or rebalance that fails while its fault runs is re-run once after the cluster
healed, as a deploy pipeline would; both answers go into the fault's note.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from clusterops.cli.targets import targets_from_outputs
from clusterops.core.units import format_memory, parse_memory
from clusterops.state.live import LiveCluster
from clusterops.tasks.node_control import DockerNodeControl
from tests.support.soak.history import FaultRecord

KINDS = ("kill_master", "kill_replica", "pause_master", "pause_replica", "partition_node",
         "partition_shard", "restart_container", "host_cut", "pulumi_setting",
         "pulumi_reshape", "rebalance")
ACTION_TIMEOUT_S = 900.0
PROJECT_ROOT = Path(__file__).resolve().parents[3]


class HostLinks(Protocol):
    """Several Docker hosts: cut and restore one host's link (tests/support/netns_hosts.py)."""

    def cut(self, host: str) -> None: ...

    def restore(self, host: str) -> None: ...


class StackChanger(Protocol):
    """Runs `pulumi up` with some settings changed; returns the new outputs (raises on error)."""

    def up(self, changes: Mapping[str, str]) -> dict[str, Any]: ...


@dataclass
class SoakTarget:
    """What the nemesis acts on. ``docker_hosts``: host name -> DOCKER_HOST URL (several hosts);
    empty for one engine reached through the environment."""

    outputs: dict[str, Any]
    outputs_file: Path
    node_timeout_s: float
    docker_hosts: Mapping[str, str] = field(default_factory=dict)
    links: HostLinks | None = None
    stack: StackChanger | None = None
    base_maxmemory: str = "512mb"

    def control(self, node: str) -> DockerNodeControl:
        targets = targets_from_outputs(self.outputs)
        host = self.host_of(node)
        docker: list[str] = ["docker"]
        if self.docker_hosts and host:
            docker = ["docker", "-H", self.docker_hosts[host]]
        return DockerNodeControl(targets, docker=docker)

    def host_of(self, node: str) -> str | None:
        return next((n.get("host") for n in self.outputs["nodes"] if n["name"] == node), None)

    def kinds(self) -> list[str]:
        """The fault kinds this topology can run."""
        several_hosts = bool(self.docker_hosts)
        skip = {"host_cut"} if not several_hosts or self.links is None else set()
        if several_hosts:
            # Containers announce their host's address there: reconnecting one to its network
            # gives it a new container address behind the published ports; a host cut is that
            # topology's partition. Reshapes place masters per host: single-host soak only.
            skip |= {"partition_node", "partition_shard", "pulumi_reshape"}
        if self.stack is None:
            skip |= {"pulumi_setting", "pulumi_reshape"}
        return [kind for kind in KINDS if kind not in skip]

    def save_outputs(self, outputs: dict[str, Any]) -> None:
        self.outputs = outputs
        fd = os.open(self.outputs_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(outputs, handle)


@dataclass
class Roles:
    masters: list[str]  # own slots now
    replica_of: dict[str, str]  # replica -> the master it follows now

    @classmethod
    def of(cls, live: LiveCluster) -> Roles:
        names = live.names
        owners = {owner for owner in live.owners if owner}
        replicas = {}
        for snapshot in live.snapshots:
            me = snapshot.myself
            if me is not None and me.is_replica and me.master_id in names:
                replicas[snapshot.name] = names[me.master_id]
        return cls(sorted(owners), replicas)

    def pick_master(self, rng: random.Random) -> str:
        return rng.choice(self.masters)

    def pick_replica(self, rng: random.Random) -> str:
        return rng.choice(sorted(self.replica_of))

    def pick_any(self, rng: random.Random) -> str:
        return rng.choice(sorted({*self.masters, *self.replica_of}))


class Nemesis:
    def __init__(self, target: SoakTarget, rng: random.Random) -> None:
        self.target = target
        self.rng = rng

    # -- faults on one node ------------------------------------------------------------------
    def _kill_parts(self, node: str) -> tuple[float, Callable[[], None], Callable[[], None]]:
        """Down 1-4 s: (hold, inject, undo)."""
        control = self.target.control(node)
        return (self.rng.uniform(1.0, 4.0), lambda: control.kill(node),
                lambda: control.start(node))

    def _pause_parts(self, node: str) -> tuple[float, Callable[[], None], Callable[[], None]]:
        """Asleep for node-timeout + 0.5-3 s: long enough to be failed over."""
        control = self.target.control(node)
        timeout = self.target.node_timeout_s
        return (self.rng.uniform(timeout + 0.5, timeout + 3.0),
                lambda: control.signal(node, "STOP"), lambda: control.signal(node, "CONT"))

    def _down_for(self, kind: str, node: str,
                  parts: tuple[float, Callable[[], None], Callable[[], None]]) -> FaultRecord:
        hold, inject, undo = parts
        injected = time.monotonic()
        inject()
        time.sleep(hold)
        undo()
        return FaultRecord(kind, (node,), injected, time.monotonic())

    def kill(self, kind: str, node: str) -> FaultRecord:
        return self._down_for(kind, node, self._kill_parts(node))

    def pause(self, kind: str, node: str) -> FaultRecord:
        return self._down_for(kind, node, self._pause_parts(node))

    def partition(self, kind: str, nodes: Sequence[str], low: float,
                  high: float) -> FaultRecord:
        controls = {node: self.target.control(node) for node in nodes}
        hold = self.rng.uniform(low, high)
        injected = time.monotonic()
        for node in nodes:
            controls[node].isolate(node)
        time.sleep(hold)
        for node in nodes:
            controls[node].heal(node)
        return FaultRecord(kind, tuple(nodes), injected, time.monotonic())

    def restart(self, node: str) -> FaultRecord:
        injected = time.monotonic()
        self.target.control(node).restart(node)
        return FaultRecord("restart_container", (node,), injected, time.monotonic())

    def host_cut(self, roles: Roles) -> FaultRecord:
        """A host's link cut. Recorded as ``host_cut_masters`` when the host holds at least half
        of the slot-owning masters (failovers can bunch them on one host): then no majority of
        masters is left to vote a failover, and its shards wait for the host to return."""
        links = self.target.links
        assert links is not None
        host = self.rng.choice(sorted(self.target.docker_hosts))
        on_host = [m for m in roles.masters if self.target.host_of(m) == host]
        kind = "host_cut_masters" if 2 * len(on_host) >= len(roles.masters) else "host_cut"
        timeout = self.target.node_timeout_s
        hold = self.rng.uniform(timeout + 1.0, timeout + 5.0)
        injected = time.monotonic()
        links.cut(host)
        time.sleep(hold)
        links.restore(host)
        return FaultRecord(kind, (host,), injected, time.monotonic(),
                           note=f"masters on it: {', '.join(on_host) or 'none'}")

    # -- changes while a fault runs ----------------------------------------------------------
    def during_fault(self, kind: str, roles: Roles,
                     action: Callable[[], str]) -> tuple[FaultRecord, Callable[[], str] | None]:
        """A kill or pause of a random node, and ``action`` started 0.2-1 s into it (in a
        thread: a deploy outlasts the fault). The record, and the action to re-run after
        healing when it failed (None when it succeeded)."""
        node = roles.pick_any(self.rng)
        how = "kill" if self.rng.random() < 0.5 else "pause"
        hold, inject, undo = self._kill_parts(node) if how == "kill" else \
            self._pause_parts(node)
        answer: dict[str, str] = {}

        def run() -> None:
            try:
                answer["result"] = action()
            except Exception as exc:  # noqa: BLE001 - what it said goes into the report
                answer["error"] = f"{type(exc).__name__}: {_first_line(str(exc))}"

        worker = threading.Thread(target=run, name=kind, daemon=True)
        injected = time.monotonic()
        inject()
        lead = self.rng.uniform(0.2, 1.0)
        time.sleep(lead)
        worker.start()
        time.sleep(max(0.0, hold - lead))
        undo()
        worker.join(ACTION_TIMEOUT_S)
        note = (f"{how} of {node} for {hold:.1f} s; "
                + (f"ok: {answer['result']}" if "result" in answer
                   else f"failed: {answer.get('error', 'did not finish')}"))
        record = FaultRecord(kind, (node,), injected, time.monotonic(), note=note)
        return record, (None if "result" in answer else action)

    def pulumi_setting(self) -> str:
        assert self.target.stack is not None
        current = str(self.target.outputs.get("maxmemory_bytes", ""))
        base = parse_memory(self.target.base_maxmemory)
        value = self.target.base_maxmemory if current != str(base) else \
            format_memory(base + 64 * 1024 * 1024)
        self.target.save_outputs(self.target.stack.up({"maxmemory": value}))
        return f"maxmemory -> {value}"

    def pulumi_reshape(self) -> str:
        assert self.target.stack is not None
        masters = sum(n["role"] == "master" for n in self.target.outputs["nodes"])
        wanted = 4 if masters == 3 else 3
        self.target.save_outputs(self.target.stack.up({"masters": str(wanted)}))
        return f"masters {masters} -> {wanted}"

    def rebalance(self) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "clusterops", "rebalance", "--stack-outputs",
             str(self.target.outputs_file), "--apply", "--timeout", "60"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=ACTION_TIMEOUT_S,
            check=False)
        text = _first_line(done.stderr or done.stdout)
        if done.returncode != 0:
            raise RuntimeError(f"exit {done.returncode}: {text}")
        return text

    # -- choosing --------------------------------------------------------------------------
    def run_one(self, kind: str, roles: Roles) -> tuple[FaultRecord, Callable[[], str] | None]:
        """Inject and undo one fault of ``kind``; a failed action to re-run after healing."""
        timeout = self.target.node_timeout_s
        if kind in ("kill_master", "kill_replica"):
            node = roles.pick_master(self.rng) if kind == "kill_master" else \
                roles.pick_replica(self.rng)
            return self.kill(kind, node), None
        if kind in ("pause_master", "pause_replica"):
            node = roles.pick_master(self.rng) if kind == "pause_master" else \
                roles.pick_replica(self.rng)
            return self.pause(kind, node), None
        if kind == "partition_node":
            return self.partition(kind, [roles.pick_any(self.rng)], timeout + 0.5,
                                  timeout + 4.0), None
        if kind == "partition_shard":
            master = roles.pick_master(self.rng)
            pair = [master, *[r for r, m in roles.replica_of.items() if m == master]]
            return self.partition(kind, pair, 2.0, 5.0), None
        if kind == "restart_container":
            return self.restart(roles.pick_any(self.rng)), None
        if kind == "host_cut":
            return self.host_cut(roles), None
        actions = {"pulumi_setting": self.pulumi_setting, "pulumi_reshape": self.pulumi_reshape,
                   "rebalance": self.rebalance}
        return self.during_fault(kind, roles, actions[kind])


def _first_line(text: str) -> str:
    """The first line that reports an error (else the first line), its end kept: the engine
    prints a resource's whole input before the reason."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    interesting = [line for line in lines if "error" in line.lower()]
    line = (interesting or lines or ["(no output)"])[0]
    return line if len(line) <= 300 else f"...{line[-300:]}"
