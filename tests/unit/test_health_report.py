"""Pure parts of the health command: parsing, checks over snapshots, rendering, exit codes.

Snapshots are built from the TEXT real Redis 7.0 prints (CLUSTER NODES, CLUSTER INFO, INFO),
so the parsers are exercised together with the checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from dataclasses import dataclass, field, replace

import pytest
import redis
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from clusterops.cli import main as cli
from clusterops.cli.commands.health import render_json, render_table
from clusterops.core.errors import (
    AuthError,
    ClusterOpsError,
    DrillError,
    NodeControlError,
    TargetsError,
)
from clusterops.core.model import NodeTarget, split_slots
from clusterops.node.access import Access
from clusterops.node.observe import NodeSnapshot, describe_error, parse_cluster_nodes, parse_info
from clusterops.node.targets import Targets
from clusterops.tasks.health import (
    CHECKS,
    CLUSTER,
    HealthRun,
    Status,
    Thresholds,
    check_write_read,
    evaluate,
    failing_nodes,
    probe_key,
)
from tests.support.pulumi_cli import PROJECT_ROOT

MIB = 1024 * 1024
THIRDS = list(split_slots(3))  # the plan's split: 0-5460, 5461-10922, 10923-16383


@dataclass
class FakeNode:
    """One node of a fabricated cluster, rendered the way redis-server 7.0 prints it."""

    name: str
    ip: str
    port: int
    node_id: str
    master: str | None = None  # name of the master, replicas only
    slots: list[tuple[int, int]] = field(default_factory=list)
    open_slots: list[str] = field(default_factory=list)  # e.g. "[93->-<id>]"
    used_memory: int = 2 * MIB
    maxmemory: int = 64 * MIB
    offset: int = 1000
    lag_s: int = 0
    link: str = "up"
    state: str = "ok"

    def line(self, nodes: dict[str, FakeNode], myself: bool, flags: set[str]) -> str:
        role = "slave" if self.master else "master"
        all_flags = ",".join((["myself"] if myself else []) + [role] + sorted(flags))
        master_id = nodes[self.master].node_id if self.master else "-"
        slots = [f"{a}-{b}" if a != b else str(a) for a, b in self.slots]
        if myself:
            slots += self.open_slots
        return " ".join([self.node_id, f"{self.ip}:{self.port}@{self.port + 10000}", all_flags,
                         master_id, "0", "1700000000000", "1", "connected", *slots]).strip()


def healthy_nodes() -> dict[str, FakeNode]:
    nodes = {}
    for i in range(3):
        nodes[f"m{i + 1}"] = FakeNode(f"m{i + 1}", f"10.0.0.{i + 1}", 6379, f"{i + 1:040x}",
                                      slots=[THIRDS[i]])
    for i in range(3):
        nodes[f"r{i + 1}"] = FakeNode(f"r{i + 1}", f"10.0.0.{i + 4}", 6379, f"{i + 4:040x}",
                                      master=f"m{i + 1}")
    return nodes


def snapshot(me: FakeNode, nodes: dict[str, FakeNode],
             flags: dict[str, set[str]] | None = None,
             view: dict[str, FakeNode] | None = None) -> NodeSnapshot:
    """What ``me`` answers; ``flags``/``view`` let a node see the cluster differently."""
    view = view or nodes
    flags = flags or {}
    text = "\n".join(n.line(view, n.name == me.name, flags.get(n.name, set()))
                     for n in view.values()) + "\n"
    assigned = sum(b - a + 1 for n in view.values() for a, b in n.slots)
    failed = sum(b - a + 1 for n in view.values() for a, b in n.slots
                 if "fail" in flags.get(n.name, set()))
    pfail = sum(b - a + 1 for n in view.values() for a, b in n.slots
                if "fail?" in flags.get(n.name, set()))
    cluster_info = (
        f"cluster_state:{me.state}\r\ncluster_slots_assigned:{assigned}\r\n"
        f"cluster_slots_ok:{assigned - failed - pfail}\r\ncluster_slots_pfail:{pfail}\r\n"
        f"cluster_slots_fail:{failed}\r\ncluster_known_nodes:{len(view)}\r\ncluster_size:3\r\n"
    )
    if me.master:
        master = nodes[me.master]
        replication = (f"# Replication\r\nrole:slave\r\nmaster_host:{master.ip}\r\n"
                       f"master_port:{master.port}\r\nmaster_link_status:{me.link}\r\n"
                       f"slave_repl_offset:{me.offset}\r\n")
    else:
        replicas = [n for n in nodes.values() if n.master == me.name and n.link == "up"]
        lines = [f"slave{i}:ip={r.ip},port={r.port},state=online,offset={r.offset},lag={r.lag_s}"
                 for i, r in enumerate(replicas)]
        replication = "\r\n".join(["# Replication", "role:master",
                                   f"connected_slaves:{len(replicas)}", *lines,
                                   f"master_repl_offset:{me.offset}"]) + "\r\n"
    memory = (f"# Memory\r\nused_memory:{me.used_memory}\r\nmaxmemory:{me.maxmemory}\r\n"
              "maxmemory_policy:noeviction\r\n")
    return NodeSnapshot(
        node=target(me.name, f"{me.ip}:{me.port}"),
        cluster_enabled=True,
        cluster_info=parse_info(cluster_info),
        entries=parse_cluster_nodes(text),
        replication=parse_info(replication),
        memory=parse_info(memory),
        ping_ms=0.3,
    )


def target(name: str, address: str) -> NodeTarget:
    host, _, port = address.rpartition(":")
    return NodeTarget(name, host, int(port), host, int(port))


def targets_of(nodes: dict[str, FakeNode], machines: dict[str, str] | None = None) -> Targets:
    """The targets of a 3 x 1 plan of ``nodes`` (64 MiB maxmemory), on ``machines`` if given."""
    return Targets(
        nodes=tuple(replace(target(n.name, f"{n.ip}:{n.port}"),
                            machine=(machines or {}).get(n.name)) for n in nodes.values()),
        password="pw", expected_masters=3, replicas_per_master=1, maxmemory_bytes=64 * MIB,
        source="test",
    )


def run_checks(nodes: dict[str, FakeNode], snaps: list[NodeSnapshot] | None = None,
               machines: dict[str, str] | None = None, thresholds: Thresholds | None = None):
    snaps = snaps if snaps is not None else [snapshot(n, nodes) for n in nodes.values()]
    report, _view, _names = evaluate(snaps, targets_of(nodes, machines), thresholds)
    return report


def statuses(report, check: str) -> dict[str, Status]:
    return {r.node: r.status for r in report.results if r.check == check}


def failed(report) -> set[tuple[str, str]]:
    return {(r.check, r.node) for r in report.failures}


# ----------------------------------------------------------------------------- parsing


def test_parse_cluster_nodes_reads_redis_7_lines() -> None:
    text = (
        "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@40001,host-a "
        "myself,master - 0 0 1 connected 0-5460 5463 "
        "[5461->-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f] "
        "[5462-<-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]\n"
        "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@40002 master,fail - "
        "1700000000000 1700000000001 2 disconnected\n"
        "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30004@40004 slave,fail? "
        "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1700000000002 1 connected\n"
    )
    me, dead, replica = parse_cluster_nodes(text)

    assert (me.node_id, me.host, me.port) == ("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca",
                                            "127.0.0.1", 30001)
    assert me.is_myself and me.is_master and me.master_id is None
    assert me.slots == ((0, 5460), (5463, 5463))
    assert me.open_slots == (
        (5461, "migrating to", "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f"),
        (5462, "importing from", "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"),
    )
    assert dead.failed and not dead.possibly_failed and dead.link_state == "disconnected"
    assert replica.is_replica and replica.possibly_failed and not replica.failed
    assert replica.master_id == me.node_id


def test_parse_info_skips_headers_and_keeps_values_with_colons() -> None:
    info = parse_info("# Replication\r\nrole:master\r\nslave0:ip=::1,port=1\r\n\r\nx:y:z\r\n")
    assert info == {"role": "master", "slave0": "ip=::1,port=1", "x": "y:z"}


def test_probe_key_lands_in_the_wanted_slots() -> None:
    for start, end in THIRDS + [(42, 42)]:
        key = probe_key([(start, end)], "token")
        assert start <= key_slot(key.encode()) <= end
        assert key.endswith(":token")


# ----------------------------------------------------------------------------- checks


def test_healthy_cluster_has_no_failures_and_runs_every_check_but_write_read() -> None:
    nodes = healthy_nodes()
    report = run_checks(nodes)

    assert report.failures == [] and report.warnings == []
    assert report.exit_code == 0
    assert {r.check for r in report.results} == set(CHECKS) - {"write_read"}
    assert statuses(report, "reachable") == {name: Status.OK for name in nodes}
    placement = {r.node: r.message for r in report.results if r.check == "replica_placement"}
    assert set(placement) == {"m1", "m2", "m3"}
    assert "r1 (10.0.0.4)" in placement["m1"]


def test_master_whose_only_replica_shares_its_host_fails_placement() -> None:
    nodes = healthy_nodes()
    nodes["r2"].ip = nodes["m2"].ip  # same container/host, other port
    nodes["r2"].port = 6380
    report = run_checks(nodes)

    assert failed(report) == {("replica_placement", "m2")}
    message = next(r.message for r in report.failures)
    assert "r2" in message and "10.0.0.2" in message
    assert report.exit_code == 1


def test_placement_is_judged_by_docker_host_not_by_address() -> None:
    # Distinct addresses, but r2 runs on m2's Docker host: that host's loss loses shard 2.
    nodes = healthy_nodes()
    machines = {"m1": "h1", "m2": "h2", "m3": "h3", "r1": "h2", "r2": "h2", "r3": "h1"}
    report = run_checks(nodes, machines=machines)

    assert failed(report) == {("replica_placement", "m2")}
    assert "own host h2" in next(r.message for r in report.failures)
    spread = {**machines, "r2": "h3"}
    assert run_checks(nodes, machines=spread).failures == []


def test_single_host_stack_warns_about_placement_without_failing() -> None:
    nodes = healthy_nodes()
    report = run_checks(nodes, machines={name: "docker-host" for name in nodes})

    assert report.failures == [] and report.exit_code == 0
    assert statuses(report, "replica_placement") == {m: Status.WARN for m in ("m1", "m2", "m3")}
    assert "single-host stack" in report.warnings[0].message


def test_master_without_replica_fails_replication_and_placement() -> None:
    nodes = healthy_nodes()
    nodes["r3"].master = "m1"  # m3 loses its replica, m1 gets two
    report = run_checks(nodes)

    assert ("replication", "m3") in failed(report)
    assert ("replica_placement", "m3") in failed(report)
    assert statuses(report, "replication")["m1"] is Status.OK


def test_unreachable_node_is_named_and_others_still_checked() -> None:
    nodes = healthy_nodes()
    nodes["r1"].link = "down"  # its master no longer lists it
    flags = {"r1": {"fail"}}
    snaps = [snapshot(n, nodes, flags) for n in nodes.values() if n.name != "r1"]
    snaps.insert(3, NodeSnapshot(target("r1", "10.0.0.4:6379"),
                                 error="unreachable: connection refused"))
    report = run_checks(nodes, snaps)

    assert statuses(report, "reachable")["r1"] is Status.FAIL
    assert statuses(report, "node_flags")["r1"] is Status.FAIL
    assert ("replication", "m1") in failed(report)  # its master lost the replica
    assert all(r.node != "r1" for r in report.results
               if r.check in ("cluster_state", "memory", "slot_map"))
    assert statuses(report, "cluster_state") == {n: Status.OK for n in nodes if n != "r1"}
    assert "r1" in failing_nodes(report)


def test_dead_master_flagged_fail_breaks_coverage_and_state() -> None:
    nodes = healthy_nodes()
    for node in nodes.values():
        node.state = "fail"
    flags = {"m2": {"fail"}}
    snaps = [snapshot(n, nodes, flags) for n in nodes.values() if n.name != "m2"]
    snaps.insert(1, NodeSnapshot(target("m2", "10.0.0.2:6379"), error="unreachable"))
    report = run_checks(nodes, snaps)

    flagged = next(r for r in report.results if r.check == "node_flags")
    assert flagged.node == "m2" and "5 of 5" in flagged.message
    assert set(statuses(report, "cluster_state").values()) == {Status.FAIL}
    assert set(statuses(report, "slot_coverage").values()) == {Status.FAIL}
    assert ("replication", "m2") in failed(report)


def test_pfail_slots_only_warn() -> None:
    nodes = healthy_nodes()
    snaps = [snapshot(n, nodes, {"r3": {"fail?"}, "m3": {"fail?"}} if n.name == "m1" else None)
             for n in nodes.values()]
    report = run_checks(nodes, snaps)

    assert statuses(report, "slot_coverage")["m1"] is Status.WARN
    assert statuses(report, "node_flags") == {"r3": Status.WARN, "m3": Status.WARN}
    assert report.exit_code == 0


def test_open_slot_fails_naming_the_node_and_peer() -> None:
    nodes = healthy_nodes()
    nodes["m1"].open_slots = [f"[100->-{nodes['m2'].node_id}]"]
    report = run_checks(nodes)

    assert failed(report) == {("open_slots", "m1")}
    message = report.failures[0].message
    assert "slot 100 migrating to m2" in message


def test_node_with_a_different_slot_map_is_named() -> None:
    nodes = healthy_nodes()
    stale = {name: replace(node) for name, node in nodes.items()}
    stale["m1"].slots = [(0, 5000)]
    stale["m2"].slots = [(5001, 10922)]
    snaps = [snapshot(n, nodes, view=stale if n.name == "r2" else None) for n in nodes.values()]
    report = run_checks(nodes, snaps)

    assert failed(report) == {("slot_map", "r2")}
    message = report.failures[0].message
    assert "460 slots" in message and "slot 5001 owned by m2 here, by m1" in message


def test_node_count_names_a_node_missing_from_the_cluster() -> None:
    nodes = healthy_nodes()
    joined = {k: v for k, v in nodes.items() if k != "r3"}
    snaps = [snapshot(n, nodes, view=joined) for n in joined.values()]
    loner = replace(nodes["r3"], master=None)  # never joined: an empty master on its own
    snaps.append(snapshot(loner, nodes, view={"r3": loner}))
    report = run_checks(nodes, snaps)

    assert ("node_count", "r3") in failed(report)
    counts = statuses(report, "node_count")
    assert counts["m1"] is Status.FAIL  # knows 5, expected 6
    assert ("replica_placement", "m3") in failed(report)


def test_replication_lag_and_link_state() -> None:
    nodes = healthy_nodes()
    nodes["r1"].offset = 1000 - 3 * MIB  # bytes behind: warn
    nodes["r2"].lag_s = 30  # no ack for 30 s: fail
    report = run_checks(nodes, thresholds=Thresholds(max_lag_seconds=5, max_lag_bytes=MIB))

    repl = statuses(report, "replication")
    assert repl["r1"] is Status.WARN
    assert repl["r2"] is Status.FAIL
    assert repl["r3"] is Status.OK

    nodes = healthy_nodes()
    nodes["r3"].link = "down"
    report = run_checks(nodes)
    repl = statuses(report, "replication")
    assert repl["m3"] is Status.FAIL and repl["r3"] is Status.FAIL
    r3 = next(r.message for r in report.results if r.check == "replication" and r.node == "r3")
    assert "master_link_status:down" in r3


def test_memory_thresholds_and_declared_maxmemory() -> None:
    nodes = healthy_nodes()
    nodes["m1"].used_memory = int(64 * MIB * 0.85)
    nodes["m2"].used_memory = int(64 * MIB * 0.97)
    nodes["m3"].maxmemory = 0
    nodes["r1"].maxmemory = 128 * MIB
    report = run_checks(nodes)

    memory = statuses(report, "memory")
    assert memory == {"m1": Status.WARN, "m2": Status.FAIL, "m3": Status.WARN,
                      "r1": Status.WARN, "r2": Status.OK, "r3": Status.OK}
    r1 = next(r.message for r in report.results if r.check == "memory" and r.node == "r1")
    assert "declared maxmemory is 64.0 MiB" in r1


# ----------------------------------------------------------------------------- errors


def test_error_messages_explain_auth_and_never_carry_the_password() -> None:
    secret = "pa55-word-xyz"
    noauth = describe_error(redis.AuthenticationError("Authentication required."), Access(None), 2)
    assert "NOAUTH" in noauth and "no password was given" in noauth
    wrong = describe_error(
        redis.AuthenticationError(f"invalid password {secret}"), Access(secret), 2.0
    )
    assert "password was refused" in wrong and secret not in wrong
    timeout = describe_error(redis.TimeoutError("Timeout reading"), Access(secret), 0.5)
    assert "0.5s" in timeout


# ----------------------------------------------------------------------------- rendering


def health_run(nodes: dict[str, FakeNode], snaps: list[NodeSnapshot] | None = None) -> HealthRun:
    report = run_checks(nodes, snaps)
    return HealthRun(targets_of(nodes), tuple(report.sorted(list(nodes))), 0.01)


def test_table_and_json_for_a_healthy_cluster() -> None:
    run = health_run(healthy_nodes())
    table = render_table(run)

    assert table.splitlines()[-1].startswith("HEALTHY")
    assert "CHECK" in table and "replica_placement" in table
    document = json.loads(render_json(run))
    assert document["ok"] is True and document["exit_code"] == 0
    assert document["failures"] == [] and document["failing_nodes"] == {}
    assert document["summary"]["fail"] == 0
    assert {r["check"] for r in document["results"]} == set(CHECKS) - {"write_read"}
    # Results come in check order, cluster-wide lines before per-node lines.
    order = [CHECKS.index(r["check"]) for r in document["results"]]
    assert order == sorted(order)


def test_table_and_json_name_the_failing_node_and_check() -> None:
    nodes = healthy_nodes()
    snaps = [snapshot(n, nodes, {"m3": {"fail"}}) for n in nodes.values() if n.name != "m3"]
    snaps.insert(2, NodeSnapshot(target("m3", "10.0.0.3:6379"), error="unreachable: refused"))
    run = health_run(nodes, snaps)

    assert run.exit_code == 1
    last = render_table(run).splitlines()[-1]
    assert last.startswith("UNHEALTHY") and "m3 (reachable, node_flags, replication)" in last
    table_rows = [line.split() for line in render_table(run).splitlines()]
    assert ["reachable", "m3", "FAIL"] in [row[:3] for row in table_rows]
    document = json.loads(render_json(run))
    assert document["ok"] is False and document["exit_code"] == 1
    assert document["failing_nodes"]["m3"][0] == "reachable"
    assert {"check": "reachable", "node": "m3", "status": "fail",
            "message": "10.0.0.3:6379: unreachable: refused"} in document["failures"]


def test_cluster_wide_results_use_the_cluster_label() -> None:
    report = run_checks(healthy_nodes())
    assert statuses(report, "node_flags") == {CLUSTER: Status.OK}


# ----------------------------------------------------------------------------- CLI dispatch


def test_cli_lists_commands_without_importing_them() -> None:
    code = (
        "import sys; from clusterops.cli import main as cli; "
        "rc = cli.main(['--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('clusterops.'))); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "health" in done.stdout and "drill" in done.stdout and "backup" in done.stdout
    assert "clusterops.tasks.health" not in done.stdout
    assert "clusterops.tasks.drill" not in done.stdout
    assert "clusterops.cli.commands.health" not in done.stdout
    assert "clusterops.cli.commands.drill" not in done.stdout


def test_missing_command_module_breaks_only_its_own_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "ghost", "clusterops.no_such_module_for_tests")
    assert cli.main(["ghost", "--help"]) == 2
    assert "command 'ghost' is not available" in capsys.readouterr().err
    # argparse exits 0 inside parse_args on --help; main must turn that into a return value.
    assert cli.main(["health", "--help"]) == 0
    assert "--stack-outputs" in capsys.readouterr().out


def test_cli_usage_and_target_errors_exit_2(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([]) == 2
    assert cli.main(["nonsense"]) == 2
    assert cli.main(["health"]) == 2  # no target source
    assert cli.main(["health", "--stack-outputs", str(tmp_path / "missing.json")]) == 2
    assert "cannot read --stack-outputs" in capsys.readouterr().err


def fake_command(monkeypatch: pytest.MonkeyPatch, raises: BaseException) -> None:
    """Register a command ``fake`` whose run() raises ``raises``."""
    module = types.ModuleType("clusterops_fake_command_for_tests")
    module.add_arguments = lambda parser: None  # type: ignore[attr-defined]

    def run(_args: object) -> int:
        raise raises

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "fake", module.__name__)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (DrillError("cluster not ready within 1s: n1: cluster_state:fail"), 1),
        (NodeControlError("n1: `docker kill` exited 1"), 2),
        (AuthError("n1 refused the password"), 2),
        (TargetsError("no targets"), 2),
        (redis.AuthenticationError("invalid username-password pair"), 2),
        (redis.ConnectionError("Connection refused"), 1),
        (RedisClusterException("startup_nodes could not agree"), 1),
    ],
)
def test_cli_alone_prints_each_error_once_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    error: BaseException, code: int,
) -> None:
    fake_command(monkeypatch, error)
    assert cli.main(["fake"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("python -m clusterops fake: error: ")
    assert str(error) in captured.err and captured.err.count("\n") == 1


def test_every_clusterops_error_is_one_family() -> None:
    for error in (DrillError, NodeControlError, AuthError, TargetsError):
        assert issubclass(error, ClusterOpsError), error


def test_write_read_reports_a_cluster_client_that_cannot_start() -> None:
    # redis-py raises RedisClusterException (not a RedisError) when startup nodes disagree.
    nodes = healthy_nodes()
    snaps = [snapshot(n, nodes) for n in nodes.values()]
    report, view, names = evaluate(snaps, targets_of(nodes))

    def refuses(**_kwargs: object) -> object:
        raise RedisClusterException("startup_nodes could not agree on a valid slots cache")

    targets = health_run(nodes).targets
    check_write_read(report, targets, snaps, view, names, 1.0, cluster_factory=refuses)
    (result,) = [r for r in report.results if r.check == "write_read"]
    assert result.status is Status.FAIL and result.node == CLUSTER
    assert "could not agree" in result.message


def test_a_node_with_cluster_support_disabled_fails_reachable() -> None:
    nodes = healthy_nodes()
    snaps = [snapshot(n, nodes) for n in nodes.values()]
    snaps[0] = replace(snaps[0], cluster_enabled=False, cluster_info={}, entries=[])
    report = run_checks(nodes, snaps)
    (result,) = [r for r in report.results if r.check == "reachable" and r.node == "m1"]
    assert result.status is Status.FAIL and "cluster support disabled" in result.message


def test_a_node_whose_disk_writes_fail_is_named_with_what_its_clients_see() -> None:
    nodes = healthy_nodes()
    snaps = [snapshot(n, nodes) for n in nodes.values()]
    # INFO persistence as a node with a full data volume answers it.
    snaps[0].persistence = parse_info("aof_last_write_status:err\r\nrdb_last_bgsave_status:ok"
                                      "\r\naof_last_bgrewrite_status:ok\r\n")
    snaps[1].persistence = parse_info("aof_last_bgrewrite_status:err\r\n")
    report = run_checks(nodes, snaps)
    persistence = statuses(report, "persistence")
    assert persistence == {"m1": Status.FAIL, "m2": Status.WARN, "m3": Status.OK,
                           "r1": Status.OK, "r2": Status.OK, "r3": Status.OK}
    m1 = next(r.message for r in report.results if r.check == "persistence" and r.node == "m1")
    assert "aof_last_write_status:err" in m1 and "MISCONF" in m1 and "Fix: free space" in m1


def test_masters_gathered_on_one_host_by_failovers_warn_and_name_failback() -> None:
    # m2's shard failed over to r2, which runs on h1 beside m1: h1 holds 2 of the 3 masters.
    nodes = healthy_nodes()
    machines = {"m1": "h1", "m2": "h2", "m3": "h3", "r1": "h2", "r2": "h1", "r3": "h1"}
    assert run_checks(nodes, machines=machines).warnings == []
    nodes["m2"].master, nodes["r2"].master = "r2", None
    nodes["r2"].slots, nodes["m2"].slots = nodes["m2"].slots, []
    report = run_checks(nodes, machines=machines)
    bunched = [w for w in report.warnings if w.node == "h1"]
    assert len(bunched) == 1 and "2 of 3 masters run on h1" in bunched[0].message
    assert "clusterops failback --apply" in bunched[0].message
