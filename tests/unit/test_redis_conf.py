"""redis.conf carries the declared settings and never the password."""

from components.redis_conf import (
    RESTART_DIRECTIVES,
    live_settings,
    render_auth_conf,
    render_redis_conf,
    restart_digest,
)
from components.spec import build_spec
from components.topology import plan_cluster


def conf_lines(raw: dict | None = None) -> dict[str, str]:
    spec = build_spec(raw or {}, "dev", False)
    text = render_redis_conf(spec, plan_cluster(spec).nodes[0])
    return dict(
        line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_declared_persistence_cluster_and_memory_settings():
    conf = conf_lines()
    assert conf["cluster-enabled"] == "yes"
    assert conf["appendonly"] == "yes" and conf["appendfsync"] == "everysec"
    assert conf["save"] == "900 1 300 10 60 10000"
    assert conf["maxmemory"] == "512mb" and conf["maxmemory-policy"] == "allkeys-lru"
    assert conf["cluster-node-timeout"] == "1000"
    assert conf["dir"] == "/data" and conf["cluster-config-file"] == "nodes.conf"
    assert conf["cluster-announce-ip"] == "172.28.0.11"
    assert conf["include"] == "/usr/local/etc/redis/secrets/auth.conf"
    assert "requirepass" not in conf and "masterauth" not in conf


def test_settings_follow_the_config():
    conf = conf_lines({"maxmemory": "1gb", "rdbSave": "", "appendonly": "false",
                       "nodeTimeoutMs": "2000", "maxmemoryPolicy": "noeviction"})
    assert conf["maxmemory"] == "1gb" and conf["save"] == '""'
    assert conf["appendonly"] == "no" and conf["cluster-node-timeout"] == "2000"
    assert conf["maxmemory-policy"] == "noeviction"


def test_auth_conf_quotes_the_password_for_redis():
    text = render_auth_conf('with "quotes" and \\ backslash')
    assert text == (
        'requirepass "with \\"quotes\\" and \\\\ backslash"\n'
        'masterauth "with \\"quotes\\" and \\\\ backslash"\n'
    )


def test_every_directive_is_either_live_or_read_at_start_and_include_comes_last():
    spec = build_spec({}, "dev", False)
    node = plan_cluster(spec).nodes[0]
    text = render_redis_conf(spec, node)
    directives = [line.split(" ", 1)[0] for line in text.splitlines()
                  if line and not line.startswith("#")]
    live = live_settings(spec)
    assert not set(live) & set(RESTART_DIRECTIVES)
    assert set(directives) == set(live) | (set(RESTART_DIRECTIVES) & set(directives))
    assert len(directives) == len(set(directives))  # each once: no later line overrides
    assert directives[-1] == "include"  # auth.conf last: nothing above overrides the password


def test_a_live_setting_leaves_the_restart_digest_alone_and_an_address_does_not():
    spec = build_spec({}, "dev", False)
    node = plan_cluster(spec).nodes[0]
    assert restart_digest(node) == restart_digest(
        plan_cluster(build_spec({"maxmemory": "1gb", "nodeTimeoutMs": "2000"}, "dev", False)
                     ).nodes[0])
    moved = plan_cluster(build_spec({"subnet": "172.29.5.0/24"}, "dev", False)).nodes[0]
    assert restart_digest(moved) != restart_digest(node)
