"""The `target` key and the Kubernetes settings: every problem reported at once, before anything
is registered, each naming its key and the fix."""

from __future__ import annotations

import pytest

from components.spec import (
    DOCKER_ONLY_KEYS,
    KUBERNETES_ONLY_KEYS,
    ConfigError,
    build_spec,
)

K8S = {"target": "kubernetes", "storageClass": "fast-ssd"}


def problems_for(raw: dict, stack: str = "k8s") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_spec(raw, stack, password_set=False)
    return caught.value.problems


def keys_of(problems: list[str]) -> list[str]:
    return sorted(p.split(":")[1] for p in problems)


def test_docker_stays_the_default_target_without_kubernetes_settings():
    spec = build_spec({}, "dev", password_set=False)
    assert spec.target == "docker" and spec.k8s is None


def test_kubernetes_defaults():
    spec = build_spec(K8S, "k8s", password_set=False)
    assert spec.target == "kubernetes"
    assert spec.k8s is not None
    assert spec.k8s.namespace == "alphapulse-redis"
    assert spec.k8s.storage_class == "fast-ssd"
    assert spec.k8s.storage_size == "4Gi"
    assert spec.k8s.render_dir is None
    assert (spec.k8s.zones, spec.k8s.kubernetes_nodes) == (0, 0)


def test_cluster_default_storage_class_leaves_the_class_unset():
    spec = build_spec({**K8S, "storageClass": "cluster-default"}, "k8s", password_set=False)
    assert spec.k8s is not None and spec.k8s.storage_class is None


def test_a_kubernetes_stack_without_a_storage_class_is_refused_with_the_fix():
    [problem] = problems_for({"target": "kubernetes"})
    assert problem.startswith("alphapulse-redis-cluster:storageClass:")
    assert "Fix: pulumi config set alphapulse-redis-cluster:storageClass" in problem
    assert "cluster-default" in problem


# A valid Docker value for each key: the only problem left is the target mismatch.
DOCKER_VALUES = {"basePort": "7001", "bindAddress": "127.0.0.1", "networkName": "net",
                 "subnet": "10.0.0.0/24", "adminAccess": "host-ports", "exporterPort": "9121",
                 "prometheusPort": "9090", "deployPrometheus": "true",
                 "prometheusImage": "prom/prometheus:v2.42.0",
                 "hosts": '[{"name": "h1", "dockerHost": "unix:///run/h1.sock", '
                          '"address": "10.0.0.11"}]',
                 "announce": "host-address", "survivesHostLoss": "false"}


def test_the_docker_only_list_is_covered():
    assert sorted(DOCKER_VALUES) == sorted(DOCKER_ONLY_KEYS)


def test_tls_and_acl_users_apply_to_kubernetes_too_and_default_on_in_prod():
    spec = build_spec({**K8S, "tls": "true", "acl": "true", "aclAppUser": "orders"}, "k8s",
                      password_set=False)
    assert (spec.tls, spec.acl, spec.acl_app_user) == (True, True, "orders")
    prod = build_spec(K8S, "prod", password_set=True)
    assert (prod.tls, prod.acl) == (True, True)


@pytest.mark.parametrize("key", DOCKER_ONLY_KEYS)
def test_each_docker_only_key_is_an_error_on_kubernetes(key):
    [problem] = problems_for({**K8S, key: DOCKER_VALUES[key]})
    assert problem.startswith(f"alphapulse-redis-cluster:{key}: applies to the Docker target")
    assert f"pulumi config rm alphapulse-redis-cluster:{key}" in problem


@pytest.mark.parametrize("key", KUBERNETES_ONLY_KEYS)
def test_each_kubernetes_only_key_is_an_error_on_docker(key):
    [problem] = problems_for({key: "x"}, stack="dev")
    assert problem.startswith(f"alphapulse-redis-cluster:{key}: applies to the Kubernetes")


def test_too_few_declared_nodes_and_zones_for_the_spread():
    # 2 replicas per master: a shard is 3 pods that must sit on 3 nodes, ideally 3 zones.
    problems = problems_for({**K8S, "replicasPerMaster": "2", "kubernetesNodes": "2",
                             "zones": "2"})
    assert keys_of(problems) == ["kubernetesNodes", "zones"]
    nodes = next(p for p in problems if ":kubernetesNodes:" in p)
    zones = next(p for p in problems if ":zones:" in p)
    assert "2 node(s) cannot hold a shard's 3 pods" in nodes and "at least 3" in nodes
    assert "2 zone(s) cannot keep a shard's 3 pods in different zones" in zones


def test_enough_nodes_and_zones_pass():
    spec = build_spec({**K8S, "kubernetesNodes": "3", "zones": "3"}, "k8s", password_set=False)
    assert spec.k8s is not None and spec.k8s.zones == 3


def test_every_problem_at_once():
    problems = problems_for({"target": "kubernetes", "subnet": "10.0.0.0/24",
                             "storageSize": "1Gi", "namespace": "Bad_NS", "cpuRequest": "lots",
                             "kubernetesNodes": "1", "masters": "2"})
    assert keys_of(problems) == ["cpuRequest", "kubernetesNodes", "masters", "namespace",
                                 "storageClass", "storageSize", "subnet"]
    assert all("Fix:" in p for p in problems), problems


def test_storage_must_hold_the_aof_its_rewrite_and_the_rdb():
    [problem] = problems_for({**K8S, "maxmemory": "1gb", "storageSize": "2Gi"})
    assert problem.startswith("alphapulse-redis-cluster:storageSize: 2Gi is less than 3 x")
    assert "at least 3Gi" in problem


def test_an_unknown_target_is_refused():
    [problem] = problems_for({"target": "nomad"})
    assert problem.startswith("alphapulse-redis-cluster:target:") and "docker" in problem


def test_a_name_prefix_kubernetes_cannot_use_is_refused():
    problems = problems_for({**K8S, "namePrefix": "Alpha_Pulse", "namespace": "redis"})
    assert keys_of(problems) == ["namePrefix"]
    assert "lower-case letters, digits and '-'" in problems[0]


def test_a_docker_only_key_and_a_bad_port_range_are_reported_together():
    problems = problems_for({**K8S, "basePort": "60000", "exporterPort": "70000"})
    assert keys_of(problems) == ["basePort", "basePort", "exporterPort", "exporterPort"]
    assert any("applies to the Docker target" in p for p in problems)
    assert any("last cluster-bus port" in p for p in problems)
    assert any("out of range 1..65535" in p for p in problems)


def test_kubernetes_stacks_keep_the_docker_defaults_of_the_spec():
    spec = build_spec(K8S, "k8s-prod", password_set=True)
    assert spec.hosts == () and spec.announce == "container-ip"
    assert spec.bind_address == "127.0.0.1"


def test_read_kubernetes_settings_returns_what_it_read_and_reports_each_key():
    from components.config_reader import ConfigReader
    from components.k8s_settings import read_kubernetes_settings
    from components.layout import Shape

    reader = ConfigReader({"storageClass": "cluster-default", "storageSize": "1Gi",
                           "zones": "2", "kubernetesNodes": "4", "renderDir": "out",
                           "serviceMonitor": "true", "clusterDomain": "Bad Domain"})
    k8s = read_kubernetes_settings(reader, "shop", Shape(masters=3, replicas_per_master=2),
                                   maxmemory_bytes=512 * 1024**2)
    assert k8s.namespace == "shop-redis" and k8s.storage_class is None
    assert (k8s.render_dir, k8s.service_monitor) == ("out", True)
    assert (k8s.kubernetes_nodes, k8s.zones) == (4, 2)
    assert keys_of(reader.problems) == ["clusterDomain", "storageSize", "zones"]
