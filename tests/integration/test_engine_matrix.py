"""The engine matrix on real servers: Redis 7.0.15 (Debian's), Redis 7.2.6 and Valkey 8.0.1
(built with TLS from the vendored sources, scripts/build-engines.sh).

Each engine, with the same code a deployment runs (clusterops.tasks.reconcile):
- formation with the engine check, adoption of the formed cluster (no writes), a 3 -> 4 -> 3
  reshape under a SET + WAIT 1 writer with 0 acknowledged writes lost (quick tiers);
- a master killed: the replica promoted, 0 acknowledged writes lost, recovery < 5 s;
- TLS on every link as deployed: formation and a reshape whose MIGRATEs go over TLS;
- live settings and a rotated password; the deployed ACL users (users.acl) with new
  passwords, the app, exporter and replication users doing what their rules allow and no more;
- the identity each server reports, which everything engine-specific is derived from, and
  the answer to "is there an atomic slot migration command?" (none of these three).

A node running another engine than the stack's is refused before anything is written.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from clusterops.core.engines import ServerIdentity, atomic_slot_migration
from clusterops.core.errors import EngineMismatchError, PasswordRotationError
from clusterops.core.model import ClusterReport
from clusterops.node.access import Access
from clusterops.node.observe import observe_nodes
from clusterops.provision.acl_users import ROLES, render_users_acl
from clusterops.provision.engine_check import engine_problems
from clusterops.provision.password_rotation import rotate_password, sync_acl_users
from clusterops.provision.settings import apply_settings
from clusterops.state.verify import verify_cluster
from clusterops.tasks import reconcile
from clusterops.tasks.drill import run_master_failure_drill
from tests.integration.test_scaling import (
    FOUR,
    THREE,
    assert_all_present,
    cluster_client,
    layout,
    preload,
    writes_flowing,
)
from tests.support.cluster_writer import ClusterWriter
from tests.support.engines import EngineBuild, engine_build, require_engine  # noqa: F401
from tests.support.process_control import ProcessNodeControl, targets_for
from tests.support.process_plans import plan_for, wait_for_replica_links
from tests.support.redis_nodes import AclSetup, RedisNodes, make_tls
from tests.support.waiting import wait_for

TIMEOUT_S = 30
DRILL_SETTINGS = {"cluster-replica-validity-factor": "0"}


def form_props(plan: list, password: str, engine: str) -> dict:
    """The bag a provider hands reconcile.form (engine as the stack names it)."""
    return {"nodes": [node.to_dict() for node in plan], "password": password,
            "timeout_seconds": TIMEOUT_S, "engine": engine}


def under_writer(nodes: RedisNodes, label: str, change: Callable[[], ClusterReport]
                 ) -> tuple[ClusterReport, ClusterWriter]:
    """``change()`` while a SET + WAIT 1 writer runs (before the first slot moves and after)."""
    writer = ClusterWriter([(nodes[0].host, nodes[0].port)], nodes.password, label)
    writer.start()
    try:
        writes_flowing(writer)
        report = change()
        writes_flowing(writer)
    finally:
        writer.stop()
    return report, writer


# The quick tiers keep formation and one reshape (3 -> 4) per engine, and stay under 2 minutes;
# the way back (4 -> 3), and Redis 7.0 (Debian's), which test_formation.py and
# test_scaling.py cover there already, run in the full suite.
@pytest.mark.parametrize(("engine_build", "and_back"), [
    pytest.param("redis-7.0", True, marks=pytest.mark.slow),
    ("redis-7.2", False), pytest.param("redis-7.2", True, marks=pytest.mark.slow),
    ("valkey-8.0", False), pytest.param("valkey-8.0", True, marks=pytest.mark.slow)],
    indirect=["engine_build"])
def test_each_engine_forms_and_reshapes_under_a_writer(
        engine_build: EngineBuild,  # noqa: F811
        and_back: bool, redis_nodes_factory: Callable[..., RedisNodes]) -> None:
    """As `pulumi up` does it (reconcile.form, then reconcile.update with the least-moving
    split): 3 -> 4 moves 4,096 slots, 4 -> 3 the leaving shard's only."""
    eight = redis_nodes_factory(8, server=engine_build.server)
    pw = eight.password
    three = [n.to_dict() for n in layout(eight, *THREE)]
    four = reconcile.least_moving_nodes(three, [n.to_dict() for n in layout(eight, *FOUR)])

    snapshots = observe_nodes(layout(eight, *THREE), Access(pw))
    assert {s.identity for s in snapshots} == {
        ServerIdentity(engine_build.engine, engine_build.version)}
    assert engine_problems(snapshots, engine_build.engine) == []
    with eight[0].client() as conn:
        assert atomic_slot_migration(conn) is None  # the key-by-key mover is the way

    props = {**form_props([], pw, engine_build.engine), "nodes": three}
    formed = reconcile.form(props)
    assert formed.action == "created" and formed.state == "ok"
    assert reconcile.form(props).action == "adopted"
    data = preload(eight, 1000)

    grown_props = {**props, "nodes": four}
    grown, writer = under_writer(eight, "grow", lambda: reconcile.update(props, grown_props))
    assert grown.state == "ok" and len(grown.slot_ranges) == 4
    with cluster_client(eight) as client:
        assert writer.missing(client) == [], "acknowledged writes lost while growing"
    assert len(writer.acked) > 50, writer.errors[:5]
    if not and_back:
        assert_all_present(eight, data)
        return
    shrunk, writer = under_writer(eight, "shrink",
                                  lambda: reconcile.update(grown_props, props))
    assert shrunk.state == "ok" and len(shrunk.slot_ranges) == 3
    assert verify_cluster(layout(eight, *THREE), Access(pw)) == []
    with cluster_client(eight) as client:
        assert writer.missing(client) == [], "acknowledged writes lost while shrinking"
    assert_all_present(eight, data)


def test_a_node_of_another_engine_is_refused_before_anything_is_written(
        redis_nodes_factory: Callable[..., RedisNodes]) -> None:
    valkey = require_engine("valkey-8.0")
    six = redis_nodes_factory(6, server=valkey.server)
    plan = plan_for(six)

    with pytest.raises(EngineMismatchError) as refused:
        reconcile.form(form_props(plan, six.password, "redis"))

    message = str(refused.value)
    assert "runs valkey 8.0.1" in message and "engine is 'redis'" in message
    assert "engine: valkey" in message and "redisImage" in message
    assert six.password not in message
    for node in six:  # untouched: no slot, nobody met
        info = node.client().cluster("info")
        assert int(info["cluster_slots_assigned"]) == 0 and int(info["cluster_known_nodes"]) == 1


@pytest.mark.slow
def test_each_engine_forms_and_reshapes_with_tls_on_every_link(
        engine_build: EngineBuild,  # noqa: F811
        redis_nodes_factory: Callable[..., RedisNodes], tmp_path: Path) -> None:
    """tls: true as deployed (port 0, TLS on the bus and replication): our formation, a 3 -> 4
    reshape whose MIGRATEs go node to node over TLS, every key kept; plaintext refused."""
    tls = make_tls(tmp_path / "tls")
    eight = redis_nodes_factory(8, server=engine_build.server, tls=tls)
    pw = eight.password
    three, four = layout(eight, *THREE), layout(eight, *FOUR)
    props = {**form_props(three, pw, engine_build.engine),
             "tls": {"ca_bundle": tls.ca_pem, "token": "test"}}
    assert reconcile.form(props).state == "ok"
    client = RedisCluster(host=eight[0].host, port=eight[0].port, password=pw, ssl=True,
                          ssl_ca_data=tls.ca_pem, decode_responses=True)
    data = {f"tls:{i}": f"value-{i}" for i in range(2000)}
    client.mset_nonatomic(data)

    grown = reconcile.update(props, {**props, "nodes": [n.to_dict() for n in four]})
    assert grown.state == "ok" and set(grown.slot_ranges) == {n.name for n in four
                                                              if n.role == "master"}
    client.close()
    client = RedisCluster(host=eight[0].host, port=eight[0].port, password=pw, ssl=True,
                          ssl_ca_data=tls.ca_pem, decode_responses=True)
    assert client.mget_nonatomic(list(data)) == list(data.values())
    for node in eight:
        replication = node.client().info("replication")
        assert replication["role"] == "master" or replication["master_link_status"] == "up"
    with pytest.raises(redis.ConnectionError):
        redis.Redis(eight[0].host, eight[0].port, password=pw, socket_timeout=2).ping()
    client.close()


@pytest.mark.slow  # the matrix's longer checks run in the full suite
def test_each_engine_fails_over_a_killed_master_keeping_acknowledged_writes(
        engine_build: EngineBuild,  # noqa: F811
        redis_nodes_factory: Callable[..., RedisNodes]) -> None:
    six = redis_nodes_factory(6, server=engine_build.server, settings=DRILL_SETTINGS)
    plan = plan_for(six)
    reconcile.form(form_props(plan, six.password, engine_build.engine))
    wait_for_replica_links(six)

    result = run_master_failure_drill(targets_for(six), ProcessNodeControl(six), six[0].name,
                                      "kill")

    assert result.errors == [], result.errors
    assert result.new_master == six[3].name
    assert result.acked_writes >= 100 and result.acked_lost == 0, result
    assert result.recovery_seconds is not None and result.recovery_seconds < 5
    assert result.rejoined
    print(f"{engine_build.label}: failover in {result.recovery_seconds:.2f}s, "
          f"{result.acked_writes} acknowledged writes, 0 lost")


@pytest.mark.slow
def test_each_engine_takes_live_settings_and_a_new_password(
        engine_build: EngineBuild,  # noqa: F811
        redis_nodes_factory: Callable[..., RedisNodes]) -> None:
    six = redis_nodes_factory(6, server=engine_build.server)
    plan, old = plan_for(six), six.password
    reconcile.form(form_props(plan, old, engine_build.engine))
    wait_for_replica_links(six)

    # Several parameters in one CONFIG SET where the server takes it (all three do).
    wanted = {"maxmemory": "100mb", "maxmemory-policy": "allkeys-lfu", "appendonly": "yes",
              "cluster-node-timeout": "1500"}
    apply_settings(plan, Access(old), wanted, TIMEOUT_S, rewrite_config=True)
    for node in six:
        live = node.client().config_get("*")
        assert (live["maxmemory"], live["maxmemory-policy"], live["appendonly"],
                live["cluster-node-timeout"]) == ("104857600", "allkeys-lfu", "yes", "1500")

    new = f"rotated-{secrets.token_hex(12)}"
    rotate_password(plan, Access(old), new, timeout_s=TIMEOUT_S)
    for node in six:
        with pytest.raises(redis.AuthenticationError):
            node.client(old).ping()
        assert node.client(new).ping()
    wait_for_replica_links(six, new)



@pytest.mark.slow
def test_each_engine_runs_the_deployed_acl_users_and_rotates_their_passwords(
        engine_build: EngineBuild,  # noqa: F811
        redis_nodes_factory: Callable[..., RedisNodes]) -> None:
    passwords = {role: f"{role}-{secrets.token_hex(12)}" for role in ROLES}
    setup = AclSetup(render_users_acl(passwords), "admin", "replication", passwords["replication"])
    six = redis_nodes_factory(6, server=engine_build.server, password=passwords["admin"],
                              acl=setup)
    plan = [replace(node, username="admin") for node in plan_for(six)]
    props = {**form_props(plan, passwords["admin"], engine_build.engine),
             "acl": {"users_acl": setup.users_acl, "masteruser": "replication",
                     "masterauth": passwords["replication"]}}
    reconcile.form(props)

    # A rule naming a category the server lacks (ACL CAT) is refused before any change.
    odd = render_users_acl(passwords, app_rules="~* +@all -@nosuchcategory")
    with pytest.raises(PasswordRotationError, match="@nosuchcategory"):
        sync_acl_users(plan, Access(passwords["admin"]), passwords["admin"], odd,
                       "replication", passwords["replication"], timeout_s=TIMEOUT_S)
    assert six[0].client(passwords["app"], username="app").ping()  # unchanged

    # Every user gets a new password, live (what a rotation by `pulumi up` does).
    new = {role: f"new-{role}-{secrets.token_hex(12)}" for role in ROLES}
    sync_acl_users(plan, Access(passwords["admin"]), new["admin"], render_users_acl(new),
                   "replication", new["replication"], timeout_s=TIMEOUT_S)
    node = six[0]
    with pytest.raises(redis.AuthenticationError):
        node.client(passwords["admin"], username="admin").ping()
    admin = node.client(new["admin"], username="admin")
    assert admin.acl_whoami() == "admin" and admin.config_get("maxmemory")
    app = node.client(new["app"], username="app")
    key = next(k for k in (f"app-{i}" for i in range(100)) if key_slot(k.encode()) < 5461)
    app.set(key, "v")  # a slot of master-1, which node 0 is
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.config_get("maxmemory")
    exporter = node.client(new["exporter"], username="exporter")
    assert exporter.info("server")["redis_version"]
    with pytest.raises(redis.exceptions.NoPermissionError):
        exporter.set(key, "1")
    with pytest.raises(redis.AuthenticationError):
        node.client("anything-at-all-here").ping()  # the default user is off

    def replicas_linked() -> bool:  # as the `replication` user, with its new password
        roles = [n.client(new["admin"], username="admin").info("replication") for n in six]
        return all(r["master_link_status"] == "up" for r in roles if r["role"] == "slave")

    wait_for("replicas linked as the replication user", replicas_linked)
