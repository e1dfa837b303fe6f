"""NodeHandover's pure parts: the rolling order, its diff, and the change it refuses."""

import pytest

from components.node_handover import HandoverRefused, NodeHandoverProvider, rolling_order
from components.spec import build_spec
from components.topology import plan_cluster

NODE = {"name": "m1", "role": "master", "admin_host": "10.0.0.11", "admin_port": 6379,
        "cluster_host": "10.0.0.11", "cluster_port": 6379, "slots": [[0, 5460]]}
OLDS = {"node": NODE, "shard": [NODE], "password": "old-password", "trigger": "img:1|abc",
        "timeout_seconds": 120, "provider_version": "v", "last_handover": None}


def test_each_shard_rolls_its_replicas_then_its_master():
    plan = plan_cluster(build_spec({"replicasPerMaster": "2"}, "dev", False))
    order = rolling_order(plan)
    assert len(order) == 3
    for shard in order:
        *replicas, master = shard
        assert master.role == "master" and len(replicas) == 2
        assert all(r.role == "replica" and r.master == master.name for r in replicas)


def test_diff_ignores_the_pickle_and_never_replaces():
    provider = NodeHandoverProvider()
    assert not provider.diff("id", OLDS, {**OLDS, "__provider": "new"}).changes
    new_image = provider.diff("id", OLDS, {**OLDS, "trigger": "img:2|abc"})
    assert new_image.changes and new_image.replaces == []
    assert provider.diff("id", OLDS, {**OLDS, "password": "new-password"}).changes


def test_a_new_image_and_a_new_password_at_once_are_refused_at_preview():
    with pytest.raises(HandoverRefused, match="m1: .*password.*Nothing was changed"):
        NodeHandoverProvider().diff("id", OLDS, {**OLDS, "trigger": "img:2|abc",
                                                 "password": "new-password"})


def test_with_acl_users_a_new_image_and_any_users_new_password_are_refused():
    olds = {**OLDS, "credentials": "digest-1"}
    provider = NodeHandoverProvider()
    assert provider.diff("id", olds, {**olds, "credentials": "digest-2"}).changes
    with pytest.raises(HandoverRefused, match="m1: .*password.*Nothing was changed"):
        provider.diff("id", olds, {**olds, "trigger": "img:2|abc", "credentials": "digest-2"})
    assert provider.diff("id", olds, {**olds, "trigger": "img:2|abc"}).changes  # image alone
