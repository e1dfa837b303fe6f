"""RedisCluster: one ComponentResource that declares the whole cluster on its Docker host(s).

Network (fixed subnet) -> one volume per node -> one container per node (static IP, its own
redis.conf, healthcheck) -> the exporter -> the bootstrap resource that forms the cluster
and proves cluster_state:ok. Data lives only in the volumes, so a replaced container keeps
its data and its identity (nodes.conf).

With several hosts (the `hosts` setting), each host gets its own pulumi-docker provider and
its own copy of the network, and everything a node needs (volume, secret files, container)
goes through the provider of the host the plan puts it on; every host runs an exporter that
reaches every node at its host's address (monitoring outlives a host), and Prometheus, when
deployed, runs on the first host. A stack without `hosts` uses the
default provider (docker:host), exactly as before, so its resources keep their identities.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker

from clusterops.core.engines import ENGINES
from clusterops.provision.acl_users import FIXED_NAMES
from components import exporter_conf
from components.bootstrap import PROVIDER_VERSION, ClusterBootstrap
from components.credentials import cluster_credentials, tls_bag
from components.docker_host import DEFAULT_DOCKER_HOST
from components.hosts import DEFAULT_HOST_NAME
from components.node_handover import NodeHandover, rolling_order
from components.redis_conf import (
    AUTH_CONF_NAME,
    DATA_DIR,
    PASSWORD_FILE_NAME,
    REDIS_CONF_NAME,
    REDIS_CONF_PATH,
    SECRETS_DIR,
    TLS_CA_NAME,
    TLS_CERT_NAME,
    TLS_KEY_NAME,
    USERS_ACL_NAME,
    healthcheck_command,
    live_settings,
    render_redis_conf,
    restart_digest,
)
from components.secret_files import SecretFiles
from components.spec import ClusterSpec
from components.target_neutral import (
    EXPORTER_LISTEN_PORT,
    EXPORTER_UID,
    MIB,
    REDIS_UID,
    AddressedNode,
    ClusterOutputs,
    client_settings,
    monitored_nodes,
    seed_endpoints,
)
from components.target_neutral import node_outputs as addressed_outputs
from components.tls_material import TlsMaterial
from components.topology import ClusterPlan, PlannedNode, plan_cluster

TYPE_TOKEN = "alphapulse:redis:RedisCluster"
PROMETHEUS_LISTEN_PORT = 9090
PROMETHEUS_CONFIG_PATH = "/etc/prometheus/prometheus.yml"
PROMETHEUS_RULES_PATH = "/etc/prometheus/redis-cluster-alerts.yml"
ALERT_RULES_FILE = Path(__file__).resolve().parent.parent / "monitoring" / "alerts.yml"


def certificate_names(spec: ClusterSpec, node: PlannedNode) -> list[str]:
    """Every address a client may use for a node: its name, container IP, announced address,
    the published port's address (loopback, or bindAddress), and localhost."""
    names = {node.name, node.ip, node.announce_ip, "127.0.0.1", "localhost"}
    if spec.bind_address not in ("0.0.0.0", "127.0.0.1"):
        names.add(spec.bind_address)
    return sorted(names)


@dataclass(frozen=True)
class _Secrets:
    volume: pulumi.Output[str]  # the volume's name, to mount
    files: SecretFiles


@dataclass(frozen=True)
class RedisClusterArgs:
    spec: ClusterSpec
    password: pulumi.Input[str]  # a Pulumi secret
    # The engine of the pulumi-docker provider: the secret files must be written on the same one.
    docker_host: str = DEFAULT_DOCKER_HOST
    # Whether that engine can limit swap (components.docker_host.supports_swap_limit).
    swap_limit_supported: bool = True
    # acl: true: the admin, exporter and replication users' passwords (Pulumi secrets);
    # `password` is then the application user's.
    acl_passwords: Mapping[str, pulumi.Input[str]] | None = None
    # tlsCaCert given: the private key of its CA (a Pulumi secret) that signs the node
    # certificates instead of a CA the stack makes.
    tls_ca_key: pulumi.Input[str] | None = None


def _labels(spec: ClusterSpec, **extra: str) -> list[docker.ContainerLabelArgs]:
    values = {"com.alphapulse.cluster": spec.name_prefix, "com.alphapulse.stack": spec.stack}
    values.update(extra)
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(values.items())]


def host_address(spec: ClusterSpec) -> str:
    """The address clients use for the published ports: the first host's address with
    several hosts, else the Docker host's own (loopback when published on every interface)."""
    if spec.announces_host_address:
        return spec.hosts[0].address
    return "127.0.0.1" if spec.bind_address == "0.0.0.0" else spec.bind_address


def _admin_address(spec: ClusterSpec, node: PlannedNode) -> tuple[str, int]:
    """Where the deploying host reaches a node: the address it announces (its host's, with
    host-address), its container IP, or its published port on this host."""
    if spec.announces_host_address:
        return node.announce_ip, node.announce_port
    if spec.admin_access == "host-ports":
        return host_address(spec), node.host_port
    return node.ip, node.port


def bootstrap_nodes(spec: ClusterSpec, plan: ClusterPlan) -> list[dict[str, Any]]:
    """The bootstrap resource's view of the plan: clusterops' NodeTarget as plain JSON (no
    secrets). With ACL users every node is reached as the admin user."""
    user = FIXED_NAMES["admin"] if spec.acl else None
    return [replace(node.target(*_admin_address(spec, node)), username=user).to_dict()
            for node in plan.nodes]


def addressed_nodes(plan: ClusterPlan) -> list[AddressedNode]:
    """How the Docker target addresses a node: `ip`/`port` are what it announces (what clients
    are redirected to), `host` the Docker host it runs on."""
    return [
        AddressedNode(
            node=n, announced_host=n.announce_ip, announced_port=n.announce_port, host_key="ip",
            target_fields={"host_port": n.host_port, "bus_host_port": n.host_bus_port,
                           "container_name": n.name, "container_ip": n.ip, "host": n.host},
        )
        for n in plan.nodes
    ]


def node_outputs(plan: ClusterPlan) -> list[dict[str, Any]]:
    """The `nodes` output of a Docker plan."""
    return addressed_outputs(addressed_nodes(plan))


def published_endpoints(spec: ClusterSpec, plan: ClusterPlan) -> list[str]:
    """Each node's published client port, at the address a client reaches it."""
    host = host_address(spec)
    return [f"{n.host_address or host}:{n.host_port}" for n in plan.nodes]


@dataclass(frozen=True, kw_only=True)
class DockerClusterOutputs(ClusterOutputs):
    """ClusterOutputs, plus what only the Docker target has."""

    network_name: pulumi.Output[str]
    host_seed_endpoints: list[str]
    exporter_url: pulumi.Output[str]
    exporter_urls: list[str]  # one exporter per Docker host
    prometheus_url: str | None
    announce: str


@dataclass
class _Host:
    """What the resources of one Docker host are declared with."""

    name: str
    docker_host: str  # the engine endpoint, for the secret-file writer
    opts: pulumi.ResourceOptions  # parent, and the host's provider (None: the default one)
    suffix: str  # resource-name suffix: "" for the one default host (URNs unchanged)
    network: docker.Network | None = None
    redis_image: pulumi.Input[str] | None = None


class RedisCluster(pulumi.ComponentResource):
    """3+ masters with replicas, an exporter and a formed, validated cluster."""

    outputs: DockerClusterOutputs

    def __init__(
        self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        spec = args.spec
        self.spec = spec
        self.docker_host = args.docker_host
        self.swap_limit_supported = args.swap_limit_supported
        if not args.swap_limit_supported:
            pulumi.log.warn(
                "this Docker engine cannot limit swap (docker info: SwapLimit false), so the "
                "containers may swap under memory pressure, and a swapping Redis misses cluster "
                "heartbeats. Fix: enable swap accounting on the host (cgroup v2, or the kernel "
                "parameter swapaccount=1) and run `pulumi up` again.", self)
        self.plan = plan_cluster(spec)
        password = pulumi.Output.secret(args.password)
        self.credentials = cluster_credentials(spec, password, args.acl_passwords)
        self.tls = TlsMaterial(
            f"{name}-tls", cluster=spec.name_prefix,
            nodes={n.name: certificate_names(spec, n) for n in self.plan.nodes},
            generation=spec.tls_generation, cert_days=spec.tls_cert_days,
            supplied_ca_cert=spec.tls_ca_cert, supplied_ca_key=args.tls_ca_key,
            opts=pulumi.ResourceOptions(parent=self)) if spec.tls else None
        self.hosts = self._hosts(name)
        for host in self.hosts.values():
            host.network = self._network(name, host)
            host.redis_image = self._image(name, "redis", spec.redis_image, host)
        node_containers = self._rolling_nodes(name)
        # An exporter on every host, each scraping every node: monitoring outlives any one
        # host (the moment it is needed most). Prometheus, when deployed, is on the first.
        for host in self.hosts.values():
            self._exporter(name, host)
        if spec.deploy_prometheus:
            self._prometheus(name, self._first_host)
        bootstrap = self._bootstrap(name, node_containers)
        self.outputs = self._outputs(password, bootstrap)
        self.register_outputs(self.outputs.as_dict())

    @property
    def _first_host(self) -> _Host:
        return next(iter(self.hosts.values()))

    def _bootstrap(self, name: str, node_containers: list[docker.Container]) -> ClusterBootstrap:
        """Forms (or adopts) the cluster once every node container is up, and proves it."""
        return ClusterBootstrap(
            f"{name}-bootstrap",
            nodes=bootstrap_nodes(self.spec, self.plan),
            password=self.credentials.admin_password,
            # Applied with CONFIG SET on every node: a setting change restarts nothing.
            settings=live_settings(self.spec),
            # A new certificate (or CA) in the files: the update makes every node load it.
            tls=tls_bag(self.tls) if self.tls else None,
            acl=self.credentials.bootstrap_acl,
            provider_version=PROVIDER_VERSION,
            timeout_seconds=self.spec.bootstrap_timeout_s,
            reshape_max_keys_per_second=self.spec.reshape_max_keys_per_second,
            engine=self.spec.engine,
            # The secrets volumes carry the password across restarts; the server user could
            # not write a rotated one into its config file anyway.
            rewrite_config=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=node_containers),
        )

    def _outputs(self, password: pulumi.Output[str],
                 bootstrap: ClusterBootstrap) -> DockerClusterOutputs:
        spec = self.spec
        nodes = addressed_nodes(self.plan)
        host = host_address(spec)
        network_name = self._first_host.network.name  # type: ignore[union-attr]
        published = published_endpoints(spec, self.plan)
        return DockerClusterOutputs(
            target="docker",
            location={
                # Announced addresses: container IPs, reachable on the Docker network (and
                # from a Linux Docker host), or with announce host-address the hosts' own.
                "reachable_from": "host-addresses" if spec.announces_host_address
                else "docker-network",
                "network_name": spec.network_name,
                "published_endpoints": dict(zip([n.name for n in self.plan.nodes], published,
                                                strict=True)),
            },
            cluster_name=spec.name_prefix,
            password=password,
            seed_endpoints=seed_endpoints(nodes),
            nodes=addressed_outputs(nodes),
            exporter_internal_url=f"http://{self.plan.exporter_ip}:{EXPORTER_LISTEN_PORT}",
            client_settings=client_settings(nodes),
            node_ids=bootstrap.node_ids,
            slot_ranges=bootstrap.slot_ranges,
            cluster_state=bootstrap.cluster_state,
            maxmemory_bytes=spec.maxmemory_bytes,
            tls_ca_cert=self.tls.ca_bundle if self.tls else None,
            username=spec.acl_app_user if spec.acl else None,
            admin_username=self.credentials.admin_user,
            # Secret even when null, so the output's secrecy does not depend on the config.
            admin_password=pulumi.Output.secret(
                self.credentials.admin_password if spec.acl else None),
            network_name=network_name,
            host_seed_endpoints=published,
            exporter_url=pulumi.Output.concat("http://", host, ":", str(spec.exporter_port)),
            exporter_urls=[f"http://{h.address}:{spec.exporter_port}" for h in spec.hosts]
            if spec.announces_host_address else [f"http://{host}:{spec.exporter_port}"],
            prometheus_url=f"http://{host}:{spec.prometheus_port}"
            if spec.deploy_prometheus else None,
            announce=spec.announce,
        )

    def _hosts(self, name: str) -> dict[str, _Host]:
        """One entry per Docker host, in the order of the `hosts` setting."""
        if not self.spec.hosts:
            return {DEFAULT_HOST_NAME: _Host(DEFAULT_HOST_NAME, self.docker_host,
                                             pulumi.ResourceOptions(parent=self), "")}
        hosts = {}
        for host in self.spec.hosts:
            provider = docker.Provider(f"{name}-host-{host.name}", host=host.docker_host,
                                       opts=pulumi.ResourceOptions(parent=self))
            hosts[host.name] = _Host(host.name, host.docker_host,
                                     pulumi.ResourceOptions(parent=self, provider=provider),
                                     f"-{host.name}")
        return hosts

    def _network(self, name: str, host: _Host) -> docker.Network:
        """The cluster network on one host: the same name and subnet on every host (each
        engine has its own), so a node's static IP means the same thing wherever it runs."""
        return docker.Network(
            f"{name}-network{host.suffix}",
            name=self.spec.network_name,
            driver="bridge",
            ipam_configs=[
                docker.NetworkIpamConfigArgs(subnet=self.spec.subnet,
                                             gateway=self.plan.gateway_ip)
            ],
            labels=[docker.NetworkLabelArgs(label="com.alphapulse.cluster",
                                            value=self.spec.name_prefix)],
            opts=host.opts,
        )

    def _image(self, name: str, role: str, image: str, host: _Host) -> pulumi.Input[str]:
        """A pulled, pinned image, or (pullImages=false) an image already on the host."""
        if not self.spec.pull_images:
            return image
        remote = docker.RemoteImage(
            f"{name}-{role}-image{host.suffix}",
            name=image,
            keep_locally=True,
            opts=host.opts,
        )
        return remote.image_id

    def _rolling_nodes(self, name: str) -> list[docker.Container]:
        """The node containers, chained per shard so a replacement rolls one node of a
        shard at a time (components/node_handover.py): handover(n) -> container(n) ->
        handover(next n) -> ... replicas first, the master last."""
        targets = {t["name"]: t for t in bootstrap_nodes(self.spec, self.plan)}
        containers: dict[str, docker.Container] = {}
        for shard in rolling_order(self.plan):
            previous: list[pulumi.Resource] = []
            for node in shard:
                handover = NodeHandover(
                    f"{name}-{node.role}-{node.ordinal}-handover",
                    node=targets[node.name],
                    shard=[targets[member.name] for member in shard],
                    password=self.credentials.admin_password,
                    # What replaces the container (image, start-only config, healthcheck):
                    # when it changes, hand over first.
                    trigger=pulumi.Output.concat(
                        self.hosts[node.host].redis_image, "|",
                        restart_digest(node, self.spec.tls), "|",
                        hashlib.sha256(self._healthcheck().encode()).hexdigest()[:16]),
                    timeout_seconds=self.spec.bootstrap_timeout_s,
                    tls_ca=self.tls.ca_bundle if self.tls else None,
                    credentials=self.credentials.digest,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=previous),
                )
                containers[node.name] = self._node(name, node, self.hosts[node.host], handover)
                previous = [containers[node.name]]
        return [containers[node.name] for node in self.plan.nodes]

    def _node(
        self,
        name: str,
        node: PlannedNode,
        host: _Host,
        handover: NodeHandover,
    ) -> docker.Container:
        spec = self.spec
        image = host.redis_image
        assert image is not None and host.network is not None  # set in __init__
        resource = f"{name}-{node.role}-{node.ordinal}"
        volume = self._data_volume(resource, node, host)
        secrets = self._node_secrets(resource, node, host)
        memory_mb = spec.memory_limit_bytes // MIB
        return docker.Container(
            resource,
            name=node.name,
            hostname=node.name,
            image=image,
            command=[ENGINES[spec.engine].server_binary, REDIS_CONF_PATH],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=volume.name, container_path=DATA_DIR),
                docker.ContainerVolumeArgs(
                    volume_name=secrets.volume, container_path=SECRETS_DIR, read_only=True
                ),
            ],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=host.network.name, ipv4_address=node.ip, aliases=[node.name]
                )
            ],
            ports=self._published_ports(node),
            healthcheck=self._healthcheck_args(),
            restart="unless-stopped",
            memory=memory_mb,
            # No swap: a swapping Redis misses cluster heartbeats and triggers false failovers.
            memory_swap=self._memory_swap(memory_mb),
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "3"},
            labels=_labels(spec, **{"com.alphapulse.node": node.name,
                                    "com.alphapulse.role": node.role,
                                    # What the node reads only at start: changing it must
                                    # be a (previewed) new container, not an unread file.
                                    "com.alphapulse.restart-config":
                                        restart_digest(node, spec.tls)}),
            # SIGTERM lets Redis fsync the AOF and write its final RDB before it exits.
            destroy_grace_seconds=30,
            wait=True,
            wait_timeout=120,
            must_run=True,
            opts=pulumi.ResourceOptions.merge(host.opts, pulumi.ResourceOptions(
                # Name and static IP are unique: the old container must go first.
                delete_before_replace=True,
                depends_on=[volume, secrets.files, handover],
                # The provider changes a running container's healthcheck only in the state,
                # never on the container: a new healthcheck needs a new container.
                replace_on_changes=["healthcheck"],
                ignore_changes=self._unmanaged_container_fields(),
            )),
        )

    def _data_volume(self, resource: str, node: PlannedNode, host: _Host) -> docker.Volume:
        protect = self.spec.protect_data
        return docker.Volume(
            f"{resource}-data",
            name=node.volume_name,
            labels=[docker.VolumeLabelArgs(label="com.alphapulse.node", value=node.name)],
            opts=pulumi.ResourceOptions.merge(host.opts, pulumi.ResourceOptions(
                protect=protect, retain_on_delete=protect)),
        )

    def _node_secrets(self, resource: str, node: PlannedNode, host: _Host) -> _Secrets:
        credentials = self.credentials
        return self._secret_files(
            resource,
            f"{node.name}-secrets",
            host,
            {AUTH_CONF_NAME: credentials.auth_conf,
             PASSWORD_FILE_NAME: credentials.exporter_password,
             **({USERS_ACL_NAME: credentials.users_acl}
                if credentials.users_acl is not None else {}),
             **self._tls_files(node)},
            owner=REDIS_UID,
            # Not an upload: an upload is a container input, and changing it would replace
            # every node at once. Rewritten in place, it is what the next start reads.
            config_files={REDIS_CONF_NAME: render_redis_conf(self.spec, node)},
        )

    def _published_ports(self, node: PlannedNode) -> list[docker.ContainerPortArgs]:
        bind = self.spec.bind_address
        return [
            docker.ContainerPortArgs(internal=node.port, external=node.host_port, ip=bind),
            docker.ContainerPortArgs(internal=node.bus_port, external=node.host_bus_port,
                                     ip=bind),
        ]

    def _healthcheck_args(self) -> docker.ContainerHealthcheckArgs:
        return docker.ContainerHealthcheckArgs(
            tests=["CMD-SHELL", self._healthcheck()],
            interval="2s",
            timeout="2s",
            retries=5,
            start_period="10s",
        )

    def _healthcheck(self) -> str:
        return healthcheck_command(self.spec.tls, self.credentials.exporter_user,
                                   ENGINES[self.spec.engine].cli_binary)

    def _tls_files(self, node: PlannedNode) -> dict[str, pulumi.Input[str]]:
        """The node's CA bundle, certificate and key (tls: true), for its secrets volume."""
        if self.tls is None:
            return {}
        return {TLS_CA_NAME: self.tls.ca_bundle,
                TLS_CERT_NAME: self.tls.certs.apply(lambda certs: certs[node.name]),
                TLS_KEY_NAME: self.tls.keys.apply(lambda keys: keys[node.name])}

    def _monitored_nodes(self) -> list[dict[str, Any]]:
        """The nodes as the exporter and Prometheus address them (rediss:// with TLS)."""
        return monitored_nodes(addressed_nodes(self.plan), self.spec.tls)

    def _memory_swap(self, memory_mb: int) -> int | None:
        """Memory + swap = memory: no swap at all, where the engine can enforce that."""
        return memory_mb if self.swap_limit_supported else None

    def _unmanaged_container_fields(self) -> list[str]:
        # Without swap accounting Docker reports memorySwap as -1 whatever was asked: a field
        # we cannot set must not make every preview show a change.
        return [] if self.swap_limit_supported else ["memorySwap"]

    def _secret_files(
        self,
        resource_name: str,
        volume_name: str,
        host: _Host,
        files: dict[str, pulumi.Input[str]],
        owner: int,
        config_files: dict[str, str] | None = None,
    ) -> _Secrets:
        """A small volume holding one container's secret files, written by SecretFiles.

        It holds nothing that the config cannot recreate, so it is never protected."""
        volume = docker.Volume(
            f"{resource_name}-secrets",
            name=volume_name,
            labels=[docker.VolumeLabelArgs(label="com.alphapulse.secrets", value="true")],
            opts=host.opts,
        )
        written = SecretFiles(
            f"{resource_name}-secret-files",
            volume=volume.name,
            # The redis image also writes the exporter's file: it has a shell, the exporter's
            # official image (FROM scratch) does not.
            image=host.redis_image,  # type: ignore[arg-type]
            files=files,
            owner=f"{owner}:{owner}",
            docker_host=host.docker_host,
            config_files=config_files,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[volume]),
        )
        return _Secrets(volume=volume.name, files=written)

    def _service(
        self,
        name: str,
        role: str,
        host: _Host,
        *,
        image: pulumi.Input[str],
        command: list[str],
        uploads: list[docker.ContainerUploadArgs] | None = None,
        ip: str,
        listen_port: int,
        host_port: int,
        memory_mb: int,
        volumes: list[docker.ContainerVolumeArgs] | None = None,
        extra_labels: dict[str, pulumi.Input[str]] | None = None,
        depends_on: list[pulumi.Resource] | None = None,
    ) -> docker.Container:
        """A single-container service on the cluster network (exporter, Prometheus)."""
        spec = self.spec
        container_name = f"{spec.name_prefix}-{role}"
        labels = _labels(spec, **{"com.alphapulse.role": role})
        labels += [docker.ContainerLabelArgs(label=k, value=v)
                   for k, v in sorted((extra_labels or {}).items())]
        return docker.Container(
            f"{name}-{role}{host.suffix}",
            name=container_name,
            hostname=container_name,
            image=image,
            command=command,
            uploads=uploads,
            volumes=volumes,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=host.network.name, ipv4_address=ip)  # type: ignore[union-attr]
            ],
            ports=[
                docker.ContainerPortArgs(
                    internal=listen_port, external=host_port, ip=spec.bind_address
                )
            ],
            restart="unless-stopped",
            memory=memory_mb,
            memory_swap=self._memory_swap(memory_mb),
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "3"},
            labels=labels,
            must_run=True,
            opts=pulumi.ResourceOptions.merge(host.opts, pulumi.ResourceOptions(
                delete_before_replace=True, depends_on=depends_on,
                ignore_changes=self._unmanaged_container_fields())),
        )

    def _exporter(self, name: str, host: _Host) -> docker.Container:
        nodes = self._monitored_nodes()
        file_dir, _, file_name = exporter_conf.EXPORTER_PASSWORD_FILE.rpartition("/")
        password = self.credentials.exporter_password
        files: dict[str, pulumi.Input[str]] = {file_name: password.apply(
            lambda pw: exporter_conf.exporter_password_file(nodes, pw))}
        if self.tls is not None:
            files[exporter_conf.EXPORTER_CA_FILE] = self.tls.ca_bundle
        secrets = self._secret_files(
            f"{name}-redis-exporter{host.suffix}",
            f"{self.spec.name_prefix}-redis-exporter-secrets",
            host,
            files,
            owner=EXPORTER_UID,
        )
        return self._service(
            name, "redis-exporter", host,
            image=self._image(name, "exporter", self.spec.exporter_image, host),
            command=exporter_conf.exporter_args(
                listen_port=EXPORTER_LISTEN_PORT,
                tls_ca_file=f"{file_dir}/{exporter_conf.EXPORTER_CA_FILE}" if self.tls else None,
                user=self.credentials.exporter_user),
            volumes=[
                docker.ContainerVolumeArgs(
                    volume_name=secrets.volume, container_path=file_dir, read_only=True
                )
            ],
            # The exporter reads its password file only at start: a new generation of the
            # file (a rotated password) recreates this stateless container.
            extra_labels={"com.alphapulse.secrets-generation":
                          secrets.files.generation.apply(str)},
            depends_on=[secrets.files],
            ip=self.plan.exporter_ip,
            listen_port=EXPORTER_LISTEN_PORT,
            host_port=self.spec.exporter_port,
            memory_mb=128,
        )

    def _prometheus(self, name: str, host: _Host) -> docker.Container:
        spec = self.spec
        scrape_config = exporter_conf.prometheus_config(
            self._monitored_nodes(),
            exporter_address=f"{self.plan.exporter_ip}:{EXPORTER_LISTEN_PORT}",
            rules_files=[PROMETHEUS_RULES_PATH],
            cluster_name=spec.name_prefix,
        )
        return self._service(
            name, "prometheus", host,
            image=self._image(name, "prometheus", spec.prometheus_image, host),
            command=[
                f"--config.file={PROMETHEUS_CONFIG_PATH}",
                "--storage.tsdb.path=/prometheus",
                f"--web.listen-address=:{PROMETHEUS_LISTEN_PORT}",
            ],
            uploads=[
                docker.ContainerUploadArgs(file=PROMETHEUS_CONFIG_PATH, content=scrape_config),
                docker.ContainerUploadArgs(
                    file=PROMETHEUS_RULES_PATH, content=ALERT_RULES_FILE.read_text()
                ),
            ],
            ip=self.plan.prometheus_ip,
            listen_port=PROMETHEUS_LISTEN_PORT,
            host_port=spec.prometheus_port,
            memory_mb=512,
        )
