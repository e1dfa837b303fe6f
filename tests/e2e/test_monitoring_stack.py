"""Monitoring on the deployed stack: live scrape of every node, and the in-stack Prometheus."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.deploy_fixtures import DeployedStack, deploy_stack
from tests.support.prom_metrics import (
    PROMETHEUS_BUILTIN_METRICS,
    PrometheusAPI,
    metric_names,
    metrics_named_by_rules_and_dashboard,
    parse_exposition,
    recording_rule_names,
    sample_value,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedStack]:
    yield from deploy_stack(tmp_path_factory.mktemp("monitored"), deployPrometheus="true")


def scrape(stack: DeployedStack, node: dict[str, Any]) -> str:
    url = f"{stack.outputs['exporter_url']}/scrape?target=redis://{node['ip']}:{node['port']}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_every_node_is_up_and_every_used_metric_is_exported(monitored: DeployedStack):
    exported: set[str] = set()
    for node in monitored.outputs["nodes"]:
        samples = parse_exposition(scrape(monitored, node))
        assert sample_value(samples, "redis_up") == 1, node["name"]
        exported |= metric_names(samples)
    with urllib.request.urlopen(f"{monitored.outputs['exporter_url']}/metrics", timeout=30) as r:
        exported |= metric_names(parse_exposition(r.read().decode()))
    not_scraped = recording_rule_names() | PROMETHEUS_BUILTIN_METRICS
    missing = {name: where for name, where in metrics_named_by_rules_and_dashboard().items()
               if name not in exported and name not in not_scraped}
    assert missing == {}, f"rules/panels name metrics the exporter does not export: {missing}"


def test_prometheus_scrapes_the_cluster_and_raises_node_down(monitored: DeployedStack):
    api = PrometheusAPI(monitored.outputs["prometheus_url"])
    names = {n["name"] for n in monitored.outputs["nodes"]}

    def cluster_ok() -> tuple[bool, Any]:
        try:
            result = api.query("redis_cluster_state")
        except OSError as err:
            return False, repr(err)
        seen = {r["metric"].get("node"): r["value"][1] for r in result}
        return seen == dict.fromkeys(names, "1"), seen

    wait_until("redis_cluster_state == 1 for every node in Prometheus", cluster_ok, 120, 1)

    def rules_healthy() -> tuple[bool, Any]:
        # Health is "unknown" until the group's first evaluation (every 30 s).
        groups = api.get("/api/v1/rules")["groups"]
        not_ok = {r["name"]: r.get("health") for g in groups for r in g["rules"]
                  if r.get("health") != "ok"}
        return bool(groups) and not not_ok, not_ok

    wait_until("every rule loaded and evaluated healthy", rules_healthy, 90, 1)

    victim = monitored.node("alphapulse-redis-replica-1")
    subprocess.run(["docker", "kill", victim["container_name"]], check=True, capture_output=True)
    try:
        def node_down() -> tuple[bool, Any]:
            alert = api.alert("RedisNodeDown", victim["name"])
            if alert is not None and alert["state"] in ("pending", "firing"):
                return True, alert
            return False, api.alerts()

        alert = wait_until("RedisNodeDown pending/firing for the killed node", node_down, 150, 1)
        print(f"RedisNodeDown is {alert['state']} for {victim['name']}")
    finally:
        subprocess.run(["docker", "start", victim["container_name"]], check=True,
                       capture_output=True)
