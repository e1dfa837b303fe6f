"""monitoring/alerts.yml: checked and unit-tested with the real promtool.

promtool comes with Debian's `prometheus` package; these tests fail (not skip) without it,
because untested alert rules are what this suite exists to prevent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.prom_metrics import (
    RULES_PATH,
    RULES_TEST_PATH,
    alert_rules,
    promql_metric_names,
    recording_rule_names,
)

SEVERITIES = {"critical", "warning", "info"}
# Alerts about the whole cluster have no single node: they name the cluster instead.
CLUSTER_LEVEL_ALERTS = {"RedisFewerMastersThanPlanned"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found on PATH: install Debian's `prometheus` package "
            "(apt-get install prometheus; scripts/setup-test-env.sh does it)"
        )
    return path


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", str(RULES_PATH))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(RULES_TEST_PATH))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _test_cases() -> list[dict]:
    document = yaml.safe_load(RULES_TEST_PATH.read_text())
    assert document["rule_files"] == ["alerts.yml"]
    return document["tests"]


def test_every_alert_has_a_firing_and_a_not_firing_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _test_cases():
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(alert_rules())
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a not-firing test"
    assert (firing | quiet) - alerts == set(), "tests for alerts that do not exist"


def test_recording_rules_are_tested() -> None:
    tested = {
        check["expr"]
        for case in _test_cases()
        for check in case.get("promql_expr_test", [])
    }
    assert recording_rule_names() <= tested


@pytest.mark.slow  # promtool once per alert (~13 s): full suite only, the quick tiers are full
def test_each_alert_can_fail_its_tests(tmp_path: Path) -> None:
    """An alert that never fires must break the suite: the firing cases really depend on it."""
    document = yaml.safe_load(RULES_PATH.read_text())
    (tmp_path / "alerts_test.yml").write_text(RULES_TEST_PATH.read_text())
    survived = []
    for group in document["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            original = rule["expr"]
            rule["expr"] = "vector(1) > 2"
            (tmp_path / "alerts.yml").write_text(yaml.safe_dump(document))
            if run_promtool("test", "rules", "alerts_test.yml", cwd=tmp_path).returncode == 0:
                survived.append(rule["alert"])
            rule["expr"] = original
    assert survived == [], "these alerts could be broken without a test noticing"


def test_the_guides_master_without_replica_rule_would_fail_the_tests(tmp_path: Path) -> None:
    """The guide's `redis_connected_slaves < 1` also fires on every replica: our tests catch it."""
    document = yaml.safe_load(RULES_PATH.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "RedisMasterWithoutReplica":
                rule["expr"] = "redis_connected_slaves < 1"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(document))
    (tmp_path / "alerts_test.yml").write_text(RULES_TEST_PATH.read_text())
    result = run_promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    # promtool names the replica it wrongly fires on
    assert "alphapulse-redis-replica-1" in result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(alert_rules()))
def test_alert_is_actionable(name: str) -> None:
    rule = alert_rules()[name]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook"} <= set(annotations)
    who = r"\{\{ \$labels\.(cluster) \}\}" if name in CLUSTER_LEVEL_ALERTS else (
        r"\{\{ \$labels\.(instance) \}\}"
    )
    assert re.search(who, annotations["summary"]), "summary must name the node (or cluster)"
    assert re.search(who, annotations["description"]), "description must name it too"
    # The runbook says what to run, not just what is wrong.
    assert re.search(r"python -m clusterops health|docker |redis-cli|curl ",
                     annotations["runbook"])


def test_group_interval_is_sensible() -> None:
    document = yaml.safe_load(RULES_PATH.read_text())
    for group in document["groups"]:
        assert group.get("interval") in {"15s", "30s", "1m"}


def test_rules_use_exporter_metric_names_not_the_guides() -> None:
    names = set()
    for rule in alert_rules().values():
        names |= promql_metric_names(rule["expr"])
    assert "redis_used_memory_bytes" not in names  # the guide's name; the exporter's differs
    assert {"redis_memory_used_bytes", "redis_memory_max_bytes", "redis_cluster_state",
            "redis_up", "redis_connected_slaves", "redis_instance_info"} <= names
