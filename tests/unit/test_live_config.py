"""clusterops.provision.settings's pure parts, and the bootstrap's diff of a settings change."""

from clusterops.provision.settings import canonical, differences, settings_problems
from components.bootstrap import PROVIDER_VERSION, ClusterBootstrapProvider, check_inputs

NODES = [
    {"name": f"m{i}", "role": "master", "admin_host": "10.0.0.1", "admin_port": 7000 + i,
     "cluster_host": "10.0.0.1", "cluster_port": 7000 + i, "slots": [list(r)]}
    for i, r in enumerate([(0, 5460), (5461, 10922), (10923, 16383)])
]


def test_memory_values_compare_as_redis_reports_them():
    assert canonical("maxmemory", "512mb") == "536870912" == canonical("maxmemory", "536870912")
    assert canonical("save", "900 1  300 10") == "900 1 300 10"
    live = {"maxmemory": "536870912", "save": "", "appendfsync": "everysec"}
    declared = {"maxmemory": "512mb", "save": "", "appendfsync": "always"}
    assert differences(declared, live) == {"appendfsync": "everysec"}


def test_settings_problems_name_the_setting():
    assert settings_problems({"maxmemory": "512mb", "save": ""}) == []
    (problem,) = settings_problems({"maxmemory": "lots"})
    assert problem.startswith("maxmemory: 'lots' is not a Redis memory size")
    assert settings_problems({"loglevel": 3})  # values are text, as CONFIG SET takes them


def _props(**settings: str) -> dict:
    return {"nodes": NODES, "password": "pw", "provider_version": PROVIDER_VERSION,
            "timeout_seconds": 30, "rewrite_config": False,
            "settings": {"maxmemory": "512mb", **settings}}


def test_a_settings_change_is_an_update_never_a_replacement():
    provider = ClusterBootstrapProvider()
    olds = {**_props(), "__provider": "old-pickle", "node_ids": {}}
    assert not provider.diff("id", olds, {**_props(), "__provider": "new"}).changes
    diff = provider.diff("id", olds, _props(maxmemory="300mb"))
    assert diff.changes and diff.replaces == [] and not diff.delete_before_replace


def test_bad_settings_are_refused_at_preview():
    failures = check_inputs(_props(maxmemory="lots"))
    assert [f.property for f in failures] == ["settings"]
    assert "maxmemory" in failures[0].reason
