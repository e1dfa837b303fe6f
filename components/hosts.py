"""Docker hosts: the `hosts` setting, where each node runs, whether one host's loss is survivable.

Pure code (no Pulumi calls, no Docker calls), shared by the spec's validation and the plan.

Placement: master-i runs on host (i-1) mod H; the j-th replica of a shard runs on the
first host after its master's, skipping j hosts (never on the master's own host when H >= 2).
A node's host depends only on its name and the hosts list, so scaling adds or removes nodes
without moving the others.

What "survives the loss of any one host" takes, for Redis Cluster:
- every shard keeps a copy: a master and its replicas are never all on one host;
- a failover can still be elected: a replica is promoted only with the votes of a majority of
  all masters (cluster.c: ``server.cluster->size / 2 + 1``), so no host may hold half of the
  masters or more. 4 masters on 3 hosts put 2 on one host; losing it leaves 2 of 4, no majority.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.config_reader import ConfigReader
from components.layout import Shape

# tcp:// is refused: without TLS an engine's API is root on that host for anyone on the
# network, and TLS client material is not wired through yet; ssh:// uses the deploying user's
# SSH keys and needs nothing open but sshd.
ENDPOINT_SCHEMES = ("unix://", "ssh://")
_HOST_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HOST_FIELDS = ("name", "dockerHost", "address")
# The name of the one implicit host when `hosts` is unset (the engine of docker:host).
DEFAULT_HOST_NAME = "docker-host"
ANNOUNCE_MODES = ("container-ip", "host-address")
_EXAMPLE = ('[{"name": "h1", "dockerHost": "ssh://deploy@10.0.0.11", "address": "10.0.0.11"}, '
            '...]')


@dataclass(frozen=True)
class DockerHostSpec:
    name: str  # names the host in resource names and outputs
    docker_host: str  # the engine endpoint: ssh://user@host, or unix:// for a local engine
    address: str  # the IPv4 address clients and the other hosts reach this host at


def host_index(role: str, ordinal: int, masters: int, host_count: int) -> int:
    """Index into the hosts list of master-N / replica-N (see the module doc)."""
    if host_count <= 1:
        return 0
    if role == "master":
        return (ordinal - 1) % host_count
    master_index = (ordinal - 1) % masters
    rank = (ordinal - 1) // masters  # 0 for a shard's first replica, 1 for its second...
    return (master_index + 1 + rank % (host_count - 1)) % host_count


def placement(masters: int, replicas_per_master: int, host_count: int
              ) -> dict[tuple[str, int], int]:
    """(role, ordinal) -> host index, for every node of this shape."""
    where = {("master", m): host_index("master", m, masters, host_count)
             for m in range(1, masters + 1)}
    for r in range(1, masters * replicas_per_master + 1):
        where[("replica", r)] = host_index("replica", r, masters, host_count)
    return where


def host_loss_problems(masters: int, replicas_per_master: int, host_names: Sequence[str]
                       ) -> list[str]:
    """Why losing some single host would lose a shard or block failover ([] if it cannot)."""
    count = len(host_names)
    if count < 3:
        return [f"{count} host(s) cannot survive the loss of one: a failover needs the votes "
                f"of a majority of the masters, so they must be spread over at least 3 hosts"]
    if replicas_per_master == 0:
        return ["replicasPerMaster is 0: a host's loss loses the slots of its masters"]
    where = placement(masters, replicas_per_master, count)
    problems = []
    per_host = Counter(where[("master", m)] for m in range(1, masters + 1))
    for index, held in sorted(per_host.items()):
        if 2 * held >= masters:
            problems.append(
                f"host {host_names[index]} would hold {held} of the {masters} masters: losing "
                f"it leaves {masters - held}, not a majority, so no replica can be elected")
    return problems


def _entries(value: Any) -> Any:
    """Structured config arrives as JSON text from the engine and as a list from mocks."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def parse_hosts(reader: ConfigReader) -> tuple[DockerHostSpec, ...]:
    """The `hosts` list, each entry judged on its own, then against the others."""
    value = reader.raw.get("hosts")  # structured: JSON text from the engine, a list from mocks
    if value is None:
        return ()
    entries = _entries(value)
    if not isinstance(entries, list) or not entries:
        reader.fail("hosts", f"is not a non-empty list of hosts. Fix: e.g. {_EXAMPLE}")
        return ()
    hosts = tuple(host for number, entry in enumerate(entries, start=1)
                  if (host := _parse_entry(reader, number, entry)) is not None)
    _check_distinct(reader, hosts)
    return hosts


def _parse_entry(reader: ConfigReader, number: int, entry: object) -> DockerHostSpec | None:
    where = f"entry {number}"
    if not isinstance(entry, Mapping):
        reader.fail("hosts", f"{where} is not an object. Fix: e.g. {_EXAMPLE}")
        return None
    unknown = sorted(set(entry) - set(HOST_FIELDS))
    if unknown:
        reader.fail("hosts", f"{where} has unknown field(s) {', '.join(unknown)}. Fix: use "
                    f"only {', '.join(HOST_FIELDS)}")
    name = str(entry.get("name", "")).strip()
    endpoint = str(entry.get("dockerHost", "")).strip()
    address = str(entry.get("address", "")).strip()
    if not _HOST_NAME.match(name) or len(name) > 32:
        reader.fail("hosts", f"{where}: name {name!r} is not a host name. Fix: use lower-"
                    "case letters, digits and '-', e.g. h1 or redis-a")
    if not endpoint.startswith(ENDPOINT_SCHEMES):
        reader.fail("hosts", f"{where} ({name}): dockerHost {endpoint!r} is not a supported "
                    "Docker endpoint. Fix: use ssh://user@host (the engine over SSH) or "
                    "unix:///path/to/docker.sock; tcp:// is not supported (an engine API "
                    "on the network without TLS client certificates is root for anyone)")
    if not _is_reachable_ipv4(address):
        reader.fail("hosts", f"{where} ({name}): address {address!r} is not an IPv4 address "
                    "other hosts and clients can reach. Fix: give the host's own address "
                    "on the network the clients use (not 127.0.0.1 or 0.0.0.0)")
    return DockerHostSpec(name=name, docker_host=endpoint, address=address)


def _is_reachable_ipv4(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return parsed.version == 4 and not parsed.is_loopback and not parsed.is_unspecified


def _check_distinct(reader: ConfigReader, hosts: Sequence[DockerHostSpec]) -> None:
    for field, label in (("name", "name"), ("docker_host", "dockerHost"),
                         ("address", "address")):
        repeated = sorted(v for v, n in Counter(getattr(h, field) for h in hosts).items()
                          if n > 1)
        for value in repeated:
            reader.fail("hosts", f"two entries have the same {label} {value!r}: each host "
                        f"needs its own. Fix: remove the duplicate or correct its {label}")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # reported as bindAddress's own problem


@dataclass(frozen=True)
class HostSettings:
    """What check_hosts decided: the hosts, the announced address, the published bind address."""

    bind_address: str  # where the published ports bind: 0.0.0.0 by default with host-address
    hosts: tuple[DockerHostSpec, ...] = ()  # (): the one engine of docker:host
    announce: str = "container-ip"
    survives_host_loss: bool = False

    @property
    def host_names(self) -> list[str]:
        return [h.name for h in self.hosts] or [DEFAULT_HOST_NAME]


def check_hosts(reader: ConfigReader, shape: Shape, bind_address: str) -> HostSettings:
    """`hosts`, `announce` and `survivesHostLoss`; `bind_address` is bindAddress as read.

    Problems go to `reader`; with announce host-address an unset bindAddress becomes 0.0.0.0.
    """
    hosts = parse_hosts(reader)
    announce = _read_announce(reader, hosts)
    if announce == "host-address":
        bind_address = _host_address_bind(reader, bind_address)
    settings = HostSettings(bind_address=bind_address, hosts=hosts, announce=announce,
                            survives_host_loss=reader.boolean("survivesHostLoss", len(hosts) >= 2))
    if settings.survives_host_loss:
        problems = host_loss_problems(shape.masters, shape.replicas_per_master,
                                      settings.host_names)
        for problem in problems:
            reader.fail("survivesHostLoss", f"{problem}. Fix: add hosts or change masters / "
                        "replicasPerMaster, or set survivesHostLoss to false for a stack that "
                        "may go down with a host (dev)")
    return settings


def _read_announce(reader: ConfigReader, hosts: tuple[DockerHostSpec, ...]) -> str:
    announce = reader.choice("announce", "host-address" if hosts else "container-ip",
                             ANNOUNCE_MODES)
    if len(hosts) > 1 and announce == "container-ip":
        reader.fail("announce", "container-ip cannot work across hosts: a container IP is "
                    "reachable only on its own host. Fix: remove the setting (host-address is "
                    "the default with hosts)")
    if announce == "host-address" and not hosts:
        reader.fail("announce", "host-address needs the address clients reach the host at. "
                    f"Fix: also set hosts, e.g. {_EXAMPLE} (one entry for one host)")
    return announce


def _host_address_bind(reader: ConfigReader, bind_address: str) -> str:
    """The bind address of nodes announced at their host's address: other hosts reach them."""
    if reader.given("adminAccess"):
        reader.fail("adminAccess", "does not apply with announce host-address: the deploy "
                    "reaches every node at its host's address and published port. Fix: "
                    "remove it")
    if not reader.given("bindAddress"):
        return "0.0.0.0"  # the published ports face the other hosts
    if _is_loopback(bind_address):
        reader.fail("bindAddress", f"{bind_address} would publish the nodes on "
                    "loopback, where the other hosts cannot reach them. Fix: remove it "
                    "(0.0.0.0) or set the hosts' interface address")
    return bind_address
