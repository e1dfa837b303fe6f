"""ACL users on real redis-server 7.0.15 processes, configured as acl: true deploys them: each
node reads users.acl (`aclfile`) with the default user off, and replicas authenticate to their
master as the replication user (`masteruser`/`masterauth`).

What it proves: formation, health and backup work as the admin user; the application user
reaches every slot through a cluster client and is refused CONFIG SET, FLUSHALL, CLUSTER RESET,
KEYS and ACL; the exporter user can read INFO but no data; rotating every user's password
(clusterops.provision.password_rotation.sync_acl_users) keeps connected clients connected and
replicas linked without any resync, old passwords are refused afterwards, and a restarted node comes
back with the new users from its file.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from clusterops.core.model import HASH_SLOTS, NodeTarget
from clusterops.node.access import Access
from clusterops.provision.acl_users import ROLES, render_users_acl
from clusterops.provision.formation import form_cluster
from clusterops.provision.password_rotation import sync_acl_users
from tests.support.every_slot import written_and_read_back
from tests.support.process_plans import plan_for, wait_for_replica_links
from tests.support.redis_nodes import AclSetup, RedisNodes
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 20.0
DISTINCT_HOSTS = [f"127.0.5.{i}" for i in range(1, 7)]
# Admin-only or dangerous commands the application user must not run.
REFUSED_TO_APP = [("CONFIG", "SET", "maxmemory", "0"), ("FLUSHALL",), ("CLUSTER", "RESET"),
                  ("KEYS", "*"), ("ACL", "LIST"), ("CONFIG", "GET", "requirepass"),
                  ("SHUTDOWN", "NOSAVE"), ("CLUSTER", "FAILOVER")]


def new_passwords() -> dict[str, str]:
    return {role: f"{role}-{secrets.token_hex(12)}" for role in ROLES}


def acl_setup(passwords: dict[str, str]) -> AclSetup:
    return AclSetup(render_users_acl(passwords), "admin", "replication", passwords["replication"])


@dataclass
class AclCluster:
    nodes: RedisNodes
    plan: list[NodeTarget]
    passwords: dict[str, str]

    def app_client(self, password: str | None = None) -> RedisCluster:
        seed = self.nodes[0]
        return RedisCluster(startup_nodes=[ClusterNode(seed.host, seed.port)], username="app",
                            password=password or self.passwords["app"], socket_timeout=3)


@pytest.fixture
def acl_cluster(redis_nodes_factory: Callable[..., RedisNodes]) -> AclCluster:
    passwords = new_passwords()
    nodes = redis_nodes_factory(6, password=passwords["admin"], acl=acl_setup(passwords),
                                hosts=DISTINCT_HOSTS)
    for node in nodes:
        # Each node on its own loopback address (health judges replica placement by it), and
        # its bus and replication connections leave from there too.
        with node.client() as client:
            client.config_set("bind-source-addr", node.host)
            client.config_set("cluster-announce-ip", node.host)
    plan = [replace(target, username="admin") for target in plan_for(nodes)]
    form_cluster(plan, Access(passwords["admin"]), TIMEOUT_S)
    wait_for_replica_links(nodes)
    return AclCluster(nodes, plan, passwords)


def run_clusterops(cluster: AclCluster, tmp_path: Path, *args: str
                   ) -> subprocess.CompletedProcess[str]:
    password_file = tmp_path / "admin-password"
    password_file.write_text(cluster.passwords["admin"] + "\n")
    roles = {t.name: t.role for t in cluster.plan}
    flags = [arg for node, target in zip(cluster.nodes, cluster.plan, strict=True)
             for arg in ("--node", f"{target.name}={node.address}:{roles[target.name]}")]
    return subprocess.run(
        [sys.executable, "-m", "clusterops", *args, *flags, "--user", "admin",
         "--password-file", str(password_file)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_operators_work_as_the_admin_user(acl_cluster: AclCluster, tmp_path: Path):
    health = run_clusterops(acl_cluster, tmp_path, "health", "--json")
    assert health.returncode == 0, health.stdout[-3000:] + health.stderr[-2000:]
    backup = run_clusterops(acl_cluster, tmp_path, "backup", "--dest", str(tmp_path / "b"),
                            "--json")
    assert backup.returncode == 0, backup.stdout[-3000:] + backup.stderr[-2000:]
    assert json.loads(backup.stdout)["slots_covered"] == HASH_SLOTS
    for secret in acl_cluster.passwords.values():
        assert secret not in health.stdout + health.stderr + backup.stdout + backup.stderr
    # As the application user, health (read-only, and a SET/GET probe) still works, but a
    # backup does not: fetching a node's RDB (SYNC) is an admin command.
    app_file = tmp_path / "app-password"
    app_file.write_text(acl_cluster.passwords["app"])
    flags = [arg for node in acl_cluster.nodes for arg in ("--node", f"{node.name}={node.address}")]
    denied = subprocess.run(
        [sys.executable, "-m", "clusterops", "backup", *flags, "--user", "app",
         "--password-file", str(app_file), "--dest", str(tmp_path / "app-backup")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert denied.returncode == 1, denied.stdout[-2000:] + denied.stderr[-2000:]
    assert "permission" in (denied.stdout + denied.stderr).lower(), denied.stdout[-2000:]


def test_the_app_user_reaches_every_slot_and_no_admin_command(acl_cluster: AclCluster):
    client = acl_cluster.app_client()
    assert written_and_read_back(client, "acl") == HASH_SLOTS
    client.close()

    node = acl_cluster.nodes[0]
    app = node.client(acl_cluster.passwords["app"], username="app")
    for command in REFUSED_TO_APP:
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)
    # The default user is off; the exporter reads INFO but no key, and cannot write.
    with pytest.raises(redis.AuthenticationError):
        node.client(acl_cluster.passwords["app"], username="default").ping()
    with pytest.raises(redis.AuthenticationError, match="Authentication required"):
        redis.Redis(node.host, node.port, socket_timeout=2, protocol=2).get("x")
    exporter = node.client(acl_cluster.passwords["exporter"], username="exporter")
    assert exporter.info("server")["redis_version"]
    for command in (("GET", "x"), ("SET", "x", "1"), ("CONFIG", "SET", "maxmemory", "0")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            exporter.execute_command(*command)


def _syncs(nodes: RedisNodes) -> dict[str, tuple[int, int]]:
    stats = {}
    for node in nodes:
        with node.client() as client:
            if client.info("replication")["role"] == "master":
                info = client.info("stats")
                stats[node.name] = (int(info["sync_full"]), int(info["sync_partial_ok"]))
    return stats


def test_rotating_every_password_keeps_clients_and_replicas_connected(acl_cluster: AclCluster):
    nodes, old = acl_cluster.nodes, acl_cluster.passwords
    new = new_passwords()
    new_acl = render_users_acl(new)
    app = nodes[0].client(old["app"], username="app", single_connection_client=True)
    app_id = app.client_id()
    syncs = _syncs(nodes)
    # What SecretFiles does first on a deploy: each node's files now hold the new users.
    for node in nodes:
        node.users_acl_path.write_text(new_acl)
        node.config_path.write_text(node.config_text().replace(old["replication"],
                                                               new["replication"]))

    report = sync_acl_users(acl_cluster.plan, Access(old["admin"]), new["admin"], new_acl,
                            "replication", new["replication"], TIMEOUT_S)

    assert sorted(report.rotated) == sorted(t.name for t in acl_cluster.plan)
    assert app.client_id() == app_id  # the connected client was never dropped
    for node in nodes:
        node.password = new["admin"]
        for role in ROLES:
            with pytest.raises(redis.AuthenticationError):
                node.client(old[role], username=role).ping()
            assert node.client(new[role], username=role).ping()
    assert _syncs(nodes) == syncs  # no replica reconnected, not even for a partial resync
    acl_cluster.passwords = new
    client = acl_cluster.app_client()
    client.set("{a}after-rotation", "1")
    assert client.get("{a}after-rotation") == b"1"
    # A restarted replica reads the new users and masterauth from its files and relinks.
    replica = nodes[3]
    replica.stop()
    replica.start()
    wait_for("restarted replica relinked", lambda: replica.client().info("replication").get(
        "master_link_status") == "up")
    wait_for_replica_links(nodes)
    # Idempotent: a second run finds every node on the new admin password already.
    again = sync_acl_users(acl_cluster.plan, Access(old["admin"]), new["admin"], new_acl,
                           "replication", new["replication"], TIMEOUT_S)
    assert sorted(again.already_rotated) == sorted(t.name for t in acl_cluster.plan)


def test_a_user_not_in_the_file_is_removed_and_its_clients_dropped(acl_cluster: AclCluster):
    node = acl_cluster.nodes[0]
    with node.client() as admin:
        admin.execute_command("ACL", "SETUSER", "intruder", "on", ">intruder-pw", "+@all", "~*")
    sync_acl_users(acl_cluster.plan, Access(acl_cluster.passwords["admin"]),
                   acl_cluster.passwords["admin"], render_users_acl(acl_cluster.passwords),
                   "replication", acl_cluster.passwords["replication"], TIMEOUT_S)
    with node.client() as admin:
        assert "intruder" not in admin.execute_command("ACL", "USERS")
