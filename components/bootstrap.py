"""The cluster bootstrap: a Pulumi dynamic resource that forms, checks and re-checks the cluster.

The cluster work itself lives in :mod:`clusterops` (plain redis-py); this module only maps
Pulumi's provider protocol onto it. Facts from pulumi/pulumi that shape it:

- The provider object is pickled with dill and unpickled in a separate ``python -m
  pulumi.dynamic`` process started in the project directory. This module therefore imports
  cleanly with no side effects, the provider class lives at module level (dill pickles it by
  reference, so the serialized provider is small and stable), it holds no state, and every
  redis client is made inside the method that uses it (#7453, #17673).
- ``check`` rejects bad inputs with ``CheckFailure(property, reason)`` at preview.
- ``diff`` must say "no change" when only the serialized ``__provider`` string differs: the
  default diff answers "unknown", which makes the engine compare every input including
  ``__provider`` and show a spurious update whenever the pickle bytes change. Provider code
  changes are carried by the ``provider_version`` input instead (#12401).
- ``update`` returns every output (#7809); ``delete`` receives outputs only, so outputs repeat
  every input (#9086). ``delete`` forgets the resource and destroys no data.
- The engine strips secrets before calling a dynamic provider and marks an output secret only
  where the same-named input was secret (#3012). We do not rely on that: the password is
  returned explicitly wrapped as a secret from check, create, update and read.
- ``settings`` (what Redis changes at run time: maxmemory, appendfsync, ...) are applied on
  every node with CONFIG SET in ``create`` and ``update`` (clusterops.provision.settings): a setting
  change is an update of this resource, shown in the preview, and restarts no node.
- Scaling (nodes added or removed, slot ranges changed, a replica following another master)
  is an update: ``check`` reads the live cluster where it answers and puts the plan (nodes in
  and out, every slot range with source and target and its key count) into the
  ``reshape_plan`` input, so ``pulumi preview --diff`` shows it, and refuses with a
  CheckFailure a live cluster changed by hand; ``update`` runs :mod:`clusterops.reshape.scaling`.
  The engine creates new containers before this update (the resource depends on every
  container) and deletes removed ones after it. Moving a surviving node to another address
  or changing its role is still refused.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime import rpc

from clusterops.core.model import ClusterReport, NodeTarget, plan_problems
from clusterops.node.access import Access
from clusterops.provision.settings import settings_problems
from clusterops.state.topology import read_live_topology
from clusterops.tasks import reconcile
from clusterops.tasks.reconcile import (
    DEFAULT_TIMEOUT_SECONDS,
    RESHAPE_PLAN_KEY,
    refuse_unsupported_change,
    topology_change,
    unsupported_change,
)
from components.preview_values import contains_unknown
from components.provider_version import module_version

# Derived, not bumped by hand (a manual bump was missed once): any change to the code the
# provider runs makes existing stacks run `update` once with it, since a changed pickle alone
# never triggers an update (see diff()). An update of an unchanged cluster only verifies it.
PROVIDER_VERSION = module_version(__name__)
MAX_TIMEOUT_SECONDS = 3600
INPUT_KEYS = ("nodes", "password", "provider_version", "timeout_seconds", "rewrite_config",
              "settings", "tls", "acl")
NODE_FIELDS = ("name", "role", "admin_host", "admin_port", "cluster_host", "cluster_port")
__all__ = ["topology_change", "unsupported_change"]  # this provider's rules, kept importable


def _password(props: Mapping[str, Any]) -> str | None:
    value = rpc.unwrap_rpc_secret(props.get("password"))
    return value if isinstance(value, str) and value else None


def _acl(props: Mapping[str, Any]) -> dict[str, str] | None:
    return reconcile.acl_of({"acl": rpc.unwrap_rpc_secret(props.get("acl"))})


def show_progress() -> None:
    """clusterops' step lines (INFO: "wave 1: moving 1365 slot(s)", "moved ...") on this
    process's stderr, which the engine shows in `pulumi up`'s output: one line per step."""
    logger = logging.getLogger("clusterops")
    if not any(getattr(h, "alphapulse_progress", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.alphapulse_progress = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def plain(props: Mapping[str, Any]) -> dict[str, Any]:
    """The property bag with its secrets unwrapped: what clusterops.tasks.reconcile takes."""
    bag = dict(props)
    bag["password"] = _password(props)
    if _acl(props) is not None:
        bag["acl"] = _acl(props)
    return bag


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """The comparable input values of a property bag (old outputs or new inputs)."""
    return {
        "nodes": [reconcile.normalized_node(n) for n in props.get("nodes") or []],
        "password": _password(props),
        "provider_version": props.get("provider_version"),
        "timeout_seconds": reconcile.timeout_of(props),
        "rewrite_config": reconcile.rewrite_config_of(props),
        "settings": reconcile.settings_of(props),
        "tls": reconcile.tls_of(props),
        "acl": _acl(props),
    }


def _reshape_preview(olds: Mapping[str, Any], news: Mapping[str, Any]
                     ) -> tuple[list[str] | None, list[dynamic.CheckFailure]]:
    """The reshape's summary lines (None when there is nothing to reshape) and the reasons to
    refuse it, from the live cluster where it answers (read-only)."""
    if not olds.get("nodes") or contains_unknown(news.get("nodes")) or _password(news) is None:
        return None, []
    if unsupported_change(olds["nodes"], news["nodes"]):
        return None, []  # refused by diff with its own message
    summary, refusals = reconcile.preview(plain(olds), plain(news))
    return summary, [dynamic.CheckFailure("nodes", reason) for reason in refusals]


def _outputs(props: Mapping[str, Any], report: ClusterReport) -> dict[str, Any]:
    """Every input (delete and diff see only outputs) plus what the cluster reports."""
    tls = {"tls": reconcile.tls_of(props)} if reconcile.tls_of(props) else {}
    acl = {"acl": rpc.wrap_rpc_secret(_acl(props))} if _acl(props) else {}
    return {
        **tls,  # absent for plaintext, as the input
        **acl,
        "nodes": [reconcile.normalized_node(n) for n in props["nodes"]],
        "password": rpc.wrap_rpc_secret(_password(props)),
        "provider_version": props.get("provider_version"),
        "timeout_seconds": reconcile.timeout_of(props),
        "rewrite_config": reconcile.rewrite_config_of(props),
        "settings": reconcile.settings_of(props),
        **reconcile.report_fields(report),
    }


def cluster_resource_id(node_ids: Mapping[str, str]) -> str:
    """Stable id of a formed cluster: derived from its node ids, not from when we formed it."""
    digest = hashlib.sha256(",".join(sorted(node_ids.values())).encode()).hexdigest()
    return f"redis-cluster-{digest[:16]}"


def tls_switch_problem(olds: Mapping[str, Any], news: Mapping[str, Any]) -> str | None:
    """Turning TLS on or off on a formed cluster is refused: its nodes would be replaced one
    by one, and a TLS node and a plaintext node cannot replicate or gossip with each other,
    so the rolling handover could not find a linked replica and would stop half-way."""
    if not olds.get("nodes") or ("tls" in olds) == ("tls" in news):
        return None
    now, asked = ("plaintext", "TLS") if "tls" in news else ("TLS", "plaintext")
    return (f"this cluster runs {now} and the stack now asks for {asked}; switching a live "
            "cluster is not supported (TLS and plaintext nodes cannot talk during the rolling "
            f"replacement). Nothing was changed. Fix: keep it {now} "
            f"(pulumi config set alphapulse-redis-cluster:tls {str(now == 'TLS').lower()}), "
            "or deploy a new stack and move the data with a client")


def engine_switch_problem(olds: Mapping[str, Any], news: Mapping[str, Any]) -> str | None:
    """Another engine for a formed cluster is refused: a rolling replacement would mix Redis
    and Valkey nodes in one cluster, replicating in both directions between servers whose
    RDB formats differ (a Redis 7.0 replica cannot load a Valkey master's RDB 11 snapshot)."""
    now, asked = reconcile.engine_of(olds), reconcile.engine_of(news)
    if not olds.get("nodes") or now == asked:
        return None
    return (f"this cluster runs {now} and the stack now asks for {asked}; switching the "
            "engine of a live cluster is not supported (the rolling replacement would mix "
            "the two servers, and an older one cannot load a newer one's snapshot). Nothing "
            f"was changed. Fix: keep `engine: {now}`, or deploy a new stack with "
            f"`engine: {asked}` and move the data into it: `python -m clusterops backup` "
            "here, then `python -m clusterops restore` there (README, Engines)")


def switch_failures(olds: Mapping[str, Any], news: Mapping[str, Any]
                    ) -> list[dynamic.CheckFailure]:
    """TLS, ACL users or the engine switched on a formed cluster: refused at preview (both
    providers)."""
    return [dynamic.CheckFailure(key, problem) for key, problem in (
        ("tls", tls_switch_problem(olds, news)), ("acl", acl_switch_problem(olds, news)),
        ("engine", engine_switch_problem(olds, news))) if problem]


def optional_inputs(tls: pulumi.Input[Mapping[str, str]] | None,
                    acl: pulumi.Input[Mapping[str, str]] | None,
                    reshape_max_keys_per_second: int,
                    engine: str = reconcile.DEFAULT_ENGINE) -> dict[str, Any]:
    """The inputs a stack has only when it asks for them, so a stack without them keeps its
    inputs exactly as they were: tls, acl (a secret: it holds the replication password), how
    fast a reshape may move keys (not a change in itself), and an engine other than Redis.
    Both providers."""
    inputs: dict[str, Any] = {}
    if engine != reconcile.DEFAULT_ENGINE:
        inputs[reconcile.ENGINE_KEY] = engine
    if tls is not None:
        inputs["tls"] = tls
    if acl is not None:
        inputs["acl"] = pulumi.Output.secret(acl)
    if reshape_max_keys_per_second:
        inputs[reconcile.RESHAPE_PACE_KEY] = reshape_max_keys_per_second
    return inputs


def acl_switch_problem(olds: Mapping[str, Any], news: Mapping[str, Any]) -> str | None:
    """Turning ACL users on or off on a formed cluster is refused: `aclfile` is read only at
    start, so every node would be replaced, and during that roll a replica of the other kind
    could not authenticate to its master (masteruser against a node without that user)."""
    if not olds.get("nodes") or ("acl" in olds) == ("acl" in news):
        return None
    now, asked = (("without ACL users", "ACL users") if "acl" in news
                  else ("with ACL users", "none"))
    return (f"this cluster runs {now} and the stack now asks for {asked}; switching a "
            "live cluster is not supported (its replicas could not authenticate during the "
            "rolling replacement). Nothing was changed. Fix: keep it as it is (pulumi config "
            f"set alphapulse-redis-cluster:acl {str('with ' in now).lower()}), or deploy a new "
            "stack and move the data with a client")


def check_inputs(news: Mapping[str, Any]) -> list[dynamic.CheckFailure]:
    """Pure validation of the resource inputs; unknown (preview) values are not judged."""
    failures: list[dynamic.CheckFailure] = []
    password = news.get("password")
    if not contains_unknown(password) and _password(news) is None:
        failures.append(dynamic.CheckFailure(
            "password", "a non-empty password is required (pass it as a Pulumi secret)"))

    version = news.get("provider_version")
    if not contains_unknown(version) and not (isinstance(version, str) and version):
        failures.append(dynamic.CheckFailure(
            "provider_version", "a provider_version string is required (use PROVIDER_VERSION)"))

    timeout = news.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if not contains_unknown(timeout) and not (
        isinstance(timeout, int | float) and not isinstance(timeout, bool)
        and 0 < timeout <= MAX_TIMEOUT_SECONDS
    ):
        failures.append(dynamic.CheckFailure(
            "timeout_seconds", f"must be a number of seconds in (0, {MAX_TIMEOUT_SECONDS}]"))

    settings = news.get("settings")
    if settings is not None and not contains_unknown(settings):
        if not isinstance(settings, Mapping):
            failures.append(dynamic.CheckFailure("settings", "must map setting names to values"))
        else:
            failures += [dynamic.CheckFailure("settings", reason)
                         for reason in settings_problems(settings)]

    nodes = news.get("nodes")
    if contains_unknown(nodes):
        return failures
    if not isinstance(nodes, list) or not nodes:
        failures.append(dynamic.CheckFailure("nodes", "a non-empty list of nodes is required"))
        return failures
    targets = []
    for index, node in enumerate(nodes):
        missing = [f for f in NODE_FIELDS if not isinstance(node, Mapping) or node.get(f) in
                   (None, "")]
        if missing:
            failures.append(dynamic.CheckFailure(
                "nodes", f"nodes[{index}] lacks {', '.join(missing)}"))
            continue
        try:
            targets.append(NodeTarget.from_dict(node))
        except (TypeError, ValueError) as exc:
            failures.append(dynamic.CheckFailure("nodes", f"nodes[{index}] is malformed: {exc}"))
    if len(targets) == len(nodes):
        failures += [dynamic.CheckFailure("nodes", reason) for _f, reason in plan_problems(targets)]
    return failures


class ClusterBootstrapProvider(dynamic.ResourceProvider):
    """Forms (or adopts) the planned cluster; see the module docstring for the protocol rules."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        inputs = dict(news)
        inputs.setdefault("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        inputs.pop(RESHAPE_PLAN_KEY, None)
        if _password(news) is not None:
            inputs["password"] = rpc.wrap_rpc_secret(_password(news))
        failures = check_inputs(news) + switch_failures(olds, news)
        if _acl(news) is not None:
            inputs["acl"] = rpc.wrap_rpc_secret(_acl(news))
        if not failures and olds.get("nodes") and not contains_unknown(news.get("nodes")):
            # The masters' slots as the deployed split becomes the new one moving the fewest
            # slots, not the program's fresh split (clusterops/reshape/least_moves.py).
            inputs["nodes"] = reconcile.least_moving_nodes(olds["nodes"], news["nodes"])
        if not failures:
            # Every preview reads the live cluster where it answers: a reshape left half-done
            # (or a hand change) is caught even when the config did not change.
            summary, refusals = _reshape_preview(olds, inputs)
            failures += refusals
            if summary is not None:
                inputs[RESHAPE_PLAN_KEY] = summary
        return dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        if contains_unknown({k: news.get(k) for k in INPUT_KEYS}):
            return dynamic.DiffResult(changes=True, replaces=[], delete_before_replace=False)
        refuse_unsupported_change(olds, news)
        old, new = _inputs(olds), _inputs(news)
        # Only our inputs count: `__provider` (the pickle) and the outputs are ignored. A
        # reshape plan from check means the live cluster still has work to do.
        changed = [key for key in INPUT_KEYS if old[key] != new[key]]
        return dynamic.DiffResult(
            changes=bool(changed or news.get(RESHAPE_PLAN_KEY)), replaces=[], stables=[],
            delete_before_replace=False,
        )

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        show_progress()
        report = reconcile.form(plain(props))
        return dynamic.CreateResult(cluster_resource_id(report.node_ids), _outputs(props, report))

    def update(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> dynamic.UpdateResult:
        show_progress()
        return dynamic.UpdateResult(_outputs(news, reconcile.update(plain(olds), plain(news))))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        if not props.get("nodes") or _password(props) is None:
            return dynamic.ReadResult(id_, props)
        live = read_live_topology(reconcile.nodes_of(props), Access(_password(props)))
        outs = dict(props)
        outs["password"] = rpc.wrap_rpc_secret(_password(props))
        if _acl(props):
            outs["acl"] = rpc.wrap_rpc_secret(_acl(props))
        # Keep the last known id of a node we cannot see now rather than forgetting it.
        outs["node_ids"] = {**(props.get("node_ids") or {}), **live.node_ids}
        outs["slot_ranges"] = live.slot_ranges
        outs["cluster_state"] = live.cluster_state
        outs["live_roles"] = live.live_roles
        outs["cluster_problems"] = live.problems
        return dynamic.ReadResult(id_, outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Forget the resource. The cluster and its data stay as they are, on purpose."""


class ClusterBootstrap(dynamic.Resource, module="alphapulse", name="ClusterBootstrap"):
    """Forms the planned Redis Cluster on running nodes and proves ``cluster_state:ok``.

    Outputs ``node_ids`` (planned name -> node id), ``slot_ranges`` (planned master -> slot
    ranges its shard serves), ``cluster_state`` ("ok") and ``live_roles``.
    """

    node_ids: pulumi.Output[dict[str, str]]
    slot_ranges: pulumi.Output[dict[str, list[list[int]]]]
    cluster_state: pulumi.Output[str]
    live_roles: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        resource_name: str,
        nodes: pulumi.Input[Sequence[Mapping[str, Any]]],
        password: pulumi.Input[str],
        provider_version: str = PROVIDER_VERSION,
        timeout_seconds: pulumi.Input[float] = DEFAULT_TIMEOUT_SECONDS,
        *,
        # No default: whether CONFIG REWRITE may persist live changes depends on who owns the
        # config file (the Docker target's is rewritten by the deployment, so it says False).
        # Existing states carry the input; a state without it reads as True
        # (reconcile.rewrite_config_of).
        rewrite_config: bool,
        settings: Mapping[str, str] | None = None,
        tls: pulumi.Input[Mapping[str, str]] | None = None,
        acl: pulumi.Input[Mapping[str, str]] | None = None,
        reshape_max_keys_per_second: int = 0,
        engine: str = reconcile.DEFAULT_ENGINE,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``nodes``: plain dicts with the :class:`clusterops.core.model.NodeTarget` fields
        (slots as ``[[first, last], ...]``); ``password`` is always stored as a secret;
        ``settings``: setting -> value applied live with CONFIG SET on every node (and persisted
        with CONFIG REWRITE when ``rewrite_config``)."""
        props = {
            "nodes": nodes,
            "password": pulumi.Output.secret(password),
            "provider_version": provider_version,
            "timeout_seconds": timeout_seconds,
            "rewrite_config": rewrite_config,
            "settings": dict(settings or {}),
            "node_ids": None,
            "slot_ranges": None,
            "cluster_state": None,
            "live_roles": None,
        }
        props.update(optional_inputs(tls, acl, reshape_max_keys_per_second, engine))
        super().__init__(ClusterBootstrapProvider(), resource_name, props, opts)
