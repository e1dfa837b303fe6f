"""Property-based tests (hypothesis) of every input surface: whatever an operator or the engine
hands us, the answer is a clear refusal naming what is wrong, never a traceback.

- the stack config: any mix of known and unknown keys with any text values either builds a
  spec or raises ConfigError whose every problem names its key;
- the dynamic providers' check and diff, with odd types and the engine's unknowns: a
  CheckResult (failures name their input) or, for diff, the one refusal it is meant to raise;
- the clusterops CLI's target inputs: ``--stack-outputs`` files of any JSON and ``--node``
  flags of any text load into targets or raise a TargetsError, before any node is contacted
  (no network: nothing here gets that far).
"""

from __future__ import annotations

import functools
import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterops.cli.targets import parse_node_flag, parse_outputs_json, targets_from_outputs
from clusterops.core.errors import ClusterOpsError, TargetsError
from clusterops.node.targets import Targets
from clusterops.tasks.reconcile import normalized_node
from components.bootstrap import ClusterBootstrapProvider, check_inputs
from components.config_reader import PROJECT
from components.docker_cluster import bootstrap_nodes
from components.preview_values import contains_unknown
from components.spec import CONFIG_KEYS, ClusterSpec, ConfigError, build_spec
from components.topology import plan_cluster

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's placeholder for an unknown
FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Values a person could type: numbers, sizes, booleans, lists, blanks and plain junk.
typed_values = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.sampled_from(["true", "false", "yes", "0", "", " ", "512mb", "1gb", "-1", "3.5",
                     "redis", "valkey", "docker", "kubernetes", "none", "null", "[]", "{}",
                     "10.0.0.0/8", "172.31.99.0/24", "0.0.0.0", "prod", "900 1", "a b c"]),
    st.text(string.printable, max_size=30),
    st.text(max_size=12),
)
config_keys = st.one_of(st.sampled_from(sorted(CONFIG_KEYS)),
                        st.text(string.ascii_letters, min_size=1, max_size=15))


@FUZZ
@given(raw=st.dictionaries(config_keys, typed_values, max_size=8),
       stack=st.sampled_from(["dev", "prod", "k8s", "feature-x"]),
       password_set=st.booleans())
def test_any_stack_config_is_a_spec_or_refused_naming_each_key(raw, stack, password_set):
    try:
        spec = build_spec(raw, stack, password_set)
    except ConfigError as refused:
        assert refused.problems
        for problem in refused.problems:
            assert problem.startswith(f"{PROJECT}:"), problem
            key = problem[len(PROJECT) + 1:].split(":", 1)[0]
            assert key in CONFIG_KEYS or key in raw, (key, problem)
        return
    assert isinstance(spec, ClusterSpec)
    assert spec.masters >= 3 and spec.node_count == spec.masters * (1 + spec.replicas_per_master)


json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                        st.floats(allow_nan=True), st.text(max_size=10), st.just(UNKNOWN))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
node_fields = st.fixed_dictionaries({}, optional={
    "name": json_values, "role": st.one_of(st.sampled_from(["master", "replica"]), json_values),
    "admin_host": json_values, "admin_port": json_values, "cluster_host": json_values,
    "cluster_port": json_values, "slots": json_values, "master": json_values})
bootstrap_inputs = st.fixed_dictionaries({}, optional={
    "nodes": st.one_of(json_values, st.lists(node_fields, max_size=4)),
    "password": json_values, "provider_version": json_values, "timeout_seconds": json_values,
    "settings": json_values, "rewrite_config": json_values, "tls": json_values,
    "acl": json_values, "engine": json_values})


@FUZZ
@given(news=bootstrap_inputs)
def test_the_bootstrap_providers_check_answers_any_inputs_with_named_failures(news):
    # Without old inputs (a create) check never reaches a node: pure validation.
    result = ClusterBootstrapProvider().check({}, news)
    for failure in result.failures or []:
        assert failure.property and failure.reason
    assert isinstance(check_inputs(news), list)


@functools.cache
def _deployed_nodes(masters: int) -> str:
    spec = build_spec({"masters": str(masters)}, "dev", False)
    return json.dumps(bootstrap_nodes(spec, plan_cluster(spec)))


def deployed_nodes(masters: int) -> list[dict[str, Any]]:
    """The bootstrap's nodes input of a dev stack with ``masters`` (a fresh copy)."""
    return json.loads(_deployed_nodes(masters))


def mutated(nodes: list[dict[str, Any]]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """The nodes with, now and then, a field changed to another node's value or any JSON."""
    def field(node: dict[str, Any], key: str) -> st.SearchStrategy[Any]:
        others = list({repr(n[key]): n[key] for n in nodes if n.get(key) is not None}.values())
        return st.integers(0, 40).flatmap(
            lambda i: st.just(node[key]) if i > 1 else
            (st.sampled_from(others) if i and others else json_values))
    return st.tuples(*[st.fixed_dictionaries({key: field(node, key) for key in node})
                       for node in nodes]).map(list)


@FUZZ
@given(data=st.data(), before=st.sampled_from([3, 4]), after=st.sampled_from([3, 4, 5]))
def test_the_bootstrap_providers_diff_answers_or_refuses_a_topology_change(data, before,
                                                                          after):
    """What diff sees: old inputs the provider recorded, new inputs its check passed."""
    olds = {"nodes": deployed_nodes(before), "password": "p" * 20, "provider_version": "1"}
    news = {**olds, "nodes": data.draw(mutated(deployed_nodes(after)))}
    if ClusterBootstrapProvider().check({}, news).failures:
        return  # the engine never calls diff with inputs its check refused
    try:
        result = ClusterBootstrapProvider().diff("id", olds, news)
    except ClusterOpsError as refused:  # a surviving node moved or re-roled: named
        assert "Nothing was changed" in str(refused)
        return
    if contains_unknown(news["nodes"]):  # a preview's unknowns: judged at `up`, a change now
        assert result.changes is True
        return
    same = [normalized_node(n) for n in news["nodes"]] == [normalized_node(n)
                                                             for n in olds["nodes"]]
    assert result.changes is not same


def mostly(valid: Any) -> st.SearchStrategy[Any]:
    """``valid`` about 30 times in 31, else any JSON value: files close to a real one."""
    return st.integers(0, 30).flatmap(lambda i: st.just(valid) if i else json_values)


def outputs_node(index: int) -> st.SearchStrategy[dict[str, Any]]:
    ordinal, role = index % 3 + 1, "master" if index < 3 else "replica"
    valid = {"name": f"ap-{role}-{ordinal}", "role": role,
             "master": f"ap-master-{ordinal}" if role == "replica" else None,
             # Addresses stay on loopback: these files are parsed, never connected to.
             "ip": "127.0.0.1", "port": 7001 + index, "host_port": 7001 + index,
             "container_name": f"ap-{role}-{ordinal}"}
    return st.fixed_dictionaries({key: mostly(value) for key, value in valid.items()})


outputs_files = st.one_of(
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.fixed_dictionaries({
        "nodes": mostly(None).flatmap(lambda replaced: st.just(replaced) if replaced is not None
                                      else st.tuples(*map(outputs_node, range(6))).map(list)),
        "password": mostly("a-password-of-enough-length"),
        "host_seed_endpoints": mostly([f"127.0.0.1:{7001 + i}" for i in range(6)]),
        "maxmemory_bytes": mostly(536870912), "node_ids": mostly({}),
        "tls_ca_cert": mostly(None), "admin_username": mostly(None),
        "target": mostly("docker")}).map(json.dumps),
)


@FUZZ
@given(text=outputs_files, via_host_ports=st.booleans())
def test_any_stack_outputs_file_loads_into_targets_or_says_what_is_wrong(text, via_host_ports):
    try:
        outputs = parse_outputs_json(text, "outputs.json")
        targets = targets_from_outputs(outputs, via_host_ports, "outputs.json")
    except TargetsError as refused:
        assert str(refused)
        return
    assert isinstance(targets, Targets) and targets.nodes


@FUZZ
@given(spec=st.one_of(st.text(max_size=40),
                      st.builds(lambda n, h, p, r: f"{n}={h}:{p}{r}",
                                st.text(max_size=6), st.text(max_size=6),
                                st.integers(-5, 70000), st.sampled_from(
                                    ["", ":master", ":replica", ":boss", ":"]))))
def test_any_node_flag_parses_or_names_the_expected_form(spec: Any):
    try:
        node = parse_node_flag(spec)
    except TargetsError as refused:
        assert "--node" in str(refused)
        return
    assert 0 < node.port < 65536 and node.name and node.host
