"""Settings changed live with CONFIG SET on real redis-server 7.0.15 processes, and persisted.

What the Docker stack relies on: every setting `components.redis_conf.live_settings` declares
is one Redis changes at run time (so no container needs replacing), the directives kept for
the next start are ones Redis refuses to change or that we must not, and the bootstrap
provider's update applies a changed setting on every node without a restart or a resync.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from clusterops.node.access import Access
from clusterops.provision.settings import LiveConfigError, apply_settings, canonical
from components.bootstrap import PROVIDER_VERSION, ClusterBootstrapProvider
from components.redis_conf import RESTART_DIRECTIVES, live_settings
from components.spec import build_spec
from tests.support.process_plans import plan_for, wait_for_replica_links
from tests.support.redis_nodes import RedisNodes

MIB = 1024**2
# Redis' own refusals (config.c: IMMUTABLE_CONFIG / PROTECTED_CONFIG). The other restart
# directives (port, bind, announced address) Redis would change, but changing a node's address
# under the cluster is a topology change, never a setting.
REFUSED_BY_REDIS = ("dir", "cluster-enabled", "cluster-config-file", "appendfilename",
                    "appenddirname", "dbfilename", "logfile")


def declared(**config: str) -> dict[str, str]:
    return live_settings(build_spec(config, "dev", False))


def test_every_declared_live_setting_is_changed_at_run_time_by_redis(redis_nodes_factory):
    (node,) = redis_nodes_factory(1, settings={"cluster-enabled": "yes"})
    plan = plan_for([node], masters=1)
    for config in ({}, {"maxmemory": "96mb", "rdbSave": "", "appendonly": "false",
                        "appendfsync": "always", "maxmemoryPolicy": "noeviction",
                        "nodeTimeoutMs": "2000", "replicaValidityFactor": "10"}):
        settings = declared(**config)
        # apply_settings verifies with CONFIG GET.
        apply_settings(plan, Access(node.password), settings, timeout_s=10)
        live = node.client().config_get("*")
        assert live["maxmemory"] == canonical("maxmemory", settings["maxmemory"])
        assert live["save"] == settings["save"] and live["appendfsync"] == settings["appendfsync"]


def test_directives_kept_for_the_next_start_include_every_one_redis_refuses(redis_nodes_factory):
    (node,) = redis_nodes_factory(1)
    conn = node.client()
    for directive in REFUSED_BY_REDIS:
        assert directive in RESTART_DIRECTIVES
        (current,) = conn.config_get(directive).values()
        with pytest.raises(redis.ResponseError, match="can't set (immutable|protected) config"):
            conn.config_set(directive, current)


def test_an_unknown_setting_changes_nothing_on_any_node(redis_nodes_factory):
    nodes = redis_nodes_factory(2)
    plan = plan_for(list(nodes), masters=2)
    before = [n.client().config_get("maxmemory") for n in nodes]
    with pytest.raises(LiveConfigError, match="does not know the setting.*no-such-setting"):
        apply_settings(plan, Access(nodes.password), {"maxmemory": "32mb", "no-such-setting": "1"},
                       5)
    assert [n.client().config_get("maxmemory") for n in nodes] == before


def _inputs(nodes: RedisNodes, settings: dict[str, str]) -> dict[str, Any]:
    return {"nodes": [t.to_dict() for t in plan_for(nodes)], "password": nodes.password,
            "provider_version": PROVIDER_VERSION, "timeout_seconds": 30,
            "settings": settings}


def test_provider_update_applies_a_setting_on_every_node_without_restart_and_persists_it(
        six_nodes: RedisNodes):
    provider = ClusterBootstrapProvider()
    before_settings = declared(maxmemory="64mb")
    outs = provider.create(provider.check({}, _inputs(six_nodes, before_settings)).inputs).outs
    wait_for_replica_links(six_nodes)
    pids = [n.pid for n in six_nodes]
    full_syncs = [n.client().info("stats")["sync_full"] for n in six_nodes]
    # A hand-made change on one node is drift: the update corrects it as well.
    six_nodes[2].client().config_set("maxmemory-policy", "noeviction")

    after_settings = declared(maxmemory="96mb", appendfsync="always")
    news = provider.check(outs, _inputs(six_nodes, after_settings)).inputs
    assert provider.diff("id", outs, news).changes
    updated = provider.update("id", outs, news).outs

    assert updated["settings"] == after_settings and updated["node_ids"] == outs["node_ids"]
    for node in six_nodes:
        live = node.client().config_get("*")
        assert (live["maxmemory"], live["appendfsync"], live["maxmemory-policy"]) == (
            str(96 * MIB), "always", "allkeys-lru"), node.name
    assert [n.pid for n in six_nodes] == pids, "a node was restarted"
    assert [n.client().info("stats")["sync_full"] for n in six_nodes] == full_syncs
    # Persisted (CONFIG REWRITE into each node's own config file): a restart keeps it.
    six_nodes[3].stop()
    six_nodes[3].start()
    assert six_nodes[3].client().config_get("maxmemory") == {"maxmemory": str(96 * MIB)}
