"""ClusterSpec: the stack configuration, validated all at once into one frozen value.

Every later step (plan, redis.conf, resources, bootstrap) reads this spec; nothing reads
pulumi.Config on its own. Validation collects every problem and raises one ConfigError that
names each config key, what is wrong and how to fix it, before any resource is registered.
Each concern is read by a small function that returns a frozen value (components/layout.py,
node_settings.py, docker_settings.py, k8s_settings.py, hosts.py); build_spec composes them.
ConfigError is a ``pulumi.RunError``: Pulumi prints its message alone, without the Python
traceback that would bury the list of problems.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from clusterops.core.units import format_memory
from clusterops.provision.acl_users import DEFAULT_APP_RULES, DEFAULT_APP_USER
from components.config_reader import PROJECT, ConfigReader
from components.docker_settings import (
    DockerNetwork,
    DockerSettings,
    PublishedPorts,
    read_docker_settings,
    read_network,
    read_ports,
)
from components.hosts import DockerHostSpec
from components.k8s_settings import KubernetesSettings, read_kubernetes_settings
from components.layout import Shape, read_shape
from components.node_settings import (
    FailoverSettings,
    Images,
    MemorySettings,
    Persistence,
    Protection,
    read_failover,
    read_images,
    read_memory,
    read_name_prefix,
    read_persistence,
    read_protection,
)
from components.security_settings import AclSettings, TlsSettings, read_acl, read_tls


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
    # The server family (clusterops/core/engines.py): its binary and CLI names.
    engine: str = "redis"
    # The key mover's ceiling during a reshape by `pulumi up` (0: unpaced).
    reshape_max_keys_per_second: int = 0
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
    # ACL users (clusterops/provision/acl_users.py): admin, app, exporter, replication; default off.
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


# key -> one-line meaning; the README's config table is checked against this list.
CONFIG_KEYS: dict[str, str] = {
    "masters": "number of master shards (at least 3)",
    "replicasPerMaster": "replicas that follow each master",
    "engine": "server family: redis (default) or valkey",
    "redisImage": "server image for every node (default: the engine's pinned image)",
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
    "reshapeMaxKeysPerSecond": "ceiling on keys moved per second when `pulumi up` reshapes "
    "(0: as fast as the nodes take them; lower keeps live clients' latency down)",
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


TARGETS = ("docker", "kubernetes")

# Settings that only mean something on one target. Setting one on the other target is an error:
# a silently ignored key (a subnet on Kubernetes) would make the reader believe it took effect.
DOCKER_ONLY_KEYS = ("basePort", "bindAddress", "networkName", "subnet", "adminAccess",
                    "exporterPort", "prometheusPort", "deployPrometheus", "prometheusImage",
                    "hosts", "announce", "survivesHostLoss")
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
    "bootstrapImage": "image of the bootstrap Job (python + clusterops, k8s_bootstrap/Dockerfile)",
}
CONFIG_KEYS.update(KUBERNETES_CONFIG_KEYS)
KUBERNETES_ONLY_KEYS = tuple(k for k in KUBERNETES_CONFIG_KEYS if k != "target")


def _unknown_key_fix(key: str) -> str:
    """Suggest the closest known key for a typo; list them all when nothing is close."""
    close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
    if close:
        return f"did you mean {close[0]}? Rename it, or remove it"
    return f"remove it or use one of {', '.join(CONFIG_KEYS)}"


def _check_known_keys(reader: ConfigReader) -> None:
    for key in reader.set_keys():
        if key not in CONFIG_KEYS:
            reader.fail(key, f"unknown setting. Fix: {_unknown_key_fix(key)}")


def _check_target_keys(reader: ConfigReader, target: str) -> None:
    """A key of the other target is an error, never silently ignored."""
    foreign = DOCKER_ONLY_KEYS if target == "kubernetes" else KUBERNETES_ONLY_KEYS
    for key in (k for k in reader.set_keys() if k in foreign):
        reader.fail(key, f"applies to the {'Docker' if target == 'kubernetes' else 'Kubernetes'} "
                    f"target only, and this stack's target is {target}. Fix: remove it from "
                    f"Pulumi.<stack>.yaml (pulumi config rm {PROJECT}:{key})")


@dataclass(frozen=True)
class CommonSettings:
    """What both targets read (the Docker port and network keys fill in their defaults on
    Kubernetes, where setting one is an error of its own)."""

    prod: bool
    shape: Shape
    name_prefix: str
    images: Images
    memory: MemorySettings
    persistence: Persistence
    failover: FailoverSettings
    protection: Protection
    ports: PublishedPorts
    network: DockerNetwork
    bootstrap_timeout_s: int
    reshape_max_keys_per_second: int
    tls: TlsSettings
    acl: AclSettings


def read_common(reader: ConfigReader, stack: str, password_set: bool) -> CommonSettings:
    prod = _is_prod_stack(stack)
    shape = read_shape(reader)
    name_prefix = read_name_prefix(reader)
    return CommonSettings(
        prod=prod,
        shape=shape,
        name_prefix=name_prefix,
        memory=read_memory(reader),
        images=read_images(reader),
        persistence=read_persistence(reader),
        failover=read_failover(reader, shape),
        ports=read_ports(reader, shape),
        network=read_network(reader, name_prefix, shape),
        protection=read_protection(reader, stack, prod, password_set),
        bootstrap_timeout_s=reader.integer("bootstrapTimeoutSeconds", 120, 5, 3600,
                                           "give the cluster 30-600 s to form"),
        reshape_max_keys_per_second=reader.integer(
            "reshapeMaxKeysPerSecond", 0, 0, 10_000_000,
            "use 0 (unpaced) or a rate such as 20000 (bench/reshard_bench.py)"),
        tls=read_tls(reader, prod),
        acl=read_acl(reader, prod),
    )


@dataclass(frozen=True)
class TargetSettings:
    """The `target` key and the settings of that target only (the other is None)."""

    target: str = "docker"
    k8s: KubernetesSettings | None = None
    docker: DockerSettings | None = None


def check_target(reader: ConfigReader, common: CommonSettings) -> TargetSettings:
    """The `target` key, its foreign keys refused, and the settings only it reads."""
    target = reader.choice("target", "docker", TARGETS)
    if target not in TARGETS:
        return TargetSettings()
    _check_target_keys(reader, target)
    if target == "kubernetes":
        return TargetSettings(target=target, k8s=read_kubernetes_settings(
            reader, common.name_prefix, common.shape, common.memory.maxmemory_bytes))
    return TargetSettings(target=target, docker=read_docker_settings(
        reader, common.shape, common.ports))


def build_spec(raw: Mapping[str, Any], stack: str, password_set: bool) -> ClusterSpec:
    """Validate raw config values (key -> string, without the project prefix).

    Raises ConfigError listing every problem found.
    """
    reader = ConfigReader(raw)
    _check_known_keys(reader)
    common = read_common(reader, stack, password_set)
    target = check_target(reader, common)
    if reader.problems:
        raise ConfigError(reader.problems)
    return compose_spec(stack, common, target)


def compose_spec(stack: str, common: CommonSettings, target: TargetSettings) -> ClusterSpec:
    """The flat ClusterSpec every consumer reads, from the validated settings."""
    c, shape, memory, ports = common, common.shape, common.memory, common.ports
    docker = target.docker or DockerSettings.unused(ports.bind_address)
    hosts, tls, acl = docker.hosts, c.tls, c.acl
    return ClusterSpec(
        stack=stack, masters=shape.masters, replicas_per_master=shape.replicas_per_master,
        engine=c.images.engine, redis_image=c.images.redis_image,
        exporter_image=c.images.exporter_image,
        prometheus_image=c.images.prometheus_image, pull_images=c.images.pull_images,
        exporter_port=ports.exporter_port, prometheus_port=ports.prometheus_port,
        deploy_prometheus=ports.deploy_prometheus, base_port=ports.base_port,
        bind_address=hosts.bind_address,
        maxmemory_bytes=memory.maxmemory_bytes, maxmemory_policy=memory.maxmemory_policy,
        memory_limit_bytes=memory.memory_limit_bytes,
        appendonly=c.persistence.appendonly, appendfsync=c.persistence.appendfsync,
        rdb_save=c.persistence.rdb_save,
        node_timeout_ms=c.failover.node_timeout_ms,
        replica_validity_factor=c.failover.replica_validity_factor,
        min_replicas_to_write=c.failover.min_replicas_to_write,
        name_prefix=c.name_prefix, network_name=c.network.network_name,
        subnet=c.network.subnet, admin_access=c.network.admin_access,
        password_policy=c.protection.password_policy, protect_data=c.protection.protect_data,
        bootstrap_timeout_s=c.bootstrap_timeout_s,
        reshape_max_keys_per_second=c.reshape_max_keys_per_second,
        target=target.target, k8s=target.k8s,
        hosts=hosts.hosts, announce=hosts.announce, survives_host_loss=hosts.survives_host_loss,
        tls=tls.tls, tls_cert_days=tls.tls_cert_days, tls_generation=tls.tls_generation,
        tls_ca_cert=tls.tls_ca_cert,
        acl=acl.acl, acl_app_user=acl.acl_app_user, acl_app_rules=acl.acl_app_rules,
    )


def load_spec(
    get_raw: Callable[[], Mapping[str, Any]],
    stack: str,
) -> ClusterSpec:
    """Build the spec from the raw project config (key -> value without the 'project:' prefix)."""
    raw = dict(get_raw())
    return build_spec(raw, stack, password_set=raw.get("password") not in (None, ""))
