"""AlphaPulse Redis Cluster: stack config -> ClusterSpec -> RedisCluster -> stack outputs."""

import pulumi

from clusterops.client import OUTPUTS_VERSION
from components.docker_cluster import RedisCluster, RedisClusterArgs
from components.docker_host import stack_docker_host, supports_swap_limit
from components.generated_password import GeneratedPassword
from components.spec import PROJECT, load_spec
from components.stack_config import raw_project_config

# Validate everything before any resource is registered: a bad config creates nothing.
spec = load_spec(raw_project_config, pulumi.get_stack())
config = pulumi.Config(PROJECT)
password = config.get_secret("password")
if password is None:
    # Only reachable with passwordPolicy=generate (the default outside prod stacks).
    password = GeneratedPassword("redis-password", length=32).result

docker_host = stack_docker_host()
cluster = RedisCluster(
    "redis-cluster",
    RedisClusterArgs(
        spec=spec,
        password=password,
        docker_host=docker_host,
        swap_limit_supported=supports_swap_limit(docker_host),
    ),
)

# The outputs' shape is a contract (clusterops/client.py: OUTPUTS_SCHEMAS); bump it on any change.
pulumi.export("outputs_version", OUTPUTS_VERSION)
pulumi.export("cluster_name", spec.name_prefix)
pulumi.export("password", cluster.password)
pulumi.export("network_name", cluster.network_name)
pulumi.export("seed_endpoints", cluster.seed_endpoints)
pulumi.export("host_seed_endpoints", cluster.host_seed_endpoints)
pulumi.export("nodes", cluster.nodes)
pulumi.export("exporter_url", cluster.exporter_url)
pulumi.export("exporter_internal_url", cluster.exporter_internal_url)
pulumi.export("prometheus_url", cluster.prometheus_url)
pulumi.export("client_settings", cluster.client_settings)
pulumi.export("node_ids", cluster.node_ids)
pulumi.export("slot_ranges", cluster.slot_ranges)
pulumi.export("cluster_state", cluster.cluster_state)
pulumi.export("maxmemory_bytes", spec.maxmemory_bytes)
