"""NodeControl for real redis-server processes started by tests/support/redis_nodes.py.

kill = SIGKILL, stop = SIGTERM and wait for the exit, start = the same config file and
directory again (so ``nodes.conf`` and the node's identity are kept), isolate = SIGSTOP
(the process stops answering clients and the cluster bus alike), heal = SIGCONT.

Two ways to use it:

- in-process: ``ProcessNodeControl(nodes)`` where ``nodes`` is a ``RedisNodes`` group;
- from another process (the drill CLI's ``--control-command``): write a registry with
  ``write_registry(nodes, path)``, pass ``python -m tests.support.process_control --registry
  PATH`` as the control command (it is called with ``ACTION NODE`` appended), and call
  ``kill_registry_processes(path)`` at teardown, since nodes it restarted are not children of
  the test process and ``RedisNodes.close`` cannot see them.

``form_cluster_with_redis_cli`` and ``targets_for`` turn a ``RedisNodes`` group into the
cluster and the ``Targets`` a drill runs on (shared by tests/integration/test_drill.py and
bench/failover_bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import redis

from clusterops.core.model import NodeTarget as TargetNode
from clusterops.core.poll import Deadline, poll
from clusterops.node.targets import Targets
from tests.support.redis_nodes import START_DEADLINE_S, STOP_DEADLINE_S, RedisNode, RedisNodes


class ProcessControlError(RuntimeError):
    pass


class ProcessNodeControl:
    """Faults on RedisNode processes of this test process (nodes addressed by name)."""

    def __init__(self, nodes: Iterable[RedisNode], stop_deadline_s: float = STOP_DEADLINE_S):
        self._nodes = {node.name: node for node in nodes}
        self._stop_deadline_s = stop_deadline_s

    def node(self, name: str) -> RedisNode:
        try:
            return self._nodes[name]
        except KeyError:
            known = sorted(self._nodes)
            raise ProcessControlError(f"unknown node {name!r}; known: {known}") from None

    def _running(self, name: str) -> subprocess.Popen[bytes]:
        node = self.node(name)
        if node.process is None or node.process.poll() is not None:
            raise ProcessControlError(f"{name} is not running")
        return node.process

    def kill(self, node: str) -> None:
        process = self._running(node)
        process.kill()
        process.wait(timeout=self._stop_deadline_s)

    def stop(self, node: str) -> None:
        process = self._running(node)
        process.send_signal(signal.SIGCONT)  # a SIGSTOPped server would never act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=self._stop_deadline_s)
        except subprocess.TimeoutExpired:
            raise ProcessControlError(
                f"{node} (pid {process.pid}) did not exit within "
                f"{self._stop_deadline_s}s of SIGTERM"
            ) from None

    def start(self, node: str) -> None:
        target = self.node(node)
        if target.is_running():
            raise ProcessControlError(f"{node} is already running (pid {target.pid})")
        target.start()

    def isolate(self, node: str) -> None:
        self._running(node).send_signal(signal.SIGSTOP)

    def heal(self, node: str) -> None:
        self._running(node).send_signal(signal.SIGCONT)


class LoopbackPartitionControl(ProcessNodeControl):
    """Like ProcessNodeControl, but ``isolate`` is a real network partition (root + iptables).

    Nodes must each bind their own loopback address (``RedisNodes(hosts=[...])``): redis binds
    its outgoing bus and replication connections to that address, so DROP rules between the
    isolated node's address and its peers' cut the cluster bus and replication, while clients
    (source 127.0.0.1) still reach it. That is the split-brain case SIGSTOP cannot show: the
    isolated master keeps accepting writes until it notices it lost the majority.
    """

    def __init__(self, nodes: Iterable[RedisNode], chain: str) -> None:
        """Call before the cluster forms: it pins each node's outgoing source address."""
        nodes = list(nodes)
        super().__init__(nodes)
        if len({node.host for node in nodes}) != len(nodes):
            raise ProcessControlError("every node needs its own loopback address")
        self._chain = chain
        for node in nodes:
            self._pin_source_address(node)

    @staticmethod
    def _pin_source_address(node: RedisNode) -> None:
        # Without bind-source-addr, outgoing bus/replication connections leave from 127.0.0.1:
        # peers would record the wrong address and the rules would miss the traffic.
        with node.client() as conn:
            conn.config_set("bind-source-addr", node.host)

    def start(self, node: str) -> None:
        super().start(node)
        self._pin_source_address(self.node(node))  # CONFIG SET does not survive a restart

    @staticmethod
    def available() -> str | None:
        """None when usable, else why not."""
        if os.geteuid() != 0:
            return "needs root for iptables"
        if shutil.which("iptables") is None:
            return "iptables not installed"
        return None

    def _iptables(self, *args: str, check: bool = True) -> None:
        done = subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True,
                              timeout=30, check=False)
        if check and done.returncode != 0:
            raise ProcessControlError(f"iptables {' '.join(args)}: {done.stderr.strip()}")

    def isolate(self, node: str) -> None:
        isolated = self.node(node).host
        self._iptables("-N", self._chain)
        for peer in self._nodes.values():
            if peer.host != isolated:
                self._iptables("-A", self._chain, "-s", isolated, "-d", peer.host, "-j", "DROP")
                self._iptables("-A", self._chain, "-s", peer.host, "-d", isolated, "-j", "DROP")
        # Loopback traffic passes OUTPUT on the sending side: one hook covers both directions.
        self._iptables("-I", "OUTPUT", "-j", self._chain)

    def heal(self, node: str) -> None:
        self.remove_rules()

    def remove_rules(self) -> None:
        """Idempotent; also the teardown safety net."""
        self._iptables("-D", "OUTPUT", "-j", self._chain, check=False)
        self._iptables("-F", self._chain, check=False)
        self._iptables("-X", self._chain, check=False)


# --- a cluster to drill on ----------------------------------------------------------------------


def form_cluster_with_redis_cli(group: RedisNodes, replicas: int = 1) -> None:
    """``redis-cli --cluster create``: the password goes in REDISCLI_AUTH, never in argv."""
    env = {**os.environ, "REDISCLI_AUTH": group.password}
    done = subprocess.run(
        ["redis-cli", "--cluster", "create", *[node.address for node in group],
         "--cluster-replicas", str(replicas), "--cluster-yes"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    if done.returncode != 0:
        raise ProcessControlError(
            f"redis-cli --cluster create exited {done.returncode}:\n{done.stdout[-2000:]}"
            f"\n{done.stderr[-2000:]}"
        )


def targets_for(group: RedisNodes) -> Targets:
    """Targets for a process cluster (loopback: admin and announced addresses coincide)."""
    nodes = tuple(TargetNode(n.name, n.host, n.port, n.host, n.port) for n in group)
    masters = len(nodes) // 2
    return Targets(nodes=nodes, password=group.password, expected_masters=masters,
                   replicas_per_master=1, source="test processes")


# --- the same actions from another process, through a registry file ---------------------------


def write_registry(nodes: Iterable[RedisNode], path: Path) -> None:
    """Record what the CLI needs to act on each node: pid, config file, address."""
    nodes = list(nodes)
    piped = [node.name for node in nodes if not node.config_file]
    if piped:
        raise ProcessControlError(f"{piped}: config piped on stdin, nothing to restart from")
    registry = {
        node.name: {
            "pid": node.pid,
            "host": node.host,
            "port": node.port,
            "directory": str(node.directory),
            "config": str(node.config_path),
        }
        for node in nodes
    }
    path.write_text(json.dumps(registry, indent=2))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of another process stays a zombie until reaped: that is not alive.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pid: int, deadline_s: float) -> bool:
    return poll(lambda: (not _alive(pid), None), Deadline.after(deadline_s), 0.01)[0]


def _wait_answering(host: str, port: int, deadline_s: float) -> None:
    """Poll until the server answers; NOAUTH counts, the CLI holds no password."""

    def answers() -> tuple[bool, str]:
        try:
            with redis.Redis(host=host, port=port, socket_timeout=0.5) as conn:
                conn.ping()
        except redis.AuthenticationError:
            pass
        except redis.ResponseError as exc:
            if "NOAUTH" not in str(exc):
                return False, str(exc)
        except redis.RedisError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, "answered"

    done, last = poll(answers, Deadline.after(deadline_s), 0.02)
    if not done:
        raise ProcessControlError(f"{host}:{port} did not answer within {deadline_s}s ({last})")


def registry_action(path: Path, action: str, name: str) -> None:
    registry = json.loads(path.read_text())
    if name not in registry:
        raise ProcessControlError(f"unknown node {name!r}; known: {sorted(registry)}")
    entry = registry[name]
    pid = entry["pid"]
    if action == "start":
        if pid and _alive(pid):
            raise ProcessControlError(f"{name} is already running (pid {pid})")
        process = subprocess.Popen(
            ["redis-server", entry["config"]],
            cwd=entry["directory"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        entry["pid"] = process.pid
        path.write_text(json.dumps(registry, indent=2))
        _wait_answering(entry["host"], entry["port"], START_DEADLINE_S)
        return
    if not pid or not _alive(pid):
        raise ProcessControlError(f"{name} is not running")
    if action == "kill":
        os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, STOP_DEADLINE_S):
            raise ProcessControlError(f"{name} (pid {pid}) survived SIGKILL")
    elif action == "stop":
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_DEADLINE_S):
            raise ProcessControlError(f"{name} (pid {pid}) did not exit after SIGTERM")
    elif action == "isolate":
        os.kill(pid, signal.SIGSTOP)
    elif action == "heal":
        os.kill(pid, signal.SIGCONT)
    else:
        raise ProcessControlError(f"unknown action {action!r}")


def kill_registry_processes(path: Path) -> None:
    """Teardown: SIGKILL every still-running process the registry names."""
    if not path.exists():
        return
    for entry in json.loads(path.read_text()).values():
        pid = entry.get("pid")
        if pid and _alive(pid):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, STOP_DEADLINE_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, required=True)
    parser.add_argument("action", choices=["kill", "stop", "start", "isolate", "heal"])
    parser.add_argument("node")
    args = parser.parse_args(argv)
    try:
        registry_action(args.registry, args.action, args.node)
    except ProcessControlError as exc:
        print(f"process_control: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
