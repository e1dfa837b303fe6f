"""The k8s stack (Pulumi.k8s.yaml) under Pulumi's mocks: every object, its key fields, the
anti-affinity and spread, and that the password is only ever in the Secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.k8s_cluster import PEER_ADDRESSES_SCRIPT
from components.topology import split_slots
from tests.support.k8s_manifests import (
    CUSTOM_KINDS,
    KUBERNETES_VERSIONS,
    kind_name,
    manifests_from_run,
    validation_problems,
)
from tests.support.program_runner import (
    K8S_OPERATIONS_TYPE,
    SECRET_SIG,
    SIG_KEY,
    ProgramRun,
    config_problems,
    run_program,
    stack_config_file,
)

PASSWORD = "k8s-mock-password-0123456789"
NS = "alphapulse-redis"
SHARD_LABEL = "redis.alphapulse.io/shard"
FQDN = "{pod}.alphapulse-redis-nodes.alphapulse-redis.svc.cluster.local"


def k8s_config(**overrides: str) -> dict[str, str]:
    return {**stack_config_file("k8s"), "password": PASSWORD, **overrides}


@pytest.fixture(scope="module")
def k8s() -> ProgramRun:
    return run_program("k8s", k8s_config())


@pytest.fixture(scope="module")
def manifests(k8s: ProgramRun) -> dict[str, dict[str, Any]]:
    return {kind_name(m): m for m in manifests_from_run(k8s)}


def of_kind(manifests: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests.values() if m["kind"] == kind]


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def test_every_object_of_the_target_is_declared(manifests):
    assert sorted(manifests) == sorted([
        f"Namespace/{NS}",
        "Secret/alphapulse-redis-auth",
        "ConfigMap/alphapulse-redis-config",
        "ConfigMap/alphapulse-redis-bootstrap-plan",
        "Service/alphapulse-redis-nodes",
        "Service/alphapulse-redis",
        "Service/alphapulse-redis-exporter",
        "StatefulSet/alphapulse-redis-shard-1",
        "StatefulSet/alphapulse-redis-shard-2",
        "StatefulSet/alphapulse-redis-shard-3",
        "PodDisruptionBudget/alphapulse-redis-shard-1",
        "PodDisruptionBudget/alphapulse-redis-shard-2",
        "PodDisruptionBudget/alphapulse-redis-shard-3",
        "NetworkPolicy/alphapulse-redis-nodes",
        "NetworkPolicy/alphapulse-redis-exporter",
        "Deployment/alphapulse-redis-exporter",
        next(n for n in manifests if n.startswith("Job/alphapulse-redis-bootstrap-")),
    ])
    assert all(m["metadata"].get("namespace") == NS for m in manifests.values()
               if m["kind"] != "Namespace")


def test_every_manifest_is_valid_for_three_kubernetes_versions(manifests):
    assert len(KUBERNETES_VERSIONS) == 3
    assert validation_problems(manifests.values()) == []


def test_one_statefulset_per_shard_with_its_master_first(manifests):
    config = manifests["ConfigMap/alphapulse-redis-config"]["data"]
    for shard in (1, 2, 3):
        sts = manifests[f"StatefulSet/alphapulse-redis-shard-{shard}"]
        assert sts["spec"]["replicas"] == 2
        assert sts["spec"]["serviceName"] == "alphapulse-redis-nodes"
        master_conf = config[f"alphapulse-redis-shard-{shard}-0.conf"]
        replica_conf = config[f"alphapulse-redis-shard-{shard}-1.conf"]
        assert master_conf.startswith(f"# alphapulse-redis-master-{shard}:")
        assert replica_conf.startswith(f"# alphapulse-redis-replica-{shard}:")
        # The template selects only its own shard's pods, and carries that label.
        match = sts["spec"]["selector"]["matchLabels"]
        assert match[SHARD_LABEL] == str(shard)
        assert all(sts["spec"]["template"]["metadata"]["labels"][k] == v
                   for k, v in match.items())


def test_nodes_announce_their_stable_dns_name_not_an_ip(manifests):
    config = manifests["ConfigMap/alphapulse-redis-config"]["data"]
    pods = [f"alphapulse-redis-shard-{s}-{i}" for s in (1, 2, 3) for i in (0, 1)]
    assert sorted(k for k in config if k.endswith(".conf")) == sorted(f"{p}.conf" for p in pods)
    for pod in pods:
        text = config[f"{pod}.conf"]
        assert f"cluster-announce-hostname {FQDN.format(pod=pod)}\n" in text
        assert "cluster-preferred-endpoint-type hostname\n" in text
        assert "cluster-announce-ip" not in text
        assert "cluster-node-timeout 1000\n" in text and "maxmemory 512mb\n" in text
        assert "include /usr/local/etc/redis/secrets/auth.conf\n" in text
    sts = manifests["StatefulSet/alphapulse-redis-shard-1"]
    redis = pod_spec(sts)["containers"][0]
    # Each pod loads the file named after itself.
    assert redis["command"] == ["redis-server", "/usr/local/etc/redis/nodes/$(POD_NAME).conf"]
    assert redis["env"] == [{"name": "POD_NAME",
                             "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


def test_a_master_and_its_replicas_never_share_a_node(manifests):
    for shard in (1, 2, 3):
        spec = pod_spec(manifests[f"StatefulSet/alphapulse-redis-shard-{shard}"])
        required = spec["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]
        assert required == [{
            "labelSelector": {"matchLabels": {
                "app.kubernetes.io/instance": "alphapulse",
                "app.kubernetes.io/component": "node",
                SHARD_LABEL: str(shard)}},
            "topologyKey": "kubernetes.io/hostname",
        }]
        # Zones not declared in Pulumi.k8s.yaml: no zone constraint that could never be met.
        assert not spec.get("topologySpreadConstraints")


def test_declared_zones_spread_every_shard_over_them():
    run = run_program("k8s", k8s_config(zones="3", kubernetesNodes="6"))
    manifests = {kind_name(m): m for m in manifests_from_run(run)}
    spread = pod_spec(manifests["StatefulSet/alphapulse-redis-shard-2"])[
        "topologySpreadConstraints"]
    hard = [c for c in spread if c["whenUnsatisfiable"] == "DoNotSchedule"]
    assert hard == [{
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "alphapulse",
                                          "app.kubernetes.io/component": "node",
                                          SHARD_LABEL: "2"}},
    }]
    masters = [c for c in spread if c["whenUnsatisfiable"] == "ScheduleAnyway"]
    assert masters[0]["labelSelector"]["matchLabels"]["apps.kubernetes.io/pod-index"] == "0"
    assert validation_problems(manifests.values()) == []


def test_pvcs_resources_probes_and_security(manifests):
    sts = manifests["StatefulSet/alphapulse-redis-shard-3"]
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    # storageClass cluster-default: the cluster's default StorageClass (no storageClassName).
    assert "storageClassName" not in claim["spec"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "4Gi"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    spec = pod_spec(sts)
    redis = spec["containers"][0]
    assert redis["resources"] == {"requests": {"cpu": "250m", "memory": "1024Mi"},
                                  "limits": {"memory": "1024Mi"}}
    assert "cpu" not in redis["resources"]["limits"]
    readiness = " ".join(redis["readinessProbe"]["exec"]["command"])
    assert "--askpass ping < /usr/local/etc/redis/secrets/password" in readiness
    # ... and holds the data: a master, or a replica whose link is up.
    assert "grep -qE '^(role:master|master_link_status:up)'" in readiness
    assert redis["livenessProbe"]["tcpSocket"]["port"] == "redis"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 999
    for container in spec["containers"] + spec["initContainers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in redis["volumeMounts"]}
    assert mounts == {"/data": "data", "/usr/local/etc/redis/nodes": "config",
                      "/usr/local/etc/redis/secrets": "auth"}


def test_every_pod_keeps_its_peers_addresses_current(manifests):
    """Init container: nodes.conf refreshed before Redis starts; sidecar: moved peers met at
    their new IPs (components/peer-addresses.sh). The sidecar reads the password file, never
    an environment variable, and the script itself travels in the ConfigMap, so a change to it
    rolls the pods (the config digest covers it)."""
    script = "/opt/alphapulse/peer-addresses.sh"
    for shard in (1, 2, 3):
        spec = pod_spec(manifests[f"StatefulSet/alphapulse-redis-shard-{shard}"])
        [init] = spec["initContainers"]
        assert init["command"] == ["sh", script, "nodes-conf", "/data/nodes.conf"]
        sidecar = next(c for c in spec["containers"] if c["name"] == "follow-peer-addresses")
        assert sidecar["command"] == ["sh", script, "follow",
                                      "/usr/local/etc/redis/secrets/password"]
        assert "env" not in sidecar
        assert sidecar["resources"]["limits"] == {"memory": "64Mi"}
        assert {m["mountPath"] for m in sidecar["volumeMounts"]} == {
            "/opt/alphapulse", "/usr/local/etc/redis/secrets"}
    data = manifests["ConfigMap/alphapulse-redis-config"]["data"]
    assert data["peer-addresses.sh"] == PEER_ADDRESSES_SCRIPT.read_text()


def test_a_named_storage_class_and_size_reach_the_claims():
    run = run_program("k8s", k8s_config(storageClass="fast-ssd", storageSize="10Gi"))
    [sts, *_] = [m for m in manifests_from_run(run) if m["kind"] == "StatefulSet"]
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_one_disruption_budget_per_shard(manifests):
    for shard in (1, 2, 3):
        pdb = manifests[f"PodDisruptionBudget/alphapulse-redis-shard-{shard}"]
        sts = manifests[f"StatefulSet/alphapulse-redis-shard-{shard}"]
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"] == sts["spec"]["selector"]


def test_network_policy_keeps_the_bus_between_nodes(manifests):
    policy = manifests["NetworkPolicy/alphapulse-redis-nodes"]["spec"]
    bus_rules = [r for r in policy["ingress"] if {"protocol": "TCP", "port": 16379} in r["ports"]]
    assert bus_rules == [{
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "alphapulse",
                                                  "app.kubernetes.io/component": "node"}}}],
        "ports": [{"protocol": "TCP", "port": 6379}, {"protocol": "TCP", "port": 16379}],
    }]
    client_ports = [r["ports"] for r in policy["ingress"] if r not in bus_rules]
    assert client_ports == [[{"protocol": "TCP", "port": 6379}]]


def test_headless_service_publishes_pods_before_they_are_ready(manifests):
    svc = manifests["Service/alphapulse-redis-nodes"]["spec"]
    assert svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"] is True
    assert [p["port"] for p in svc["ports"]] == [6379, 16379]


def test_the_password_is_only_in_the_secret(k8s: ProgramRun, manifests):
    secret_resource = next(r for r in k8s.resources if r.type == "kubernetes:core/v1:Secret")
    # Pulumi stores the Secret's data as a secret (the marker survives on the wire).
    assert SECRET_SIG in json.dumps(secret_resource.raw_inputs)
    data = manifests["Secret/alphapulse-redis-auth"]["stringData"]
    assert data["password"] == PASSWORD
    assert f'requirepass "{PASSWORD}"' in data["auth.conf"]
    assert PASSWORD in data["exporter-passwords.json"]
    for name, manifest in manifests.items():
        if manifest["kind"] != "Secret":
            assert PASSWORD not in json.dumps(manifest), f"{name} holds the password"
    for manifest in manifests.values():
        if "template" not in manifest.get("spec", {}):
            continue
        spec = pod_spec(manifest)
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            # No env var from a Secret, ever (visible in `kubectl describe`/`env`).
            for env in container.get("env", []):
                assert "secretKeyRef" not in env.get("valueFrom", {}), kind_name(manifest)
            assert not container.get("envFrom"), kind_name(manifest)
    assert "password" in k8s.secret_outputs


def test_exporter_reads_its_password_file_and_scrapes_every_node_by_name(manifests):
    deployment = manifests["Deployment/alphapulse-redis-exporter"]
    container = pod_spec(deployment)["containers"][0]
    assert "--redis.password-file=/etc/redis_exporter/passwords.json" in container["args"]
    [volume] = pod_spec(deployment)["volumes"]
    assert volume["secret"]["items"] == [{"key": "exporter-passwords.json",
                                          "path": "passwords.json"}]
    service = manifests["Service/alphapulse-redis-exporter"]["spec"]
    assert service["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_bootstrap_job_forms_the_planned_cluster_after_the_pods(k8s: ProgramRun, manifests):
    [job] = of_kind(manifests, "Job")
    plan = json.loads(manifests["ConfigMap/alphapulse-redis-bootstrap-plan"]["data"]["plan.json"])
    by_name = {n["name"]: n for n in plan["nodes"]}
    assert by_name["alphapulse-redis-replica-2"] == {
        "name": "alphapulse-redis-replica-2", "role": "replica",
        "host": FQDN.format(pod="alphapulse-redis-shard-2-1"), "port": 6379, "slots": [],
        "master": "alphapulse-redis-master-2", "pod": "alphapulse-redis-shard-2-1",
    }
    slots = sorted(tuple(r) for n in plan["nodes"] for r in n["slots"])
    assert slots == sorted(split_slots(3))
    spec = pod_spec(job)
    container = spec["containers"][0]
    assert container["command"][:3] == ["python", "-m", "k8s_bootstrap"]
    assert spec["restartPolicy"] == "Never"
    [auth] = [v for v in spec["volumes"] if v["name"] == "auth"]
    assert auth["secret"]["items"] == [{"key": "password", "path": "password"}]
    job_resource = next(r for r in k8s.resources if r.type == "kubernetes:batch/v1:Job")
    sts_urns = {r.urn for r in k8s.resources if r.type == "kubernetes:apps/v1:StatefulSet"}
    assert sts_urns <= set(job_resource.dependencies)


def test_the_job_name_changes_with_the_plan_only():
    def job_name(**overrides: str) -> str:
        run = run_program("k8s", k8s_config(**overrides))
        return next(m for m in manifests_from_run(run) if m["kind"] == "Job")["metadata"]["name"]

    same = job_name()
    assert job_name() == same
    assert job_name(maxmemory="256mb", storageSize="4Gi") == same  # redis.conf, not the plan
    assert job_name(masters="4") != same


def test_render_mode_sends_every_object_to_the_render_provider(k8s: ProgramRun):
    [provider] = [r for r in k8s.resources if r.type == "pulumi:providers:kubernetes"]
    assert provider.inputs["renderYamlToDirectory"].endswith("/rendered")
    # Updated in place, never replaced (a replaced ConfigMap/Secret replaces its dependents,
    # the StatefulSets): checked with the real engine in tests/e2e/test_k8s_render.py.
    assert provider.inputs["enableConfigMapMutable"] == "true"
    assert provider.inputs["enableSecretMutable"] == "true"
    objects = [r for r in k8s.resources if r.type.startswith("kubernetes:")]
    assert objects and all(r.provider.startswith(provider.urn) for r in objects)
    assert k8s.outputs["cluster_state"].startswith("not deployed: manifests rendered")


def test_without_render_dir_the_provider_applies():
    config = k8s_config()
    del config["renderDir"]
    run = run_program("k8s", config)
    [provider] = [r for r in run.resources if r.type == "pulumi:providers:kubernetes"]
    assert "renderYamlToDirectory" not in provider.inputs
    assert provider.inputs["enableConfigMapMutable"] == "true"
    # Applied to a cluster, the operations resource runs after the Job and the pods, names
    # every node by its pod's DNS name, and its report is the stack's (the mock answers ok).
    [ops] = [r for r in run.resources if r.type == K8S_OPERATIONS_TYPE]
    by_urn = {r.urn: r for r in run.resources}
    after = {by_urn[u].type.rsplit(":", 1)[-1] for u in ops.dependencies}
    assert {"Job", "StatefulSet", "Secret", "Service"} <= after
    assert [n["admin_host"] for n in ops.inputs["nodes"]] == [
        FQDN.format(pod=p) for p in ("alphapulse-redis-shard-1-0", "alphapulse-redis-shard-2-0",
                                     "alphapulse-redis-shard-3-0", "alphapulse-redis-shard-1-1",
                                     "alphapulse-redis-shard-2-1", "alphapulse-redis-shard-3-1")]
    assert ops.inputs["statefulsets"] == {f"alphapulse-redis-shard-{i}": 2 for i in (1, 2, 3)}
    assert ops.inputs["runner"]["auth_secret"] == "alphapulse-redis-auth"
    assert ops.raw_inputs["password"][SIG_KEY] == SECRET_SIG  # a secret
    assert run.outputs["cluster_state"] == "ok"
    assert len(run.outputs["node_ids"]) == 6
    # The Job forms the cluster once; the replica counts are the operations resource's.
    kinds = {r.type.rsplit(":", 1)[-1]: r for r in run.resources}
    assert kinds["Job"].ignore_changes == ["metadata", "spec"]
    assert kinds["StatefulSet"].ignore_changes == ["spec.replicas"]
    # ... and so is replacing pods of a new template (shard by shard, with a handover).
    assert {r.inputs["spec"]["updateStrategy"]["type"] for r in run.resources
            if r.type.endswith(":StatefulSet")} == {"OnDelete"}
    assert "revisions" in ops.inputs
    # The exporter rolls when the Secret changes, after the nodes switched.
    [exporter] = [r for r in run.resources if r.type.endswith(":Deployment")]
    assert ops.urn in exporter.dependencies


def test_render_mode_has_no_operations_resource(k8s: ProgramRun):
    assert not [r for r in k8s.resources if r.type == K8S_OPERATIONS_TYPE]
    assert all(r.ignore_changes == [] for r in k8s.resources)
    # Nothing runs a handover for rendered files: Kubernetes rolls them.
    assert {r.inputs["spec"]["updateStrategy"]["type"] for r in k8s.resources
            if r.type.endswith(":StatefulSet")} == {"RollingUpdate"}


def test_service_monitor_scrapes_each_node_through_the_exporter():
    run = run_program("k8s", k8s_config(serviceMonitor="true"))
    [monitor] = [m for m in manifests_from_run(run) if m["kind"] == "ServiceMonitor"]
    assert ("monitoring.coreos.com/v1", "ServiceMonitor") in CUSTOM_KINDS
    endpoints = monitor["spec"]["endpoints"]
    assert len(endpoints) == 7  # 6 nodes + the exporter's own /metrics
    first = endpoints[0]
    assert first["path"] == "/scrape" and first["port"] == "metrics"
    assert first["params"]["target"] == [
        "redis://" + FQDN.format(pod="alphapulse-redis-shard-1-0") + ":6379"]
    assert {"targetLabel": "node", "replacement": "alphapulse-redis-master-1"} in first[
        "relabelings"]


def test_bad_kubernetes_config_fails_before_any_resource():
    created: list[str] = []

    def record(resource):
        created.append(resource.urn)
        return dict(resource.inputs)

    config = k8s_config(subnet="10.0.0.0/24", kubernetesNodes="1")
    del config["storageClass"]
    text = config_problems("k8s", config, on_resource=record)
    assert created == []
    assert ":subnet:" in text and ":storageClass:" in text and ":kubernetesNodes:" in text


def test_a_redis_conf_change_rolls_the_pods_and_nothing_else_does():
    def digests(applied: bool = False, **overrides: str) -> dict[str, str]:
        config = k8s_config(**overrides)
        if applied:
            del config["renderDir"]
        run = run_program("k8s", config)
        return {
            m["metadata"]["name"]: m["spec"]["template"]["metadata"]["annotations"][
                "redis.alphapulse.io/config-sha256"]
            for m in manifests_from_run(run) if m["kind"] == "StatefulSet"
        }

    before = digests()
    assert digests(maxmemory="256mb").keys() == before.keys()
    assert all(a != b for a, b in zip(digests(maxmemory="256mb").values(), before.values(),
                                      strict=True))
    # The password lives in the Secret, not in redis.conf: no digest (and no restart) for it.
    assert digests(password="another-password-0123456789") == before
    # Applied to a cluster, live settings are CONFIG SET by the operations resource: no roll;
    # rendered files have nothing to set them live, so there they roll the pods.
    applied = digests(applied=True)
    assert digests(applied=True, maxmemoryPolicy="volatile-lru") == applied
    # A member added to a shard changes no other member's files but their names and one live
    # setting (repl-diskless-sync-max-replicas): scaling replaces no pod that stays.
    assert digests(applied=True, replicasPerMaster="2") == applied
    assert digests(applied=True, masters="4").items() >= applied.items()
    assert digests(maxmemoryPolicy="volatile-lru") != before


def test_engine_valkey_runs_valkey_server_and_valkey_cli_in_every_pod():
    """The image is the engine's; its binaries are valkey-*: the server, the probes and the
    peer-address sidecar (REDIS_CLI) use those names, never redis-cli."""
    run = run_program("k8s", k8s_config(engine="valkey"))
    statefulsets = [m for m in manifests_from_run(run) if m["kind"] == "StatefulSet"]
    assert statefulsets
    for manifest in statefulsets:
        containers = {c["name"]: c for c in pod_spec(manifest)["containers"]}
        redis = containers["redis"]
        assert redis["image"] == "valkey/valkey:8.0.1-bookworm"
        assert redis["command"][0] == "valkey-server"
        readiness = " ".join(redis["readinessProbe"]["exec"]["command"])
        assert "valkey-cli " in readiness and "redis-cli" not in readiness
        sidecar = containers["follow-peer-addresses"]
        assert {"name": "REDIS_CLI", "value": "valkey-cli"} in sidecar["env"]
    # Render mode: the Job forms the cluster, and checks the pods' server first.
    (job,) = [m for m in manifests_from_run(run) if m["kind"] == "Job"]
    command = pod_spec(job)["containers"][0]["command"]
    assert command[command.index("--engine") + 1] == "valkey"
