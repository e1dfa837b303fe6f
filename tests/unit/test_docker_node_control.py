"""DockerNodeControl's docker commands, run against a recording stand-in for the docker CLI.

The e2e drills prove the faults on real containers; this checks, without Docker, which
container and network each action names, and that `heal` gives back the static IP and the
aliases `isolate` took away.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from clusterops.cli.targets import targets_from_outputs
from clusterops.core.errors import NodeControlError
from clusterops.tasks.node_control import DockerNodeControl

OUTPUTS = {
    "network_name": "ap-net",
    "nodes": [
        {"name": "m1", "role": "master", "ip": "172.28.0.11", "port": 6379,
         "container_name": "ap-m1"},
        {"name": "r1", "role": "replica", "master": "m1", "ip": "172.28.0.12", "port": 6379,
         "container_name": "ap-r1"},
    ],
}


@pytest.fixture
def fake_docker(tmp_path: Path) -> tuple[Path, Path]:
    """A docker stand-in that logs its argv (one JSON list per line) and answers `inspect`."""
    log = tmp_path / "calls.jsonl"
    inspect = {"Id": "0123456789abcdef", "Name": "/ap-m1", "NetworkSettings": {"Networks": {
        "ap-net": {"Aliases": ["0123456789ab", "ap-m1", "redis-m1"]}}}}
    program = tmp_path / "docker"
    program.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"if sys.argv[1] == 'inspect': print({json.dumps(json.dumps(inspect))})\n"
        "if sys.argv[-1] == 'ap-missing': sys.exit('Error: No such container: ap-missing')\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    return program, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_each_action_names_the_nodes_container(fake_docker: tuple[Path, Path]) -> None:
    program, log = fake_docker
    control = DockerNodeControl(targets_from_outputs(OUTPUTS), docker=str(program),
                                stop_timeout_s=7)
    control.kill("m1")
    control.stop("r1")
    control.start("m1")
    assert calls(log) == [["kill", "ap-m1"], ["stop", "--time", "7", "ap-r1"],
                          ["start", "ap-m1"]]


def test_heal_restores_the_static_ip_and_only_the_nodes_own_aliases(
        fake_docker: tuple[Path, Path]) -> None:
    program, log = fake_docker
    control = DockerNodeControl(targets_from_outputs(OUTPUTS), docker=str(program))
    control.isolate("m1")
    control.heal("m1")
    assert calls(log)[1:] == [
        ["network", "disconnect", "ap-net", "ap-m1"],
        # Docker's automatic aliases (short id, container name) are not passed back.
        ["network", "connect", "--ip", "172.28.0.11", "--alias", "redis-m1", "ap-net", "ap-m1"],
    ]


def test_unknown_nodes_and_failing_commands_are_node_control_errors(
        fake_docker: tuple[Path, Path]) -> None:
    program, _log = fake_docker
    outputs = {**OUTPUTS, "nodes": [{**OUTPUTS["nodes"][0], "container_name": "ap-missing"}]}
    control = DockerNodeControl(targets_from_outputs(outputs), docker=str(program))
    with pytest.raises(NodeControlError, match="unknown node 'm9'"):
        control.kill("m9")
    with pytest.raises(NodeControlError, match="No such container: ap-missing"):
        control.kill("m1")


def test_outputs_without_a_network_cannot_drive_docker() -> None:
    outputs = {key: value for key, value in OUTPUTS.items() if key != "network_name"}
    with pytest.raises(NodeControlError, match="no network_name"):
        DockerNodeControl(targets_from_outputs(outputs))
