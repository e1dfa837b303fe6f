"""ClusterSpec: the stack configuration, validated all at once into one frozen value.

Every later step (plan, redis.conf, resources, bootstrap) reads this spec; nothing reads
pulumi.Config on its own. Validation collects every problem and raises one ConfigError that
names each config key, what is wrong and how to fix it, before any resource is registered.
ConfigError is a ``pulumi.RunError``: Pulumi prints its message alone, without the Python
traceback that would bury the list of problems.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from clusterops.acl_users import (
    DEFAULT_APP_RULES,
    DEFAULT_APP_USER,
    app_rules_problems,
    app_user_problems,
)
from clusterops.model import BUS_PORT_OFFSET
from clusterops.units import format_memory, parse_memory
from components.hosts import DockerHostSpec, check_hosts
from components.tls_material import supplied_ca_problems

PROJECT = "alphapulse-redis-cluster"
# Addresses below this host offset are kept for the gateway, exporter and Prometheus.
FIRST_NODE_HOST_OFFSET = 11
REDIS_PORT = 6379
MAX_MASTERS = 100
MAX_REPLICAS_PER_MASTER = 5

# Address layout, stable under scaling: a node's index (its IP is FIRST_NODE_HOST_OFFSET + index,
# its host port basePort + index) depends only on its name, never on how many masters or
# replicas there are, so adding or removing a shard never moves an existing node (a moved IP
# would replace its container and strand its peers' nodes.conf). Masters 1-3 and replicas
# 1-15 keep the layout every 3-master stack has always had; masters 4+ and replicas 16+ (only
# possible with 4+ masters) come after them.
BASE_MASTERS = 3
_BASE_REPLICAS = BASE_MASTERS * MAX_REPLICAS_PER_MASTER
_EXTRA_MASTERS_INDEX = BASE_MASTERS + _BASE_REPLICAS
_EXTRA_REPLICAS_INDEX = _EXTRA_MASTERS_INDEX + MAX_MASTERS - BASE_MASTERS


def node_index(role: str, ordinal: int) -> int:
    """The address index of master-N / replica-N (see the layout note above)."""
    if role == "master":
        return ordinal - 1 if ordinal <= BASE_MASTERS else _EXTRA_MASTERS_INDEX + ordinal - 4
    if ordinal <= _BASE_REPLICAS:
        return BASE_MASTERS + ordinal - 1
    return _EXTRA_REPLICAS_INDEX + ordinal - _BASE_REPLICAS - 1


def index_span(masters: int, replicas_per_master: int) -> int:
    """1 + the highest address index the nodes of this shape use."""
    replicas = masters * replicas_per_master
    highest = [node_index("master", masters)]
    if replicas:
        highest.append(node_index("replica", replicas))
    return max(highest) + 1

MAXMEMORY_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
APPENDFSYNC_MODES = ("always", "everysec", "no")
PASSWORD_POLICIES = ("generate", "required")
ADMIN_ACCESS_MODES = ("container-ip", "host-ports")
ANNOUNCE_MODES = ("container-ip", "host-address")

# Pinned official images; tests and air-gapped hosts name their own via redisImage/exporterImage.
DEFAULT_REDIS_IMAGE = "redis:7.0.15-bookworm"
DEFAULT_EXPORTER_IMAGE = "oliver006/redis_exporter:v1.45.0"
DEFAULT_PROMETHEUS_IMAGE = "prom/prometheus:v2.42.0"


class ConfigError(pulumi.RunError):
    """Every problem found in the stack config, one line per key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"The stack config of {PROJECT} has {len(problems)} problem(s); nothing was created "
            f"or changed:\n{lines}"
        )


@dataclass(frozen=True)
class ClusterSpec:
    """What the stack asks for. Frozen: computed once, read everywhere."""

    stack: str
    masters: int
    replicas_per_master: int
    redis_image: str
    exporter_image: str
    prometheus_image: str
    pull_images: bool
    exporter_port: int
    prometheus_port: int
    deploy_prometheus: bool
    base_port: int
    bind_address: str
    maxmemory_bytes: int
    maxmemory_policy: str
    memory_limit_bytes: int
    appendonly: bool
    appendfsync: str
    rdb_save: tuple[tuple[int, int], ...]
    node_timeout_ms: int
    replica_validity_factor: int
    min_replicas_to_write: int
    name_prefix: str
    network_name: str
    subnet: str
    password_policy: str
    protect_data: bool
    admin_access: str
    bootstrap_timeout_s: int
    # Kubernetes target (components/k8s_cluster.py); the defaults describe the Docker target.
    target: str = "docker"
    k8s: KubernetesSettings | None = None
    # Docker hosts (components/hosts.py); () is the one engine of docker:host.
    hosts: tuple[DockerHostSpec, ...] = ()
    announce: str = "container-ip"
    survives_host_loss: bool = False
    # TLS on every link (components/tls_material.py makes the CA and node certificates).
    tls: bool = False
    tls_cert_days: int = 365
    tls_generation: int = 1
    tls_ca_cert: str | None = None  # the operator's CA chain (tlsCaCert); its key is a secret
    # ACL users (clusterops/acl_users.py): admin, app, exporter, replication; default off.
    acl: bool = False
    acl_app_user: str = DEFAULT_APP_USER
    acl_app_rules: str = DEFAULT_APP_RULES

    @property
    def announces_host_address(self) -> bool:
        return self.announce == "host-address"

    @property
    def node_count(self) -> int:
        return self.masters * (1 + self.replicas_per_master)

    @property
    def maxmemory(self) -> str:
        return format_memory(self.maxmemory_bytes)


def _is_prod_stack(stack: str) -> bool:
    return stack == "prod" or stack.startswith("prod-") or stack.endswith("-prod")


class _Reader:
    """Parses raw config strings, recording a problem instead of raising on the first one."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = raw
        self.problems: list[str] = []

    def fail(self, key: str, problem: str) -> None:
        self.problems.append(f"{PROJECT}:{key}: {problem}")

    def text(self, key: str, default: str) -> str:
        value = self.raw.get(key)
        return default if value is None else str(value).strip()

    def integer(self, key: str, default: int, low: int, high: int, fix: str) -> int:
        value = self.raw.get(key)
        if value is None:
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            self.fail(key, f"{value!r} is not a whole number. Fix: {fix}")
            return default
        if not low <= number <= high:
            self.fail(key, f"{number} is out of range {low}..{high}. Fix: {fix}")
            return default  # so one bad value does not cascade into other keys' checks
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        self.fail(key, f"{value!r} is not a boolean. Fix: set it to true or false")
        return default

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.fail(key, f"{value!r} is not one of {', '.join(choices)}. Fix: pick one of them")
        return value

    def memory(self, key: str, default: str) -> int:
        value = self.text(key, default)
        try:
            return parse_memory(value)
        except ValueError:
            self.fail(key, f"{value!r} is not a Redis memory size. Fix: use a whole number with "
                      "an optional unit b, k, kb, m, mb, g or gb, e.g. 512mb or 1gb")
            return parse_memory(default)


# key -> one-line meaning; the README's config table is checked against this list.
CONFIG_KEYS: dict[str, str] = {
    "masters": "number of master shards (at least 3)",
    "replicasPerMaster": "replicas that follow each master",
    "redisImage": "Redis image for every node",
    "exporterImage": "redis_exporter image",
    "prometheusImage": "Prometheus image (only with deployPrometheus)",
    "pullImages": "pull images from a registry (false: use images already on the Docker host)",
    "exporterPort": "host port of the exporter's /metrics",
    "prometheusPort": "host port of the optional Prometheus",
    "deployPrometheus": "also run Prometheus with the alert rules",
    "basePort": "host port of the first node; node i publishes basePort+i-1 and bus +10000",
    "bindAddress": "host address the published ports bind to",
    "maxmemory": "Redis maxmemory per node (Redis units)",
    "maxmemoryPolicy": "Redis maxmemory-policy",
    "memoryLimit": "container memory limit per node (Redis units)",
    "appendonly": "AOF persistence",
    "appendfsync": "AOF fsync policy",
    "rdbSave": "RDB save schedule: pairs of <seconds> <changes>, empty to disable",
    "nodeTimeoutMs": "cluster-node-timeout in milliseconds",
    "replicaValidityFactor": "cluster-replica-validity-factor",
    "minReplicasToWrite": "min-replicas-to-write on every master",
    "namePrefix": "prefix of every container, volume and network name",
    "networkName": "Docker network name",
    "subnet": "fixed IPv4 subnet of the Docker network",
    "password": "Redis password (secret)",
    "passwordPolicy": "generate: make one when unset; required: fail when unset",
    "protectData": "protect data volumes and keep them when the stack is destroyed",
    "adminAccess": "how the deploying host reaches nodes: container-ip or host-ports",
    "bootstrapTimeoutSeconds": "deadline for forming and validating the cluster",
    "hosts": "Docker hosts the nodes are spread over: a list of {name, dockerHost, address[, "
             "certPath]} (unset: the one engine of docker:host)",
    "announce": "address the nodes announce: container-ip (one host) or host-address (the "
                "host's address and published ports)",
    "survivesHostLoss": "refuse a placement that one host's loss would break (default: true "
                        "with 2 or more hosts)",
    "tls": "TLS on every link: clients, replication, cluster bus (plaintext port off)",
    "tlsCertDays": "validity of each node certificate in days (renewed 30 days before expiry)",
    "tlsGeneration": "bump to replace the CA and every certificate",
    "tlsCaCert": "your own CA to sign the node certificates: its certificate, then each issuer "
                 "up to the root (PEM; default: the stack makes a CA of its own)",
    "tlsCaKey": "the private key of tlsCaCert's first certificate (secret, unencrypted PEM)",
    "acl": "ACL users: admin, app (password), exporter and replication, default user off",
    "aclAppUser": "name of the application user (acl: true)",
    "aclAppRules": "ACL rules of the application user (default: all but @admin and "
                   "@dangerous, plus INFO)",
    "adminPassword": "admin user's password (secret; generated when unset)",
    "exporterPassword": "exporter user's password (secret; generated when unset)",
    "replicationPassword": "replication user's password (secret; generated when unset)",
}
# The ACL users' own password keys, judged like `password`.
ACL_PASSWORD_KEYS = {"admin": "adminPassword", "exporter": "exporterPassword",
                     "replication": "replicationPassword"}


TARGETS = ("docker", "kubernetes")
# A storageClass value that leaves storageClassName unset, so the cluster's default class applies.
CLUSTER_DEFAULT_STORAGE_CLASS = "cluster-default"
DEFAULT_BOOTSTRAP_IMAGE = "alphapulse/redis-cluster-bootstrap:0.1.0"
DEFAULT_ZONE_TOPOLOGY_KEY = "topology.kubernetes.io/zone"

# Settings that only mean something on one target. Setting one on the other target is an error:
# a silently ignored key (a subnet on Kubernetes) would make the reader believe it took effect.
DOCKER_ONLY_KEYS = ("basePort", "bindAddress", "networkName", "subnet", "adminAccess",
                    "exporterPort", "prometheusPort", "deployPrometheus", "prometheusImage",
                    "hosts", "announce", "survivesHostLoss", "tls", "tlsCertDays",
                    "tlsGeneration", "tlsCaCert", "tlsCaKey", "acl", "aclAppUser", "aclAppRules",
                    *ACL_PASSWORD_KEYS.values())
KUBERNETES_CONFIG_KEYS: dict[str, str] = {
    "target": "where the cluster runs: docker (default) or kubernetes",
    "namespace": "Kubernetes namespace of every object (created by the stack)",
    "storageClass": "StorageClass of the data PVCs (cluster-default: the cluster's default class)",
    "storageSize": "size of each node's data PVC (Kubernetes quantity, e.g. 4Gi)",
    "renderDir": "write the manifests to this directory instead of applying them",
    "clusterDomain": "the Kubernetes cluster DNS domain of the announced hostnames",
    "kubernetesNodes": "schedulable Kubernetes nodes, when declared (0: not declared)",
    "zones": "availability zones the nodes span, when declared (0: not declared)",
    "zoneTopologyKey": "node label that names a node's zone",
    "cpuRequest": "CPU request of each Redis pod (Kubernetes quantity, e.g. 250m)",
    "serviceMonitor": "also declare a prometheus-operator ServiceMonitor for the exporter",
    "bootstrapImage": "image of the bootstrap Job (python + clusterops, k8s/Dockerfile)",
}
CONFIG_KEYS.update(KUBERNETES_CONFIG_KEYS)
KUBERNETES_ONLY_KEYS = tuple(k for k in KUBERNETES_CONFIG_KEYS if k != "target")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_BYTE_QUANTITY = re.compile(r"^([1-9][0-9]*)(Ki|Mi|Gi|Ti)$")
_CPU_QUANTITY = re.compile(r"^([1-9][0-9]*m|[0-9]+(\.[0-9]+)?)$")
_QUANTITY_FACTORS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


@dataclass(frozen=True)
class KubernetesSettings:
    """The Kubernetes-only part of the spec (target: kubernetes)."""

    namespace: str
    storage_class: str | None  # None: the cluster's default StorageClass
    storage_size: str
    render_dir: str | None  # set: manifests are written there, nothing is applied
    cluster_domain: str
    kubernetes_nodes: int  # 0: not declared
    zones: int  # 0: not declared
    zone_topology_key: str
    cpu_request: str
    service_monitor: bool
    bootstrap_image: str


def _check_target_keys(reader: _Reader, raw: Mapping[str, Any], target: str) -> None:
    """A key of the other target is an error, never silently ignored."""
    foreign = DOCKER_ONLY_KEYS if target == "kubernetes" else KUBERNETES_ONLY_KEYS
    for key in sorted(k for k in raw if k in foreign):
        reader.fail(key, f"applies to the {'Docker' if target == 'kubernetes' else 'Kubernetes'} "
                    f"target only, and this stack's target is {target}. Fix: remove it from "
                    f"Pulumi.<stack>.yaml (pulumi config rm {PROJECT}:{key})")


def _kubernetes_settings(
    reader: _Reader, raw: Mapping[str, Any], values: Mapping[str, Any]
) -> KubernetesSettings:
    """Validate the Kubernetes keys; problems go to `reader` like every other key's."""
    prefix = values["name_prefix"]
    members = 1 + values["replicas_per_master"]  # pods of one shard: must not share a node
    namespace = reader.text("namespace", f"{prefix}-redis".lower())
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        reader.fail("namespace", f"{namespace!r} is not a Kubernetes namespace name. Fix: use "
                    "at most 63 lower-case letters, digits and '-', e.g. alphapulse-redis")
    if not _DNS_LABEL.match(prefix.lower()) or prefix != prefix.lower() or "_" in prefix:
        reader.fail("namePrefix", f"{prefix!r} cannot start Kubernetes object names. Fix: use "
                    "lower-case letters, digits and '-' only, e.g. alphapulse")

    storage_class = reader.text("storageClass", "")
    if not storage_class:
        reader.fail("storageClass", "is required on Kubernetes: every Redis node keeps "
                    "nodes.conf, the AOF and the RDB on its own PersistentVolumeClaim. Fix: "
                    f"pulumi config set {PROJECT}:storageClass <class> (kubectl get "
                    f"storageclass lists them), or {CLUSTER_DEFAULT_STORAGE_CLASS} for the "
                    "cluster's default class")
    elif storage_class != CLUSTER_DEFAULT_STORAGE_CLASS and not _DNS_SUBDOMAIN.match(
            storage_class):
        reader.fail("storageClass", f"{storage_class!r} is not a StorageClass name. Fix: use "
                    "the NAME column of `kubectl get storageclass`")

    storage_size = reader.text("storageSize", "4Gi")
    size = _BYTE_QUANTITY.match(storage_size)
    # AOF (up to twice the data before a rewrite) + RDB + the rewrite's temporary file.
    needed = 3 * values["maxmemory_bytes"]
    if not size:
        reader.fail("storageSize", f"{storage_size!r} is not a Kubernetes byte quantity. Fix: "
                    "use a whole number with Ki, Mi, Gi or Ti, e.g. 4Gi")
    elif int(size.group(1)) * _QUANTITY_FACTORS[size.group(2)] < needed:
        reader.fail("storageSize", f"{storage_size} is less than 3 x maxmemory "
                    f"({format_memory(needed)}): the AOF, its rewrite and the RDB would not "
                    f"fit. Fix: set storageSize to at least {-(-needed // 1024**3)}Gi")

    render_dir = reader.text("renderDir", "") or None
    cluster_domain = reader.text("clusterDomain", "cluster.local")
    if not _DNS_SUBDOMAIN.match(cluster_domain):
        reader.fail("clusterDomain", f"{cluster_domain!r} is not a DNS domain. Fix: use the "
                    "cluster's DNS domain, cluster.local unless the cluster was set up otherwise")

    nodes = reader.integer("kubernetesNodes", 0, 0, 10000, "the number of schedulable "
                           "Kubernetes nodes, or 0 when not declared")
    if 0 < nodes < members:
        reader.fail("kubernetesNodes", f"{nodes} node(s) cannot hold a shard's {members} pods "
                    "(a master and its replicas never share a node: required anti-affinity), "
                    f"so pods would stay Pending. Fix: add nodes (at least {members}) or lower "
                    "replicasPerMaster")
    zones = reader.integer("zones", 0, 0, 100, "the number of zones, or 0 when not declared")
    if 0 < zones < members:
        reader.fail("zones", f"{zones} zone(s) cannot keep a shard's {members} pods in "
                    "different zones: losing one zone would lose a master and its replica. "
                    f"Fix: spread the nodes over at least {members} zones, or set zones to 0 "
                    "to spread by node only")
    elif zones and nodes and nodes < zones:
        reader.fail("zones", f"{zones} zones but only {nodes} kubernetesNodes. Fix: declare "
                    "the real numbers (each zone needs at least one node)")
    topology_key = reader.text("zoneTopologyKey", DEFAULT_ZONE_TOPOLOGY_KEY)
    if not topology_key or " " in topology_key:
        reader.fail("zoneTopologyKey", f"{topology_key!r} is not a node label key. Fix: "
                    f"use {DEFAULT_ZONE_TOPOLOGY_KEY}")

    cpu_request = reader.text("cpuRequest", "250m")
    if not _CPU_QUANTITY.match(cpu_request):
        reader.fail("cpuRequest", f"{cpu_request!r} is not a CPU quantity. Fix: e.g. 250m or 1")
    bootstrap_image = reader.text("bootstrapImage", DEFAULT_BOOTSTRAP_IMAGE)
    if not bootstrap_image or " " in bootstrap_image:
        reader.fail("bootstrapImage", "is empty or contains spaces. Fix: name the image built "
                    "from k8s/Dockerfile, e.g. registry.example.com/redis-bootstrap:0.1.0")
    return KubernetesSettings(
        namespace=namespace,
        storage_class=None if storage_class == CLUSTER_DEFAULT_STORAGE_CLASS else storage_class,
        storage_size=storage_size,
        render_dir=render_dir,
        cluster_domain=cluster_domain,
        kubernetes_nodes=nodes,
        zones=zones,
        zone_topology_key=topology_key,
        cpu_request=cpu_request,
        service_monitor=reader.boolean("serviceMonitor", False),
        bootstrap_image=bootstrap_image,
    )


def check_target(reader: _Reader, raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    """The `target` key and its settings, added to `values` (target, k8s)."""
    target = reader.choice("target", "docker", TARGETS)
    if target not in TARGETS:
        return
    _check_target_keys(reader, raw, target)
    values["target"] = target
    if target == "kubernetes":
        values["k8s"] = _kubernetes_settings(reader, raw, values)


def _parse_rdb_save(reader: _Reader) -> tuple[tuple[int, int], ...]:
    text = reader.text("rdbSave", "900 1 300 10 60 10000")
    parts = text.split()
    fix = 'use pairs of "<seconds> <changes>", e.g. "900 1 300 10", or "" to disable RDB'
    if len(parts) % 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        reader.fail("rdbSave", f"{text!r} is not a save schedule. Fix: {fix}")
        return ()
    return tuple((int(parts[i]), int(parts[i + 1])) for i in range(0, len(parts), 2))


def _check_ports(reader: _Reader, spec_values: dict[str, Any]) -> None:
    count = spec_values["index_span"]  # ports in use span the highest node index
    base = spec_values["base_port"]
    last_bus = base + count - 1 + BUS_PORT_OFFSET
    if last_bus > 65535:
        reader.fail(
            "basePort",
            f"{base} + {count} nodes puts the last cluster-bus port at {last_bus} (> 65535). "
            f"Fix: set basePort to at most {65535 - BUS_PORT_OFFSET - count + 1}",
        )
    node_ports = set(range(base, base + count)) | set(
        range(base + BUS_PORT_OFFSET, base + BUS_PORT_OFFSET + count)
    )
    for key, port in (("exporterPort", spec_values["exporter_port"]),
                      ("prometheusPort", spec_values["prometheus_port"])):
        if key == "prometheusPort" and not spec_values["deploy_prometheus"]:
            continue
        if port in node_ports:
            reader.fail(
                key,
                f"port {port} collides with a node port (client {base}-{base + count - 1}, bus "
                f"{base + BUS_PORT_OFFSET}-{base + BUS_PORT_OFFSET + count - 1}). "
                "Fix: choose a port outside those ranges or move basePort",
            )
    if spec_values["deploy_prometheus"] and spec_values["exporter_port"] == spec_values[
        "prometheus_port"
    ]:
        reader.fail("prometheusPort", "equals exporterPort. Fix: give them different ports")


def _check_subnet(reader: _Reader, subnet: str, node_count: int, span: int) -> None:
    try:
        network = ipaddress.ip_network(subnet, strict=True)
    except ValueError as err:
        reader.fail("subnet", f"{subnet!r} is not an IPv4 network ({err}). Fix: e.g. 172.28.0.0/24")
        return
    if network.version != 4:
        reader.fail("subnet", f"{subnet} is IPv6. Fix: use an IPv4 subnet such as 172.28.0.0/24")
        return
    needed = FIRST_NODE_HOST_OFFSET + span + 1  # + broadcast address
    if network.num_addresses < needed:
        prefix = 32
        while 2 ** (32 - prefix) < needed:
            prefix -= 1
        reader.fail(
            "subnet",
            f"{subnet} has {network.num_addresses} addresses but {node_count} nodes need "
            f"{needed} (gateway, exporter, Prometheus, then nodes from host offset "
            f"{FIRST_NODE_HOST_OFFSET}). "
            f"Fix: use a /{prefix} or larger",
        )


def _unknown_key_fix(key: str) -> str:
    """Suggest the closest known key for a typo; list them all when nothing is close."""
    close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
    if close:
        return f"did you mean {close[0]}? Rename it, or remove it"
    return f"remove it or use one of {', '.join(CONFIG_KEYS)}"


def _check_acl(reader: _Reader, raw: Mapping[str, Any], values: dict[str, Any],
               prod: bool) -> None:
    """ACL users: on by default in prod stacks, like TLS (one password must not open CONFIG,
    FLUSHALL and CLUSTER RESET to the application)."""
    values["acl"] = reader.boolean("acl", prod)
    values["acl_app_user"] = reader.text("aclAppUser", DEFAULT_APP_USER)
    values["acl_app_rules"] = " ".join(reader.text("aclAppRules", DEFAULT_APP_RULES).split())
    for problem in app_user_problems(values["acl_app_user"]):
        reader.fail("aclAppUser", problem)
    for problem in app_rules_problems(values["acl_app_rules"]):
        reader.fail("aclAppRules", problem)
    if not values["acl"]:
        for key in ("aclAppUser", "aclAppRules", *ACL_PASSWORD_KEYS.values()):
            if raw.get(key) is not None:
                reader.fail(key, "only applies with ACL users. Fix: set acl to true, or remove "
                            "it")


def _check_supplied_ca(reader: _Reader, raw: Mapping[str, Any], values: dict[str, Any]) -> None:
    """tlsCaCert and tlsCaKey: both or neither, only with tls, and a CA that can sign the node
    certificates for tlsCertDays (the key is judged here, and never kept in the spec)."""
    chain, key = raw.get("tlsCaCert") or None, raw.get("tlsCaKey") or None
    if chain is None and key is None:
        return
    if chain is None or key is None:
        given, missing = ("tlsCaCert", "tlsCaKey") if chain else ("tlsCaKey", "tlsCaCert")
        reader.fail(missing, f"is needed with {given}. Fix: set both (`pulumi config set "
                    f"{PROJECT}:tlsCaCert -- \"$(cat ca-chain.pem)\"` and `pulumi config set "
                    f"--secret {PROJECT}:tlsCaKey -- \"$(cat ca.key)\"`), or neither")
        return
    if not values["tls"]:
        reader.fail("tlsCaCert", "only applies with TLS. Fix: set tls to true, or remove "
                    "tlsCaCert and tlsCaKey")
        return
    for problem in supplied_ca_problems(str(chain), str(key), values["tls_cert_days"]):
        on_key = problem.startswith("tlsCaKey ")
        reader.fail("tlsCaKey" if on_key else "tlsCaCert", problem.removeprefix("tlsCaKey "))
    values["tls_ca_cert"] = str(chain)


def build_spec(raw: Mapping[str, Any], stack: str, password_set: bool) -> ClusterSpec:
    """Validate raw config values (key -> string, without the project prefix).

    Raises ConfigError listing every problem found.
    """
    reader = _Reader(raw)
    for key in sorted(raw):
        if key not in CONFIG_KEYS:
            reader.fail(key, f"unknown setting. Fix: {_unknown_key_fix(key)}")

    prod = _is_prod_stack(stack)
    masters = reader.integer(
        "masters", 3, 3, MAX_MASTERS,
        "Redis Cluster needs at least 3 masters to elect a failover; set masters to 3 or more",
    )
    replicas = reader.integer(
        "replicasPerMaster", 1, 0, MAX_REPLICAS_PER_MASTER,
        f"set replicasPerMaster between 0 and {MAX_REPLICAS_PER_MASTER} (1 gives failover)",
    )
    prefix = reader.text("namePrefix", "alphapulse")
    if not prefix or not all(c.isalnum() or c in "-_" for c in prefix) or not prefix[0].isalnum():
        reader.fail("namePrefix", f"{prefix!r} is not a valid Docker name prefix. Fix: use "
                    "letters, digits, '-' or '_', starting with a letter or digit")
    maxmemory = reader.memory("maxmemory", "512mb")
    if maxmemory < 16 * 1024**2:
        reader.fail("maxmemory", f"{format_memory(maxmemory)} is below 16mb (0 would mean no "
                    "limit). Fix: set maxmemory to 16mb or more, e.g. 512mb")
    memory_limit = reader.memory("memoryLimit", format_memory(2 * maxmemory))
    # The fork of BGSAVE/AOF rewrite copies pages on write: the container needs headroom.
    if memory_limit < maxmemory + 64 * 1024**2:
        reader.fail("memoryLimit", f"{format_memory(memory_limit)} leaves less than 64mb above "
                    f"maxmemory {format_memory(maxmemory)}. Fix: set memoryLimit to at least "
                    f"{format_memory(maxmemory + 64 * 1024**2)} (default: 2 x maxmemory)")

    values: dict[str, Any] = dict(
        stack=stack,
        masters=masters,
        replicas_per_master=replicas,
        redis_image=reader.text("redisImage", DEFAULT_REDIS_IMAGE),
        exporter_image=reader.text("exporterImage", DEFAULT_EXPORTER_IMAGE),
        prometheus_image=reader.text("prometheusImage", DEFAULT_PROMETHEUS_IMAGE),
        pull_images=reader.boolean("pullImages", True),
        exporter_port=reader.integer("exporterPort", 9121, 1, 65535, "use a free host port"),
        prometheus_port=reader.integer("prometheusPort", 9090, 1, 65535, "use a free host port"),
        deploy_prometheus=reader.boolean("deployPrometheus", False),
        base_port=reader.integer("basePort", 7001, 1024, 65535,
                                 "use an unprivileged port such as 7001"),
        bind_address=reader.text("bindAddress", "127.0.0.1"),
        maxmemory_bytes=maxmemory,
        maxmemory_policy=reader.choice("maxmemoryPolicy", "allkeys-lru", MAXMEMORY_POLICIES),
        memory_limit_bytes=memory_limit,
        appendonly=reader.boolean("appendonly", True),
        appendfsync=reader.choice("appendfsync", "everysec", APPENDFSYNC_MODES),
        rdb_save=_parse_rdb_save(reader),
        node_timeout_ms=reader.integer(
            "nodeTimeoutMs", 1000, 100, 60000,
            "use 500-2000 ms; failover takes about nodeTimeoutMs + 1 s, so <= 2000 keeps it < 5 s",
        ),
        replica_validity_factor=reader.integer(
            "replicaValidityFactor", 0, 0, 100,
            "0 lets any replica fail over however long its link was down",
        ),
        min_replicas_to_write=reader.integer(
            "minReplicasToWrite", 0, 0, MAX_REPLICAS_PER_MASTER,
            "use 0 (availability first) or at most replicasPerMaster",
        ),
        name_prefix=prefix,
        network_name=reader.text("networkName", f"{prefix}_redis-cluster"),
        subnet=reader.text("subnet", "172.28.0.0/24"),
        password_policy=reader.choice(
            "passwordPolicy", "required" if prod else "generate", PASSWORD_POLICIES
        ),
        protect_data=reader.boolean("protectData", prod),
        admin_access=reader.choice("adminAccess", "container-ip", ADMIN_ACCESS_MODES),
        bootstrap_timeout_s=reader.integer("bootstrapTimeoutSeconds", 120, 5, 3600,
                                           "give the cluster 30-600 s to form"),
    )
    values["node_count"] = masters * (1 + replicas)
    values["index_span"] = index_span(masters, replicas)

    if values["min_replicas_to_write"] > replicas:
        reader.fail("minReplicasToWrite", f"{values['min_replicas_to_write']} is more than "
                    f"replicasPerMaster ({replicas}): every master would refuse writes. "
                    "Fix: set it to at most replicasPerMaster (0 recommended, see README)")
    for key in ("redisImage", "exporterImage", "prometheusImage"):
        if not reader.text(key, "x") or " " in reader.text(key, "x"):
            reader.fail(key, "is empty or contains spaces. Fix: name an image like redis:7.0.15")
    try:
        ipaddress.ip_address(values["bind_address"])
    except ValueError:
        reader.fail("bindAddress", f"{values['bind_address']!r} is not an IP address. "
                    "Fix: use 127.0.0.1 (this host only) or 0.0.0.0 (all interfaces)")
    _check_ports(reader, values)
    _check_subnet(reader, values["subnet"], values["node_count"], values["index_span"])
    if values["password_policy"] == "required" and not password_set:
        reader.fail("password", f"stack {stack!r} requires a password and none is set. Fix: "
                    f"pulumi config set --secret {PROJECT}:password <value>")
    for key in ("password", *ACL_PASSWORD_KEYS.values()):
        if raw.get(key) is not None and len(str(raw[key])) < 16:
            reader.fail(key, "is shorter than 16 characters. Fix: use a longer secret")
        if raw.get(key) is not None and any(c in str(raw[key]) for c in "\r\n\0"):
            reader.fail(key, "contains a line break or NUL, which redis.conf cannot hold. "
                        "Fix: choose a password without them")

    check_target(reader, raw, values)
    if values.get("target", "docker") == "docker":
        check_hosts(reader, raw, values)
        # Prod stacks default to TLS on: their data and password never cross a network in
        # clear text; dev stays plaintext for easy redis-cli debugging.
        values["tls"] = reader.boolean("tls", prod)
        values["tls_cert_days"] = reader.integer(
            "tlsCertDays", 365, 2 * 30 + 1, 3650,
            "use 365 (renewed by any pulumi up in the last 30 days); at least 61")
        values["tls_generation"] = reader.integer(
            "tlsGeneration", 1, 1, 1_000_000, "use 1, and add 1 to replace the CA")
        _check_supplied_ca(reader, raw, values)
        _check_acl(reader, raw, values, prod)

    if reader.problems:
        raise ConfigError(reader.problems)
    del values["node_count"]
    del values["index_span"]
    return ClusterSpec(**values)


def load_spec(
    get_raw: Callable[[], Mapping[str, Any]],
    stack: str,
) -> ClusterSpec:
    """Build the spec from the raw project config (key -> value without the 'project:' prefix)."""
    raw = dict(get_raw())
    return build_spec(raw, stack, password_set=raw.get("password") not in (None, ""))
