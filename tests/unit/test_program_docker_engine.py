"""How the program adapts its containers to the Docker engine it deploys to (Pulumi mocks)."""

from __future__ import annotations

import pulumi
import pytest

import components.docker_host
from components.program_errors import USER_ACTIONABLE_EXIT_CODE
from tests.support.program_runner import (
    SECRET_FILES_TYPE,
    SECRET_SIG,
    SIG_KEY,
    ProgramRun,
    config_problems,
    run_program,
    stack_config_file,
)

CONTAINER = "docker:index/container:Container"


def run_dev(monkeypatch: pytest.MonkeyPatch, swap_limit: bool, **config: str) -> ProgramRun:
    # __main__ asks the engine (docker info) whether it can limit swap; answer for it here.
    monkeypatch.setattr(components.docker_host, "supports_swap_limit", lambda _host: swap_limit)
    return run_program("dev", {**stack_config_file("dev"), **config})


def test_every_container_disables_swap_where_the_engine_can(monkeypatch):
    run = run_dev(monkeypatch, swap_limit=True)
    containers = run.of_type(CONTAINER)
    assert len(containers) == 7
    for container in containers:
        assert container.plain["memorySwap"] == container.plain["memory"], container.urn
        assert "memorySwap" not in container.ignore_changes, container.urn


def test_without_swap_accounting_memory_swap_is_neither_set_nor_diffed(monkeypatch):
    """Docker reports memorySwap -1 there whatever was asked: declaring it would make every
    preview show a change that no `up` can apply."""
    run = run_dev(monkeypatch, swap_limit=False)
    for container in run.of_type(CONTAINER):
        assert "memorySwap" not in container.plain, container.urn
        assert "memorySwap" in container.ignore_changes, container.urn


def test_node_containers_are_replaced_when_their_healthcheck_changes(monkeypatch):
    run = run_dev(monkeypatch, swap_limit=True)
    nodes = [c for c in run.of_type(CONTAINER) if "healthcheck" in c.plain]
    assert len(nodes) == 6
    assert all(c.replace_on_changes == ["healthcheck"] for c in nodes)


def test_secret_files_are_written_on_the_engine_of_docker_host(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://not-this-one:2375")
    run = run_dev(monkeypatch, swap_limit=True, **{"docker:host": "ssh://deploy@redis-host"})
    writers = run.of_type(SECRET_FILES_TYPE)
    assert len(writers) == 7
    assert {w.plain["docker_host"] for w in writers} == {"ssh://deploy@redis-host"}


HOSTS = ('[{"name": "h1", "dockerHost": "ssh://deploy@10.1.0.11", "address": "10.1.0.11"},'
         ' {"name": "h2", "dockerHost": "ssh://deploy@10.1.0.12", "address": "10.1.0.12"},'
         ' {"name": "h3", "dockerHost": "ssh://deploy@10.1.0.13", "address": "10.1.0.13"}]')


def run_three_hosts(monkeypatch: pytest.MonkeyPatch, answering: set[str]) -> ProgramRun:
    asked: list[str] = []

    def engine_problem(docker_host: str) -> str | None:
        asked.append(docker_host)
        return None if docker_host in answering else "ssh: connect to host: No route to host"

    monkeypatch.setattr(components.docker_host, "engine_problem", engine_problem)
    monkeypatch.setattr(components.docker_host, "supports_swap_limit", lambda _host: True)
    run = run_program("dev", {**stack_config_file("dev"), "hosts": HOSTS})
    assert len(asked) == 3
    return run


def test_each_host_gets_its_own_provider_and_every_node_resource_goes_through_it(monkeypatch):
    run = run_three_hosts(monkeypatch, {f"ssh://deploy@10.1.0.1{i}" for i in (1, 2, 3)})
    providers = {r.urn: r.plain["host"] for r in run.of_type("pulumi:providers:docker")}
    assert sorted(providers.values()) == [f"ssh://deploy@10.1.0.1{i}" for i in (1, 2, 3)]
    engine_of = {urn: host for urn, host in providers.items()}

    def engine(resource) -> str:
        assert resource.provider, f"{resource.urn} uses the default provider"
        return engine_of[resource.provider.rpartition("::")[0]]

    nodes = {n["name"]: n for n in run.outputs["nodes"]}
    address_of = {"h1": "10.1.0.11", "h2": "10.1.0.12", "h3": "10.1.0.13"}
    for container in [c for c in run.of_type(CONTAINER) if "healthcheck" in c.plain]:
        node = nodes[container.plain["name"]]
        # The container, its volumes and its secret files all live on the node's own host.
        assert engine(container) == f"ssh://deploy@{address_of[node['host']]}"
        assert node["ip"] == address_of[node["host"]] and node["port"] == node["host_port"]
    exporter_engines = []
    for writer in run.of_type(SECRET_FILES_TYPE):
        volume = writer.plain["volume"]
        owner = next((n for n in nodes.values() if volume == f"{n['name']}-secrets"), None)
        if owner is None:
            exporter_engines.append(writer.plain["docker_host"])
            continue
        assert writer.plain["docker_host"] == f"ssh://deploy@{address_of[owner['host']]}"
    # An exporter on every host, each scraping every node: monitoring outlives a host.
    assert sorted(exporter_engines) == sorted(providers.values())
    exporters = [c for c in run.of_type(CONTAINER) if "redis-exporter" in c.plain["name"]]
    assert sorted(engine(c) for c in exporters) == sorted(providers.values())
    assert run.outputs["exporter_urls"] == [f"http://{a}:9121" for a in address_of.values()]
    networks = run.of_type("docker:index/network:Network")
    assert sorted(engine(n) for n in networks) == sorted(providers.values())
    assert run.outputs["announce"] == "host-address"
    assert run.outputs["seed_endpoints"] == [f"{n['ip']}:{n['port']}" for n in nodes.values()]


def test_a_host_that_does_not_answer_stops_the_program_before_anything_is_declared(monkeypatch):
    logged: list[str] = []
    monkeypatch.setattr(pulumi.log, "error", lambda message, *_args, **_kw: logged.append(message))
    with pytest.raises(SystemExit) as exited:
        run_three_hosts(monkeypatch, {"ssh://deploy@10.1.0.11", "ssh://deploy@10.1.0.13"})
    assert exited.value.code == USER_ACTIONABLE_EXIT_CODE
    (message,) = logged
    assert "hosts: h2: the Docker engine at ssh://deploy@10.1.0.12 does not answer" in message
    assert "No route to host" in message and "Fix:" in message


def test_tls_gives_every_node_its_certificate_and_turns_plaintext_off(monkeypatch):
    from components.tls_material import cert_names, problems
    from tests.support.program_runner import unwrap_secrets

    run = run_dev(monkeypatch, swap_limit=True, tls="true")
    ca = run.outputs["tls_ca_cert"]
    assert "BEGIN CERTIFICATE" in ca
    writers = {w.plain["volume"]: w for w in run.of_type(SECRET_FILES_TYPE)}
    for node in run.outputs["nodes"]:
        writer = writers[f"{node['name']}-secrets"]
        files = unwrap_secrets(writer.plain["files"])
        assert files["tls-ca.crt"] == ca
        assert problems(ca, files["tls-node.crt"], files["tls-node.key"]) == []
        assert {node["ip"], node["container_ip"], "127.0.0.1"} <= set(
            cert_names(files["tls-node.crt"]))
        conf = writer.plain["config_files"]["redis.conf"]
        assert "\nport 0\n" in conf and "\ntls-port 6379\n" in conf
        assert "tls-cluster yes" in conf and "tls-replication yes" in conf
        # The keys travel to the engine inside the secret `files` input (encrypted in state).
        assert writer.inputs["files"].get(SIG_KEY) == SECRET_SIG
    exporter = next(c for c in run.of_type(CONTAINER) if "redis-exporter" in c.plain["name"])
    assert "--tls-ca-cert-file=/etc/redis_exporter/ca.crt" in exporter.plain["command"]
    nodes = [c for c in run.of_type(CONTAINER) if "healthcheck" in c.plain]
    assert all("--tls --cacert" in c.plain["healthcheck"]["tests"][1] for c in nodes)


def test_an_operators_ca_signs_every_node_and_its_key_stays_a_secret(monkeypatch):
    import json

    from components.tls_material import problems
    from tests.support.program_runner import TLS_MATERIAL_TYPE, unwrap_secrets
    from tests.unit.test_tls_material import company_pki

    key, chain, _root = company_pki()
    monkeypatch.setattr(components.docker_host, "supports_swap_limit", lambda _host: True)
    config = {**stack_config_file("dev"), "tls": "true", "tlsCaCert": chain, "tlsCaKey": key}
    run = run_program("dev", config, secret_keys=("password", "tlsCaKey"))
    assert run.outputs["tls_ca_cert"] == chain  # what the nodes and clients trust
    (material,) = run.of_type(TLS_MATERIAL_TYPE)
    assert material.plain["supplied_ca_cert"] == chain
    assert material.inputs["supplied_ca_key"].get(SIG_KEY) == SECRET_SIG
    assert key.splitlines()[1] not in json.dumps(material.plain["supplied_ca_cert"])
    for writer in run.of_type(SECRET_FILES_TYPE):
        files = unwrap_secrets(writer.plain["files"])
        assert key.splitlines()[1] not in json.dumps(files)  # the CA key reaches no node
        if "tls-node.crt" in files:
            assert problems(chain, files["tls-node.crt"], files["tls-node.key"]) == []

    # The key in plain config: refused, named, and not repeated in the message.
    problems = config_problems("dev", config, secret_keys=("password",))
    assert "tlsCaKey: is not a secret. Fix: pulumi config set --secret" in problems
    assert key.splitlines()[1] not in problems


def test_with_tls_prometheus_scrapes_rediss_targets_and_labels_them_by_address(monkeypatch):
    import re

    import yaml

    run = run_dev(monkeypatch, swap_limit=True, tls="true", deployPrometheus="true")
    prometheus = next(c for c in run.of_type(CONTAINER) if c.plain["name"].endswith("prometheus"))
    config = yaml.safe_load(next(u["content"] for u in prometheus.plain["uploads"]
                                 if u["file"].endswith("prometheus.yml")))
    nodes_job = next(j for j in config["scrape_configs"] if j["job_name"] == "redis_nodes")
    targets = [t for group in nodes_job["static_configs"] for t in group["targets"]]
    assert len(targets) == 6 and all(t.startswith("rediss://") for t in targets), targets
    relabel = next(r for r in nodes_job["relabel_configs"] if r.get("target_label") == "instance")
    assert re.fullmatch(relabel["regex"], targets[0]).group(1) == targets[0].split("//")[1]
