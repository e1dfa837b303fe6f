"""Start real ``redis-server`` processes on loopback for integration tests.

Every node gets its own temporary directory holding a ``redis.conf`` (mode 0600) with
``requirepass``/``masterauth``, so the password never appears on a command line or in the
process list. Nodes run with ``cluster-enabled yes`` and ``cluster-node-timeout 1000`` unless
the caller overrides settings.

Ports are picked at random from 20000-22767 so the cluster bus port (port + 10000) stays in
30000-32767, below Linux's ephemeral range (outgoing connections never squat on it). Other
test runs may be using ports at the same time, so a node whose port turns out to be taken
(its server exits with "Address already in use") is simply retried on another port.

Use it as a context manager::

    with RedisNodes(count=6, password="pw", base_dir=tmp_path) as nodes:
        nodes[0].client().ping()

or through the pytest fixture ``redis_nodes_factory`` (import it into a conftest.py)::

    def test_x(redis_nodes_factory):
        nodes = redis_nodes_factory(6)            # torn down after the test

Stopped nodes can be started again with the same directory and config (``nodes.conf``,
data files and any ``CONFIG REWRITE`` changes are kept): see ``RedisNode.start``.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clusterops.core.model import BUS_PORT_OFFSET
from clusterops.core.poll import Deadline, poll
from clusterops.node.connection import tls_options

REDIS_SERVER = "redis-server"
PORT_RANGE = (20000, 22767)
START_ATTEMPTS = 8
START_DEADLINE_S = 10.0
STOP_DEADLINE_S = 5.0

@dataclass(frozen=True)
class AclSetup:
    """ACL users for the nodes (as acl: true deploys them): ``users_acl`` is each node's
    users.acl (its `aclfile`), replicas authenticate as ``masteruser``, and the node's password
    (what the helpers use) belongs to ``username``."""

    users_acl: str
    username: str
    masteruser: str
    masterauth: str


@dataclass(frozen=True)
class TlsSetup:
    """TLS on every link, as tls: true deploys it (components/redis_conf.py): ``port 0``,
    ``tls-port`` = the node's port, TLS on the cluster bus and replication, client
    certificates optional. ``files`` is the directory holding ``ca.crt``, ``node.crt`` and
    ``node.key`` (one certificate for 127.0.0.1 serves every loopback node); ``ca_pem`` is
    what clients verify against."""

    files: Path
    ca_pem: str

    def config_lines(self, port: int) -> list[str]:
        return ["port 0", f"tls-port {port}", "tls-cluster yes", "tls-replication yes",
                "tls-auth-clients optional", f"tls-cert-file {self.files / 'node.crt'}",
                f"tls-key-file {self.files / 'node.key'}",
                f"tls-ca-cert-file {self.files / 'ca.crt'}"]


def make_tls(directory: Path) -> TlsSetup:
    """A fresh CA and one certificate for 127.0.0.1 and localhost (the deployment's own
    issuer, components/tls_material.py), written 0600 into ``directory``."""
    from components.tls_material import issue, make_ca

    ca_key, ca_cert = make_ca("alphapulse test CA", 1)
    key, cert = issue(ca_key, ca_cert, "127.0.0.1", ["127.0.0.1", "localhost"], 1)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("ca.crt", ca_cert), ("node.crt", cert), ("node.key", key)):
        _write_private(directory / name, text)
    return TlsSetup(directory, ca_cert)


# Defaults chosen for fast, disposable test nodes: no persistence (tests don't restart for
# durability unless they ask for it), quick failure detection.
DEFAULT_SETTINGS: dict[str, str] = {
    "cluster-enabled": "yes",
    "cluster-config-file": "nodes.conf",
    "cluster-node-timeout": "1000",
    # Replicas sync at once instead of after the 5 s diskless-sync grace period.
    "repl-diskless-sync-delay": "0",
    "appendonly": "no",
    "save": '""',
    "protected-mode": "no",
    "daemonize": "no",
    "logfile": "redis.log",
    "loglevel": "notice",
}


class RedisNodeError(RuntimeError):
    """A test node could not be started or stopped as asked."""


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(host: str = "127.0.0.1", taken: set[int] | None = None) -> int:
    """A port in PORT_RANGE whose client port and bus port are both bindable right now."""
    taken = taken or set()
    for _ in range(500):
        port = random.randint(*PORT_RANGE)
        if port in taken:
            continue
        if _port_is_free(host, port) and _port_is_free(host, port + BUS_PORT_OFFSET):
            return port
    raise RedisNodeError(f"no free port pair found in {PORT_RANGE} on {host}")


@dataclass
class RedisNode:
    """One redis-server process with its own directory and config file."""

    name: str
    host: str
    port: int
    password: str
    directory: Path
    settings: dict[str, str] = field(default_factory=dict)
    # False: the config is piped on stdin (``redis-server -``), so the server has no config
    # file (CONFIG REWRITE fails) and the password still never reaches argv or disk.
    config_file: bool = True
    acl: AclSetup | None = None
    # The server binary: Debian's redis-server on PATH, or an engine of the matrix
    # (tests/support/engines.py: Redis 7.2.6, Valkey 8.0.1 built from the vendored sources).
    server: str = REDIS_SERVER
    tls: TlsSetup | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def username(self) -> str | None:
        return self.acl.username if self.acl else None

    @property
    def users_acl_path(self) -> Path:
        return self.directory / "users.acl"

    @property
    def bus_port(self) -> int:
        return self.port + BUS_PORT_OFFSET

    @property
    def config_path(self) -> Path:
        return self.directory / "redis.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, password: str | None = None, **kwargs: object) -> redis.Redis:
        """A fresh redis-py client with short timeouts (password defaults to the node's).

        No hidden retries: redis-py's default policy retries connection errors (including a
        wrong password) with seconds of backoff; tests poll with their own deadlines instead.
        """
        options: dict[str, object] = {
            "socket_timeout": 2.0,
            "socket_connect_timeout": 1.0,
            "decode_responses": True,
            "retry": Retry(NoBackoff(), 0),
        }
        if self.tls:
            options.update(tls_options(self.tls.ca_pem))
        options.update(kwargs)
        options.setdefault("username", self.username)
        return redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password if password is None else password,
            **options,
        )

    def config_text(self) -> str:
        lines = [
            f"bind {self.host}",
            f"port {self.port}",
            f"dir {self.directory}",
        ]
        if self.acl:
            lines += [f"aclfile {self.users_acl_path}", f"masteruser {self.acl.masteruser}",
                      f"masterauth {self.acl.masterauth}"]
        else:
            lines += [f"requirepass {self.password}", f"masterauth {self.password}"]
        lines += [f"{key} {value}" for key, value in self.settings.items()]
        if self.tls:  # after `port`: the last value of a directive wins
            lines += self.tls.config_lines(self.port)
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        """Write redis.conf unless it exists (a restart keeps CONFIG REWRITE changes)."""
        if self.acl and not self.users_acl_path.exists():
            _write_private(self.users_acl_path, self.acl.users_acl)
        if self.config_path.exists():
            return
        _write_private(self.config_path, self.config_text())

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self, deadline_s: float = START_DEADLINE_S) -> None:
        """Start the server from its config file and wait until it answers PING."""
        if self.is_running():
            return
        if self.config_file:
            self.write_config()
        # New session: a Ctrl-C aimed at pytest doesn't hit the servers mid-teardown.
        self.process = subprocess.Popen(
            [self.server, str(self.config_path) if self.config_file else "-"],
            cwd=self.directory,
            stdin=subprocess.DEVNULL if self.config_file else subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not self.config_file:
            assert self.process.stdin is not None
            self.process.stdin.write(self.config_text().encode())
            self.process.stdin.close()
        self.wait_until_ready(deadline_s)

    def wait_until_ready(self, deadline_s: float = START_DEADLINE_S) -> None:
        def answers() -> tuple[bool, str]:
            if self.process is not None and self.process.poll() is not None:
                raise RedisNodeError(
                    f"{self.name} ({self.address}) exited with {self.process.returncode}; "
                    f"log tail:\n{self.log_tail()}"
                )
            try:
                with self.client(socket_timeout=0.5, socket_connect_timeout=0.5) as conn:
                    return bool(conn.ping()), "PONG"
            except redis.RedisError as exc:
                return False, f"{type(exc).__name__}: {exc}"

        done, last = poll(answers, Deadline.after(deadline_s), 0.02)
        if not done:
            raise RedisNodeError(
                f"{self.name} ({self.address}) did not answer PING within {deadline_s}s "
                f"(last error: {last}); log tail:\n{self.log_tail()}"
            )

    def _signal_and_wait(self, sig: int, deadline_s: float) -> bool:
        if not self.is_running():
            return True
        assert self.process is not None
        try:
            self.process.send_signal(sig)
        except ProcessLookupError:
            return True
        try:
            self.process.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, deadline_s: float = STOP_DEADLINE_S) -> None:
        """Graceful SIGTERM; SIGKILL if it does not exit within the deadline."""
        if self.process is None:
            return
        # A SIGSTOPped node (isolation drills) must be continued to act on SIGTERM.
        self._signal_and_wait(signal.SIGCONT, 0)
        if not self._signal_and_wait(signal.SIGTERM, deadline_s):
            self.kill()

    def kill(self) -> None:
        """SIGKILL and reap the process."""
        if self.process is None:
            return
        if not self._signal_and_wait(signal.SIGKILL, STOP_DEADLINE_S):
            raise RedisNodeError(f"{self.name} (pid {self.pid}) survived SIGKILL")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


class RedisNodes:
    """N redis-server processes on loopback sharing one password; a context manager."""

    def __init__(
        self,
        count: int,
        password: str | None = None,
        base_dir: Path | str | None = None,
        settings: Mapping[str, str] | None = None,
        hosts: Sequence[str] | None = None,
        name_prefix: str = "node",
        config_file: bool = True,
        acl: AclSetup | None = None,
        server: str = REDIS_SERVER,
        tls: TlsSetup | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("count must be >= 1")
        if hosts is not None and len(hosts) != count:
            raise ValueError("hosts must name one loopback address per node")
        self.count = count
        self.password = password or f"test-{secrets.token_hex(12)}"
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="redis-nodes-"))
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.hosts = list(hosts) if hosts is not None else ["127.0.0.1"] * count
        self.name_prefix = name_prefix
        self.config_file = config_file
        self.acl = acl
        self.server = server
        self.tls = tls
        self.nodes: list[RedisNode] = []

    def __enter__(self) -> RedisNodes:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[RedisNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, index: int) -> RedisNode:
        return self.nodes[index]

    def by_name(self, name: str) -> RedisNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def start(self) -> None:
        """Start all nodes (each retried on a new port if its port was taken meanwhile)."""
        try:
            for index, host in enumerate(self.hosts):
                self.nodes.append(self._start_one(index, host))
        except BaseException:
            self.close()
            raise

    def _start_one(self, index: int, host: str) -> RedisNode:
        name = f"{self.name_prefix}-{index + 1}"
        used = {node.port for node in self.nodes}
        last_error: Exception | None = None
        for attempt in range(START_ATTEMPTS):
            port = pick_free_port(host, used)
            directory = self.base_dir / f"{name}-{port}-{attempt}"
            directory.mkdir(parents=True)
            node = RedisNode(
                name, host, port, self.password, directory, dict(self.settings), self.config_file,
                self.acl, self.server, self.tls,
            )
            try:
                node.start()
                return node
            except RedisNodeError as exc:
                node.kill()
                last_error = exc
                used.add(port)
                # Only a lost race for the port is worth retrying; anything else is a real error.
                if "Address already in use" not in node.log_tail(50):
                    raise
        raise RedisNodeError(f"{name}: gave up after {START_ATTEMPTS} port races: {last_error}")

    def close(self) -> None:
        """Stop every node; remove the directory if we created it. Safe to call twice."""
        errors = []
        # Signal every node first, then reap: shutting down in parallel keeps teardown short.
        for node in self.nodes:
            if node.is_running():
                node._signal_and_wait(signal.SIGCONT, 0)
                node._signal_and_wait(signal.SIGTERM, 0)
        for node in self.nodes:
            try:
                if node.process is not None and node.process.poll() is None:
                    try:
                        node.process.wait(timeout=STOP_DEADLINE_S)
                    except subprocess.TimeoutExpired:
                        node.kill()
            except RedisNodeError as exc:
                errors.append(str(exc))
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        if errors:
            raise RedisNodeError("; ".join(errors))


RedisNodesFactory = Callable[..., RedisNodes]


@pytest.fixture
def redis_nodes_factory(tmp_path: Path) -> Iterator[RedisNodesFactory]:
    """Factory fixture: ``redis_nodes_factory(count, password=None, settings=None, ...)``.

    Every group it starts is stopped at teardown, even when the test fails.
    """
    started: list[RedisNodes] = []

    def make(count: int, **kwargs: object) -> RedisNodes:
        kwargs.setdefault("base_dir", tmp_path / f"group-{len(started)}")
        group = RedisNodes(count, **kwargs)  # type: ignore[arg-type]
        started.append(group)
        group.start()
        return group

    yield make
    for group in reversed(started):
        group.close()
