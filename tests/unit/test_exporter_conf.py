"""components/exporter_conf.py: exporter command line, password file, Prometheus config."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components import exporter_conf
from components.exporter_conf import (
    EXPORTER_JOB,
    NODES_JOB,
    exporter_args,
    exporter_password_file,
    node_target_uri,
    prometheus_config,
)
from tests.support.prom_metrics import RULES_PATH, parse_exposition

PASSWORD = "s3cret-Pa55word-for-tests"

# Shaped like `nodes` in the stack outputs (docs: /work/briefs/stack-outputs.md).
STACK_NODES = [
    {"name": f"alphapulse-redis-{role}-{ordinal}", "role": role,
     "master": None if role == "master" else f"alphapulse-redis-master-{ordinal}",
     "ip": f"172.28.0.{11 + index}", "port": 6379, "host_port": 7001 + index,
     "bus_host_port": 17001 + index, "container_name": f"alphapulse-redis-{role}-{ordinal}"}
    for index, (role, ordinal) in enumerate(
        [("master", 1), ("master", 2), ("master", 3), ("replica", 1), ("replica", 2),
         ("replica", 3)]
    )
]


# --- exporter command line -----------------------------------------------------------------


def test_exporter_args_scrape_nothing_by_default_and_read_the_password_file() -> None:
    args = exporter_args(listen_port=9121, password_file="/etc/redis_exporter/passwords.json")
    assert "--redis.addr=" in args  # no implicit localhost target: every node via /scrape
    assert "--redis.password-file=/etc/redis_exporter/passwords.json" in args
    assert "--web.listen-address=0.0.0.0:9121" in args
    assert not any(arg.startswith("--redis.password=") for arg in args)


def test_exporter_args_never_carry_a_password() -> None:
    args = exporter_args()
    joined = " ".join(args)
    assert PASSWORD not in joined
    # Neither the flag that takes a password value nor a URI with credentials.
    assert not re.search(r"--redis\.password(=|\s|$)", joined)
    assert "@" not in joined


def test_exporter_connection_timeout_is_below_prometheus_scrape_timeout() -> None:
    args = exporter_args()
    timeout = next(a.split("=", 1)[1] for a in args if a.startswith("--connection-timeout="))
    assert exporter_conf._seconds(timeout) < 10  # Prometheus' default scrape_timeout


@pytest.mark.parametrize("port", [0, 70000])
def test_exporter_args_reject_a_bad_port(port: int) -> None:
    with pytest.raises(ValueError, match="not a TCP port"):
        exporter_args(listen_port=port)


# --- password file -------------------------------------------------------------------------


def test_password_file_maps_every_node_uri_to_the_password() -> None:
    content = json.loads(exporter_password_file(STACK_NODES, PASSWORD))
    assert content == {f"redis://172.28.0.{11 + i}:6379": PASSWORD for i in range(6)}


def test_password_file_keys_are_the_scrape_targets() -> None:
    # The exporter looks the password up by the exact target string: both must agree.
    keys = set(json.loads(exporter_password_file(STACK_NODES, PASSWORD)))
    config = yaml.safe_load(prometheus_config(STACK_NODES, "172.28.0.5:9121", ["alerts.yml"]))
    node_job = next(job for job in config["scrape_configs"] if job["job_name"] == NODES_JOB)
    targets = {t for sc in node_job["static_configs"] for t in sc["targets"]}
    assert keys == targets


def test_password_file_refuses_an_empty_password() -> None:
    with pytest.raises(ValueError, match="password is empty"):
        exporter_password_file(STACK_NODES, "")


def test_password_with_json_special_characters_round_trips() -> None:
    tricky = 'pa"ss\\word\n{}'
    content = json.loads(exporter_password_file(STACK_NODES[:1], tricky))
    assert content == {"redis://172.28.0.11:6379": tricky}


def test_bad_node_lists_are_reported_all_at_once_by_name() -> None:
    nodes = [
        dict(STACK_NODES[0]),
        dict(STACK_NODES[1], ip=STACK_NODES[0]["ip"]),
        dict(STACK_NODES[2], role="leader"),
        {"name": "x", "role": "master", "port": 6379},
    ]
    with pytest.raises(ValueError) as error:
        exporter_password_file(nodes, PASSWORD)
    message = str(error.value)
    assert "alphapulse-redis-master-2: duplicate address redis://172.28.0.11:6379" in message
    assert "alphapulse-redis-master-3: role 'leader'" in message
    assert "node #3 lacks ip" in message
    with pytest.raises(ValueError, match="no nodes"):
        prometheus_config([], "127.0.0.1:9121", [])


# --- Prometheus config ---------------------------------------------------------------------


def _relabel(labels: dict[str, str], configs: list[dict]) -> dict[str, str]:
    """Prometheus' `replace` relabel action (the only one we use), as documented."""
    labels = dict(labels)
    for config in configs:
        assert config.get("action", "replace") == "replace"
        source = config.get("separator", ";").join(
            labels.get(name, "") for name in config.get("source_labels", [])
        )
        match = re.fullmatch(config.get("regex", "(.*)"), source)
        if match is None:
            continue
        groups = (match.group(0), *match.groups())
        replacement = re.sub(
            r"\$(\d+)", lambda m, g=groups: g[int(m.group(1))] or "",
            config.get("replacement", "$1"),
        )
        labels[config["target_label"]] = replacement
    return labels


def test_every_node_is_scraped_through_the_exporter_with_node_labels() -> None:
    config = yaml.safe_load(
        prometheus_config(STACK_NODES, "172.28.0.5:9121", ["/etc/prometheus/alerts.yml"])
    )
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    node_job = next(job for job in config["scrape_configs"] if job["job_name"] == NODES_JOB)
    assert node_job["metrics_path"] == "/scrape"
    scraped = []
    for static in node_job["static_configs"]:
        for target in static["targets"]:
            final = _relabel({"__address__": target, **static["labels"]},
                             node_job["relabel_configs"])
            scraped.append(final)
    assert len(scraped) == len(STACK_NODES)
    for node, final in zip(STACK_NODES, scraped, strict=True):
        assert final["__address__"] == "172.28.0.5:9121"  # the request goes to the exporter
        assert final["__param_target"] == f"redis://{node['ip']}:6379"  # ?target=
        assert final["instance"] == f"{node['ip']}:6379"
        assert final["node"] == node["name"]
        assert final["planned_role"] == node["role"]
        assert final["cluster"] == "alphapulse"


def test_the_exporter_itself_is_scraped_too() -> None:
    config = yaml.safe_load(prometheus_config(STACK_NODES, "127.0.0.1:9121", []))
    exporter_job = next(j for j in config["scrape_configs"] if j["job_name"] == EXPORTER_JOB)
    assert exporter_job["static_configs"][0]["targets"] == ["127.0.0.1:9121"]
    assert exporter_job.get("metrics_path", "/metrics") == "/metrics"


def test_job_names_match_the_alert_rules() -> None:
    rules_text = RULES_PATH.read_text()
    assert f'up{{job=~"{NODES_JOB}|{EXPORTER_JOB}"}}' in rules_text


def test_short_test_intervals_lower_the_scrape_timeout() -> None:
    config = yaml.safe_load(
        prometheus_config(STACK_NODES, "127.0.0.1:9121", [], scrape_interval="1s",
                          evaluation_interval="1s")
    )
    assert config["global"] == {
        "scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"
    }


def test_config_holds_no_password() -> None:
    assert PASSWORD not in prometheus_config(STACK_NODES, "127.0.0.1:9121", [])


def test_exporter_address_must_have_a_port() -> None:
    with pytest.raises(ValueError, match="host:port"):
        prometheus_config(STACK_NODES, "exporter", [])


def test_node_target_uri() -> None:
    assert node_target_uri({"ip": "10.1.2.3", "port": "7001"}) == "redis://10.1.2.3:7001"


def test_promtool_accepts_the_generated_config_with_our_rules(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package "
                    "(scripts/setup-test-env.sh does)")
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(prometheus_config(STACK_NODES, "172.28.0.5:9121", [str(RULES_PATH)]))
    result = subprocess.run([promtool, "check", "config", str(config_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_exposition_parser_reads_labels_escapes_and_specials() -> None:
    text = (
        "# HELP redis_up up\n# TYPE redis_up gauge\nredis_up 1\n"
        'redis_instance_info{role="master",os="Linux \\"x\\", y\\\\z"} 1\n'
        "redis_memory_max_bytes 6.7108864e+07\n"
        'redis_x{a="}"} +Inf 1700000000000\n'
    )
    samples = parse_exposition(text)
    assert [s.name for s in samples] == ["redis_up", "redis_instance_info",
                                         "redis_memory_max_bytes", "redis_x"]
    assert samples[1].labels == {"role": "master", "os": 'Linux "x", y\\z'}
    assert samples[2].value == 67108864
    assert samples[3].labels == {"a": "}"} and samples[3].value == float("inf")
    with pytest.raises(ValueError):
        parse_exposition('broken{a="1" 2')
