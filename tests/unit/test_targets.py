"""Target loading for operator commands: stack outputs, --node flags, password sources."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from clusterops.cli.targets import (
    TargetsError,
    add_target_arguments,
    load_targets,
    parse_node_flag,
    parse_size,
    targets_from_outputs,
)

SECRET = "s3cr3t-value-7f1c"


def stack_outputs(
    masters: int = 3, password: str | None = SECRET, host_address: str = "127.0.0.1"
) -> dict:
    """Outputs shaped like the project's stack outputs contract."""
    nodes = []
    for i in range(1, masters + 1):
        nodes.append({
            "name": f"alphapulse-redis-master-{i}", "role": "master", "master": None,
            "ip": f"172.28.0.{10 + i}", "port": 6379, "host_port": 7000 + i,
            "bus_host_port": 17000 + i, "container_name": f"alphapulse-redis-master-{i}",
        })
    for i in range(1, masters + 1):
        nodes.append({
            "name": f"alphapulse-redis-replica-{i}", "role": "replica",
            "master": f"alphapulse-redis-master-{i}",
            "ip": f"172.28.0.{10 + masters + i}", "port": 6379,
            "host_port": 7000 + masters + i, "bus_host_port": 17000 + masters + i,
            "container_name": f"alphapulse-redis-replica-{i}",
        })
    outputs = {
        "cluster_name": "alphapulse",
        "network_name": "alphapulse_redis-cluster",
        "nodes": nodes,
        "maxmemory_bytes": 536870912,
        "node_ids": {"alphapulse-redis-master-1": "a" * 40},
        "host_seed_endpoints": [f"{host_address}:{n['host_port']}" for n in nodes],
    }
    if password is not None:
        outputs["password"] = password
    return outputs


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_target_arguments(parser)
    return parser.parse_args(argv)


def write_outputs(tmp_path: Path, outputs: dict) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    return path


def test_outputs_default_to_container_addresses(tmp_path: Path) -> None:
    path = write_outputs(tmp_path, stack_outputs())
    targets = load_targets(parse(["--stack-outputs", str(path)]), environ={})

    assert [n.address for n in targets.nodes][:2] == ["172.28.0.11:6379", "172.28.0.12:6379"]
    assert targets.nodes[0].cluster_address == "172.28.0.11:6379"
    assert targets.password == SECRET
    assert (targets.expected_masters, targets.replicas_per_master) == (3, 1)
    assert targets.expected_nodes == 6
    assert targets.maxmemory_bytes == 536870912
    assert targets.network_name == "alphapulse_redis-cluster"
    assert targets.by_name("alphapulse-redis-replica-2").master == "alphapulse-redis-master-2"
    assert targets.by_name("alphapulse-redis-replica-2").container_name == (
        "alphapulse-redis-replica-2"
    )
    assert targets.node_ids == {"alphapulse-redis-master-1": "a" * 40}
    assert targets.source == str(path)


def test_via_host_ports_connects_to_published_ports_and_remaps_cluster_addresses(
    tmp_path: Path,
) -> None:
    path = write_outputs(tmp_path, stack_outputs())
    targets = load_targets(parse(["--stack-outputs", str(path), "--via-host-ports"]), environ={})

    assert [n.address for n in targets.nodes] == [f"127.0.0.1:{7000 + i}" for i in range(1, 7)]
    # The cluster announces container IPs; a client must be sent to the published port.
    assert targets.remap(("172.28.0.15", 6379)) == ("127.0.0.1", 7005)
    assert targets.remap(("10.9.9.9", 6379)) == ("10.9.9.9", 6379)


def test_via_host_ports_uses_the_published_address_not_loopback(tmp_path: Path) -> None:
    # bindAddress 10.1.2.3: the published ports are on that address, not on 127.0.0.1.
    path = write_outputs(tmp_path, stack_outputs(host_address="10.1.2.3"))
    targets = load_targets(parse(["--stack-outputs", str(path), "--via-host-ports"]), environ={})

    assert [n.address for n in targets.nodes] == [f"10.1.2.3:{7000 + i}" for i in range(1, 7)]
    assert targets.remap(("172.28.0.11", 6379)) == ("10.1.2.3", 7001)


def test_via_host_ports_needs_host_seed_endpoints(tmp_path: Path) -> None:
    outputs = stack_outputs()
    del outputs["host_seed_endpoints"]
    path = write_outputs(tmp_path, outputs)
    with pytest.raises(TargetsError, match="host_seed_endpoints"):
        load_targets(parse(["--stack-outputs", str(path), "--via-host-ports"]), environ={})


def test_via_host_ports_needs_host_port(tmp_path: Path) -> None:
    outputs = stack_outputs()
    del outputs["nodes"][3]["host_port"]
    path = write_outputs(tmp_path, outputs)
    with pytest.raises(TargetsError, match="alphapulse-redis-replica-1.*host_port"):
        load_targets(parse(["--stack-outputs", str(path), "--via-host-ports"]), environ={})


def test_password_file_beats_outputs_and_env(tmp_path: Path) -> None:
    path = write_outputs(tmp_path, stack_outputs())
    password_file = tmp_path / "pw"
    password_file.write_text("from-file\n")
    args = parse(["--stack-outputs", str(path), "--password-file", str(password_file)])

    targets = load_targets(args, environ={"REDIS_PASSWORD": "from-env"})

    assert targets.password == "from-file"  # trailing newline dropped


def test_outputs_password_beats_env(tmp_path: Path) -> None:
    path = write_outputs(tmp_path, stack_outputs())
    targets = load_targets(parse(["--stack-outputs", str(path)]),
                           environ={"REDIS_PASSWORD": "from-env"})
    assert targets.password == SECRET


def test_env_password_used_when_outputs_have_none(tmp_path: Path) -> None:
    path = write_outputs(tmp_path, stack_outputs(password=None))
    targets = load_targets(parse(["--stack-outputs", str(path)]),
                           environ={"REDIS_PASSWORD": "from-env"})
    assert targets.password == "from-env"
    assert load_targets(parse(["--stack-outputs", str(path)]), environ={}).password is None


def test_unrevealed_secret_is_explained(tmp_path: Path) -> None:
    path = write_outputs(tmp_path, stack_outputs(password="[secret]"))
    with pytest.raises(TargetsError, match="--show-secrets"):
        load_targets(parse(["--stack-outputs", str(path)]), environ={})
    targets = load_targets(parse(["--stack-outputs", str(path)]),
                           environ={"REDIS_PASSWORD": "from-env"})
    assert targets.password == "from-env"


def test_empty_or_missing_password_file_is_an_error(tmp_path: Path) -> None:
    path = write_outputs(tmp_path, stack_outputs())
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(TargetsError, match="is empty"):
        load_targets(parse(["--stack-outputs", str(path), "--password-file", str(empty)]), {})
    with pytest.raises(TargetsError, match="cannot read --password-file"):
        load_targets(
            parse(["--stack-outputs", str(path), "--password-file", str(tmp_path / "nope")]), {}
        )


def test_password_is_not_in_repr(tmp_path: Path) -> None:
    path = write_outputs(tmp_path, stack_outputs())
    targets = load_targets(parse(["--stack-outputs", str(path)]), environ={})
    assert SECRET not in repr(targets)


@pytest.mark.parametrize("argv", [["--password", SECRET], [f"--password={SECRET}"],
                                  ["-a", SECRET]])
def test_password_flag_is_refused_without_echoing_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["--node", "a=127.0.0.1:7000", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "process list" in err
    assert SECRET not in err


def test_invalid_json_error_does_not_echo_content(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text('{"password": "' + SECRET + '", oops}')
    with pytest.raises(TargetsError) as error:
        load_targets(parse(["--stack-outputs", str(path)]), environ={})
    assert "not valid JSON" in str(error.value)
    assert SECRET not in str(error.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.pop("nodes"), "'nodes' is missing"),
        (lambda o: o["nodes"][0].pop("ip"), "alphapulse-redis-master-1 has no 'ip'"),
        (lambda o: o["nodes"][1].update(port=70000), "master-2 has no valid 'port'"),
        (lambda o: o["nodes"][4].update(master="ghost"), "unknown master 'ghost'"),
        (lambda o: o["nodes"][2].update(role="leader"), "role must be one of"),
        (lambda o: o["nodes"][5].update(name="alphapulse-redis-master-1"), "appears twice"),
        (lambda o: o["nodes"][5].update(ip="172.28.0.11"), "share the address"),
        (lambda o: o.update(maxmemory_bytes="512mb"), "maxmemory_bytes"),
    ],
)
def test_bad_outputs_are_rejected_with_the_reason(mutate, message: str) -> None:
    outputs = stack_outputs()
    mutate(outputs)
    with pytest.raises(TargetsError, match=message):
        targets_from_outputs(outputs, source="outputs.json")


def test_missing_outputs_file(tmp_path: Path) -> None:
    with pytest.raises(TargetsError, match="cannot read --stack-outputs"):
        load_targets(parse(["--stack-outputs", str(tmp_path / "none.json")]), environ={})


def test_node_flags_with_roles() -> None:
    args = parse(["--node", "m1=127.0.0.1:7001:master", "--node", "m2=127.0.0.2:7002:master",
                  "--node", "r1=127.0.0.3:7003:replica", "--node", "r2=127.0.0.4:7004:replica"])
    targets = load_targets(args, environ={"REDIS_PASSWORD": "pw"})

    assert [n.name for n in targets.nodes] == ["m1", "m2", "r1", "r2"]
    assert targets.nodes[1].host == "127.0.0.2" and targets.nodes[1].port == 7002
    assert targets.nodes[1].cluster_address == "127.0.0.2:7002"
    assert (targets.expected_masters, targets.replicas_per_master) == (2, 1)
    assert targets.password == "pw"
    assert targets.maxmemory_bytes is None


def test_node_flags_without_roles_assume_one_replica_per_master() -> None:
    args = parse([arg for i in range(6) for arg in ("--node", f"n{i}=127.0.0.1:{7000 + i}")])
    targets = load_targets(args, environ={})
    assert (targets.expected_masters, targets.replicas_per_master) == (3, 1)


def test_overrides_for_expectations() -> None:
    args = parse(["--node", "a=127.0.0.1:7001", "--expected-masters", "1",
                  "--replicas-per-master", "0", "--maxmemory", "64mb"])
    targets = load_targets(args, environ={})
    assert (targets.expected_masters, targets.replicas_per_master) == (1, 0)
    assert targets.maxmemory_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize("spec", ["a", "a=127.0.0.1", "a=127.0.0.1:0", "=h:1",
                                  "a=127.0.0.1:7000:leader", "a=127.0.0.1:port"])
def test_bad_node_flags(spec: str) -> None:
    with pytest.raises(TargetsError, match="--node"):
        parse_node_flag(spec)


def test_node_flags_reject_via_host_ports() -> None:
    with pytest.raises(TargetsError, match="--via-host-ports needs stack outputs"):
        load_targets(parse(["--node", "a=127.0.0.1:7001", "--via-host-ports"]), environ={})


def test_one_source_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse([])
    with pytest.raises(SystemExit):
        parse(["--stack", "dev", "--node", "a=127.0.0.1:1"])
    assert "not allowed with" in capsys.readouterr().err


def test_stack_without_pulumi_cli_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(TargetsError, match="needs the pulumi CLI.*--stack-outputs"):
        load_targets(parse(["--stack", "dev"]), environ={})


@pytest.mark.parametrize(("text", "expected"), [("536870912", 536870912), ("512mb", 512 << 20),
                                                ("1gb", 1 << 30), ("2k", 2000), ("64MB", 64 << 20)])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_rejects_garbage() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("lots")


def kubernetes_outputs() -> dict:
    """A Kubernetes stack's outputs (outputs_version 4, target kubernetes), as far as the
    parser reads them."""
    fqdn = "alphapulse-redis-shard-{}-{}.alphapulse-redis-nodes.alphapulse-redis.svc.cluster.local"
    nodes = [{"name": f"alphapulse-redis-{role}-{i}", "role": role, "dns_name": fqdn.format(i, j),
              "port": 6379, "master": f"alphapulse-redis-master-{i}" if j else None}
             for i in (1, 2, 3) for j, role in enumerate(("master", "replica"))]
    return {"outputs_version": 4, "target": "kubernetes", "password": SECRET,
            "location": {"reachable_from": "inside-cluster", "namespace": "alphapulse-redis",
                         "auth_secret": "alphapulse-redis-auth"},
            "bootstrap_job": "alphapulse-redis-bootstrap-0123456789", "nodes": nodes}


def test_kubernetes_outputs_are_refused_with_the_in_cluster_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    def no_connection(*_args, **_kwargs):
        raise AssertionError("a node was contacted")

    monkeypatch.setattr(redis.Redis, "__init__", no_connection)
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(kubernetes_outputs()))
    with pytest.raises(TargetsError) as caught:
        load_targets(parse(["--stack-outputs", str(path)]), environ={})
    message = str(caught.value)
    assert "reachable only from inside the Kubernetes cluster" in message
    assert "has no 'ip'" not in message
    assert "port-forward` is not enough" in message
    command = message.split("\n", 1)[1]
    assert command.startswith("  kubectl -n alphapulse-redis run clusterops --rm -i ")
    assert "get job alphapulse-redis-bootstrap-0123456789" in command
    overrides = json.loads(command.split("--overrides='", 1)[1].rstrip("'"))
    [container] = overrides["spec"]["containers"]
    assert container["command"][:4] == ["python", "-m", "clusterops", "health"]
    assert ("alphapulse-redis-replica-2=alphapulse-redis-shard-2-1.alphapulse-redis-nodes."
            "alphapulse-redis.svc.cluster.local:6379:replica") in container["command"]
    assert overrides["spec"]["volumes"][0]["secret"]["secretName"] == "alphapulse-redis-auth"
    assert SECRET not in message
