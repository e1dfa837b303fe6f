"""The Kubernetes target's runtime pieces against real redis-server 7.0.15 processes.

- the bootstrap Job's code (k8s_bootstrap.job.run): names resolved to IPs, the cluster formed
  by clusterops with nodes announcing their DNS names, adopted on a re-run, refused when a node
  holds foreign data;
- components/peer-addresses.sh: after a full restart in which every node got a new IP, the
  cluster re-forms only because the init container pointed nodes.conf at the new addresses, or,
  when no peer resolved yet as the init containers ran (what real pods see), because the
  sidecar met each moved peer at its new address (the control restart without either stays
  broken).

Each node listens on its own loopback address (127.0.0.x), which stands in for a pod IP, and
the DNS names come from a resolver table (a stub `getent` for the shell script).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from clusterops.core.errors import EXIT_USAGE, AuthError
from clusterops.core.poll import Deadline, poll
from components.k8s_cluster import PEER_ADDRESSES_SCRIPT, bootstrap_plan
from components.k8s_plan import place_cluster
from components.spec import build_spec
from k8s_bootstrap import job
from k8s_bootstrap.job import run
from tests.support.dns_stub import dns_stub
from tests.support.redis_nodes import RedisNodes
from tests.support.waiting import wait_for, wait_until

FIRST_IPS = [f"127.0.0.{11 + i}" for i in range(6)]
MOVED_IPS = [f"127.0.0.{31 + i}" for i in range(6)]


def plan_and_names(nodes: RedisNodes) -> tuple[dict, list[str]]:
    """The k8s stack's real bootstrap plan, with each node's port set to its test process."""
    spec = build_spec({"target": "kubernetes", "storageClass": "cluster-default"}, "k8s", False)
    plan = bootstrap_plan(place_cluster(spec))
    for entry, node in zip(plan["nodes"], nodes, strict=True):
        entry["port"] = node.port
    return plan, [entry["host"] for entry in plan["nodes"]]


def announce(nodes: RedisNodes, names: list[str]) -> None:
    """What each pod's redis.conf says (render_redis_conf with announce_hostname)."""
    for node, name in zip(nodes, names, strict=True):
        with node.client() as conn:
            # Only for loopback test addresses: a pod has one IP, so its bus connections come
            # from it; here the kernel would pick 127.0.0.1 unless told otherwise.
            conn.config_set("bind-source-addr", node.host)
            conn.config_set("cluster-announce-hostname", name)
            conn.config_set("cluster-preferred-endpoint-type", "hostname")
            conn.execute_command("CONFIG", "REWRITE")  # a restart keeps them, like the conf


def run_job(tmp_path: Path, plan: dict, nodes: RedisNodes, table: dict[str, str],
            capsys: pytest.CaptureFixture[str], timeout: float = 30.0,
            password: str | None = None) -> tuple[int, dict]:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    password_file = tmp_path / "password"
    # A Secret file may end with a newline.
    password_file.write_text((nodes.password if password is None else password) + "\n")

    def resolve(host: str) -> str:
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    code = run(plan_file, password_file, timeout, resolve=resolve,
               termination_log=tmp_path / "termination-log")
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads((tmp_path / "termination-log").read_text()) == report
    assert nodes.password not in json.dumps(report)
    return code, report


def cluster_ok(nodes: RedisNodes) -> bool:
    try:
        return all(
            "cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO") for n in nodes
        )
    except redis.RedisError:
        return False


def becomes_true(probe, timeout_s: float) -> bool:
    """Whether ``probe`` holds within ``timeout_s`` (a RedisError, e.g. CLUSTERDOWN while a lone
    node's rejoin delay runs, is "not yet"); False is an answer here, not a test failure."""

    def quietly() -> tuple[bool, None]:
        try:
            return bool(probe()), None
        except redis.RedisError:
            return False, None

    return poll(quietly, Deadline.after(timeout_s), 0.1)[0]


def move_to(nodes: RedisNodes, addresses: list[str]) -> None:
    """Stop every node, then bring it back on a new address (a rescheduled pod's new IP)."""
    for node in nodes:
        node.stop()
    for node, address in zip(nodes, addresses, strict=True):
        text = node.config_path.read_text()
        text = re.sub(r"(?m)^bind .*$", f"bind {address}", text)
        text = re.sub(r"(?m)^bind-source-addr .*$", f"bind-source-addr {address}", text)
        node.config_path.write_text(text)
        node.host = address


def refresh_nodes_conf(nodes: RedisNodes, table: dict[str, str], tmp_path: Path) -> None:
    """Run the init container's mode of the script on each node's nodes.conf."""
    env = dns_stub(table, tmp_path)
    for node in nodes:
        subprocess.run(["sh", str(PEER_ADDRESSES_SCRIPT), "nodes-conf",
                        str(node.directory / "nodes.conf")],
                       env=env, check=True, capture_output=True, text=True)


@contextmanager
def following_peers(nodes: RedisNodes, table: dict[str, str],
                    tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Each node's sidecar (the script's follow mode), polling every 0.2 s."""
    env = dns_stub(table, tmp_path)
    password_file = tmp_path / "sidecar-password"
    password_file.write_text(nodes.password + "\n")
    followers = [subprocess.Popen(
        ["sh", str(PEER_ADDRESSES_SCRIPT), "follow", str(password_file), node.host,
         str(node.port), "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for node in nodes]
    try:
        yield followers
    finally:
        for follower in followers:
            follower.terminate()
        for follower in followers:
            follower.wait(timeout=10)


def test_the_job_forms_by_name_then_adopts(redis_nodes_factory, tmp_path, capsys):
    nodes = redis_nodes_factory(6, hosts=FIRST_IPS)
    plan, names = plan_and_names(nodes)
    announce(nodes, names)
    table = dict(zip(names, FIRST_IPS, strict=True))

    code, report = run_job(tmp_path, plan, nodes, table, capsys)
    assert code == 0, report
    assert report["action"] == "created" and report["cluster_state"] == "ok"
    assert report["addresses"]["alphapulse-redis-replica-3"] == f"{FIRST_IPS[5]}:{nodes[5].port}"
    # Clients are redirected by name: CLUSTER SLOTS answers with the announced hostnames.
    slots = nodes[0].client().execute_command("CLUSTER", "SLOTS")
    endpoints = {entry[2][0] for entry in slots}
    assert endpoints == set(names[:3]), endpoints

    code, again = run_job(tmp_path, plan, nodes, table, capsys)
    assert code == 0 and again["action"] == "adopted"
    assert again["node_ids"] == report["node_ids"]


def test_the_job_refuses_a_node_holding_data_and_writes_nothing(
        redis_nodes_factory, tmp_path, capsys):
    nodes = redis_nodes_factory(6, hosts=FIRST_IPS)
    plan, names = plan_and_names(nodes)
    # A lone node that holds data but no slots (a PVC from an earlier deployment, say).
    holder = nodes[4].client()
    holder.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    wait_for("the lone node to accept a write", lambda: holder.set("left-over", "1"), 10.0)
    holder.execute_command("CLUSTER", "DELSLOTSRANGE", 0, 16383)
    code, report = run_job(tmp_path, plan, nodes, dict(zip(names, FIRST_IPS, strict=True)),
                           capsys)
    assert code == 1
    assert "UnsafeClusterStateError" in report["error"] and "holds 1 key(s)" in report["error"]
    for node in nodes:  # nothing was sent: every node still knows only itself, no slots
        lines = node.client().execute_command("CLUSTER", "NODES").strip().splitlines()
        assert len(lines) == 1 and lines[0].split()[8:] == []


@pytest.mark.parametrize("refusal", [
    AuthError("alphapulse-redis-master-1: the password was refused"),
    redis.AuthenticationError("WRONGPASS invalid username-password pair"),
])
def test_an_auth_error_exits_with_clusterops_auth_code(refusal, tmp_path, capsys, monkeypatch):
    def refused(*_args, **_kwargs):
        raise refusal

    monkeypatch.setattr(job, "refuse_other_engine", refused)  # the first contact refused
    plan = {"nodes": [{"name": "m", "role": "master", "host": "m.example", "port": 6379}]}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    password_file = tmp_path / "password"
    password_file.write_text("s3cret-0123\n")
    code = run(plan_file, password_file, 5.0, resolve=lambda _host: "127.0.0.1",
               termination_log=tmp_path / "termination-log")
    # What clusterops' CLI exits with for it: no retry of the Job can fix a refused password.
    assert code == EXIT_USAGE
    assert type(refusal).__name__ in capsys.readouterr().out


def test_the_job_names_a_pod_whose_name_does_not_resolve(redis_nodes_factory, tmp_path, capsys):
    nodes = redis_nodes_factory(6, hosts=FIRST_IPS)
    plan, names = plan_and_names(nodes)
    table = dict(zip(names[:-1], FIRST_IPS[:-1], strict=True))  # the last pod: no DNS record
    code, report = run_job(tmp_path, plan, nodes, table, capsys, timeout=1.0)
    assert code == 1
    assert "ResolveError" in report["error"] and names[-1] in report["error"]


def formed_then_moved_and_down(nodes: RedisNodes, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> tuple[dict, dict, dict]:
    """Form the cluster by name, then restart every node on a new IP with nodes.conf untouched
    (what every pod sees when no peer resolved as its init container ran): the control, which
    must stay down for several node-timeouts of 1000 ms. -> (plan, the formed report, the new
    name -> IP table)."""
    plan, names = plan_and_names(nodes)
    announce(nodes, names)
    code, report = run_job(tmp_path, plan, nodes, dict(zip(names, FIRST_IPS, strict=True)),
                           capsys)
    assert code == 0, report
    nodes[0].client().execute_command("CLUSTER", "SAVECONFIG")
    move_to(nodes, MOVED_IPS)
    for node in nodes:
        node.start()
    assert not becomes_true(lambda: cluster_ok(nodes), 6.0), "re-formed with nothing refreshed"
    return plan, report, dict(zip(names, MOVED_IPS, strict=True))


def assert_reformed_with_the_same_ids(nodes: RedisNodes, plan: dict, report: dict,
                                      moved: dict[str, str], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    wait_until("the cluster to re-form at the new addresses", lambda: (
        cluster_ok(nodes), nodes[0].client().execute_command("CLUSTER", "NODES")), 30.0)
    # Same identities, and the Job adopts the re-formed cluster at the new addresses.
    code, after = run_job(tmp_path, plan, nodes, moved, capsys)
    assert code == 0 and after["action"] == "adopted", after
    assert after["node_ids"] == report["node_ids"]


@pytest.mark.slow
def test_a_full_restart_with_new_ips_reforms_with_the_refreshed_nodes_conf(
        redis_nodes_factory, tmp_path, capsys):
    nodes = redis_nodes_factory(6, hosts=FIRST_IPS)
    plan, report, moved = formed_then_moved_and_down(nodes, tmp_path, capsys)
    # The same restart with every peer resolvable as the init containers run: it re-forms by
    # itself.
    for node in nodes:
        node.stop()
    refresh_nodes_conf(nodes, moved, tmp_path)
    conf = (nodes[0].directory / "nodes.conf").read_text()
    assert all(ip not in conf for ip in FIRST_IPS[1:]), conf
    for node in nodes:
        node.start()
    assert_reformed_with_the_same_ids(nodes, plan, report, moved, tmp_path, capsys)


@pytest.mark.slow
def test_a_full_restart_nobody_could_resolve_reforms_when_the_sidecars_meet_the_moved_peers(
        redis_nodes_factory, tmp_path, capsys):
    nodes = redis_nodes_factory(6, hosts=FIRST_IPS)
    plan, report, moved = formed_then_moved_and_down(nodes, tmp_path, capsys)
    with following_peers(nodes, moved, tmp_path) as followers:
        assert_reformed_with_the_same_ids(nodes, plan, report, moved, tmp_path, capsys)
    said = "".join(f.stdout.read() for f in followers if f.stdout)
    assert "CLUSTER MEET OK" in said, said
    assert nodes.password not in said
