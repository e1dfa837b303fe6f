"""Fault injection for failover drills: how a node is killed, stopped, started and isolated.

The drill logic (clusterops.tasks.drill) only speaks ``NodeControl``; which mechanism sits behind it
depends on where the cluster runs:

- ``DockerNodeControl``: the deployed Docker stack (container and network names come from the
  stack outputs). ``isolate`` disconnects the container from the cluster network, which is the
  guide's partition test; ``heal`` reconnects it with the same static IP, because every peer
  keeps that IP in its ``nodes.conf``.
- ``CommandNodeControl``: any other deployment; runs an operator-supplied program as
  ``PROGRAM... ACTION NODE`` (e.g. a wrapper around systemctl, ssh or kubectl).
- tests/support/process_control.py: plain redis-server processes (SIGKILL, SIGSTOP, ...).

No method ever needs the cluster password, so nothing here can leak it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from clusterops.core.errors import NodeControlError
from clusterops.node.targets import Targets

DEFAULT_COMMAND_TIMEOUT_S = 60.0


@runtime_checkable
class NodeControl(Protocol):
    """What a drill needs to do to one node, addressed by its name in the targets."""

    def kill(self, node: str) -> None:
        """Crash the node at once (SIGKILL): no shutdown, no final save."""

    def stop(self, node: str) -> None:
        """Shut the node down gracefully (SIGTERM) and return once it has exited."""

    def start(self, node: str) -> None:
        """Start a killed or stopped node again with the same config and data directory."""

    def isolate(self, node: str) -> None:
        """Cut the node off from its peers and clients while the process keeps running."""

    def heal(self, node: str) -> None:
        """Undo ``isolate``."""


def _run(argv: Sequence[str], what: str, timeout_s: float) -> str:
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise NodeControlError(f"{what}: {argv[0]} not found on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise NodeControlError(
            f"{what}: `{shlex.join(argv)}` took longer than {timeout_s}s"
        ) from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise NodeControlError(
            f"{what}: `{shlex.join(argv)}` exited {done.returncode}: "
            f"{detail[-1] if detail else '(no output)'}"
        )
    return done.stdout


class DockerNodeControl:
    """Faults on the deployed Docker cluster through the docker CLI (honours DOCKER_HOST)."""

    def __init__(
        self,
        targets: Targets,
        docker: str | Sequence[str] = "docker",
        stop_timeout_s: int = 10,
        command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> None:
        """From loaded stack outputs: container names, static IPs and the network name.

        ``docker`` is the CLI, with any arguments (e.g. ``["docker", "-H", URL]`` for one of
        several Docker hosts)."""
        if not targets.network_name:
            raise NodeControlError(f"{targets.source}: no network_name, so no Docker control")
        self._nodes = {node.name: node for node in targets.nodes}
        self.network_name = targets.network_name
        self._docker = [docker] if isinstance(docker, str) else list(docker)
        self._stop_timeout_s = stop_timeout_s
        self._command_timeout_s = command_timeout_s
        # Aliases a container had on the cluster network before `isolate`, restored by `heal`.
        self._saved_aliases: dict[str, list[str]] = {}

    def _container(self, name: str) -> str:
        try:
            node = self._nodes[name]
        except KeyError:
            raise NodeControlError(
                f"unknown node {name!r}; Docker control knows {sorted(self._nodes)}"
            ) from None
        return node.container_name or node.name

    def _docker_cmd(self, node: str, *args: str) -> str:
        return _run([*self._docker, *args], f"{node}", self._command_timeout_s)

    def kill(self, node: str) -> None:
        self._docker_cmd(node, "kill", self._container(node))

    def stop(self, node: str) -> None:
        self._docker_cmd(node, "stop", "--time", str(self._stop_timeout_s), self._container(node))

    def start(self, node: str) -> None:
        self._docker_cmd(node, "start", self._container(node))

    def signal(self, node: str, signal_name: str) -> None:
        """Send the server (the container's first process) a signal, e.g. STOP or CONT."""
        self._docker_cmd(node, "kill", "--signal", signal_name, self._container(node))

    def restart(self, node: str) -> None:
        """Restart the container as an operator or the engine would: SIGTERM, then start."""
        self._docker_cmd(node, "restart", "--time", str(self._stop_timeout_s),
                         self._container(node))

    def isolate(self, node: str) -> None:
        container = self._container(node)
        self._saved_aliases[node] = self._network_aliases(node, container)
        self._docker_cmd(node, "network", "disconnect", self.network_name, container)

    def heal(self, node: str) -> None:
        container = self._container(node)
        # The same static IP: every peer keeps it in its nodes.conf.
        args = ["network", "connect", "--ip", self._nodes[node].cluster_host]
        for alias in self._saved_aliases.pop(node, []):
            args += ["--alias", alias]
        self._docker_cmd(node, *args, self.network_name, container)

    def _network_aliases(self, node: str, container: str) -> list[str]:
        """The container's own aliases on the cluster network (not Docker's automatic ones)."""
        info = json.loads(self._docker_cmd(node, "inspect", "--format", "{{json .}}", container))
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        aliases = (networks.get(self.network_name) or {}).get("Aliases") or []
        # Docker adds the short container id (and, on newer engines, the name) by itself.
        automatic = {str(info.get("Id", ""))[:12], container, str(info.get("Name", "")).lstrip("/")}
        return [alias for alias in aliases if alias not in automatic]


class CommandNodeControl:
    """Delegates every action to an operator program: ``PROGRAM... ACTION NODE``.

    The program must exit 0 only once the action took effect (e.g. ``stop`` returns after the
    server exited, ``start`` after it accepts connections).
    """

    def __init__(
        self, program: Sequence[str] | str, command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S
    ) -> None:
        self._program = shlex.split(program) if isinstance(program, str) else list(program)
        if not self._program:
            raise NodeControlError("empty control command")
        self._command_timeout_s = command_timeout_s

    def _act(self, action: str, node: str) -> None:
        _run([*self._program, action, node], node, self._command_timeout_s)

    def kill(self, node: str) -> None:
        self._act("kill", node)

    def stop(self, node: str) -> None:
        self._act("stop", node)

    def start(self, node: str) -> None:
        self._act("start", node)

    def isolate(self, node: str) -> None:
        self._act("isolate", node)

    def heal(self, node: str) -> None:
        self._act("heal", node)
