"""The whole program under Pulumi's mocks: the resource graph per stack, secrets, options."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clusterops.provision.acl_users import password_hash
from components.redis_conf import EMPTY
from tests.support.program_runner import (
    DYNAMIC_TYPE,
    GENERATED_PASSWORD_TYPE,
    SECRET_FILES_TYPE,
    SECRET_SIG,
    SIG_KEY,
    ProgramRun,
    config_problems,
    default_outputs,
    run_program,
    stack_config_file,
)

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
PROD_PASSWORD = "prod-secret-password-0123456789"
DEV_GENERATED = "m" * 32  # what the mock RandomPassword returns


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return run_program("dev", stack_config_file("dev"))


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return run_program("prod", {**stack_config_file("prod"), "password": PROD_PASSWORD})


def node_containers(run: ProgramRun) -> list[Any]:
    return [c for c in run.of_type(CONTAINER) if "-redis-exporter" not in c.plain["name"]]


def test_dev_declares_six_nodes_an_exporter_one_network_six_volumes(dev: ProgramRun):
    containers = dev.of_type(CONTAINER)
    assert len(node_containers(dev)) == 6, [c.plain["name"] for c in containers]
    assert [c.plain["name"] for c in containers if c not in node_containers(dev)] == [
        "alphapulse-redis-exporter"
    ]
    assert len(dev.of_type(NETWORK)) == 1 and len(data_volumes(dev)) == 6
    assert len(dev.of_type(DYNAMIC_TYPE)) == 1
    # Plus one small secrets volume per container, each filled by a SecretFiles resource.
    assert len(dev.of_type(VOLUME)) == 6 + 7 and len(dev.of_type(SECRET_FILES_TYPE)) == 7


def data_volumes(run: ProgramRun) -> list[Any]:
    return [v for v in run.of_type(VOLUME) if v.plain["name"].endswith("-data")]


def mounted_secret_files(run: ProgramRun, container: Any, key: str = "files") -> dict[str, str]:
    """The files a container gets: those SecretFiles writes into a volume it mounts (``key``
    "files": the secret ones, "config_files": the plain ones)."""
    volumes = {v.urn: v.plain["name"] for v in run.of_type(VOLUME)}
    mounted = {m["volumeName"]: m for m in container.plain.get("volumes", [])}
    files: dict[str, str] = {}
    for writer in run.of_type(SECRET_FILES_TYPE):
        name = writer.plain["volume"]
        if name in mounted:
            assert mounted[name].get("readOnly") is True, (container.urn, name)
            assert name in volumes.values()
            files.update(writer.plain.get(key) or {})
    return files


def test_host_ports_are_unique_and_the_guides(dev: ProgramRun):
    published = [
        (p["external"], c.plain["name"]) for c in dev.of_type(CONTAINER) for p in c.plain["ports"]
    ]
    ports = [port for port, _ in published]
    assert len(ports) == len(set(ports)), published
    client_ports = sorted(
        p["external"] for c in node_containers(dev) for p in c.plain["ports"]
        if p["internal"] == 6379
    )
    assert client_ports == list(range(7001, 7007))
    assert 9121 in ports
    assert all(p["ip"] == "127.0.0.1" for c in dev.of_type(CONTAINER) for p in c.plain["ports"])


def test_each_node_has_its_planned_ip_and_its_own_volume_at_the_data_dir(dev: ProgramRun):
    network = dev.of_type(NETWORK)[0].inputs
    assert network["ipamConfigs"][0]["subnet"] == "172.28.0.0/24"
    nodes = {n["name"]: n for n in dev.outputs["nodes"]}
    volume_names = {v.plain["name"] for v in dev.of_type(VOLUME)}
    for container in node_containers(dev):
        name = container.plain["name"]
        (attachment,) = container.plain["networksAdvanced"]
        assert attachment["name"] == network["name"]
        assert attachment["ipv4Address"] == nodes[name]["ip"]
        volume, secrets = container.plain["volumes"]
        assert volume["containerPath"] == "/data"
        assert volume["volumeName"] == f"{name}-data" and volume["volumeName"] in volume_names
        assert secrets["containerPath"] == "/usr/local/etc/redis/secrets"
        assert container.plain["restart"] == "unless-stopped"
        assert container.plain["memory"] == 1024  # 2 x maxmemory 512mb, in MB
        assert container.plain["healthcheck"]["tests"][0] == "CMD-SHELL"
        assert container.plain["command"] == [
            "redis-server", "/usr/local/etc/redis/secrets/redis.conf"]
        # No upload: it would be a container input, replaced whenever a setting changes.
        assert not container.plain.get("uploads")
        assert container.delete_before_replace


def test_each_node_gets_its_own_redis_conf(dev: ProgramRun):
    nodes = {n["name"]: n for n in dev.outputs["nodes"]}
    for container in node_containers(dev):
        conf = mounted_secret_files(dev, container, "config_files")["redis.conf"]
        assert f"cluster-announce-ip {nodes[container.plain['name']]['ip']}" in conf
        assert "appendfsync everysec" in conf and "maxmemory 512mb" in conf


def _node_container_inputs(run: ProgramRun) -> dict[str, dict[str, Any]]:
    # memory/memorySwap follow maxmemory by default (2 x) and are updated in place by Docker.
    return {c.plain["name"]: {k: v for k, v in c.plain.items() if k not in ("memory",
                                                                           "memorySwap")}
            for c in node_containers(run)}


@pytest.mark.parametrize("change", [
    {"maxmemory": "300mb"}, {"maxmemoryPolicy": "noeviction"}, {"appendfsync": "always"},
    {"rdbSave": ""}, {"nodeTimeoutMs": "2000"}, {"minReplicasToWrite": "1"},
    {"replicaValidityFactor": "10"}, {"appendonly": "false"},
])
def test_a_live_setting_changes_no_container_input_only_the_files_and_the_bootstrap(
        dev: ProgramRun, change: dict[str, str]):
    """What decides "replace": pulumi-docker replaces a container when its command, uploads,
    labels ... change. A live setting must reach the nodes through the files volume (rewritten
    in place) and the bootstrap's settings (CONFIG SET), never through a container input."""
    changed = run_program("dev", {**stack_config_file("dev"), **change})
    assert _node_container_inputs(changed) == _node_container_inputs(dev), change
    (before,), (after,) = dev.of_type(DYNAMIC_TYPE), changed.of_type(DYNAMIC_TYPE)
    differing = [k for k in after.plain["settings"]
                 if after.plain["settings"][k] != before.plain["settings"][k]]
    assert len(differing) == 1, (change, differing)
    line = f"{differing[0]} {after.plain['settings'][differing[0]] or EMPTY}\n"
    twins = {c.plain["name"]: c for c in node_containers(changed)}
    for container in node_containers(dev):
        old = mounted_secret_files(dev, container, "config_files")["redis.conf"]
        new = mounted_secret_files(changed, twins[container.plain["name"]],
                                   "config_files")["redis.conf"]
        assert line not in old and line in new, (container.plain["name"], line)


def test_what_a_node_reads_only_at_start_is_a_container_label(dev: ProgramRun):
    """A change to it must replace the container (a label is a replacing input), not sit
    unread in the file: each node carries the digest of its start-only lines."""
    digests = {}
    for container in node_containers(dev):
        labels = {item["label"]: item["value"] for item in container.plain["labels"]}
        digests[container.plain["name"]] = labels["com.alphapulse.restart-config"]
    assert len(set(digests.values())) == 6  # each node's own address and identity


def test_the_bootstrap_gets_every_live_setting(dev: ProgramRun):
    (bootstrap,) = dev.of_type(DYNAMIC_TYPE)
    settings = bootstrap.plain["settings"]
    assert settings["maxmemory"] == "512mb" and settings["cluster-node-timeout"] == "1000"
    assert settings["save"] == "900 1 300 10 60 10000" and settings["appendfsync"] == "everysec"
    assert bootstrap.plain["rewrite_config"] is False  # the files volume persists them


def test_prod_volumes_are_protected_and_retained(prod: ProgramRun, dev: ProgramRun):
    assert all(v.protect and v.retain_on_delete for v in data_volumes(prod))
    assert not any(v.protect or v.retain_on_delete for v in dev.of_type(VOLUME))
    assert prod.of_type(NETWORK)[0].plain["ipamConfigs"][0]["subnet"] != "172.28.0.0/24"


def _plain_occurrences(value: Any, password: str, path: str = "") -> list[str]:
    """Paths where the password appears outside a Pulumi secret wrapper."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return []
        return [p for k, v in value.items() for p in _plain_occurrences(v, password, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _plain_occurrences(v, password,
                                                                           f"{path}[{i}]")]
    return [path] if isinstance(value, str) and password in value else []


@pytest.mark.parametrize(("stack", "password"), [("dev", DEV_GENERATED), ("prod", PROD_PASSWORD)])
def test_password_is_never_plaintext_in_any_resource_input(stack, password, dev, prod):
    run = dev if stack == "dev" else prod
    for resource in run.resources:
        if resource.type == GENERATED_PASSWORD_TYPE:
            continue  # the one resource that makes the password (its `result` is a secret output)
        leaks = _plain_occurrences(resource.raw_inputs, password)
        assert not leaks, f"{resource.urn} carries the password in plain text at {leaks}"
    for container in run.of_type(CONTAINER):
        for key in ("command", "envs", "labels", "healthcheck", "entrypoints"):
            assert password not in json.dumps(container.plain.get(key)), (container.urn, key)
    # No container input carries it at all (a rotation must not replace the containers)...
    for container in run.of_type(CONTAINER):
        assert password not in json.dumps(container.plain), container.urn
    # ...it reaches every node and the exporter as files in a read-only secrets volume.
    for container in run.of_type(CONTAINER):
        name = container.plain["name"]
        if "prometheus" in name:
            continue
        files = json.dumps(mounted_secret_files(run, container))
        if run.outputs["username"] is None:
            assert password in files, container.urn
        elif "exporter" in name:
            # acl: true (prod): the exporter has its own user, and not even the app's hash.
            assert password not in files and password_hash(password) not in files, container.urn
        else:
            # The nodes hold only its hash (users.acl); replicas use the replication user.
            assert password not in files and password_hash(password) in files, container.urn


def test_acl_users_generated_passwords_are_never_plaintext(prod):
    """prod (acl: true): the admin, exporter and replication passwords are generated (the mock
    makes each one DEV_GENERATED) and stay secrets in every input."""
    assert prod.outputs["admin_username"] == "admin"
    for resource in prod.resources:
        if resource.type != GENERATED_PASSWORD_TYPE:
            leaks = _plain_occurrences(resource.raw_inputs, DEV_GENERATED)
            assert not leaks, f"{resource.urn} carries a user's password in plain text at {leaks}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_output_that_carries_the_password_is_secret(stack, dev, prod):
    run = dev if stack == "dev" else prod
    password = run.outputs["password"]
    assert "password" in run.secret_outputs
    for key, value in run.outputs.items():
        if password in json.dumps(value):
            assert key in run.secret_outputs, f"output {key} carries the password in plain text"


def test_exporter_targets_every_node(dev: ProgramRun):
    (exporter,) = [c for c in dev.of_type(CONTAINER) if c.plain["name"].endswith("exporter")]
    (content,) = mounted_secret_files(dev, exporter).values()
    targets = set(json.loads(content))
    assert targets == {f"redis://{n['ip']}:6379" for n in dev.outputs["nodes"]}
    assert exporter.plain["ports"][0]["external"] == 9121
    assert "--redis.password-file=/etc/redis_exporter/passwords.json" in exporter.plain["command"]


def test_bootstrap_depends_on_every_node_container_and_gets_the_plan(dev: ProgramRun):
    (bootstrap,) = dev.of_type(DYNAMIC_TYPE)
    container_urns = {c.urn for c in node_containers(dev)}
    assert container_urns <= set(bootstrap.dependencies)
    planned = [(n["name"], n["role"], n.get("master")) for n in bootstrap.plain["nodes"]]
    assert planned == [(n["name"], n["role"], n.get("master")) for n in dev.outputs["nodes"]]
    assert bootstrap.plain["nodes"][0]["slots"] == [[0, 5460]]


def test_children_are_parented_to_the_component(dev: ProgramRun):
    for resource in dev.resources:
        if resource.type == GENERATED_PASSWORD_TYPE:
            continue  # made by the program before the component, as its input
        assert "alphapulse:redis:RedisCluster" in resource.parent, resource.urn


def test_outputs_are_ready_for_application_stacks(dev: ProgramRun):
    out = dev.outputs
    assert out["host_seed_endpoints"] == [f"127.0.0.1:{p}" for p in range(7001, 7007)]
    assert out["seed_endpoints"][0] == "172.28.0.11:6379"
    assert out["network_name"] == "alphapulse_redis-cluster"
    assert out["exporter_url"] == "http://127.0.0.1:9121"
    assert [n["role"] for n in out["nodes"]] == ["master"] * 3 + ["replica"] * 3
    assert out["client_settings"]["startup_nodes"][0] == {"host": "172.28.0.11", "port": 6379}


def test_cluster_state_and_node_ids_outputs_come_from_the_bootstrap():
    # The outputs must report what the bootstrap resource found, never a constant: give it a
    # state and ids no program would write itself and expect exactly those.
    def bootstrap_reports(resource):
        state = default_outputs(resource)
        if resource.type == DYNAMIC_TYPE:
            state["cluster_state"] = "state-from-bootstrap"
            state["node_ids"] = {n["name"]: f"id-of-{n['name']}" for n in resource.inputs["nodes"]}
        return state

    out = run_program("dev", stack_config_file("dev"), on_resource=bootstrap_reports).outputs
    assert out["cluster_state"] == "state-from-bootstrap"
    assert out["node_ids"] == {n["name"]: f"id-of-{n['name']}" for n in out["nodes"]}


def test_prod_without_password_fails_before_any_resource():
    created: list[str] = []

    def record(resource):
        created.append(resource.urn)
        return dict(resource.inputs)

    problems = config_problems("prod", stack_config_file("prod"), on_resource=record)
    assert "password" in problems
    assert created == []


def test_bad_config_fails_before_any_resource_naming_every_key():
    created: list[str] = []

    def record(resource):
        created.append(resource.urn)
        return dict(resource.inputs)

    # One error diagnostic holding every problem, then exit 32 (config_problems checks it): the
    # official CLI prints just that list, no traceback, no "unhandled error".
    problems = config_problems("dev", {"masters": "2", "maxmemory": "512 potatoes"},
                               on_resource=record)
    assert created == []
    assert ":masters:" in problems and ":maxmemory:" in problems


def test_prometheus_is_only_declared_when_asked(dev: ProgramRun):
    assert not [c for c in dev.of_type(CONTAINER) if "prometheus" in c.plain["name"]]
    run = run_program("dev", {**stack_config_file("dev"), "deployPrometheus": "true"})
    (prom,) = [c for c in run.of_type(CONTAINER) if "prometheus" in c.plain["name"]]
    files = {u["file"]: u["content"] for u in prom.plain["uploads"]}
    assert "redis_cluster_state" in files["/etc/prometheus/redis-cluster-alerts.yml"]
    assert "/scrape" in files["/etc/prometheus/prometheus.yml"]


HANDOVER_TYPE = "pulumi-python:dynamic/alphapulse:NodeHandover"


def test_node_containers_are_chained_per_shard_replica_first_for_a_rolling_replacement(
        dev: ProgramRun):
    """The engine runs a resource's step only after its dependencies' steps: container(n)
    waits for handover(n), which waits for the container replaced before n in its shard."""
    containers = {c.plain["name"]: c for c in node_containers(dev)}
    handovers = {h.plain["node"]["name"]: h for h in dev.of_type(HANDOVER_TYPE)}
    assert sorted(handovers) == sorted(containers)
    for node in dev.outputs["nodes"]:
        name = node["name"]
        assert handovers[name].urn in containers[name].dependencies
        shard = {m["name"] for m in handovers[name].plain["shard"]}
        master = name if node["role"] == "master" else node["master"]
        assert shard == {master} | {n["name"] for n in dev.outputs["nodes"]
                                    if n.get("master") == master}
        if node["role"] == "master":
            replicas = [n["name"] for n in dev.outputs["nodes"] if n.get("master") == name]
            assert [containers[r].urn for r in replicas] == [
                d for d in handovers[name].dependencies if d in
                {c.urn for c in containers.values()}]
        else:
            assert not set(handovers[name].dependencies) & {c.urn for c in containers.values()}
        assert "|" in handovers[name].plain["trigger"]  # image | start-only config digest


def test_a_live_setting_does_not_trigger_a_handover(dev: ProgramRun):
    changed = run_program("dev", {**stack_config_file("dev"), "maxmemory": "300mb"})
    assert ({h.plain["node"]["name"]: h.plain["trigger"] for h in dev.of_type(HANDOVER_TYPE)}
            == {h.plain["node"]["name"]: h.plain["trigger"]
                for h in changed.of_type(HANDOVER_TYPE)})


def test_prod_wires_every_acl_user_to_what_uses_it(prod: ProgramRun):
    """acl: true (prod's default): each node gets users.acl and an auth.conf naming it and the
    replication user; the healthcheck and the exporter act as the exporter user; the bootstrap
    gets the admin user, in every node, and the users as a secret."""
    for container in node_containers(prod):
        files = mounted_secret_files(prod, container)
        users = files["users.acl"]
        assert users.startswith("user default off") and "user admin on #" in users
        assert files["auth.conf"].startswith("aclfile /usr/local/etc/redis/secrets/users.acl")
        assert 'masteruser "replication"' in files["auth.conf"]
        assert "requirepass" not in files["auth.conf"]
        assert files["password"] == DEV_GENERATED  # the exporter user's (generated) password
        assert "redis-cli --user exporter " in container.plain["healthcheck"]["tests"][1]
    (exporter,) = [c for c in prod.of_type(CONTAINER) if c not in node_containers(prod)]
    assert "--redis.user=exporter" in exporter.plain["command"]
    assert PROD_PASSWORD not in json.dumps(mounted_secret_files(prod, exporter))
    (bootstrap,) = prod.of_type(DYNAMIC_TYPE)
    assert {node["username"] for node in bootstrap.plain["nodes"]} == {"admin"}
    assert bootstrap.raw_inputs["acl"][SIG_KEY] == SECRET_SIG
    assert prod.outputs["username"] == "app" and prod.outputs["admin_username"] == "admin"


def test_dev_keeps_the_single_password(dev: ProgramRun):
    (bootstrap,) = dev.of_type(DYNAMIC_TYPE)
    assert "acl" not in bootstrap.raw_inputs
    assert all("username" not in node for node in bootstrap.plain["nodes"])
    assert dev.outputs["username"] is None and dev.outputs["admin_password"] is None


def test_engine_valkey_runs_valkey_server_and_its_cli_in_the_healthcheck():
    run = run_program("dev", {**stack_config_file("dev"), "engine": "valkey"})
    images = {r.plain["name"] for r in run.of_type("docker:index/remoteImage:RemoteImage")}
    assert "valkey/valkey:8.0.1-bookworm" in images and "redis:7.0.15-bookworm" not in images
    for container in node_containers(run):
        assert container.plain["command"][0] == "valkey-server"
        test = " ".join(container.plain["healthcheck"]["tests"])
        assert "valkey-cli " in test and "redis-cli" not in test
    bootstrap = next(r for r in run.of_type(DYNAMIC_TYPE) if "engine" in r.plain)
    assert bootstrap.plain["engine"] == "valkey"


def test_a_redis_stack_declares_what_it_did_before_the_engine_setting(dev: ProgramRun):
    for container in node_containers(dev):
        assert container.plain["command"][0] == "redis-server"
        assert "redis-cli " in " ".join(container.plain["healthcheck"]["tests"])
    assert not [r for r in dev.of_type(DYNAMIC_TYPE) if "engine" in r.plain]
