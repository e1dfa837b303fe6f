"""monitoring/dashboard.json: valid, provisionable, every panel queries something real."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prom_metrics import (
    DASHBOARD_PATH,
    dashboard_panels,
    dashboard_queries,
    load_dashboard,
    promql_metric_names,
    substitute_grafana_variables,
)

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_json_is_valid_and_identifies_itself() -> None:
    document = json.loads(DASHBOARD_PATH.read_text())
    assert document["title"]
    assert document["uid"] == "alphapulse-redis-cluster"  # stable links across provisioning
    assert document.get("id") is None  # Grafana assigns ids; a fixed one clashes on import
    assert isinstance(document["schemaVersion"], int)


def test_every_panel_has_a_query(dashboard: dict[str, Any]) -> None:
    panels = dashboard_panels(dashboard)
    assert len(panels) >= 10
    for panel in panels:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r}: empty query"
            assert target.get("refId")


def test_panel_ids_unique_and_positions_set(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24


def _datasource_refs(node: Any) -> list[Any]:
    refs = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                refs.append(value)
            refs.extend(_datasource_refs(value))
    elif isinstance(node, list):
        for item in node:
            refs.extend(_datasource_refs(item))
    return refs


def test_datasource_is_templated_everywhere(dashboard: dict[str, Any]) -> None:
    refs = _datasource_refs(dashboard)
    assert refs, "no datasource references at all"
    assert all(ref == DATASOURCE for ref in refs), [r for r in refs if r != DATASOURCE]
    for panel in dashboard_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"


def test_no_import_only_inputs(dashboard: dict[str, Any]) -> None:
    # `__inputs` are resolved only by the import UI, never by file provisioning.
    assert "__inputs" not in dashboard


def test_dashboard_covers_what_on_call_needs(dashboard: dict[str, Any]) -> None:
    names: set[str] = set()
    for _, expr in dashboard_queries(dashboard):
        names |= promql_metric_names(expr)
    required = {
        "redis_cluster_state",  # cluster state
        "redis_cluster_slots_ok", "redis_cluster_slots_pfail", "redis_cluster_slots_fail",
        "redis_memory_used_bytes", "redis_memory_max_bytes",  # memory vs maxmemory
        "redis_commands_processed_total",  # ops/s
        "redis_connected_clients",
        "redis_connected_slave_lag_seconds", "redis_connected_slave_offset_bytes",  # lag
        "redis_master_link_up",  # link state
        "redis_db_keys",  # keys per node
    }
    assert required - names == set()


def test_every_query_is_valid_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """promtool parses each panel query (Grafana variables substituted) as a recording rule."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package")
    rules = [
        {"record": f"dashboard:query_{index}", "expr": substitute_grafana_variables(expr)}
        for index, (_, expr) in enumerate(dashboard_queries(dashboard))
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the helpers these checks (and the live ones) rely on -----------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('redis_up{node=~"$node"} == 0', {"redis_up"}),
        ("sum by (node) (rate(redis_commands_processed_total[$__rate_interval]))",
         {"redis_commands_processed_total"}),
        ("a - on (cluster, instance) group_right b > 16777216", {"a", "b"}),
        ("x / ignoring(role) group_left(node) y offset 5m > bool 1e+07", {"x", "y"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)") or vector(0)', {"m"}),
        ('{__name__="by_name", a="}"} + count(redis_cluster:masters:count)',
         {"by_name", "redis_cluster:masters:count"}),
        ('max_over_time(redis_instance_info{role="slave"}[10m]) and inf',
         {"redis_instance_info"}),
    ],
)
def test_promql_metric_names(expr: str, expected: set[str]) -> None:
    assert promql_metric_names(expr) == expected


def test_grafana_variables_are_substituted() -> None:
    expr = 'rate(x{node=~"$node", c=~"${cluster}"}[$__rate_interval])'
    assert substitute_grafana_variables(expr) == 'rate(x{node=~".*", c=~".*"}[1m])'
