"""The Kubernetes target's settings (target: kubernetes), validated into KubernetesSettings.

Each reader function returns typed values; problems go to the ConfigReader like every other
key's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterops.core.units import format_memory
from components.config_reader import PROJECT, ConfigReader
from components.layout import Shape

# A storageClass value that leaves storageClassName unset, so the cluster's default class applies.
CLUSTER_DEFAULT_STORAGE_CLASS = "cluster-default"
DEFAULT_BOOTSTRAP_IMAGE = "alphapulse/redis-cluster-bootstrap:0.1.0"
DEFAULT_ZONE_TOPOLOGY_KEY = "topology.kubernetes.io/zone"

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


@dataclass(frozen=True)
class _Spread:
    """How many nodes and zones the pods may spread over (0: not declared)."""

    kubernetes_nodes: int
    zones: int
    zone_topology_key: str


def read_kubernetes_settings(reader: ConfigReader, name_prefix: str, shape: Shape,
                             maxmemory_bytes: int) -> KubernetesSettings:
    """Validate the Kubernetes keys."""
    namespace = _read_namespace(reader, name_prefix)
    storage_class = _read_storage_class(reader)
    storage_size = _read_storage_size(reader, maxmemory_bytes)
    render_dir = reader.text("renderDir", "") or None
    cluster_domain = reader.text("clusterDomain", "cluster.local")
    if not _DNS_SUBDOMAIN.match(cluster_domain):
        reader.fail("clusterDomain", f"{cluster_domain!r} is not a DNS domain. Fix: use the "
                    "cluster's DNS domain, cluster.local unless the cluster was set up otherwise")
    spread = _read_spread(reader, 1 + shape.replicas_per_master)
    cpu_request = reader.text("cpuRequest", "250m")
    if not _CPU_QUANTITY.match(cpu_request):
        reader.fail("cpuRequest", f"{cpu_request!r} is not a CPU quantity. Fix: e.g. 250m or 1")
    bootstrap_image = reader.text("bootstrapImage", DEFAULT_BOOTSTRAP_IMAGE)
    if not bootstrap_image or " " in bootstrap_image:
        reader.fail("bootstrapImage", "is empty or contains spaces. Fix: name the image built "
                    "from k8s_bootstrap/Dockerfile, e.g. "
                    "registry.example.com/redis-bootstrap:0.1.0")
    return KubernetesSettings(
        namespace=namespace,
        storage_class=None if storage_class == CLUSTER_DEFAULT_STORAGE_CLASS else storage_class,
        storage_size=storage_size,
        render_dir=render_dir,
        cluster_domain=cluster_domain,
        kubernetes_nodes=spread.kubernetes_nodes,
        zones=spread.zones,
        zone_topology_key=spread.zone_topology_key,
        cpu_request=cpu_request,
        service_monitor=reader.boolean("serviceMonitor", False),
        bootstrap_image=bootstrap_image,
    )


def _read_namespace(reader: ConfigReader, prefix: str) -> str:
    """`namespace` (default from namePrefix), and a namePrefix Kubernetes names can start with."""
    namespace = reader.text("namespace", f"{prefix}-redis".lower())
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        reader.fail("namespace", f"{namespace!r} is not a Kubernetes namespace name. Fix: use "
                    "at most 63 lower-case letters, digits and '-', e.g. alphapulse-redis")
    if not _DNS_LABEL.match(prefix.lower()) or prefix != prefix.lower() or "_" in prefix:
        reader.fail("namePrefix", f"{prefix!r} cannot start Kubernetes object names. Fix: use "
                    "lower-case letters, digits and '-' only, e.g. alphapulse")
    return namespace


def _read_storage_class(reader: ConfigReader) -> str:
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
    return storage_class


def _read_storage_size(reader: ConfigReader, maxmemory_bytes: int) -> str:
    storage_size = reader.text("storageSize", "4Gi")
    size = _BYTE_QUANTITY.match(storage_size)
    # AOF (up to twice the data before a rewrite) + RDB + the rewrite's temporary file.
    needed = 3 * maxmemory_bytes
    if not size:
        reader.fail("storageSize", f"{storage_size!r} is not a Kubernetes byte quantity. Fix: "
                    "use a whole number with Ki, Mi, Gi or Ti, e.g. 4Gi")
    elif int(size.group(1)) * _QUANTITY_FACTORS[size.group(2)] < needed:
        reader.fail("storageSize", f"{storage_size} is less than 3 x maxmemory "
                    f"({format_memory(needed)}): the AOF, its rewrite and the RDB would not "
                    f"fit. Fix: set storageSize to at least {-(-needed // 1024**3)}Gi")
    return storage_size


def _read_spread(reader: ConfigReader, members: int) -> _Spread:
    """`kubernetesNodes`, `zones`, `zoneTopologyKey`: a shard's `members` pods (a master and its
    replicas) must not share a node, and should not share a zone."""
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
    return _Spread(kubernetes_nodes=nodes, zones=zones, zone_topology_key=topology_key)
