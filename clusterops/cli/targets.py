"""Which Redis nodes an operator command talks to, and with which password.

Every operator command (health, drill, backup) calls :func:`add_target_arguments` on its
parser and :func:`load_targets` on the parsed arguments. Targets come from exactly one of:

- ``--stack-outputs FILE``: the JSON printed by ``pulumi stack output --json --show-secrets``;
- ``--stack NAME``: the same JSON, obtained by running that pulumi command (needs a pulumi CLI);
- ``--node NAME=HOST:PORT[:ROLE]`` (repeatable): explicit nodes, e.g. test processes.

The password comes from ``--password-file FILE``, else the stack outputs, else the environment
variable ``REDIS_PASSWORD``. There is deliberately no ``--password VALUE`` flag: a value on the
command line is visible to every user in the process list. With ACL users (acl: true) the
outputs carry the admin user's name and password, and commands act as that user; ``--user
NAME`` names another one (e.g. with ``--node`` targets).

Address choice: by default a node is reached at its container ``ip:port``, which works inside
the Docker network and from a Linux Docker host. ``--via-host-ports`` uses the published port
instead (e.g. Docker Desktop), at the address the outputs' ``host_seed_endpoints`` give for it
(``bindAddress`` is configurable, so it is not always 127.0.0.1); the cluster still announces
container IPs, so clients must remap those to the published ports (see
:meth:`Targets.address_map`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from clusterops.core.errors import TargetsError
from clusterops.core.model import ROLES, NodeTarget
from clusterops.core.units import parse_memory
from clusterops.node.targets import Targets

PASSWORD_ENV = "REDIS_PASSWORD"
PULUMI_TIMEOUT_S = 120.0
# What `pulumi stack output --json` prints for a secret when --show-secrets was forgotten.
UNREVEALED_SECRET = "[secret]"


class _RefusePassword(argparse.Action):
    """`--password VALUE` is refused without echoing VALUE (argparse would print it)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error(
            f"{option_string} is not supported: a password on the command line is visible in "
            f"the process list; use --password-file FILE, the stack outputs or ${PASSWORD_ENV}"
        )


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the target/password options shared by every operator command.

    Build the parser with ``allow_abbrev=False`` (the CLI does) so no prefix of an option
    is taken for another.
    """
    parser.add_argument("--password", "-a", nargs="?", action=_RefusePassword,
                        help=argparse.SUPPRESS)
    group = parser.add_argument_group("targets (choose one source)")
    source = group.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--stack-outputs", metavar="FILE", type=Path,
        help="JSON from `pulumi stack output --json --show-secrets`",
    )
    source.add_argument(
        "--stack", metavar="NAME",
        help="run `pulumi stack output --json --show-secrets --stack NAME` (needs pulumi on PATH)",
    )
    source.add_argument(
        "--node", metavar="NAME=HOST:PORT[:ROLE]", action="append", dest="nodes",
        help="a node to target, repeatable; ROLE is master or replica",
    )
    group.add_argument(
        "--via-host-ports", action="store_true",
        help="connect to the published ports (host_seed_endpoints in the outputs) instead of "
        "the container ip:port",
    )
    group.add_argument(
        "--password-file", metavar="FILE", type=Path,
        help=f"file holding the password (else the stack outputs, else ${PASSWORD_ENV})",
    )
    group.add_argument(
        "--user", metavar="NAME",
        help="ACL user to authenticate as (default: the outputs' admin_username, else the "
        "default user)",
    )
    group.add_argument(
        "--tls-ca-file", metavar="FILE", type=Path,
        help="the cluster CA (PEM) when the nodes speak only TLS (default: the outputs' "
        "tls_ca_cert); the nodes' names are checked against their certificates",
    )
    group.add_argument(
        "--expected-masters", metavar="N", type=int,
        help="override the number of masters expected (default: from roles)",
    )
    group.add_argument(
        "--replicas-per-master", metavar="N", type=int,
        help="override the replicas expected per master (default: from roles, else 1)",
    )
    group.add_argument(
        "--maxmemory", metavar="SIZE", type=parse_size,
        help="expected maxmemory per node, e.g. 536870912 or 512mb (default: from outputs)",
    )


def stack_outputs_of(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    """The stack outputs the options name (and where they came from), or (None, "") when the
    targets are --node flags or the command takes none. Read once: kept on ``args``."""
    if getattr(args, "loaded_outputs", None) is not None:
        return args.loaded_outputs
    loaded: tuple[dict[str, Any] | None, str] = (None, "")
    if getattr(args, "nodes", None):
        pass
    elif getattr(args, "stack_outputs", None) is not None:
        path = Path(args.stack_outputs)
        loaded = read_outputs_file(path), str(path)
    elif getattr(args, "stack", None):
        loaded = run_pulumi_stack_output(args.stack), f"stack {args.stack}"
    args.loaded_outputs = loaded
    return loaded


def load_targets(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Targets:
    """Build :class:`Targets` from parsed :func:`add_target_arguments` options.

    Raises :class:`TargetsError` with an actionable message on any problem.
    """
    environ = os.environ if environ is None else environ
    via_host_ports = bool(getattr(args, "via_host_ports", False))
    if getattr(args, "nodes", None):
        if via_host_ports:
            raise TargetsError("--via-host-ports needs stack outputs (--stack-outputs/--stack)")
        base = targets_from_node_flags(args.nodes)
    elif getattr(args, "stack_outputs", None) is not None or getattr(args, "stack", None):
        outputs, source = stack_outputs_of(args)
        assert outputs is not None
        base = targets_from_outputs(outputs, via_host_ports, source=source)
    else:
        raise TargetsError("no targets: give --stack-outputs FILE, --stack NAME or --node ...")

    # Options given on the command line override what the outputs or roles imply.
    overrides = {
        attr: getattr(args, option)
        for option, attr in (("expected_masters", "expected_masters"),
                              ("replicas_per_master", "replicas_per_master"),
                              ("maxmemory", "maxmemory_bytes"))
        if getattr(args, option, None) is not None
    }
    user = getattr(args, "user", None)
    nodes = tuple(replace(n, username=user) for n in base.nodes) if user else base.nodes
    tls_ca = read_tls_ca_file(getattr(args, "tls_ca_file", None))
    nodes = tuple(replace(n, tls_ca=tls_ca) for n in nodes) if tls_ca else nodes
    targets = replace(
        base,
        nodes=nodes,
        password=resolve_password(getattr(args, "password_file", None), base.password, environ),
        **overrides,
    )
    if targets.expected_masters < 1:
        raise TargetsError(f"expected masters must be >= 1, got {targets.expected_masters}")
    if targets.replicas_per_master < 0:
        raise TargetsError(
            f"replicas per master must be >= 0, got {targets.replicas_per_master}"
        )
    return targets


def read_tls_ca_file(path: Path | str | None) -> str | None:
    """The PEM text of --tls-ca-file (None without it)."""
    if path is None:
        return None
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise TargetsError(f"cannot read --tls-ca-file {path}: {exc.strerror}") from None
    if "BEGIN CERTIFICATE" not in text:
        raise TargetsError(f"--tls-ca-file {path} holds no PEM certificate")
    return text


def resolve_password(
    password_file: Path | str | None, from_outputs: str | None, environ: Mapping[str, str]
) -> str | None:
    """--password-file beats the stack outputs, which beat $REDIS_PASSWORD.

    The explicit per-invocation file wins; the stack's own secret is preferred over a possibly
    stale environment variable left over from another cluster.
    """
    if password_file is not None:
        path = Path(password_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise TargetsError(f"cannot read --password-file {path}: {exc.strerror}") from None
        # Only the line ending an editor adds is dropped: other whitespace may be meaningful.
        password = text.rstrip("\r\n")
        if not password:
            raise TargetsError(f"--password-file {path} is empty")
        return password
    if from_outputs == UNREVEALED_SECRET:
        if environ.get(PASSWORD_ENV):
            return environ[PASSWORD_ENV]
        raise TargetsError(
            "the stack outputs hold '[secret]' instead of the password: they were printed "
            "without --show-secrets; re-create them with `pulumi stack output --json "
            f"--show-secrets`, or give --password-file FILE or ${PASSWORD_ENV}"
        )
    if from_outputs:
        return from_outputs
    return environ.get(PASSWORD_ENV) or None


def read_outputs_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TargetsError(f"cannot read --stack-outputs {path}: {exc.strerror}") from None
    return parse_outputs_json(text, str(path))


def parse_outputs_json(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only: echoing the text could print the password.
        raise TargetsError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise TargetsError(f"{source}: expected a JSON object of stack outputs")
    return data


def run_pulumi_stack_output(stack: str, cwd: Path | None = None) -> dict[str, Any]:
    """Run `pulumi stack output --json --show-secrets --stack NAME` and parse what it prints."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise TargetsError(
            "--stack needs the pulumi CLI, which is not on PATH; write the outputs once with "
            "`pulumi stack output --json --show-secrets --stack NAME > outputs.json` where "
            "pulumi is installed and pass --stack-outputs outputs.json"
        )
    command = [pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=PULUMI_TIMEOUT_S,
            stdin=subprocess.DEVNULL, check=False,
        )
    except subprocess.TimeoutExpired:
        raise TargetsError(
            f"`pulumi stack output --stack {stack}` did not finish in {PULUMI_TIMEOUT_S:.0f}s"
        ) from None
    if done.returncode != 0:
        # stderr only: stdout would hold the revealed secrets.
        detail = done.stderr.strip().splitlines()[-1:] or ["(no error text)"]
        raise TargetsError(
            f"`pulumi stack output --stack {stack}` failed with exit {done.returncode}: "
            f"{detail[0]}"
        )
    return parse_outputs_json(done.stdout, f"pulumi stack output --stack {stack}")


def targets_from_outputs(
    outputs: Mapping[str, Any], via_host_ports: bool = False, source: str = "stack outputs"
) -> Targets:
    """Targets from the stack outputs contract (see the project's stack outputs description)."""
    if outputs.get("target") == "kubernetes":
        raise TargetsError(_kubernetes_refusal(outputs, source))
    raw_nodes = outputs.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise TargetsError(f"{source}: 'nodes' is missing or empty")
    published = _published_hosts(outputs, source) if via_host_ports else None
    nodes = []
    for index, raw in enumerate(raw_nodes):
        nodes.append(_node_from_output(raw, index, published, source))
    _check_unique(nodes, source)

    masters = [n for n in nodes if n.role == "master"]
    replicas = [n for n in nodes if n.role == "replica"]
    master_names = {n.name for n in masters}
    for replica in replicas:
        if replica.master is not None and replica.master not in master_names:
            raise TargetsError(
                f"{source}: replica {replica.name} follows unknown master {replica.master!r}"
            )
    if not masters:
        raise TargetsError(f"{source}: no node has role 'master'")

    maxmemory = outputs.get("maxmemory_bytes")
    if maxmemory is not None and (not isinstance(maxmemory, int) or maxmemory < 0):
        raise TargetsError(f"{source}: maxmemory_bytes must be a non-negative integer")
    password = outputs.get("password")
    if password is not None and not isinstance(password, str):
        raise TargetsError(f"{source}: 'password' must be a string")
    admin = outputs.get("admin_username")
    if admin is not None:
        # acl: true: operator commands act as the admin user; `password`/`username` are the
        # application's, which may not run CLUSTER or CONFIG commands.
        password = outputs.get("admin_password")
        if not (isinstance(admin, str) and admin and isinstance(password, str)):
            raise TargetsError(f"{source}: 'admin_username' needs a string 'admin_password'")
        nodes = [replace(n, username=admin) for n in nodes]
    node_ids = outputs.get("node_ids") or {}
    if not isinstance(node_ids, dict):
        raise TargetsError(f"{source}: 'node_ids' must be an object")
    tls_ca = outputs.get("tls_ca_cert")
    if tls_ca is not None and not (isinstance(tls_ca, str) and "BEGIN CERTIFICATE" in tls_ca):
        raise TargetsError(f"{source}: 'tls_ca_cert' must be a PEM certificate")
    if tls_ca:
        nodes = [replace(n, tls_ca=tls_ca) for n in nodes]
    return Targets(
        nodes=tuple(nodes),
        password=password or None,
        expected_masters=len(masters),
        replicas_per_master=_replicas_per_master(masters, replicas),
        maxmemory_bytes=maxmemory,
        cluster_name=outputs.get("cluster_name"),
        network_name=outputs.get("network_name"),
        node_ids={str(k): str(v) for k, v in node_ids.items()},
        source=source,
    )


def _kubernetes_refusal(outputs: Mapping[str, Any], source: str) -> str:
    """Why a Kubernetes stack's nodes cannot be targeted from here, and the command that can.

    The nodes are known by their pods' DNS names, which resolve only inside the Kubernetes
    cluster, and a cluster client follows MOVED redirects to every pod's own name: a `kubectl
    port-forward` (one pod, one local port) cannot stand in for that. So the command runs in a
    pod of the bootstrap image (it has clusterops), with the password from the stack's Secret
    mounted as a file and the nodes given by name; the pod passes the namespace's restricted
    Pod Security profile."""
    location = outputs.get("location") or {}
    namespace = location.get("namespace") or "NAMESPACE"
    secret = location.get("auth_secret") or "AUTH_SECRET"
    job = outputs.get("bootstrap_job") or "BOOTSTRAP_JOB"
    flags = " ".join(
        f"--node {n.get('name')}={n.get('dns_name')}:{n.get('port')}:{n.get('role')}"
        for n in outputs.get("nodes") or [] if isinstance(n, Mapping))
    command = ["python", "-m", "clusterops", "health", "--password-file",
               "/etc/alphapulse/secret/password", *flags.split()]
    # Strategic merge: the container kubectl run makes (named like the pod, with --image) gets
    # the command, the restricted security settings and the Secret's password file.
    pod = {"spec": {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "automountServiceAccountToken": False,
        "containers": [{
            "name": "clusterops", "command": command,
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "auth", "mountPath": "/etc/alphapulse/secret",
                              "readOnly": True}],
        }],
        "volumes": [{"name": "auth", "secret": {
            "secretName": secret, "items": [{"key": "password", "path": "password"}]}}],
    }}
    image = (f"$(kubectl -n {namespace} get job {job} "
             "-o jsonpath='{.spec.template.spec.containers[0].image}')")
    return (
        f"{source}: these are a Kubernetes stack's outputs: its nodes are reachable only from "
        "inside the Kubernetes cluster (location.reachable_from: inside-cluster), at their pods' "
        "DNS names, so nothing was contacted from here. `kubectl port-forward` is not enough: "
        "a cluster client follows redirects to every pod's own name. Fix: run the command in a "
        "pod of the bootstrap image, e.g. for health (other commands alike):\n"
        f"  kubectl -n {namespace} run clusterops --rm -i --restart=Never --image=\"{image}\" "
        f"--override-type=strategic --overrides='{json.dumps(pod, separators=(',', ':'))}'"
    )


def _replicas_per_master(masters: Sequence[NodeTarget], replicas: Sequence[NodeTarget]) -> int:
    """The planned replica count per master: the smallest, so every master must reach it."""
    if not masters:
        return 0
    if all(r.master is None for r in replicas):
        return len(replicas) // len(masters)
    counts = {m.name: 0 for m in masters}
    for replica in replicas:
        if replica.master in counts:
            counts[replica.master] += 1
    return min(counts.values())


def _published_hosts(outputs: Mapping[str, Any], source: str) -> dict[int, str]:
    """Published port -> the host address it is reached at, from ``host_seed_endpoints``."""
    endpoints = outputs.get("host_seed_endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        raise TargetsError(
            f"{source}: --via-host-ports needs 'host_seed_endpoints' (the published "
            "host:port of every node); re-export the stack outputs"
        )
    hosts: dict[int, str] = {}
    for endpoint in endpoints:
        host, _, port = str(endpoint).rpartition(":")
        if not host or not port.isdigit():
            raise TargetsError(f"{source}: host_seed_endpoints entry {endpoint!r} is not host:port")
        hosts[int(port)] = host
    return hosts


def _node_from_output(
    raw: Any, index: int, published: Mapping[int, str] | None, source: str
) -> NodeTarget:
    where = f"{source}: nodes[{index}]"
    if not isinstance(raw, dict):
        raise TargetsError(f"{where} is not an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise TargetsError(f"{where} has no 'name'")
    where = f"{source}: node {name}"
    ip = raw.get("ip")
    port = raw.get("port")
    if not isinstance(ip, str) or not ip:
        raise TargetsError(f"{where} has no 'ip'")
    if not _is_port(port):
        raise TargetsError(f"{where} has no valid 'port'")
    role = raw.get("role")
    if role is not None and role not in ROLES:
        raise TargetsError(f"{where}: role must be one of {ROLES}, got {role!r}")
    for key in ("master", "container_name", "host"):
        if raw.get(key) and not isinstance(raw[key], str):
            raise TargetsError(f"{where}: '{key}' must be a string, got {raw[key]!r}")
    if published is not None:
        host_port = raw.get("host_port")
        if not _is_port(host_port):
            raise TargetsError(f"{where} has no valid 'host_port' (needed by --via-host-ports)")
        if host_port not in published:
            raise TargetsError(f"{where}: host_port {host_port} is not in host_seed_endpoints")
        host, connect_port = published[host_port], int(host_port)
    else:
        host, connect_port = ip, int(port)
    return NodeTarget(
        name=name,
        host=host,
        port=connect_port,
        cluster_host=ip,
        cluster_port=int(port),
        role=role,
        master=raw.get("master") or None,
        container_name=raw.get("container_name") or None,
        machine=raw.get("host") or None,  # outputs_version 2: the node's Docker host
    )


def targets_from_node_flags(specs: Sequence[str]) -> Targets:
    """Targets from repeated ``--node NAME=HOST:PORT[:ROLE]`` flags (no password in them)."""
    nodes = [parse_node_flag(spec) for spec in specs]
    _check_unique(nodes, "--node")
    roles = [n.role for n in nodes]
    masters = roles.count("master")
    replicas = roles.count("replica")
    if masters:
        per_master = replicas // masters
    else:
        # No roles given: assume the project's shape, one replica per master.
        per_master = 1
        masters = max(1, len(nodes) // 2)
    return Targets(
        nodes=tuple(nodes),
        password=None,
        expected_masters=masters,
        replicas_per_master=per_master,
        source="--node flags",
    )


_NODE_FLAG = re.compile(r"^(?P<name>[^=\s]+)=(?P<host>[^\s:]+):(?P<port>\d+)(?::(?P<role>\w+))?$")


def parse_node_flag(spec: str) -> NodeTarget:
    match = _NODE_FLAG.match(spec.strip())
    if not match:
        raise TargetsError(f"--node {spec!r}: expected NAME=HOST:PORT[:ROLE]")
    port = int(match["port"])
    if not _is_port(port):
        raise TargetsError(f"--node {spec!r}: port must be 1-65535")
    role = match["role"]
    if role is not None and role not in ROLES:
        raise TargetsError(f"--node {spec!r}: ROLE must be one of {ROLES}")
    return NodeTarget(
        name=match["name"],
        host=match["host"],
        port=port,
        cluster_host=match["host"],
        cluster_port=port,
        role=role,
    )


def parse_size(text: str) -> int:
    """Redis-style sizes for argparse: 536870912, 512mb, 1gb."""
    try:
        return parse_memory(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (e.g. 536870912 or 512mb)"
        ) from None


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _check_unique(nodes: Sequence[NodeTarget], source: str) -> None:
    seen_names: set[str] = set()
    seen_addresses: dict[str, str] = {}
    for node in nodes:
        if node.name in seen_names:
            raise TargetsError(f"{source}: node name {node.name} appears twice")
        seen_names.add(node.name)
        if node.address in seen_addresses:
            raise TargetsError(
                f"{source}: {node.name} and {seen_addresses[node.address]} share the address "
                f"{node.address}"
            )
        seen_addresses[node.address] = node.name
