"""RedisKubernetesCluster: the same spec, plan and redis.conf as the Docker target, on Kubernetes.

Namespace -> Secret (password files) -> ConfigMap (every node's redis.conf, rendered by
components/redis_conf.py) -> headless Service (stable per-pod DNS names) -> one StatefulSet per
shard (components/k8s_plan.py says why) with a PVC per pod, plus a PodDisruptionBudget per shard
-> NetworkPolicies -> the exporter (Deployment + Service, optional ServiceMonitor) -> the
bootstrap Job (k8s_bootstrap/job.py), awaited by pulumi-kubernetes.

Every object has a fixed name (no Pulumi auto-naming), so manifests rendered to a directory are
stable and diffable; the bootstrap Job's name carries a hash of what it forms, so a new plan is a
new Job (Jobs are immutable) and an unchanged one is left alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from clusterops.core.engines import ENGINES
from components import exporter_conf
from components.credentials import cluster_credentials, tls_bag
from components.k8s_operations import KubernetesOperations
from components.k8s_plan import KubernetesPlan, PlacedNode, place_cluster
from components.layout import REDIS_PORT
from components.redis_conf import (
    AUTH_CONF_NAME,
    CONF_DIR,
    DATA_DIR,
    PASSWORD_FILE_NAME,
    PASSWORD_FILE_PATH,
    SECRETS_DIR,
    TLS_CA_NAME,
    TLS_CA_PATH,
    TLS_CERT_NAME,
    TLS_KEY_NAME,
    USERS_ACL_NAME,
    live_settings,
    readiness_command,
    render_redis_conf,
    tls_settings,
)
from components.spec import ClusterSpec
from components.target_neutral import (
    BOOTSTRAP_UID,
    BUS_PORT,
    EXPORTER_LISTEN_PORT,
    EXPORTER_UID,
    MIB,
    REDIS_UID,
    AddressedNode,
    ClusterOutputs,
    client_settings,
    monitored_nodes,
    node_outputs,
    planned_slot_ranges,
    seed_endpoints,
)
from components.tls_material import TlsMaterial

TYPE_TOKEN = "alphapulse:redis:RedisKubernetesCluster"
# redis.conf of every node lives in one ConfigMap, one key per pod, mounted here; the pod picks
# its own file by name (POD_NAME from the downward API).
NODE_CONF_DIR = f"{CONF_DIR}/nodes"
PEER_ADDRESSES_SCRIPT_NAME = "peer-addresses.sh"
PEER_ADDRESSES_SCRIPT = Path(__file__).resolve().parent / PEER_ADDRESSES_SCRIPT_NAME
SCRIPTS_DIR = "/opt/alphapulse"
PLAN_DIR = "/etc/alphapulse/plan"
PLAN_FILE_NAME = "plan.json"
BOOTSTRAP_PASSWORD_DIR = "/etc/alphapulse/secret"
EXPORTER_PASSWORD_KEY = "exporter-passwords.json"
# acl: true: the Secret's `password` stays the application user's (in-cluster clients mount
# it, location.auth_secret); the probes read the exporter user's and the sidecar, the Job and
# the tools pods the admin user's, each mounted under its own name.
PROBE_PASSWORD_KEY = "probe-password"
ADMIN_PASSWORD_KEY = "admin-password"
ADMIN_PASSWORD_PATH = f"{SECRETS_DIR}/{ADMIN_PASSWORD_KEY}"
# tls: true: one certificate for every node of the cluster (certificate_names says why).
TLS_CERT_KEY = "cluster"
# Pods that may use the cluster from other namespaces carry this label (NetworkPolicy).
CLIENT_LABEL = "redis.alphapulse.io/client"
HOSTNAME_KEY = "kubernetes.io/hostname"
# Set by the StatefulSet controller on every pod (Kubernetes 1.28+): 0 is the planned master.
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
CONFIG_DIGEST_ANNOTATION = "redis.alphapulse.io/config-sha256"
AUTH_VERSION_ANNOTATION = "redis.alphapulse.io/auth-secret-version"
SHARD_LABEL = "redis.alphapulse.io/shard"
# What every helper container of a node pod (init, sidecar) may use: it runs a small script.
HELPER_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}
CONF_MOUNT = {"name": "config", "mount_path": NODE_CONF_DIR, "read_only": True}
DATA_MOUNT = {"name": "data", "mount_path": DATA_DIR}
SCRIPTS_MOUNT = {"name": "config", "mount_path": SCRIPTS_DIR, "read_only": True}
SECRETS_MOUNT = {"name": "auth", "mount_path": SECRETS_DIR, "read_only": True}
PEER_ADDRESSES = ["sh", f"{SCRIPTS_DIR}/{PEER_ADDRESSES_SCRIPT_NAME}"]


@dataclass(frozen=True)
class RedisKubernetesClusterArgs:
    spec: ClusterSpec
    password: pulumi.Input[str]  # a Pulumi secret; with ACL users the application user's
    # acl: true: the admin, exporter and replication users' passwords (Pulumi secrets).
    acl_passwords: dict[str, pulumi.Input[str]] | None = None
    # tlsCaCert given: the private key of that CA (a Pulumi secret).
    tls_ca_key: pulumi.Input[str] | None = None


@dataclass(frozen=True, kw_only=True)
class KubernetesClusterOutputs(ClusterOutputs):
    """ClusterOutputs, plus what only the Kubernetes target has."""

    bootstrap_job: pulumi.Input[str]  # the Job that formed the cluster: its log has the report
    render_dir: str | None  # render mode: where the manifests went (nothing was applied)


def labels(spec: ClusterSpec, component: str, **extra: str) -> dict[str, str]:
    """Recommended labels; `component` and `cluster` are what every selector uses."""
    values = {
        "app.kubernetes.io/name": "redis-cluster",
        "app.kubernetes.io/instance": spec.name_prefix,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "pulumi",
        "app.kubernetes.io/part-of": "alphapulse",
    }
    values.update(extra)
    return values


def selector(spec: ClusterSpec, component: str, **extra: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/instance": spec.name_prefix,
        "app.kubernetes.io/component": component,
        **extra,
    }


def node_conf_key(placed: PlacedNode) -> str:
    return f"{placed.pod}.conf"


def addressed_nodes(kplan: KubernetesPlan) -> list[AddressedNode]:
    """How the Kubernetes target addresses a node: by its pod's stable DNS name (what it
    announces, cluster-announce-hostname), never by the pod IP, which changes with every pod."""
    return [
        AddressedNode(
            node=p.node, announced_host=p.hostname, announced_port=p.node.port,
            host_key="dns_name",
            target_fields={"pod": p.pod, "statefulset": p.statefulset, "shard": p.shard},
        )
        for p in kplan.nodes
    ]


def exporter_nodes(kplan: KubernetesPlan, tls: bool) -> list[dict[str, Any]]:
    """The exporter's view of the nodes, by DNS name (the exporter resolves it at every scrape,
    so a new pod IP is found); rediss:// with TLS."""
    return monitored_nodes(addressed_nodes(kplan), tls=tls)


def certificate_names(kplan: KubernetesPlan, cluster_domain: str) -> list[str]:
    """What the nodes' certificate names: every pod of the headless Service (a wildcard: the
    pods a later scale-out adds are covered without a new certificate), both Services by every
    name a pod may use for them, and localhost for the probes.

    One certificate for all nodes, not one per pod: a StatefulSet's pods share one template,
    so each pod would mount every member's key anyway; the nodes already share the admin
    password. Clients check the name (redis-py's ssl_check_hostname; Python and Go accept a
    wildcard in the first label), so a node is trusted under its own DNS name only."""
    namespace = kplan.namespace
    service_names = [
        name for service in (kplan.client_service, kplan.headless_service)
        for name in (service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                     f"{service}.{namespace}.svc.{cluster_domain}")
    ]
    return sorted({f"*.{kplan.headless_service}.{namespace}.svc.{cluster_domain}",
                   *service_names, "localhost", "127.0.0.1"})


def location(kplan: KubernetesPlan, cluster_domain: str, auth_secret: str,
             tools_image: str) -> dict[str, Any]:
    """How to reach the nodes: only from inside the cluster, by the Services' DNS names."""
    return {
        # Pod IPs and the Services' names resolve only inside the Kubernetes cluster, and a
        # cluster client follows MOVED redirects to every pod's own name: one port-forward
        # from outside is not enough.
        "reachable_from": "inside-cluster",
        "namespace": kplan.namespace,
        "headless_service": kplan.headless_service,
        "client_service": kplan.client_service,
        "client_endpoint":
            f"{kplan.client_service}.{kplan.namespace}.svc.{cluster_domain}:{REDIS_PORT}",
        # Pods of other namespaces reach the nodes only with this label (NetworkPolicy).
        "client_pod_label": f"{CLIENT_LABEL}=true",
        "auth_secret": auth_secret,  # the Secret whose key `password` an in-cluster client mounts
        # An image holding clusterops (the bootstrap Job's): `python -m clusterops` runs its
        # commands in a short-lived pod of it (clusterops/cli/in_pod.py).
        "tools_image": tools_image,
    }


def bootstrap_plan(kplan: KubernetesPlan) -> dict[str, Any]:
    """What the bootstrap Job forms (plain JSON, no secret): k8s_bootstrap.job.load_plan.

    Not the `nodes` output: the Job names each node by DNS and resolves it to the pod IP itself
    (CLUSTER MEET takes IPs only), and this JSON's digest names the Job, so it keeps its shape."""
    return {
        "nodes": [
            {
                "name": p.node.name,
                "role": p.node.role,
                "host": p.hostname,
                "port": p.node.port,
                "slots": [list(r) for r in p.node.slots],
                "master": p.node.master,
                "pod": p.pod,
            }
            for p in kplan.nodes
        ]
    }


def operations_node(placed: PlacedNode, username: str | None = None) -> dict[str, Any]:
    """A node as the operations resource names it: by its pod's DNS name (the pod resolves
    it to the current IP), with its planned role and slots; `username`: the admin user's name
    with ACL users."""
    node = placed.node
    return {
        **({"username": username} if username else {}),
        "name": node.name, "role": node.role,
        "admin_host": placed.hostname, "admin_port": node.port,
        "cluster_host": placed.hostname, "cluster_port": node.port,
        "slots": [list(r) for r in node.slots], "master": node.master,
    }


def _restricted_container() -> dict[str, Any]:
    """The Pod Security Standard "restricted" container settings."""
    return {
        "allow_privilege_escalation": False,
        "read_only_root_filesystem": True,
        "run_as_non_root": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security(uid: int) -> dict[str, Any]:
    return {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "fs_group": uid,
        # Only walk the volume to fix ownership when it is wrong: a large AOF would slow
        # every pod start otherwise.
        "fs_group_change_policy": "OnRootMismatch",
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def _redis_probes(tls: bool, user: str | None, cli: str) -> dict[str, Any]:
    return {
        # Ready = answers an authenticated PING and holds the data: a master (also before the
        # cluster is formed: the Job needs the pods ready first) or a replica in sync
        # (readiness_command). With ACL users as the read-only exporter user.
        "readiness_probe": {
            "exec": {"command": ["sh", "-c", readiness_command(tls, user, cli)]},
            "period_seconds": 2,
            "timeout_seconds": 2,
            "failure_threshold": 3,
        },
        # Alive = the port accepts connections (with TLS: answers anything, even NOAUTH; a
        # bare TCP check would make Redis log a failed handshake every time). Not an
        # authenticated PING: a node loading a large AOF answers LOADING and must not be
        # killed.
        "liveness_probe": {
            # No certificate check here (--insecure, no password sent): during a CA
            # rotation a node may serve a certificate its files' CA bundle no longer
            # matches for a moment, and that is no reason to restart it.
            **({"exec": {"command": ["sh", "-c", f"{cli} --tls --insecure "
                                     "ping 2>/dev/null | grep -q ."]}} if tls
               else {"tcp_socket": {"port": "redis"}}),
            "initial_delay_seconds": 10,
            "period_seconds": 5,
            "failure_threshold": 6,
        },
    }


class RedisKubernetesCluster(pulumi.ComponentResource):
    """3+ shards of StatefulSet pods, an exporter and a bootstrap Job, from one ClusterSpec."""

    outputs: KubernetesClusterOutputs

    def __init__(
        self, name: str, args: RedisKubernetesClusterArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        spec = args.spec
        if spec.k8s is None:
            raise ValueError("RedisKubernetesCluster needs a spec with target kubernetes")
        self.spec = spec
        self.settings = spec.k8s
        self.kplan = place_cluster(spec)
        password = pulumi.Output.secret(args.password)
        self._name = name
        self.credentials = cluster_credentials(spec, password, args.acl_passwords)
        self.tls = TlsMaterial(
            f"{name}-tls", cluster=spec.name_prefix,
            nodes={TLS_CERT_KEY: certificate_names(self.kplan, self.settings.cluster_domain)},
            generation=spec.tls_generation, cert_days=spec.tls_cert_days,
            supplied_ca_cert=spec.tls_ca_cert, supplied_ca_key=args.tls_ca_key,
            opts=pulumi.ResourceOptions(parent=self)) if spec.tls else None

        namespace = self._namespace()
        self._child = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        secret = self._secret(password)
        config = self._config_map()
        plan_config = self._plan_config_map()
        headless = self._headless_service()
        self._client_service()
        # Render mode: nothing reaches a cluster, so no pod can run the day-2 work.
        self._rendering = bool(self.settings.render_dir)
        statefulsets = [
            self._statefulset(shard, config, secret, headless) for shard in self.kplan.shards
        ]
        for shard in self.kplan.shards:
            self._pdb(shard)
        self._network_policies()
        job = self._bootstrap_job(plan_config, secret, statefulsets)
        operations = None if self._rendering else self._operations(
            statefulsets, [job, secret, headless])
        self._exporter(secret, operations)
        self.outputs = self._outputs(password, job, operations)
        self.register_outputs(self.outputs.as_dict())

    def _outputs(self, password: pulumi.Output[str], job: k8s.batch.v1.Job,
                 operations: KubernetesOperations | None) -> KubernetesClusterOutputs:
        nodes = addressed_nodes(self.kplan)
        return KubernetesClusterOutputs(
            target="kubernetes",
            location=location(self.kplan, self.settings.cluster_domain,
                              f"{self._prefix}-auth", self.settings.bootstrap_image),
            cluster_name=self.spec.name_prefix,
            password=password,
            seed_endpoints=seed_endpoints(nodes),
            nodes=node_outputs(nodes),
            exporter_internal_url=(
                f"http://{self._exporter_name}.{self.kplan.namespace}.svc."
                f"{self.settings.cluster_domain}:{EXPORTER_LISTEN_PORT}"),
            client_settings=client_settings(nodes),
            # Observed by the operations resource (its pod's report). In render mode only the
            # plan is known (the Job's log has the report once someone applies the manifests).
            node_ids=operations.node_ids if operations else {},
            slot_ranges=operations.slot_ranges if operations
            else planned_slot_ranges(self.kplan.plan.nodes),
            cluster_state=operations.cluster_state if operations
            else job.status.apply(self._cluster_state),
            maxmemory_bytes=self.spec.maxmemory_bytes,
            tls_ca_cert=self.tls.ca_bundle if self.tls else None,
            username=self.spec.acl_app_user if self.spec.acl else None,
            admin_username=self.credentials.admin_user,
            # Secret even when null, so the output's secrecy does not depend on the config.
            admin_password=pulumi.Output.secret(
                self.credentials.admin_password if self.spec.acl else None),
            bootstrap_job=job.metadata.name,
            render_dir=self.settings.render_dir,
        )

    # -- helpers ----------------------------------------------------------------------------
    def _meta(self, name: str, component: str, **extra: str) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.kplan.namespace,
            "labels": labels(self.spec, component, **extra),
        }

    def _cluster_state(self, status: Any) -> str:
        if self.settings.render_dir:
            return "not deployed: manifests rendered to " + self.settings.render_dir
        succeeded = (status or {}).get("succeeded") if isinstance(status, dict) else getattr(
            status, "succeeded", None)
        # pulumi-kubernetes only reports the Job created once it has succeeded, and the Job
        # exits 0 only after clusterops verified cluster_state:ok on every node.
        return "ok" if succeeded else "unknown"

    @property
    def _prefix(self) -> str:
        return f"{self.spec.name_prefix}-redis"

    @property
    def _exporter_name(self) -> str:
        return f"{self._prefix}-exporter"

    # -- objects ----------------------------------------------------------------------------
    def _namespace(self) -> k8s.core.v1.Namespace:
        spec = self.spec
        return k8s.core.v1.Namespace(
            f"{self._name}-namespace",
            metadata={
                "name": self.kplan.namespace,
                "labels": {
                    **labels(spec, "namespace"),
                    # Everything here runs as the restricted profile allows: enforce it (on
                    # pods), and warn on workload templates so a violation shows at apply time.
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=pulumi.ResourceOptions(parent=self, protect=spec.protect_data,
                                        retain_on_delete=spec.protect_data),
        )

    def _secret(self, password: pulumi.Output[str]) -> k8s.core.v1.Secret:
        """The only object holding passwords and keys: redis auth.conf, the password files, the
        exporter's JSON password file, and with ACL users users.acl (hashes), with TLS the CA
        and the nodes' certificate and key. Mounted as files; never an environment variable."""
        credentials = self.credentials
        nodes = exporter_nodes(self.kplan, self.spec.tls)
        data: dict[str, pulumi.Input[str]] = {
            AUTH_CONF_NAME: credentials.auth_conf,
            PASSWORD_FILE_NAME: password,
            EXPORTER_PASSWORD_KEY: credentials.exporter_password.apply(
                lambda pw: exporter_conf.exporter_password_file(nodes, pw)),
        }
        if credentials.users_acl is not None:
            data.update({USERS_ACL_NAME: credentials.users_acl,
                         PROBE_PASSWORD_KEY: credentials.exporter_password,
                         ADMIN_PASSWORD_KEY: credentials.admin_password})
        if self.tls is not None:
            data.update({TLS_CA_NAME: self.tls.ca_bundle,
                         TLS_CERT_NAME: self.tls.certs.apply(lambda c: c[TLS_CERT_KEY]),
                         TLS_KEY_NAME: self.tls.keys.apply(lambda k: k[TLS_CERT_KEY])})
        return k8s.core.v1.Secret(
            f"{self._name}-auth",
            metadata=self._meta(f"{self._prefix}-auth", "auth"),
            type="Opaque",
            string_data=data,
            opts=self._child,
        )

    @property
    def _admin_password_key(self) -> str:
        """The Secret key of the password that may run CLUSTER and CONFIG commands."""
        return ADMIN_PASSWORD_KEY if self.spec.acl else PASSWORD_FILE_NAME

    def _sidecar_env(self) -> dict[str, Any]:
        cli = ENGINES[self.spec.engine].cli_binary
        env = {"REDIS_CLI": cli if cli != "redis-cli" else "",
               "REDIS_CLI_ARGS": " ".join(self._cli_args(self.credentials.admin_user)),
               "TLS_FILES": " ".join(f"{k} {v}" for k, v in tls_settings().items())
               if self.spec.tls else ""}
        values = [{"name": k, "value": v} for k, v in env.items() if v]
        return {"env": values} if values else {}

    def _cli_args(self, user: str | None) -> list[str]:
        """redis-cli's flags for this cluster (no secret): TLS with the CA, the ACL user."""
        return [*(["--user", user] if user else []),
                *(["--tls", "--cacert", TLS_CA_PATH] if self.spec.tls else [])]

    def _config_map(self) -> k8s.core.v1.ConfigMap:
        data = {
            node_conf_key(p): render_redis_conf(self.spec, p.node, announce_hostname=p.hostname)
            for p in self.kplan.nodes
        }
        data[PEER_ADDRESSES_SCRIPT_NAME] = PEER_ADDRESSES_SCRIPT.read_text()
        return k8s.core.v1.ConfigMap(
            f"{self._name}-config",
            metadata=self._meta(f"{self._prefix}-config", "config"),
            data=data,
            opts=self._child,
        )

    def _plan_config_map(self) -> k8s.core.v1.ConfigMap:
        return k8s.core.v1.ConfigMap(
            f"{self._name}-bootstrap-plan",
            metadata=self._meta(f"{self._prefix}-bootstrap-plan", "bootstrap"),
            data={PLAN_FILE_NAME: json.dumps(bootstrap_plan(self.kplan), indent=2,
                                             sort_keys=True) + "\n"},
            opts=self._child,
        )

    def _headless_service(self) -> k8s.core.v1.Service:
        return k8s.core.v1.Service(
            f"{self._name}-nodes",
            metadata=self._meta(self.kplan.headless_service, "node"),
            spec={
                "cluster_ip": "None",
                # DNS records exist as soon as a pod has an IP, before it is ready: the nodes
                # must find each other (and the bootstrap Job them) to become ready at all.
                "publish_not_ready_addresses": True,
                "selector": selector(self.spec, "node"),
                "ports": [
                    {"name": "redis", "port": REDIS_PORT, "target_port": "redis"},
                    {"name": "cluster-bus", "port": BUS_PORT, "target_port": "cluster-bus"},
                ],
            },
            opts=self._child,
        )

    def _client_service(self) -> k8s.core.v1.Service:
        """One stable seed name for clients; they follow MOVED redirects to the pods' names."""
        return k8s.core.v1.Service(
            f"{self._name}-client",
            metadata=self._meta(self.kplan.client_service, "client"),
            spec={
                "type": "ClusterIP",
                "selector": selector(self.spec, "node"),
                "ports": [{"name": "redis", "port": REDIS_PORT, "target_port": "redis"}],
            },
            opts=self._child,
        )

    def _affinity(self, shard: int) -> dict[str, Any]:
        return {
            "pod_anti_affinity": {
                # Hard: a master and the replicas that follow it never share a node, so losing
                # a node never loses a whole shard.
                "required_during_scheduling_ignored_during_execution": [
                    {
                        "label_selector": {
                            "match_labels": selector(self.spec, "node", **{
                                SHARD_LABEL: str(shard)})
                        },
                        "topology_key": HOSTNAME_KEY,
                    }
                ],
                # Soft: the cluster's pods spread over as many nodes as there are.
                "preferred_during_scheduling_ignored_during_execution": [
                    {
                        "weight": 100,
                        "pod_affinity_term": {
                            "label_selector": {"match_labels": selector(self.spec, "node")},
                            "topology_key": HOSTNAME_KEY,
                        },
                    }
                ],
            }
        }

    def _spread(self, shard: int) -> list[dict[str, Any]]:
        """Zone-aware when zones are declared (spec.py checked there are enough)."""
        if not self.settings.zones:
            return []
        zone_key = self.settings.zone_topology_key
        return [
            {
                # A shard's members in different zones: a zone outage leaves every shard a
                # member to serve (or be promoted).
                "max_skew": 1,
                "topology_key": zone_key,
                "when_unsatisfiable": "DoNotSchedule",
                "label_selector": {"match_labels": selector(self.spec, "node", **{
                    SHARD_LABEL: str(shard)})},
            },
            {
                # The planned masters across zones too, so one zone does not hold the
                # majority of masters that a failover election needs.
                "max_skew": 1,
                "topology_key": zone_key,
                "when_unsatisfiable": "ScheduleAnyway",
                "label_selector": {"match_labels": selector(self.spec, "node",
                                                            **{POD_INDEX_LABEL: "0"})},
            },
        ]

    def _statefulset(
        self,
        shard: int,
        config: k8s.core.v1.ConfigMap,
        secret: k8s.core.v1.Secret,
        headless: k8s.core.v1.Service,
    ) -> k8s.apps.v1.StatefulSet:
        spec = self.spec
        members = self.kplan.shard(shard)
        shard_labels = {SHARD_LABEL: str(shard)}
        retention = "Retain" if spec.protect_data else "Delete"
        return k8s.apps.v1.StatefulSet(
            f"{self._name}-shard-{shard}",
            metadata=self._meta(members[0].statefulset, "node", **shard_labels),
            spec={
                "service_name": self.kplan.headless_service,
                "replicas": len(members),
                # All members start together: the cluster is formed by the Job afterwards,
                # nothing needs the ordered start (it would only slow a full restart).
                "pod_management_policy": "Parallel",
                # Applied to a cluster, the operations resource replaces the pods of a new
                # template itself, shard by shard, each after a handover
                # (components/k8s_rolling.py); rendered files roll the Kubernetes way.
                "update_strategy": {"type": "RollingUpdate" if self._rendering else "OnDelete"},
                "persistent_volume_claim_retention_policy": {
                    "when_deleted": retention, "when_scaled": "Retain"},
                "selector": {"match_labels": selector(spec, "node", **shard_labels)},
                "template": self._node_pod_template(shard, config, secret),
                "volume_claim_templates": [self._data_claim(shard_labels)],
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[config, secret, headless],
                protect=spec.protect_data,
                # After creation the replica count is the operations resource's to change,
                # around the reshape (components/k8s_operations.py says why).
                ignore_changes=[] if self._rendering else ["spec.replicas"],
            ),
        )

    def _node_pod_template(self, shard: int, config: k8s.core.v1.ConfigMap,
                           secret: k8s.core.v1.Secret) -> dict[str, Any]:
        return {
            "metadata": {
                "labels": labels(self.spec, "node", **{SHARD_LABEL: str(shard)}),
                # Redis reads redis.conf only at start and a ConfigMap change restarts
                # nothing: the digest of this shard's files makes a change roll the
                # shard's pods (one at a time, RollingUpdate), as Docker replaces them.
                "annotations": {CONFIG_DIGEST_ANNOTATION: self._config_digest(shard)},
            },
            "spec": {
                "affinity": self._affinity(shard),
                "topology_spread_constraints": self._spread(shard),
                "security_context": _pod_security(REDIS_UID),
                "automount_service_account_token": False,
                # One process namespace for the pod's containers: the failover drill stops or
                # kills redis-server through the sidecar (clusterops/cli/pod_control.py), and
                # redis-server is no PID 1 the kernel would shield from those signals.
                "share_process_namespace": True,
                # SIGTERM lets Redis fsync the AOF and write its RDB before exiting.
                "termination_grace_period_seconds": 30,
                "init_containers": [self._refresh_nodes_conf_container()],
                "containers": [self._redis_container(), self._follow_peers_container()],
                "volumes": self._node_volumes(config, secret),
            },
        }

    def _redis_container(self) -> dict[str, Any]:
        memory = f"{self.spec.memory_limit_bytes // MIB}Mi"
        return {
            "name": "redis",
            "image": self.spec.redis_image,
            "image_pull_policy": self._pull_policy,
            # $(POD_NAME) is expanded by the kubelet: each pod loads its
            # own redis.conf (its announced hostname is in it).
            "command": [ENGINES[self.spec.engine].server_binary,
                        f"{NODE_CONF_DIR}/$(POD_NAME).conf"],
            "env": [
                {"name": "POD_NAME", "value_from": {
                    "field_ref": {"field_path": "metadata.name"}}},
            ],
            "ports": [
                {"name": "redis", "container_port": REDIS_PORT},
                {"name": "cluster-bus", "container_port": BUS_PORT},
            ],
            "volume_mounts": [DATA_MOUNT, CONF_MOUNT, SECRETS_MOUNT],
            "resources": {
                # Memory request = limit: a Redis node is never the pod
                # the kernel picks first under node memory pressure. No
                # CPU limit: CFS throttling stalls the event loop and
                # misses cluster heartbeats (false failovers).
                "requests": {"cpu": self.settings.cpu_request, "memory": memory},
                "limits": {"memory": memory},
            },
            **_redis_probes(self.spec.tls, self.credentials.exporter_user,
                            ENGINES[self.spec.engine].cli_binary),
            "security_context": _restricted_container(),
        }

    def _refresh_nodes_conf_container(self) -> dict[str, Any]:
        return {
            # Peers' entries in nodes.conf at their current pod IPs
            # before Redis reads it (components/peer-addresses.sh).
            "name": "refresh-nodes-conf",
            "image": self.spec.redis_image,
            "image_pull_policy": self._pull_policy,
            "command": [*PEER_ADDRESSES, "nodes-conf", f"{DATA_DIR}/nodes.conf"],
            "volume_mounts": [DATA_MOUNT, SCRIPTS_MOUNT],
            "security_context": _restricted_container(),
            "resources": HELPER_RESOURCES,
        }

    def _follow_peers_container(self) -> dict[str, Any]:
        return {
            # Peers that moved while this node could not see it (a full
            # restart: the pods that start first resolve nobody) are met
            # at their new IPs as soon as their names resolve.
            "name": "follow-peer-addresses",
            "image": self.spec.redis_image,
            "image_pull_policy": self._pull_policy,
            "command": [*PEER_ADDRESSES, "follow",
                        ADMIN_PASSWORD_PATH if self.spec.acl else PASSWORD_FILE_PATH],
            # No secret here: redis-cli's TLS and user flags, and with TLS the files whose
            # change (a renewed certificate reaching the pod) the sidecar makes Redis reload.
            **self._sidecar_env(),
            "volume_mounts": [SCRIPTS_MOUNT, SECRETS_MOUNT],
            "security_context": _restricted_container(),
            "resources": HELPER_RESOURCES,
        }

    def _node_volumes(self, config: k8s.core.v1.ConfigMap,
                      secret: k8s.core.v1.Secret) -> list[dict[str, Any]]:
        # Key -> file in the pod: with ACL users the probes' file holds the exporter user's
        # password, and the sidecar gets the admin user's.
        files = {AUTH_CONF_NAME: AUTH_CONF_NAME}
        if self.spec.acl:
            files.update({PROBE_PASSWORD_KEY: PASSWORD_FILE_NAME,
                          ADMIN_PASSWORD_KEY: ADMIN_PASSWORD_KEY,
                          USERS_ACL_NAME: USERS_ACL_NAME})
        else:
            files[PASSWORD_FILE_NAME] = PASSWORD_FILE_NAME
        if self.spec.tls:
            files.update({name: name for name in (TLS_CA_NAME, TLS_CERT_NAME, TLS_KEY_NAME)})
        return [
            {"name": "config", "config_map": {"name": config.metadata.name,
                                              "default_mode": 0o444}},
            {"name": "auth", "secret": {
                "secret_name": secret.metadata.name,
                # Group-readable: files belong to root and the fsGroup (999).
                "default_mode": 0o440,
                "items": [{"key": key, "path": path} for key, path in files.items()],
            }},
        ]

    def _data_claim(self, shard_labels: dict[str, str]) -> dict[str, Any]:
        """The PersistentVolumeClaim template of a node's /data (AOF, RDB, nodes.conf)."""
        claim: dict[str, Any] = {
            "access_modes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": self.settings.storage_size}},
        }
        if self.settings.storage_class is not None:
            claim["storage_class_name"] = self.settings.storage_class
        return {
            "metadata": {"name": "data", "labels": labels(self.spec, "node", **shard_labels)},
            "spec": claim,
        }
    def _config_digest(self, shard: int) -> str:
        """What makes the shard's pods restart: their files, but with each member's own name
        and hostname left out (members' files differ only there, so scaling replaces no pod
        that stays) and, applied to a cluster, without the live settings (the operations
        resource sets those with CONFIG SET, as on Docker). Rendered files keep them: nothing
        applies them live there."""
        live = set(live_settings(self.spec)) if not self._rendering else set()
        files = sorted({
            "\n".join(line for line in render_redis_conf(
                self.spec, p.node, announce_hostname=p.hostname).splitlines()
                if line.split(" ", 1)[0] not in live)
            .replace(p.hostname, "<hostname>").replace(p.node.name, "<node>")
            for p in self.kplan.shard(shard)
        })
        text = "".join(files) + PEER_ADDRESSES_SCRIPT.read_text()
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def _pull_policy(self) -> str:
        # pullImages=false: images already on the nodes (air-gapped clusters), never pulled.
        return "IfNotPresent" if self.spec.pull_images else "Never"

    def _pdb(self, shard: int) -> k8s.policy.v1.PodDisruptionBudget:
        members = self.kplan.shard(shard)
        shard_labels = {SHARD_LABEL: str(shard)}
        return k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-shard-{shard}-pdb",
            metadata=self._meta(members[0].statefulset, "node", **shard_labels),
            spec={
                # One member of a shard at a time: a drain never takes a master together with
                # the replica that would replace it.
                "max_unavailable": 1,
                "selector": {"match_labels": selector(self.spec, "node", **shard_labels)},
            },
            opts=self._child,
        )

    def _network_policies(self) -> None:
        nodes = {"match_labels": selector(self.spec, "node")}
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-nodes-policy",
            metadata=self._meta(f"{self._prefix}-nodes", "node"),
            spec={
                "pod_selector": nodes,
                "policy_types": ["Ingress"],
                "ingress": [
                    # The cluster bus (and replication) only between the nodes themselves.
                    {"from": [{"pod_selector": nodes}],
                     "ports": [{"protocol": "TCP", "port": REDIS_PORT},
                               {"protocol": "TCP", "port": BUS_PORT}]},
                    # Clients: this namespace (exporter, bootstrap Job, apps deployed here) and
                    # pods of any namespace that carry the client label.
                    {"from": [{"pod_selector": {}},
                              {"namespace_selector": {},
                               "pod_selector": {"match_labels": {CLIENT_LABEL: "true"}}}],
                     "ports": [{"protocol": "TCP", "port": REDIS_PORT}]},
                ],
            },
            opts=self._child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-exporter-policy",
            metadata=self._meta(self._exporter_name, "exporter"),
            spec={
                "pod_selector": {"match_labels": selector(self.spec, "exporter")},
                "policy_types": ["Ingress"],
                # Metrics for any scraper in the cluster; only the metrics port.
                "ingress": [{"from": [{"namespace_selector": {}}],
                             "ports": [{"protocol": "TCP", "port": EXPORTER_LISTEN_PORT}]}],
            },
            opts=self._child,
        )

    def _exporter(self, secret: k8s.core.v1.Secret,
                  operations: KubernetesOperations | None) -> None:
        spec = self.spec
        # redis_exporter reads its password file once, at start: a changed Secret (a rotated
        # password) rolls its pod, after the operations resource switched the nodes.
        rolled_by: dict[str, Any] = {"annotations": {
            AUTH_VERSION_ANNOTATION: secret.metadata.resource_version}} if operations else {}
        file_dir, _, file_name = exporter_conf.EXPORTER_PASSWORD_FILE.rpartition("/")
        match = selector(spec, "exporter")
        deployment = k8s.apps.v1.Deployment(
            f"{self._name}-exporter",
            metadata=self._meta(self._exporter_name, "exporter"),
            spec={
                "replicas": 1,
                "selector": {"match_labels": match},
                "template": {
                    "metadata": {"labels": labels(spec, "exporter"), **rolled_by},
                    "spec": {
                        "security_context": _pod_security(EXPORTER_UID),
                        "automount_service_account_token": False,
                        "containers": [
                            {
                                "name": "redis-exporter",
                                "image": spec.exporter_image,
                                "image_pull_policy": self._pull_policy,
                                "args": exporter_conf.exporter_args(
                                    listen_port=EXPORTER_LISTEN_PORT,
                                    tls_ca_file=f"{file_dir}/{exporter_conf.EXPORTER_CA_FILE}"
                                    if spec.tls else None,
                                    user=self.credentials.exporter_user),
                                "ports": [{"name": "metrics",
                                           "container_port": EXPORTER_LISTEN_PORT}],
                                "volume_mounts": [{"name": "auth", "mount_path": file_dir,
                                                   "read_only": True}],
                                "resources": {
                                    "requests": {"cpu": "20m", "memory": "64Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "readiness_probe": {"tcp_socket": {"port": "metrics"},
                                                    "period_seconds": 5},
                                "liveness_probe": {"tcp_socket": {"port": "metrics"},
                                                   "initial_delay_seconds": 10,
                                                   "period_seconds": 10},
                                "security_context": _restricted_container(),
                            }
                        ],
                        "volumes": [{"name": "auth", "secret": {
                            "secret_name": secret.metadata.name,
                            "default_mode": 0o440,
                            "items": [{"key": EXPORTER_PASSWORD_KEY, "path": file_name},
                                      *([{"key": TLS_CA_NAME,
                                          "path": exporter_conf.EXPORTER_CA_FILE}]
                                        if spec.tls else [])],
                        }}],
                    },
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[secret, *([operations] if operations else [])]),
        )
        k8s.core.v1.Service(
            f"{self._name}-exporter-service",
            metadata=self._meta(self._exporter_name, "exporter"),
            spec={
                "type": "ClusterIP",
                "selector": match,
                "ports": [{"name": "metrics", "port": EXPORTER_LISTEN_PORT,
                           "target_port": "metrics"}],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )
        if self.settings.service_monitor:
            self._service_monitor()

    def _service_monitor(self) -> None:
        """prometheus-operator's ServiceMonitor: one endpoint per node (the exporter's
        multi-target /scrape, like the Docker target's Prometheus config) and the exporter's
        own /metrics. Needs the operator's CRD in the cluster."""
        endpoints: list[dict[str, Any]] = []
        for node in exporter_nodes(self.kplan, self.spec.tls):
            endpoints.append({
                "port": "metrics",
                "path": "/scrape",
                "params": {"target": [exporter_conf.node_target_uri(node)]},
                "relabelings": [
                    {"targetLabel": "node", "replacement": str(node["name"])},
                    {"targetLabel": "planned_role", "replacement": str(node["role"])},
                    {"targetLabel": "cluster", "replacement": self.spec.name_prefix},
                    {"targetLabel": "instance", "replacement": f"{node['ip']}:{node['port']}"},
                ],
            })
        endpoints.append({"port": "metrics", "path": "/metrics"})
        k8s.apiextensions.CustomResource(
            f"{self._name}-service-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=self._meta(self._exporter_name, "exporter"),
            spec={
                "selector": {"matchLabels": selector(self.spec, "exporter")},
                "namespaceSelector": {"matchNames": [self.kplan.namespace]},
                "endpoints": endpoints,
            },
            opts=self._child,
        )

    def _operations(self, statefulsets: list[k8s.apps.v1.StatefulSet],
                    after: list[pulumi.Resource]) -> KubernetesOperations:
        """Adopts and verifies the formed cluster, records its node ids, and does every
        later change to it (rotation, reshape) from a pod (components/k8s_operations.py)."""
        return KubernetesOperations(
            f"{self._name}-operations",
            nodes=[operations_node(p, self.credentials.admin_user) for p in self.kplan.nodes],
            password=self.credentials.admin_password,
            tls=tls_bag(self.tls) if self.tls else None,
            acl=self.credentials.bootstrap_acl,
            engine=self.spec.engine,
            runner={
                "namespace": self.kplan.namespace,
                "tools_image": self.settings.bootstrap_image,
                "auth_secret": f"{self._prefix}-auth",
                "client_label": f"{CLIENT_LABEL}=true",
                # kubectl's context: pulumi-kubernetes' own setting when given.
                "context": pulumi.Config("kubernetes").get("context") or "",
            },
            statefulsets={sts: len(self.kplan.shard(shard)) for shard, sts in
                          zip(self.kplan.shards, self.kplan.statefulsets, strict=True)},
            revisions=pulumi.Output.all(*[s.metadata.generation for s in statefulsets]).apply(
                lambda generations: dict(zip(self.kplan.statefulsets, generations,
                                             strict=True))),
            timeout_seconds=self.spec.bootstrap_timeout_s,
            reshape_max_keys_per_second=self.spec.reshape_max_keys_per_second,
            settings=live_settings(self.spec),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*after, *statefulsets]),
        )

    def _bootstrap_job(
        self,
        plan_config: k8s.core.v1.ConfigMap,
        secret: k8s.core.v1.Secret,
        statefulsets: list[k8s.apps.v1.StatefulSet],
    ) -> k8s.batch.v1.Job:
        spec = self.spec
        plan_text = json.dumps(bootstrap_plan(self.kplan), sort_keys=True)
        # A Job is immutable and runs once: its name carries what it forms, so a new plan
        # (or image) makes a new Job that adopts or refuses, and an unchanged one stays done.
        digest = hashlib.sha256(
            f"{plan_text}|{self.settings.bootstrap_image}".encode()).hexdigest()[:10]
        timeout = spec.bootstrap_timeout_s
        return k8s.batch.v1.Job(
            f"{self._name}-bootstrap",
            metadata=self._meta(f"{self._prefix}-bootstrap-{digest}", "bootstrap"),
            spec={
                # Retries cover pods that were not reachable yet; a refusal (foreign data)
                # fails the same way each time, so a few attempts are enough.
                "backoff_limit": 3,
                "active_deadline_seconds": 4 * (timeout + 30),
                "template": {
                    "metadata": {"labels": labels(spec, "bootstrap")},
                    "spec": {
                        "restart_policy": "Never",
                        "security_context": _pod_security(BOOTSTRAP_UID),
                        "automount_service_account_token": False,
                        "containers": [
                            {
                                "name": "bootstrap",
                                "image": self.settings.bootstrap_image,
                                "image_pull_policy": self._pull_policy,
                                "command": [
                                    "python", "-m", "k8s_bootstrap",
                                    "--plan", f"{PLAN_DIR}/{PLAN_FILE_NAME}",
                                    "--password-file",
                                    f"{BOOTSTRAP_PASSWORD_DIR}/{self._admin_password_key}",
                                    "--timeout", str(timeout),
                                    *(["--user", self.credentials.admin_user]
                                      if self.credentials.admin_user else []),
                                    *(["--tls-ca-file", f"{BOOTSTRAP_PASSWORD_DIR}/{TLS_CA_NAME}"]
                                      if spec.tls else []),
                                    # Only for another engine: a Redis stack's Job stays as
                                    # it was (a changed Job would be replaced).
                                    *(["--engine", spec.engine]
                                      if spec.engine != "redis" else []),
                                ],
                                "volume_mounts": [
                                    {"name": "plan", "mount_path": PLAN_DIR, "read_only": True},
                                    {"name": "auth", "mount_path": BOOTSTRAP_PASSWORD_DIR,
                                     "read_only": True},
                                ],
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"memory": "256Mi"},
                                },
                                "security_context": _restricted_container(),
                            }
                        ],
                        "volumes": [
                            {"name": "plan", "config_map": {"name": plan_config.metadata.name}},
                            {"name": "auth", "secret": {
                                "secret_name": secret.metadata.name,
                                "default_mode": 0o440,
                                "items": [{"key": key, "path": key} for key in (
                                    self._admin_password_key,
                                    *([TLS_CA_NAME] if spec.tls else []))],
                            }},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                # The StatefulSets are awaited until every pod is ready (answers PING).
                depends_on=[plan_config, secret, *statefulsets],
                # Applied to a cluster, the Job forms it once; every later change (a reshape,
                # a rotation) is the operations resource's, and a new Job for a new plan
                # would refuse the cluster the reshape has not changed yet.
                ignore_changes=[] if self._rendering else ["metadata", "spec"],
            ),
        )
