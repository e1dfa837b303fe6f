"""Engines: which server a node is (from INFO server), what a stack may run, and the refusals
that protect a live cluster (pure; the real servers are in tests/integration/
test_engine_matrix.py)."""

from __future__ import annotations

import pytest

from clusterops.core.engines import (
    ServerIdentity,
    engine_problem,
    identity_from_info,
    parse_version,
)
from clusterops.node.observe import parse_info
from components.bootstrap import engine_switch_problem, optional_inputs
from components.spec import ConfigError, build_spec

# What each server of the matrix answered to INFO server (trimmed), read from the binaries.
REDIS_70 = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
REDIS_72 = "# Server\r\nredis_version:7.2.6\r\nredis_mode:cluster\r\n"
VALKEY_80 = ("# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"
             "server_mode:cluster\r\n")


@pytest.mark.parametrize(("info", "engine", "version", "rdb", "setslot_waits"), [
    (REDIS_70, "redis", (7, 0, 15), 10, False),
    (REDIS_72, "redis", (7, 2, 6), 11, False),
    (VALKEY_80, "valkey", (8, 0, 1), 11, True),
])
def test_the_server_says_what_it_is_not_the_image_tag(info, engine, version, rdb,
                                                      setslot_waits):
    identity = identity_from_info(parse_info(info))
    assert identity == ServerIdentity(engine, version)
    assert identity.rdb_version == rdb
    assert identity.setslot_waits_for_replicas is setslot_waits


def test_a_valkey_server_under_engine_redis_is_refused_with_both_fixes():
    valkey = identity_from_info(parse_info(VALKEY_80))
    assert valkey is not None
    problem = engine_problem("redis", valkey, "master-1 (10.0.0.2:6379)")
    assert problem and "master-1 (10.0.0.2:6379) runs valkey 8.0.1" in problem
    assert "`engine: valkey`" in problem and "`redisImage`" in problem
    assert engine_problem("valkey", valkey, "n") is None


def test_a_server_older_than_the_features_we_use_is_refused_naming_the_version():
    old = ServerIdentity("redis", parse_version("6.2.14"))
    problem = engine_problem("redis", old, "n")
    assert problem and "redis 6.2.14" in problem and "redis 7.0.0 or newer" in problem
    assert engine_problem("redis", ServerIdentity("redis", (7, 0, 0)), "n") is None


def test_an_info_without_a_version_is_no_identity():
    assert identity_from_info({"redis_mode": "cluster"}) is None
    assert parse_version("8.0") == (8, 0, 0) and parse_version("x.y") == (0, 0, 0)


def test_engine_picks_the_pinned_image_and_a_bad_value_names_the_choices():
    assert build_spec({}, "dev", False).redis_image == "redis:7.0.15-bookworm"
    valkey = build_spec({"engine": "valkey"}, "dev", False)
    assert (valkey.engine, valkey.redis_image) == ("valkey", "valkey/valkey:8.0.1-bookworm")
    mine = build_spec({"engine": "valkey", "redisImage": "registry.local/valkey:8.0.1"},
                      "dev", False)
    assert mine.redis_image == "registry.local/valkey:8.0.1"
    with pytest.raises(ConfigError) as bad:
        build_spec({"engine": "keydb"}, "dev", False)
    assert "engine" in str(bad.value) and "redis, valkey" in str(bad.value)


def test_switching_the_engine_of_a_formed_cluster_is_refused_with_the_way_to_move():
    nodes = [{"name": "n"}]
    problem = engine_switch_problem({"nodes": nodes}, {"nodes": nodes, "engine": "valkey"})
    assert problem and "runs redis" in problem and "asks for valkey" in problem
    assert "clusterops backup" in problem and "clusterops restore" in problem
    assert engine_switch_problem({"nodes": nodes, "engine": "valkey"}, {"nodes": nodes})
    assert engine_switch_problem({}, {"nodes": nodes, "engine": "valkey"}) is None  # new
    assert engine_switch_problem({"nodes": nodes, "engine": "valkey"},
                                 {"nodes": nodes, "engine": "valkey"}) is None


def test_a_redis_stack_keeps_its_inputs_exactly_as_before_the_setting():
    assert "engine" not in optional_inputs(None, None, 0)
    assert optional_inputs(None, None, 0, "valkey")["engine"] == "valkey"


def test_acl_categories_a_rule_names_are_checked_against_the_servers_own_list():
    from clusterops.provision.password_rotation import unknown_categories

    known = {"admin", "dangerous", "keyspace", "read", "write"}
    rules = ["on", "~*", "&*", "+@all", "-@admin", "-@dangerous", "+info", "+@Read"]
    assert unknown_categories(rules, known) == []
    assert unknown_categories([*rules, "-@slowlog"], known) == ["slowlog"]


def test_a_setslot_released_because_its_node_turned_replica_counts_as_demoted():
    from clusterops.reshape.migrate import _turned_replica

    # What Valkey 8.0.1 answered a SETSLOT NODE waiting for its replicas when the source's
    # last slot moved away (seen in tests/integration/test_engine_matrix.py).
    assert _turned_replica(Exception("UNBLOCKED force unblock from blocking operation, "
                                     "instance state changed (master -> replica?)"))
    assert _turned_replica(Exception("ERR Please use SETSLOT only with masters."))
    assert not _turned_replica(Exception("ERR I still hold keys for slot 5"))
