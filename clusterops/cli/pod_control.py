"""The failover drill against a Kubernetes stack: faults injected here with kubectl, asked for by
the drill running in the tools pod.

Why split: the drill must run where the nodes are reachable (a pod: clusterops/cli/in_pod.py),
but faulting a node needs rights on the Redis pods, which the tools pod does not get (it has no
service account token) and the operator's kubectl has. So the drill in the pod asks for each
fault on its stdout (``RelayNodeControl``) and reads the answer on its stdin; ``python -m
clusterops drill`` here, which started it with ``kubectl exec -i``, injects the fault with
kubectl (``PodSignalControl``) and answers (``serve``). Every other line is the drill's own
output, passed through. Nothing here needs or sees a password.

How a node is faulted: a Redis pod shares one process namespace between its containers
(components/k8s_cluster.py), so its sidecar can signal redis-server (same user; redis-server is
not PID 1 there, which the kernel would shield from signals sent inside the namespace):

- ``stop``: SIGSTOP, a hung node (peers and clients get no answer; the kubelet sees a running
  container), held until the drill restores it with SIGCONT. The failover drill.
- ``kill``: SIGKILL. The kubelet restarts the container at once, as after any crash, so the node
  may be back before its replica is promoted: the drill then counts a recovery in place.
- ``partition``: refused. Cutting one pod's network needs a CNI that enforces NetworkPolicies,
  or NET_ADMIN, neither of which a stack can count on.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from clusterops.cli.in_pod import Kubectl
from clusterops.core.errors import NodeControlError, TargetsError
from clusterops.core.poll import Deadline, poll

REQUEST_PREFIX = "@@clusterops-control "
SIDECAR = "follow-peer-addresses"  # the container that signals redis-server
RESTART_TIMEOUT_S = 120.0
# Finds redis-server among the pod's processes by name (the sidecar image's sh and cat only).
SIGNAL_SCRIPT = ('for d in /proc/[0-9]*; do '
                 'if [ "$(cat "$d/comm" 2>/dev/null)" = redis-server ]; then '
                 'kill -{signal} "${{d#/proc/}}" && exit 0; fi; done; '
                 'echo "no redis-server process in this pod" >&2; exit 1')
PARTITION_REFUSED = ("partition is not supported on a Kubernetes stack: cutting one pod's "
                     "network needs a CNI that enforces NetworkPolicies, or NET_ADMIN. Use "
                     "--mode stop (the node hangs: SIGSTOP until restored) or --mode kill")


def check_drill_mode(argv: Sequence[str]) -> None:
    """Refuse the partition drill before any pod is started (see the module doc)."""
    args = list(argv)
    modes = [a.split("=", 1)[1] for a in args if a.startswith("--mode=")]
    modes += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--mode"]
    if "partition" in modes:
        raise TargetsError(PARTITION_REFUSED)


class RelayNodeControl:
    """In the tools pod: each fault is asked of the command that started the drill."""

    recovers_in_place = ("kill",)  # the kubelet restarts a killed container by itself

    def __init__(self, out: IO[str] | None = None, answers: IO[str] | None = None) -> None:
        self._out = out or sys.stdout
        self._answers = answers or sys.stdin

    def _ask(self, action: str, node: str) -> None:
        token = secrets.token_hex(4)
        print(f"{REQUEST_PREFIX}{token} {action} {node}", file=self._out, flush=True)
        line = self._answers.readline()
        if not line:
            raise NodeControlError(f"{action} {node}: no answer from the clusterops command "
                                   "that started this pod")
        answered, _, rest = line.strip().partition(" ")
        status, _, detail = rest.partition(" ")
        if answered != token:
            raise NodeControlError(f"{action} {node}: an answer to another request: {line!r}")
        if status != "ok":
            raise NodeControlError(detail or f"{action} {node} failed")

    def kill(self, node: str) -> None:
        self._ask("kill", node)

    def stop(self, node: str) -> None:
        self._ask("stop", node)

    def start(self, node: str) -> None:
        self._ask("start", node)

    def isolate(self, node: str) -> None:
        self._ask("isolate", node)

    def heal(self, node: str) -> None:
        self._ask("heal", node)


class PodSignalControl:
    """Here: faults by signalling redis-server through its pod's sidecar (kubectl exec)."""

    def __init__(self, kubectl: Kubectl, pods: Mapping[str, str],
                 restart_timeout_s: float = RESTART_TIMEOUT_S) -> None:
        """``pods``: node name -> the name of its pod."""
        self._kubectl = kubectl
        self._pods = dict(pods)
        self._restart_timeout_s = restart_timeout_s
        self._stopped: set[str] = set()
        self._killed: dict[str, int] = {}  # node -> redis container restarts before the kill

    def _pod(self, node: str) -> str:
        try:
            return self._pods[node]
        except KeyError:
            raise NodeControlError(f"unknown node {node!r}; the stack has "
                                   f"{', '.join(sorted(self._pods))}") from None

    def _signal(self, node: str, signal: str) -> None:
        try:
            self._kubectl.run("exec", self._pod(node), "-c", SIDECAR, "--", "sh", "-c",
                              SIGNAL_SCRIPT.format(signal=signal))
        except TargetsError as exc:
            raise NodeControlError(f"SIG{signal} to {node}'s redis-server: {exc}") from None

    def _redis_status(self, node: str) -> tuple[int, bool]:
        """(restarts, ready) of the pod's redis container."""
        pod = json.loads(self._kubectl.run("get", "pod", self._pod(node), "-o", "json"))
        for status in pod.get("status", {}).get("containerStatuses", []):
            if status.get("name") == "redis":
                return int(status.get("restartCount", 0)), bool(status.get("ready"))
        return 0, False

    def kill(self, node: str) -> None:
        self._killed[node] = self._redis_status(node)[0]
        self._signal(node, "KILL")

    def stop(self, node: str) -> None:
        self._signal(node, "STOP")
        self._stopped.add(node)

    def start(self, node: str) -> None:
        """SIGCONT a stopped node; for a killed one, wait until the kubelet restarted it."""
        if node in self._stopped:
            self._signal(node, "CONT")
            self._stopped.discard(node)
            return
        if node not in self._killed:
            return
        before = self._killed.pop(node)
        back, seen = poll(lambda: (lambda s: (s[0] > before and s[1], s))(
            self._redis_status(node)), Deadline.after(self._restart_timeout_s), 0.5)
        if not back:
            raise NodeControlError(f"{node}'s redis container was not restarted and ready "
                                   f"within {self._restart_timeout_s:.0f}s (restarts, ready: "
                                   f"{seen})")

    def isolate(self, node: str) -> None:
        raise NodeControlError(PARTITION_REFUSED)

    def heal(self, node: str) -> None:
        raise NodeControlError(PARTITION_REFUSED)


def answer(control: PodSignalControl, request: str) -> str:
    """The answer line to one request line (without the prefix): "<token> ok" or an error."""
    token, _, rest = request.partition(" ")
    action, _, node = rest.partition(" ")
    actions: dict[str, Callable[[str], None]] = {
        "kill": control.kill, "stop": control.stop, "start": control.start,
        "isolate": control.isolate, "heal": control.heal}
    if action not in actions:
        return f"{token} error unknown action {action!r}"
    try:
        actions[action](node)
    except NodeControlError as exc:
        return f"{token} error {' '.join(str(exc).split())}"
    return f"{token} ok"


def serve(process: subprocess.Popen[str], control: PodSignalControl, out: IO[str]) -> int:
    """Pass the drill's output through to ``out``, answering its fault requests; its exit
    code."""
    assert process.stdout is not None and process.stdin is not None
    for line in process.stdout:
        if line.startswith(REQUEST_PREFIX):
            process.stdin.write(answer(control, line[len(REQUEST_PREFIX):].strip()) + "\n")
            process.stdin.flush()
        else:
            out.write(line)
            out.flush()
    process.stdin.close()
    return process.wait()
