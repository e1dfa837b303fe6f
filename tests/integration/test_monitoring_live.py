"""Monitoring against real processes: 6 redis-server nodes formed into a cluster by redis-cli,
the Debian `prometheus-redis-exporter` started with our command line and password file, and
the Debian `prometheus` binary loading our rules.

- Every node scraped through the exporter's /scrape?target=redis://IP:PORT reports redis_up 1.
- Every metric named by an alert/recording rule or a dashboard panel is in the live scrape.
- The password is nowhere in the exporter's command line, environment or log.
- Prometheus (test-only config from components.exporter_conf.prometheus_config, 1 s intervals)
  reads redis_cluster_state 1, answers every dashboard query, and after a master is killed
  raises RedisNodeDown for it, RedisFailoverHappened and RedisMasterWithoutReplica for the
  promoted replica. The rules are a test copy of monitoring/alerts.yml with the group interval
  set to 1 s and every `for:` shortened to 2 s, so the test does not wait minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterops.provision.acl_users import ROLES, render_users_acl
from components.exporter_conf import (
    EXPORTER_JOB,
    NODES_JOB,
    exporter_args,
    exporter_password_file,
    node_target_uri,
    prometheus_config,
)
from tests.support.engines import require_engine
from tests.support.prom_metrics import (
    PROMETHEUS_BUILTIN_METRICS,
    RULES_PATH,
    PrometheusAPI,
    dashboard_queries,
    load_dashboard,
    load_rules,
    metric_names,
    metrics_named_by_rules_and_dashboard,
    parse_exposition,
    recording_rule_names,
    sample_value,
    substitute_grafana_variables,
)
from tests.support.redis_nodes import AclSetup, RedisNode, RedisNodes
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

EXPORTER_BINARY = "prometheus-redis-exporter"
PROMETHEUS_BINARY = "prometheus"
CLUSTER_NAME = "alphapulse"
NODE_SETTINGS = {
    "appendonly": "yes",  # as deployed: AOF metrics are real, not defaults
    "maxmemory": "64mb",
    # A replica that just synced may always fail over (the deployed config does the same).
    "cluster-replica-validity-factor": "0",
}


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install Debian's `{package}` package "
                    "(scripts/setup-test-env.sh does)")
    return path


def free_port() -> int:
    # Kernel-chosen (ephemeral range): clear of the 20000-32767 range redis_nodes uses.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
        return response.read().decode()


class ManagedProcess:
    """A child process with its output in a log file; stopped (TERM, then KILL) on close."""

    def __init__(self, argv: list[str], log_path: Path, cwd: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"{self.process.args[0]} exited with {self.process.returncode}:\n"
                        f"{self.log()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@dataclass
class LiveCluster:
    redis: RedisNodes
    nodes: list[dict[str, Any]]  # shaped like the stack outputs' `nodes`
    members: dict[str, RedisNode]  # by planned name
    password: str
    exporter: ManagedProcess
    exporter_address: str
    workdir: Path

    @property
    def exporter_url(self) -> str:
        return f"http://{self.exporter_address}"

    def scrape(self, node: dict[str, Any]) -> str:
        query = urllib.parse.urlencode({"target": node_target_uri(node)})
        return http_get(f"{self.exporter_url}/scrape?{query}")

    def node(self, role: str, ordinal: int) -> dict[str, Any]:
        name = f"{CLUSTER_NAME}-redis-{role}-{ordinal}"
        return next(node for node in self.nodes if node["name"] == name)


def form_cluster(redis: RedisNodes, password: str) -> None:
    """redis-cli --cluster create, password via REDISCLI_AUTH (never argv), then wait for ok."""
    addresses = [node.address for node in redis]
    user = ["--user", redis.acl.username] if redis.acl else []
    result = subprocess.run(
        ["redis-cli", *user, "--cluster", "create", *addresses, "--cluster-replicas", "1",
         "--cluster-yes"],
        env={**os.environ, "REDISCLI_AUTH": password}, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    def healthy() -> tuple[bool, list[str]]:
        problems = []
        for node in redis:
            with node.client() as client:
                if client.cluster("info")["cluster_state"] != "ok":
                    problems.append(f"{node.name}: cluster_state not ok")
                replication = client.info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    problems.append(f"{node.name}: master link {replication['master_link_status']}")
        return not problems, problems

    wait_until("all nodes cluster_state:ok and replicas linked", healthy, timeout_s=30)


def plan_from_live_roles(redis: RedisNodes) -> tuple[list[dict[str, Any]], dict[str, RedisNode]]:
    """Name the nodes like the stack does (master-k, replica-k follows master-k) from the
    roles redis-cli gave them; these become the PLANNED roles of this test cluster."""
    by_id: dict[str, RedisNode] = {}
    for node in redis:
        with node.client() as client:
            by_id[client.execute_command("CLUSTER", "MYID")] = node
    with redis[0].client() as client:
        lines = client.execute_command("CLUSTER", "NODES").splitlines()
    masters: list[tuple[str, RedisNode]] = []
    replica_of: dict[str, RedisNode] = {}
    for line in lines:
        fields = line.split()
        node_id, flags, master_id = fields[0], fields[2], fields[3]
        if "master" in flags:
            masters.append((node_id, by_id[node_id]))
        else:
            replica_of[master_id] = by_id[node_id]
    masters.sort(key=lambda item: item[1].port)
    nodes: list[dict[str, Any]] = []
    members: dict[str, RedisNode] = {}
    for ordinal, (master_id, master) in enumerate(masters, start=1):
        for role, member, follows in (
            ("master", master, None),
            ("replica", replica_of[master_id], f"{CLUSTER_NAME}-redis-master-{ordinal}"),
        ):
            name = f"{CLUSTER_NAME}-redis-{role}-{ordinal}"
            nodes.append({"name": name, "role": role, "master": follows, "ip": member.host,
                          "port": member.port, "container_name": name})
            members[name] = member
    nodes.sort(key=lambda node: (node["role"] != "master", node["name"]))
    return nodes, members


@contextlib.contextmanager
def live_cluster(workdir: Path, acl: bool = False,
                 server: str = "redis-server") -> Iterator[LiveCluster]:
    """With ``acl``, the nodes have the deployed ACL users (users.acl, default user off) and
    the exporter scrapes as the read-only exporter user, as with acl: true. ``server``: the
    nodes' binary (an engine of tests/support/engines.py)."""
    exporter_binary = require_binary(EXPORTER_BINARY, "prometheus-redis-exporter")
    password = f"pw-{secrets.token_hex(16)}"
    passwords = {role: f"{role}-{secrets.token_hex(16)}" for role in ROLES}
    setup = AclSetup(render_users_acl(passwords), "admin", "replication",
                     passwords["replication"]) if acl else None
    if acl:
        password = passwords["admin"]
    with RedisNodes(6, password=password, base_dir=workdir / "redis",
                    settings=NODE_SETTINGS, acl=setup, server=server) as redis:
        form_cluster(redis, password)

        def roles_known() -> tuple[bool, str]:
            # Right after redis-cli's create, gossip may not yet have told node 0 which node
            # follows which master (seen in CI: a replica's master unknown to it).
            with redis[0].client() as client:
                lines = client.execute_command("CLUSTER", "NODES").splitlines()
            replicas = [line for line in lines if "slave" in line.split()[2]]
            return len(replicas) == 3, "\n".join(lines)

        wait_until("node 0 to know every replica's master", roles_known, timeout_s=15)
        nodes, members = plan_from_live_roles(redis)

        password_file = workdir / "exporter-passwords.json"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(exporter_password_file(nodes, passwords["exporter"] if acl else password))
        port = free_port()
        argv = [exporter_binary, *exporter_args(listen_port=port, password_file=str(password_file),
                                                listen_host="127.0.0.1",
                                                user="exporter" if acl else None)]
        exporter = ManagedProcess(argv, workdir / "exporter.log", workdir)
        try:
            cluster = LiveCluster(redis, nodes, members, password, exporter,
                                  f"127.0.0.1:{port}", workdir)

            def exporter_up() -> tuple[bool, str]:
                exporter.assert_running()
                return True, http_get(f"{cluster.exporter_url}/metrics")

            wait_until("the exporter's /metrics", exporter_up, timeout_s=15)
            yield cluster
        finally:
            exporter.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    with live_cluster(tmp_path_factory.mktemp("monitoring-live")) as running:
        yield running


# --- the exporter ---------------------------------------------------------------------------


def test_every_node_reports_redis_up_1_through_the_exporter(cluster: LiveCluster) -> None:
    for node in cluster.nodes:
        samples = parse_exposition(cluster.scrape(node))
        assert sample_value(samples, "redis_up") == 1, f"{node['name']}: redis_up != 1"
        info = next(s for s in samples if s.name == "redis_instance_info")
        assert info.labels["role"] == ("master" if node["role"] == "master" else "slave")
        assert info.labels["tcp_port"] == str(node["port"])
        assert sample_value(samples, "redis_cluster_state") == 1


def test_every_metric_named_by_rules_and_dashboard_is_exported(cluster: LiveCluster) -> None:
    assert metrics_not_exported(cluster) == {}


def test_the_exporter_user_scrapes_every_metric_and_is_refused_nothing(tmp_path: Path) -> None:
    """acl: true: the read-only exporter user is enough for every node's redis_up 1 and every
    metric the rules and dashboard use; no command of a scrape is refused (ACL LOG)."""
    with live_cluster(tmp_path, acl=True) as acl_cluster:
        for node in acl_cluster.nodes:
            samples = parse_exposition(acl_cluster.scrape(node))
            assert sample_value(samples, "redis_up") == 1, node["name"]
        assert metrics_not_exported(acl_cluster) == {}
        for member in acl_cluster.members.values():
            with member.client() as admin:
                denied = admin.execute_command("ACL", "LOG")
            assert denied == [], (member.name, denied)


def metrics_not_exported(cluster: LiveCluster) -> dict[str, Any]:
    """Metrics named by a rule or a dashboard panel that no scrape of the cluster exports."""
    exported: set[str] = set()
    for node in cluster.nodes:
        exported |= metric_names(parse_exposition(cluster.scrape(node)))
    exported |= metric_names(parse_exposition(http_get(f"{cluster.exporter_url}/metrics")))

    not_scraped = recording_rule_names() | PROMETHEUS_BUILTIN_METRICS
    users = metrics_named_by_rules_and_dashboard()
    assert len(users) > 20  # the extraction found the queries at all
    return {name: where for name, where in users.items()
            if name not in exported and name not in not_scraped}


@pytest.mark.slow  # a cluster and an exporter per engine: full suite only
@pytest.mark.parametrize("label", ["redis-7.2", "valkey-8.0"])
def test_every_metric_the_rules_and_dashboard_use_is_exported_for_each_engine(
        label: str, tmp_path: Path) -> None:
    """The exporter reads Valkey's INFO under the same metric names (redis_*): the alert
    rules and the dashboard work unchanged (Redis 7.0, Debian's: the module's cluster)."""
    build = require_engine(label)
    with live_cluster(tmp_path, server=build.server) as running:
        for node in running.nodes:
            samples = parse_exposition(running.scrape(node))
            assert sample_value(samples, "redis_up") == 1, f"{node['name']}: redis_up != 1"
            assert sample_value(samples, "redis_cluster_state") == 1
        assert metrics_not_exported(running) == {}


def test_no_password_on_the_exporter_command_line_environment_or_log(
    cluster: LiveCluster,
) -> None:
    proc = Path(f"/proc/{cluster.exporter.pid}")
    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    environ = (proc / "environ").read_bytes().decode(errors="replace")
    assert "--redis.password-file=" in cmdline  # we are looking at the right process
    assert cluster.password not in cmdline
    assert cluster.password not in environ
    cluster.scrape(cluster.nodes[0])
    assert cluster.password not in cluster.exporter.log()


def test_exporter_1_45_rejects_a_plain_text_password_file(tmp_path: Path) -> None:
    """Why the password file is JSON: the binary exits on anything else."""
    binary = require_binary(EXPORTER_BINARY, "prometheus-redis-exporter")
    plain = tmp_path / "password.txt"
    plain.write_text("just-a-password\n")
    result = subprocess.run(
        [binary, *exporter_args(listen_port=free_port(), password_file=str(plain),
                                listen_host="127.0.0.1")],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "password file format error" in result.stdout + result.stderr
    assert "just-a-password" not in result.stdout + result.stderr


def test_password_file_keys_without_scheme_do_not_authenticate(
    cluster: LiveCluster, tmp_path: Path
) -> None:
    """Why the keys carry redis://: the exporter looks the target URI up verbatim."""
    binary = require_binary(EXPORTER_BINARY, "prometheus-redis-exporter")
    node = cluster.nodes[0]
    wrong = tmp_path / "no-scheme.json"
    wrong.write_text(json.dumps({f"{node['ip']}:{node['port']}": cluster.password}))
    port = free_port()
    exporter = ManagedProcess(
        [binary, *exporter_args(listen_port=port, password_file=str(wrong),
                                listen_host="127.0.0.1")],
        tmp_path / "exporter.log", tmp_path,
    )
    try:
        query = urllib.parse.urlencode({"target": node_target_uri(node)})

        def scraped() -> tuple[bool, str]:
            exporter.assert_running()
            return True, http_get(f"http://127.0.0.1:{port}/scrape?{query}")

        text = wait_until("a scrape from the exporter with scheme-less keys", scraped, 15)
        assert sample_value(parse_exposition(text), "redis_up") == 0
        assert "NOAUTH" in exporter.log()
    finally:
        exporter.stop()


# --- Prometheus with our config and rules -----------------------------------------------------


def fast_rules_copy(path: Path) -> None:
    """monitoring/alerts.yml with 1 s evaluation and every `for:` cut to 2 s (test only)."""
    document = yaml.safe_load(RULES_PATH.read_text())
    for group in document["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "2s"
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.mark.slow  # Prometheus evaluating alerts over a failover: full suite only
def test_prometheus_scrapes_the_cluster_and_raises_node_down_and_failover_alerts(
    tmp_path: Path,
) -> None:
    prometheus_binary = require_binary(PROMETHEUS_BINARY, "prometheus")
    with live_cluster(tmp_path) as cluster:
        rules_path = tmp_path / "alerts-fast.yml"
        fast_rules_copy(rules_path)
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(prometheus_config(
            cluster.nodes, cluster.exporter_address, [str(rules_path)],
            cluster_name=CLUSTER_NAME, scrape_interval="1s", evaluation_interval="1s",
        ))
        port = free_port()
        prometheus = ManagedProcess(
            [prometheus_binary, f"--config.file={config_path}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            tmp_path / "prometheus.log", tmp_path,
        )
        try:
            api = PrometheusAPI(f"http://127.0.0.1:{port}")
            _check_healthy_cluster_through_prometheus(api, cluster, prometheus)
            _kill_a_master_and_watch_the_alerts(api, cluster, prometheus)
        finally:
            prometheus.stop()


def _check_healthy_cluster_through_prometheus(
    api: PrometheusAPI, cluster: LiveCluster, prometheus: ManagedProcess
) -> None:
    def ready() -> tuple[bool, str]:
        prometheus.assert_running()
        return True, http_get(f"{api.base_url}/-/ready")

    wait_until("Prometheus /-/ready", ready, timeout_s=30)

    # Every node target carries the labels the rules and the dashboard rely on.
    def targets_up() -> tuple[bool, list[dict[str, Any]]]:
        targets = api.get("/api/v1/targets")["activeTargets"]
        return len(targets) == len(cluster.nodes) + 1 and all(
            t["health"] == "up" for t in targets), targets

    targets = wait_until("every target discovered and scraped", targets_up, timeout_s=30)
    node_targets = {t["labels"]["node"]: t for t in targets if t["labels"]["job"] == NODES_JOB}
    assert set(node_targets) == {node["name"] for node in cluster.nodes}
    for node in cluster.nodes:
        labels = node_targets[node["name"]]["labels"]
        assert labels["instance"] == f"{node['ip']}:{node['port']}"
        assert labels["planned_role"] == node["role"]
        assert labels["cluster"] == CLUSTER_NAME
        assert node_targets[node["name"]]["scrapeUrl"].startswith(
            f"{cluster.exporter_url}/scrape?target=redis")
    assert any(t["labels"]["job"] == EXPORTER_JOB for t in targets)

    def cluster_state_ok() -> tuple[bool, list[str]]:
        result = api.query("redis_cluster_state")
        values = sorted(f"{r['metric']['node']}={r['value'][1]}" for r in result)
        return len(result) == len(cluster.nodes) and all(v.endswith("=1") for v in values), values

    wait_until("redis_cluster_state == 1 for every node via the Prometheus API",
               cluster_state_ok, 30)

    # Every dashboard panel query returns data from this live Prometheus.
    queries = [(title, substitute_grafana_variables(expr))
               for title, expr in dashboard_queries(load_dashboard())]

    def all_panels_have_data() -> tuple[bool, list[str]]:
        empty = [f"{title}: {expr}" for title, expr in queries if not api.query(expr)]
        return not empty, empty

    wait_until("data for every dashboard query", all_panels_have_data, 30)

    # Every rule loaded and evaluates without error.
    groups = api.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(load_rules())
    assert [r["name"] for r in rules if r["health"] != "ok"] == []

    # The recording rules see the plan (from the planned_role labels) and the live roles.
    def master_counts() -> tuple[bool, tuple[list[str], list[str]]]:
        live = [r["value"][1] for r in api.query("redis_cluster:masters:count")]
        planned = [r["value"][1] for r in api.query("redis_cluster:planned_masters:count")]
        return (live, planned) == (["3"], ["3"]), (live, planned)

    wait_until("3 live and 3 planned masters from the recording rules", master_counts, 15)

    # A healthy cluster raises nothing.
    assert api.alerts() == []


def _kill_a_master_and_watch_the_alerts(
    api: PrometheusAPI, cluster: LiveCluster, prometheus: ManagedProcess
) -> None:
    master = cluster.node("master", 1)
    replica = cluster.node("replica", 1)  # follows master-1: the one to be promoted
    cluster.members[master["name"]].kill()

    def alert_active(name: str, node: str) -> Callable[[], tuple[bool, Any]]:
        def probe() -> tuple[bool, Any]:
            prometheus.assert_running()
            alert = api.alert(name, node)
            if alert is None:
                return False, sorted(
                    f"{a['labels']['alertname']}({a['labels'].get('node')}):{a['state']}"
                    for a in api.alerts()
                )
            return alert["state"] in ("pending", "firing"), alert
        return probe

    down = wait_until(f"RedisNodeDown for {master['name']}",
                alert_active("RedisNodeDown", master["name"]), timeout_s=30)
    assert down["labels"]["instance"] == f"{master['ip']}:{master['port']}"
    assert down["labels"]["severity"] == "warning"
    assert master["name"] in down["annotations"]["summary"]

    # The replica really was promoted, and the role-change rule saw it.
    failover = wait_until(f"RedisFailoverHappened for {replica['name']}",
                    alert_active("RedisFailoverHappened", replica["name"]), timeout_s=30)
    assert failover["state"] == "firing"  # no `for:`: an event fires at once
    assert failover["labels"]["planned_role"] == "replica"
    with cluster.members[replica["name"]].client() as client:
        assert client.info("replication")["role"] == "master"

    # ... and it now has no replica of its own (its old master is dead).
    wait_until(f"RedisMasterWithoutReplica for {replica['name']}",
         alert_active("RedisMasterWithoutReplica", replica["name"]), timeout_s=30)
