"""Several "machines" on this one: a network namespace per Docker host, each with its own dockerd.

Each host is a network namespace with one address on a private bridge in the root namespace
(veth pairs), and its own Docker engine (data root, exec root, socket) running inside that
namespace, so containers on different hosts reach each other only through the hosts'
addresses and published ports, as on real machines. A client namespace with no engine plays
an application server elsewhere. Everything is created here and removed on exit; tests only
ever send traffic to these addresses.

Facts this relies on (checked on this machine):
- ``ip netns exec`` remounts /sys and hides the cgroup mounts, so a dockerd started through it
  fails ("Devices cgroup isn't mounted"). ``nsenter --net=/run/netns/NAME`` changes only the
  network namespace and works.
- The root namespace's dockerd sets the FORWARD policy to DROP, and br_netfilter sends bridged
  frames through it: traffic between two veths of our bridge is accepted by one rule of ours.
- There is no registry: images move with ``docker save | docker -H <host> load``.

Use as a context manager (root only)::

    with NetnsHosts(prefix="aph", count=3) as hosts:
        hosts[0].docker_host   # unix:///run/aph-h1.sock
        hosts[0].address       # 10.213.0.11
        hosts.client_run(["redis-cli", ...])  # runs in the client namespace
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from clusterops.core.poll import Deadline, poll

DOCKERD_START_S = 60.0
DOCKERD_STOP_S = 30.0


class NetnsHostsError(RuntimeError):
    pass


def _run(args: Sequence[str], check: bool = True, **kwargs: object) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False, **kwargs)
    if check and done.returncode != 0:
        raise NetnsHostsError(f"{' '.join(args)} failed ({done.returncode}): "
                              f"{(done.stderr or done.stdout).strip()}")
    return done


@dataclass
class NetnsHost:
    name: str  # also the namespace name
    address: str
    root_veth: str
    state_dir: Path
    dockerd: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return Path(f"/run/{self.name}.sock")

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, check: bool = True, **kwargs: object
               ) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.docker_host
        return _run(["docker", *args], check=check, env=env, **kwargs)

    def engine_answers(self) -> bool:
        return self.docker("info", "--format", "{{.ID}}", check=False).returncode == 0


class NetnsHosts:
    """`count` Docker hosts and one client namespace on a private /24."""

    def __init__(self, prefix: str = "aph", count: int = 3, subnet: str = "10.213.0.0/24",
                 state_root: Path = Path("/var/lib/alphapulse-netns-hosts")) -> None:
        if os.geteuid() != 0:
            raise NetnsHostsError("network namespaces and extra dockerds need root")
        for tool in ("ip", "nsenter", "dockerd", "iptables", "docker"):
            if shutil.which(tool) is None:
                raise NetnsHostsError(f"{tool} not found (scripts/setup-test-env.sh installs it)")
        self.prefix = prefix
        network = ipaddress.ip_network(subnet)
        self.gateway = str(network[1])
        self.prefix_len = network.prefixlen
        self.bridge = f"{prefix}br0"
        self.state_root = state_root / prefix
        self.hosts = [
            NetnsHost(name=f"{prefix}-h{i + 1}", address=str(network[11 + i]),
                      root_veth=f"{prefix}h{i + 1}r", state_dir=self.state_root / f"h{i + 1}")
            for i in range(count)
        ]
        self.client_ns = f"{prefix}-client"
        self.client_address = str(network[100])
        self._forward_rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]

    def __getitem__(self, index: int) -> NetnsHost:
        return self.hosts[index]

    def __len__(self) -> int:
        return len(self.hosts)

    def __enter__(self) -> NetnsHosts:
        self.cleanup()  # a run killed before its own cleanup leaves these behind
        try:
            self._create_bridge()
            for host in self.hosts:
                self._create_namespace(host.name, host.address, host.root_veth)
            self._create_namespace(self.client_ns, self.client_address, f"{self.prefix}cr")
            for host in self.hosts:
                self.start_engine(host)
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ network

    def _create_bridge(self) -> None:
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.gateway}/{self.prefix_len}", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        _run(["iptables", "-I", *self._forward_rule])

    def _create_namespace(self, ns: str, address: str, root_veth: str) -> None:
        _run(["ip", "netns", "add", ns])
        _run(["ip", "link", "add", root_veth, "type", "veth", "peer", "name", "eth0",
              "netns", ns])
        _run(["ip", "link", "set", root_veth, "master", self.bridge, "up"])
        inside = ["ip", "-n", ns]
        _run([*inside, "addr", "add", f"{address}/{self.prefix_len}", "dev", "eth0"])
        _run([*inside, "link", "set", "eth0", "up"])
        _run([*inside, "link", "set", "lo", "up"])
        _run([*inside, "route", "add", "default", "via", self.gateway])

    def cut_link(self, host: NetnsHost) -> None:
        """The host drops off the network; its engine and containers keep running."""
        _run(["ip", "link", "set", host.root_veth, "down"])

    def restore_link(self, host: NetnsHost) -> None:
        _run(["ip", "link", "set", host.root_veth, "up"])

    def client_run(self, args: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess:
        """Run a command in the client namespace (an application server on another machine)."""
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.client_ns}", *args],
                              capture_output=True, text=True, check=False, **kwargs)

    # ------------------------------------------------------------------ engines

    def start_engine(self, host: NetnsHost) -> None:
        host.state_dir.mkdir(parents=True, exist_ok=True)
        log = (host.state_dir / "dockerd.log").open("ab")
        host.dockerd = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{host.name}", "dockerd",
             "--data-root", str(host.state_dir / "data"),
             "--exec-root", f"/run/{host.name}-exec",
             "--pidfile", f"/run/{host.name}.pid",
             "-H", host.docker_host],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        answered, _ = poll(lambda: (host.engine_answers(), None),
                           Deadline.after(DOCKERD_START_S), 0.5)
        if not answered:
            raise NetnsHostsError(f"dockerd of {host.name} did not answer within "
                                  f"{DOCKERD_START_S:g}s; {self._log_tail(host)}")

    def stop_engine(self, host: NetnsHost) -> None:
        """Stop a host's engine, and with it its containers (a host that went down)."""
        if host.dockerd is None:
            return
        host.dockerd.send_signal(signal.SIGTERM)
        try:
            host.dockerd.wait(DOCKERD_STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(host.dockerd.pid, signal.SIGKILL)
            host.dockerd.wait(DOCKERD_STOP_S)
        host.dockerd = None

    def load_images(self, refs: Sequence[str]) -> None:
        """Copy images from the root namespace's engine into every host's engine."""
        for host in self.hosts:
            save = subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE)
            env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
            env["DOCKER_HOST"] = host.docker_host
            load = subprocess.run(["docker", "load", "-q"], stdin=save.stdout,
                                  capture_output=True, text=True, env=env, check=False)
            save.wait()
            if save.returncode != 0 or load.returncode != 0:
                raise NetnsHostsError(f"loading {refs} into {host.name} failed: {load.stderr}")

    def _log_tail(self, host: NetnsHost) -> str:
        log = host.state_dir / "dockerd.log"
        lines = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        return "dockerd log tail:\n" + "\n".join(lines)

    # ------------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        """Remove everything this class creates, whatever state a previous run left."""
        for host in self.hosts:
            if host.dockerd is None and host.socket.exists() and host.engine_answers():
                ids = host.docker("ps", "-aq", check=False).stdout.split()
                if ids:
                    host.docker("rm", "-f", *ids, check=False)
            self.stop_engine(host)
            pidfile = Path(f"/run/{host.name}.pid")
            if pidfile.exists():  # an engine of an earlier run
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
                poll(lambda p=pidfile: (not p.exists(), None),
                     Deadline.after(DOCKERD_STOP_S), 0.5)
            _run(["umount", "-R", f"/run/{host.name}-exec"], check=False)
            shutil.rmtree(f"/run/{host.name}-exec", ignore_errors=True)
            host.socket.unlink(missing_ok=True)
        for ns in [h.name for h in self.hosts] + [self.client_ns]:
            _run(["ip", "netns", "del", ns], check=False)
        for veth in [h.root_veth for h in self.hosts] + [f"{self.prefix}cr"]:
            _run(["ip", "link", "del", veth], check=False)
        _run(["ip", "link", "del", self.bridge], check=False)
        while _run(["iptables", "-D", *self._forward_rule], check=False).returncode == 0:
            pass
        if self.state_root.exists():
            _run(["umount", "-R", str(self.state_root)], check=False)
            shutil.rmtree(self.state_root, ignore_errors=True)
