"""What a deployment does to the live cluster: form it, or bring it from the old inputs to the new.

The one body of `pulumi up`'s cluster work, for both targets. The Docker target's dynamic
provider (components/bootstrap.py) calls it from the machine running Pulumi; the Kubernetes
target's (components/k8s_operations.py) calls it in a pod of the tools image, where the nodes
are reachable (k8s_bootstrap/reconcile.py). Pulumi-free on purpose: the tools image has no
Pulumi, and the same function must do the same thing on both sides.

Inputs are property bags as the providers keep them, with secrets already unwrapped: ``nodes``
(NodeTarget dicts), ``password``, ``settings``, ``timeout_seconds``, ``rewrite_config`` and,
when enabled, ``tls`` ({"ca_bundle", "token"}) and ``acl`` ({"users_acl", "masteruser",
"masterauth"}); old bags also carry the last ``node_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from clusterops.core.errors import ClusterOpsError, PlanError
from clusterops.core.model import ClusterReport, NodeTarget, plan_problems
from clusterops.node.access import Access
from clusterops.provision.engine_check import refuse_other_engine
from clusterops.provision.formation import form_cluster
from clusterops.provision.handover import hand_over as hand_over_node
from clusterops.provision.password_rotation import rotate_password, sync_acl_users
from clusterops.provision.settings import TLS_FILE_SETTINGS, apply_settings
from clusterops.reshape.least_moves import least_moving_split
from clusterops.reshape.scaling import preview_reshape, reshape_cluster

DEFAULT_TIMEOUT_SECONDS = 120
# What makes up the cluster's topology; everything else in a node (admin address) only says
# how this process reaches it and may change freely.
TOPOLOGY_FIELDS = ("role", "cluster_host", "cluster_port", "slots", "master")
# What scaling may not change on a node that stays: its identity in the cluster.
FIXED_FIELDS = ("role", "cluster_host", "cluster_port")
# The preview's account of a reshape (a list of lines); informative, never compared.
RESHAPE_PLAN_KEY = "reshape_plan"
# Optional input: the key mover's ceiling in keys/s during a reshape (absent: unpaced).
RESHAPE_PACE_KEY = "reshape_max_keys_per_second"
# Optional input: the server family (clusterops/core/engines.py); absent: redis, so the
# states of stacks older than the setting read the same.
ENGINE_KEY = "engine"
DEFAULT_ENGINE = "redis"

Props = Mapping[str, Any]


class TopologyChangeError(ClusterOpsError):
    """The requested change moves or re-roles a surviving node, which no reshape does."""


def password_of(props: Props) -> str | None:
    value = props.get("password")
    return value if isinstance(value, str) and value else None


def tls_of(props: Props) -> dict[str, str] | None:
    """{"ca_bundle": PEM, "token": digest of the certificates} with tls: true, else None."""
    value = props.get("tls")
    return dict(value) if isinstance(value, Mapping) and value.get("ca_bundle") else None


def acl_of(props: Props) -> dict[str, str] | None:
    """{"users_acl": the nodes' users.acl, "masteruser", "masterauth"} with acl: true, else
    None. ``password`` is then the admin user's, and every node names that user."""
    value = props.get("acl")
    return dict(value) if isinstance(value, Mapping) and value.get("users_acl") else None


def nodes_of(props: Props) -> list[NodeTarget]:
    tls = tls_of(props)
    ca = tls["ca_bundle"] if tls else None
    return [replace(NodeTarget.from_dict(node), tls_ca=ca) for node in props["nodes"]]


def rewrite_config_of(props: Props) -> bool:
    """Whether a rotated password is persisted with CONFIG REWRITE (default) or is already
    in files the deployment manages."""
    return props.get("rewrite_config") is not False


def settings_of(props: Props) -> dict[str, str]:
    """The declared live settings (setting -> CONFIG SET value); none when not given."""
    return dict(props.get("settings") or {})


def reshape_pace_of(props: Props) -> float | None:
    """The key mover's ceiling for a reshape (keys/s), None: unpaced."""
    value = props.get(RESHAPE_PACE_KEY)
    return float(value) if value else None


def engine_of(props: Props) -> str:
    value = props.get(ENGINE_KEY)
    return value if isinstance(value, str) and value else DEFAULT_ENGINE


def timeout_of(props: Props) -> float:
    return float(props.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS)


def normalized_node(node: Mapping[str, Any]) -> dict[str, Any]:
    return NodeTarget.from_dict(node).to_dict()


def _tls_reload(olds: Props, news: Props) -> tuple[str, ...]:
    """The TLS file settings to CONFIG SET even though their paths did not change: the files
    hold new certificates (or a new CA), and setting them is what makes Redis read them."""
    old, new = tls_of(olds), tls_of(news)
    if new and (not old or old.get("token") != new.get("token")):
        return tuple(TLS_FILE_SETTINGS)
    return ()


def _topology(nodes: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        node["name"]: {key: node.get(key) for key in TOPOLOGY_FIELDS}
        for node in (normalized_node(n) for n in nodes)
    }


def _field_changes(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]],
                   fields: Sequence[str]) -> list[tuple[str, str]]:
    """(node, "field old -> new, ...") for each node of both whose ``fields`` differ."""
    found = []
    for name in sorted(set(old) & set(new)):
        changed = [key for key in fields if old[name][key] != new[name][key]]
        if changed:
            found.append((name, ", ".join(
                f"{k} {old[name][k]!r} -> {new[name][k]!r}" for k in changed)))
    return found


def topology_change(
    old_nodes: Sequence[Mapping[str, Any]], new_nodes: Sequence[Mapping[str, Any]]
) -> str | None:
    """Pure: a description of what changed in the topology, or None when it is unchanged."""
    old, new = _topology(old_nodes), _topology(new_nodes)
    parts = []
    if added := sorted(set(new) - set(old)):
        parts.append(f"adds {', '.join(added)}")
    if removed := sorted(set(old) - set(new)):
        parts.append(f"removes {', '.join(removed)}")
    parts += [f"changes {name}: {changes}"
              for name, changes in _field_changes(old, new, TOPOLOGY_FIELDS)]
    return "; ".join(parts) or None


def unsupported_change(
    old_nodes: Sequence[Mapping[str, Any]], new_nodes: Sequence[Mapping[str, Any]]
) -> str | None:
    """Pure: what no reshape can do (a surviving node moved or re-roled), or None."""
    parts = [f"{name}: {changes}" for name, changes in
             _field_changes(_topology(old_nodes), _topology(new_nodes), FIXED_FIELDS)]
    return "; ".join(parts) or None


def refuse_unsupported_change(olds: Props, news: Props) -> None:
    change = unsupported_change(olds.get("nodes") or [], news.get("nodes") or [])
    if change:
        raise TopologyChangeError(
            f"this change moves or re-roles a node that stays ({change}). That is not supported "
            "by this provider: a node's address and role are its identity in the cluster. "
            "Nothing was changed on the live cluster. Add a new node and remove the old one "
            "instead (change masters/replicasPerMaster), or revert the change."
        )


def preview(olds: Props, news: Props) -> tuple[list[str] | None, list[str]]:
    """The reshape's summary lines (None when there is nothing to reshape) and the reasons to
    refuse it, read from the live cluster (read-only). The caller has checked that both bags
    are complete and that no surviving node moves."""
    try:
        old, new = nodes_of(olds), nodes_of(news)
    except (KeyError, TypeError, ValueError):
        return None, []  # malformed inputs: the provider's check says why
    if plan_problems(new):
        return None, []
    plan = preview_reshape(old, new, Access(password_of(news) or ""))
    refusals = [f"unsafe to reshape the live cluster: {problem}" for problem in plan.problems]
    if topology_change(olds["nodes"], news["nodes"]) is None:
        # Same plan: a node being down is for health checks, not a reason to refuse a preview
        # (a rolling replacement takes nodes down on purpose). Anything else is: a cluster
        # changed by hand, or slots served by a node of neither plan (a scale-out that failed
        # half-way, then reverted in the config: this update would let the engine delete it).
        refusals = [f"unsafe to reshape the live cluster: {p}"
                    for p in plan.problems if p not in plan.down]
        if plan.nothing_to_do:
            return None, refusals
    return plan.summary(), refusals


def form(props: Props) -> ClusterReport:
    """Create, finish or adopt the planned cluster, with its users and live settings."""
    nodes, password, timeout = nodes_of(props), password_of(props) or "", timeout_of(props)
    access = Access(password)
    # Before any write (ACL users included): every node must run the stack's engine.
    refuse_other_engine(nodes, access, engine_of(props), timeout)
    acl = acl_of(props)
    if acl:
        # The nodes started with these users; this corrects adopted nodes (data volumes
        # kept from an earlier stack) before formation needs the admin user.
        sync_acl_users(nodes, access, password, acl["users_acl"], acl["masteruser"],
                       acl["masterauth"], timeout)
    report = form_cluster(nodes, access, timeout)
    # The nodes started from files holding these values; this only corrects an adopted
    # cluster whose live values differ (an earlier deployment, a hand-made CONFIG SET).
    apply_settings(nodes, access, settings_of(props), timeout,
                   rewrite_config=rewrite_config_of(props))
    return report


def _switch_credentials(olds: Props, news: Props) -> None:
    """Users' rules and passwords as the new inputs say, live on the deployed nodes (new
    nodes start with them already)."""
    password, timeout = password_of(news) or "", timeout_of(news)
    old_password = password_of(olds)
    acl = acl_of(news)
    if acl and (acl != acl_of(olds) or old_password != password):
        sync_acl_users(nodes_of(olds), Access(old_password or password), password,
                       acl["users_acl"], acl["masteruser"], acl["masterauth"], timeout)
    elif old_password and old_password != password:
        rotate_password(nodes_of(olds), Access(old_password), password, timeout,
                        rewrite_config=rewrite_config_of(news))


def update(olds: Props, news: Props) -> ClusterReport:
    """From the old inputs to the new: credentials, reshape, settings, then adopt and verify."""
    refuse_unsupported_change(olds, news)
    nodes, access, timeout = nodes_of(news), Access(password_of(news) or ""), timeout_of(news)
    # Nodes a scale-out adds (they start with the new password) must run the stack's engine
    # before any slot moves to them.
    known = {node.name for node in nodes_of(olds)}
    added = [node for node in nodes if node.name not in known]
    if added:
        refuse_other_engine(added, access, engine_of(news), timeout)
    _switch_credentials(olds, news)
    if topology_change(olds["nodes"], news["nodes"]) or news.get(RESHAPE_PLAN_KEY):
        problems = plan_problems(nodes)
        if problems:
            raise PlanError(reason for _field, reason in problems)
        reshape_cluster(nodes_of(olds), nodes, access, timeout,
                        recorded_ids=olds.get("node_ids") or {},
                        max_keys_per_second=reshape_pace_of(news))
    # Live, node by node, with no restart (new nodes included); compared with the live
    # values, not with the old inputs, so an interrupted earlier run is finished here.
    apply_settings(nodes, access, settings_of(news), timeout,
                   rewrite_config=rewrite_config_of(news), force=_tls_reload(olds, news))
    # Adopts the cluster as it is (no writes when it is the planned one) and verifies it.
    return form_cluster(nodes, access, timeout)


def report_fields(report: ClusterReport) -> dict[str, Any]:
    """What a provider records of the cluster after create or update (plain JSON)."""
    return {
        "node_ids": dict(report.node_ids),
        "slot_ranges": {name: [list(r) for r in ranges]
                        for name, ranges in report.slot_ranges.items()},
        "cluster_state": report.state,
        "live_roles": dict(report.live_roles),
        "cluster_problems": [],
    }


def shard_of(nodes: Sequence[NodeTarget], name: str) -> list[NodeTarget]:
    """The planned members of ``name``'s shard: its master and the replicas that follow it."""
    node = next(n for n in nodes if n.name == name)
    master = node.name if node.role == "master" else node.master
    return [n for n in nodes if n.name == master or n.master == master]


def hand_over(props: Props, name: str) -> dict[str, Any]:
    """Make node ``name`` safe to take down (its shard healthy; a live master hands its slots
    to a synced replica of its own first): what a rolling replacement does before each node."""
    nodes = nodes_of(props)
    shard = shard_of(nodes, name)
    node = next(n for n in shard if n.name == name)
    report = hand_over_node(node, shard, Access(password_of(props) or ""), timeout_of(props))
    return {"node": report.node, "was_master": report.was_master,
            "new_master": report.new_master, "seconds": round(report.seconds, 3)}


def least_moving_nodes(old_nodes: Sequence[Mapping[str, Any]],
                       new_nodes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The new nodes with the masters' slots the cluster should reach from the split it has
    (``old_nodes``, as deployed), moving the fewest slots (clusterops.reshape.least_moves)
    instead of the program's fresh split. Replicas hold no slots."""
    # Numbers come back from the engine's state as floats (protobuf Struct).
    current = {str(n["name"]): [[int(a), int(b)] for a, b in n.get("slots") or []]
               for n in old_nodes if n.get("role") == "master"}
    masters = [str(n["name"]) for n in new_nodes if n.get("role") == "master"]
    if not current or not masters:
        return [dict(n) for n in new_nodes]
    split = least_moving_split(current, masters)
    return [{**n, "slots": split[str(n["name"])]} if n.get("role") == "master" else dict(n)
            for n in new_nodes]
