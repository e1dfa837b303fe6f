"""NodeHandover: a dynamic resource that runs just before a node's container is replaced.

pulumi-docker replaces every node container of an image upgrade at once (delete-before-
replace, in parallel): a full-cluster restart. The program orders them instead, per shard:
replicas first, then the master, each container depending on its own NodeHandover, and each
NodeHandover depending on the container replaced before it in the shard. The engine runs a
dependent's step only after its dependencies' steps finished, so one shard never has two
nodes down together (shards roll in parallel).

The handover's `trigger` input is what replaces the container (image, start-only config
digest). When it changes, `update` runs clusterops.provision.handover.hand_over: wait until
the rest of the shard is up and linked (the node replaced just before has caught up), and if
the node is a live master, CLUSTER FAILOVER to a linked replica so its container goes down
holding no slots. Any other update (password, provider code) changes nothing on the cluster.

Same protocol rules as components/bootstrap.py: module imports cleanly, no state, `diff`
ignores the pickled `__provider`, outputs repeat the inputs, `create` and `delete` touch
nothing (a first deploy has no cluster yet; a deleted node is the bootstrap's business).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime import rpc

from clusterops.core.errors import ClusterOpsError
from clusterops.core.model import NodeTarget
from clusterops.node.access import Access
from clusterops.provision.handover import hand_over
from components.preview_values import contains_unknown
from components.provider_version import module_version
from components.topology import ClusterPlan, PlannedNode

PROVIDER_VERSION = module_version(__name__)  # the code it runs (components/provider_version.py)
# tls_ca: the cluster's CA bundle with tls: true (absent otherwise); a node dict names the ACL
# user to act as (the admin) with acl: true.
# credentials (acl: true, a secret): a digest of every user's password and of the replicas'
# masterauth, which a rolling replacement must not change either (see refuse_unsafe_change).
INPUT_KEYS = ("node", "shard", "password", "trigger", "timeout_seconds", "provider_version",
              "tls_ca", "credentials")


SECRET_KEYS = ("password", "credentials")


def _secret(props: Mapping[str, Any], key: str = "password") -> str:
    return str(rpc.unwrap_rpc_secret(props.get(key)) or "")


def _comparable(props: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _secret(props, key) if key in SECRET_KEYS else props.get(key)
            for key in INPUT_KEYS}


class HandoverRefused(ClusterOpsError):
    """The requested change cannot roll safely; raised in diff, so preview shows the reason."""


def refuse_unsafe_change(node: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> None:
    """A new trigger (the container is replaced) together with a new password cannot roll: the
    replaced replica would start with the new password while its master keeps the old one
    until the bootstrap switches it (last), so it could never link, and the handover would
    wait for it in vain. With ACL users the same holds for any user's password (a replaced
    replica would send its master a replication password the master does not know yet)."""
    changed = any(_secret(olds, key) != _secret(news, key) for key in SECRET_KEYS)
    if olds.get("trigger") != news.get("trigger") and changed:
        raise HandoverRefused(
            f"{node}: this run replaces the node containers (new image or start-only config) "
            "and changes the password at once, which cannot roll without an outage: a "
            "replaced node would start with the new password while its shard still uses the "
            "old one. Nothing was changed. Fix: change the password in one `pulumi up`, then "
            "the image in the next.")


def _target(node: Mapping[str, Any], props: Mapping[str, Any]) -> NodeTarget:
    """A node as the handover reaches it: over TLS with the cluster's CA when it has one (a
    plaintext client would find no node of a TLS shard ready, and refuse every roll)."""
    return replace(NodeTarget.from_dict(node), tls_ca=props.get("tls_ca") or None)


def _outputs(props: Mapping[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
    outs = {key: props.get(key) for key in INPUT_KEYS}
    outs["password"] = rpc.wrap_rpc_secret(_secret(props))
    if props.get("credentials"):
        outs["credentials"] = rpc.wrap_rpc_secret(_secret(props, "credentials"))
    outs["last_handover"] = last
    return outs


class NodeHandoverProvider(dynamic.ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        inputs = dict(news)
        failures = []
        if not contains_unknown(news.get("password")):
            if not _secret(news):
                failures.append(dynamic.CheckFailure("password", "a password is required"))
            inputs["password"] = rpc.wrap_rpc_secret(_secret(news))
        if news.get("credentials") and not contains_unknown(news.get("credentials")):
            inputs["credentials"] = rpc.wrap_rpc_secret(_secret(news, "credentials"))
        node, shard = news.get("node"), news.get("shard")
        if not contains_unknown([node, shard]) and not (
                isinstance(node, Mapping) and isinstance(shard, list)
                and node.get("name") in {member.get("name") for member in shard}):
            failures.append(dynamic.CheckFailure("shard", "must list the node's shard, the "
                                                 "node included"))
        return dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        if contains_unknown({key: news.get(key) for key in INPUT_KEYS}):
            return dynamic.DiffResult(changes=True, replaces=[], delete_before_replace=False)
        refuse_unsafe_change(str(news["node"].get("name")), olds, news)
        old, new = _comparable(olds), _comparable(news)
        return dynamic.DiffResult(changes=any(old[k] != new[k] for k in INPUT_KEYS),
                                  replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(f"handover-{props['node']['name']}", _outputs(props, None))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        last = olds.get("last_handover")
        refuse_unsafe_change(str(news["node"].get("name")), olds, news)
        if olds.get("trigger") != news.get("trigger"):
            shard = [_target(member, news) for member in news["shard"]]
            report = hand_over(_target(news["node"], news), shard, Access(_secret(news)),
                               float(news.get("timeout_seconds") or 120))
            last = {"was_master": report.was_master, "new_master": report.new_master,
                    "seconds": round(report.seconds, 3)}
        return dynamic.UpdateResult(_outputs(news, last))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to undo: a handover leaves the cluster healthy, only with roles swapped."""


class NodeHandover(dynamic.Resource, module="alphapulse", name="NodeHandover"):
    """Makes one node safe to take down just before its container is replaced."""

    last_handover: pulumi.Output[dict[str, Any] | None]

    def __init__(
        self,
        resource_name: str,
        node: Mapping[str, Any],
        shard: Sequence[Mapping[str, Any]],
        password: pulumi.Input[str],
        trigger: pulumi.Input[str],
        timeout_seconds: float = 120,
        tls_ca: pulumi.Input[str] | None = None,
        credentials: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "node": dict(node),
            "shard": [dict(member) for member in shard],
            "password": pulumi.Output.secret(password),
            "trigger": trigger,
            "timeout_seconds": timeout_seconds,
            "provider_version": PROVIDER_VERSION,
            "last_handover": None,
        }
        if tls_ca is not None:
            props["tls_ca"] = tls_ca  # only with tls: true: a plaintext stack's inputs stay
        if credentials is not None:
            props["credentials"] = pulumi.Output.secret(credentials)  # only with acl: true
        super().__init__(NodeHandoverProvider(), resource_name, props, opts)


def rolling_order(plan: ClusterPlan) -> list[list[PlannedNode]]:
    """Pure: each shard's nodes in the order they are replaced: its replicas, then its master
    (the master last, so its slots move once, to a replica already on the new image)."""
    return [[*(n for n in plan.nodes if n.master == master.name), master]
            for master in plan.masters]
