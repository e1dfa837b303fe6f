"""AlphaPulse Redis Cluster: stack config -> ClusterSpec -> RedisCluster -> stack outputs.

`target` picks where the same spec and plan are deployed: Docker (RedisCluster) or Kubernetes
(RedisKubernetesCluster, which can also only render its manifests to a directory).
"""

from pathlib import Path

import pulumi

from components.config_reader import PROJECT
from components.node_settings import ACL_PASSWORD_KEYS
from components.passwords import generated_password
from components.program_errors import config_problems_reported
from components.spec import ClusterSpec, ConfigError, load_spec
from components.stack_config import raw_project_config
from components.target_neutral import ClusterOutputs


def check_hosts_answer(spec: ClusterSpec) -> None:
    """Every listed Docker host must answer before anything is declared: a host that cannot be
    reached would otherwise fail the deploy halfway, with the other hosts' nodes created."""
    from components import docker_host

    problems = []
    for host in spec.hosts:
        problem = docker_host.engine_problem(host.docker_host)
        if problem:
            problems.append(
                f"{PROJECT}:hosts: {host.name}: the Docker engine at {host.docker_host} does not "
                f"answer ({problem}). Fix: check that the host is up and that `DOCKER_HOST="
                f"{host.docker_host} docker info` works from this machine (SSH key, socket)")
    if problems:
        raise ConfigError(problems)


def validated_spec() -> ClusterSpec:
    """Everything validated before any resource is registered: a bad config creates nothing."""
    spec = load_spec(raw_project_config, pulumi.get_stack())
    if spec.tls_ca_cert and not pulumi.runtime.is_config_secret(f"{PROJECT}:tlsCaKey"):
        # In plain config the CA key would sit readable in Pulumi.<stack>.yaml and in the state.
        raise ConfigError([f"{PROJECT}:tlsCaKey: is not a secret. Fix: pulumi config set "
                           f"--secret {PROJECT}:tlsCaKey -- \"$(cat ca.key)\""])
    check_hosts_answer(spec)
    return spec


with config_problems_reported():
    spec = validated_spec()
config = pulumi.Config(PROJECT)
password = config.get_secret("password")
if password is None:
    # Only reachable with passwordPolicy=generate (the default outside prod stacks).
    password = generated_password("redis-password")


def acl_passwords(spec: ClusterSpec) -> dict[str, pulumi.Input[str]] | None:
    """acl: true: the admin, exporter and replication users' passwords, each from its secret
    config key or generated once (`password` is the application user's)."""
    if not spec.acl:
        return None
    return {role: config.get_secret(key)
            or generated_password(f"redis-{role}-password")
            for role, key in ACL_PASSWORD_KEYS.items()}


def export_outputs(outputs: ClusterOutputs) -> None:
    """The component's outputs are the stack's: their shape is a contract (clusterops/client.py:
    OUTPUTS_SCHEMAS, one variant per target); any change to it is a new outputs_version."""
    for key, value in outputs.as_dict().items():
        pulumi.export(key, value)


def deploy_docker(spec: ClusterSpec, password: pulumi.Input[str]) -> None:
    from components.docker_cluster import RedisCluster, RedisClusterArgs
    from components.docker_host import stack_docker_host, supports_swap_limit

    docker_host = stack_docker_host()
    engines = [h.docker_host for h in spec.hosts] or [docker_host]
    cluster = RedisCluster(
        "redis-cluster",
        RedisClusterArgs(
            spec=spec,
            password=password,
            docker_host=docker_host,
            swap_limit_supported=all(supports_swap_limit(engine) for engine in engines),
            acl_passwords=acl_passwords(spec),
            tls_ca_key=config.get_secret("tlsCaKey") if spec.tls_ca_cert else None,
        ),
    )
    export_outputs(cluster.outputs)


def deploy_kubernetes(spec: ClusterSpec, password: pulumi.Input[str]) -> None:
    import pulumi_kubernetes as k8s

    from components.k8s_cluster import RedisKubernetesCluster, RedisKubernetesClusterArgs

    assert spec.k8s is not None  # build_spec sets it for target kubernetes
    render_dir = None
    if spec.k8s.render_dir:
        # Render mode: the real provider writes every manifest under this directory and
        # contacts no API server (GitOps, or machines without a cluster).
        render_dir = Path(spec.k8s.render_dir)
        if not render_dir.is_absolute():
            render_dir = Path.cwd() / render_dir
        pulumi.log.warn(
            f"render mode: manifests go to {render_dir}, nothing is applied. The Secret "
            f"manifest there holds the Redis password (base64, not encrypted): do not commit "
            f"that directory as it is.")
    # Our own provider instance (kubeconfig and context as usual, from the environment or
    # kubernetes:* config), for two settings. By default pulumi-kubernetes *replaces* a
    # ConfigMap or Secret whose data changed, and the engine then replaces every resource
    # referencing it: a redis.conf change or a password rotation would delete and recreate
    # the StatefulSets, i.e. every Redis pod at once (seen with the real engine). Mutable, they
    # are updated in place, and the config digest on each pod template rolls a shard's pods
    # one at a time instead.
    provider = k8s.Provider(
        "kubernetes",
        enable_config_map_mutable=True,
        enable_secret_mutable=True,
        render_yaml_to_directory=str(render_dir) if render_dir else None,
    )
    opts = pulumi.ResourceOptions(providers=[provider])
    cluster = RedisKubernetesCluster(
        "redis-cluster",
        RedisKubernetesClusterArgs(
            spec=spec, password=password, acl_passwords=acl_passwords(spec),
            tls_ca_key=config.get_secret("tlsCaKey") if spec.tls_ca_cert else None),
        opts=opts,
    )
    export_outputs(cluster.outputs)

if spec.target == "kubernetes":
    deploy_kubernetes(spec, password)
else:
    deploy_docker(spec, password)
