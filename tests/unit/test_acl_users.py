"""ACL users (acl: true), pure parts: the users.acl file, the config checks, the files and
arguments each container gets, the outputs' admin credentials and the refused live switch."""

from __future__ import annotations

import pytest

from clusterops.cli.targets import TargetsError, targets_from_outputs
from clusterops.core.model import NodeTarget
from clusterops.node.access import Access
from clusterops.provision.acl_users import (
    DEFAULT_APP_RULES,
    ROLES,
    app_rules_problems,
    app_user_problems,
    parse_users_acl,
    password_hash,
    render_users_acl,
)
from components.bootstrap import acl_switch_problem
from components.exporter_conf import exporter_args
from components.redis_conf import healthcheck_command, render_acl_auth_conf
from components.spec import ConfigError, build_spec

PASSWORDS = {role: f"{role}-password-0123456789" for role in ROLES}


def test_the_file_holds_hashes_and_switches_the_default_user_off():
    text = render_users_acl(PASSWORDS)
    parsed = dict(parse_users_acl(text))
    assert list(parsed) == ["default", "admin", "app", "exporter", "replication"]
    assert parsed["default"][0] == "off"
    assert f"#{password_hash(PASSWORDS['app'])}" in parsed["app"]
    assert " ".join(parsed["app"][2:]) == DEFAULT_APP_RULES
    assert "+@all" in parsed["admin"]
    assert parsed["replication"][2:] == ["-@all", "+psync", "+replconf", "+ping"]
    for password in PASSWORDS.values():
        assert password not in text


def test_an_empty_password_is_refused_rather_than_written():
    with pytest.raises(ValueError, match="exporter"):
        render_users_acl({**PASSWORDS, "exporter": ""})


@pytest.mark.parametrize("name", ["admin", "default", "replication", "exporter"])
def test_an_app_user_named_like_another_user_is_refused(name):
    [problem] = app_user_problems(name)
    assert "already defines" in problem and "Fix:" in problem


@pytest.mark.parametrize("rules", ["+@all >secret", "on +@all", "nopass", "reset +get", ""])
def test_app_rules_that_touch_passwords_or_state_are_refused(rules):
    [problem] = app_rules_problems(rules)
    assert "Fix:" in problem


def test_narrower_app_rules_are_accepted():
    assert app_rules_problems("%R~cache:* ~jobs:* -@all +@read +set +config|get") == []


def test_config_checks_name_the_key_and_the_fix():
    with pytest.raises(ConfigError) as caught:
        build_spec({"acl": "true", "aclAppUser": "admin", "adminPassword": "short"}, "dev",
                   password_set=False)
    text = "\n".join(caught.value.problems)
    assert "alphapulse-redis-cluster:aclAppUser:" in text
    assert "alphapulse-redis-cluster:adminPassword: is shorter than 16" in text
    with pytest.raises(ConfigError) as caught:
        build_spec({"aclAppRules": "~* +@read"}, "dev", password_set=False)
    assert "only applies with ACL users" in caught.value.problems[0]


def test_prod_defaults_to_acl_users_and_dev_does_not():
    assert build_spec({}, "prod", password_set=True).acl
    assert not build_spec({}, "dev", password_set=False).acl


def test_nodes_and_containers_get_the_acl_pieces():
    conf = render_acl_auth_conf("replication", 'a"b')
    assert conf.splitlines() == ["aclfile /usr/local/etc/redis/secrets/users.acl",
                                 'masteruser "replication"', 'masterauth "a\\"b"']
    assert "requirepass" not in conf
    assert healthcheck_command(False, "exporter").startswith("redis-cli --user exporter ")
    assert healthcheck_command(True) == healthcheck_command(True, None)
    assert "--redis.user=exporter" in exporter_args(user="exporter")
    assert not any(a.startswith("--redis.user") for a in exporter_args())


def test_migrate_names_the_acl_user_only_when_there_is_one():
    admin = NodeTarget("n", "127.0.0.1", 7000, "127.0.0.1", 7000, username="admin")
    default = NodeTarget("n", "127.0.0.1", 7000, "127.0.0.1", 7000)
    assert Access("pw").migrate_auth(admin) == ("AUTH2", "admin", "pw")
    assert Access("pw").migrate_auth(default) == ("AUTH", "pw")
    assert Access(None).migrate_auth(admin) == ()


def _outputs(**extra):
    return {"nodes": [{"name": f"m{i}", "role": "master", "ip": f"10.0.0.{i}", "port": 6379,
                       "container_name": f"m{i}"} for i in (1, 2, 3)],
            "password": "app-password", **extra}


def test_operator_commands_act_as_the_admin_user_from_the_outputs():
    targets = targets_from_outputs(_outputs(username="app", admin_username="admin",
                                            admin_password="admin-password"))
    assert targets.password == "admin-password"
    assert {n.username for n in targets.nodes} == {"admin"} and targets.username == "admin"
    plain = targets_from_outputs(_outputs(username=None, admin_username=None,
                                          admin_password=None))
    assert plain.password == "app-password" and plain.username is None
    with pytest.raises(TargetsError, match="admin_password"):
        targets_from_outputs(_outputs(admin_username="admin"))


def test_the_username_is_kept_in_the_bootstrap_shape_only_when_set():
    node = NodeTarget("m1", "10.0.0.1", 6379, "10.0.0.1", 6379, role="master", slots=((0, 1),))
    assert "username" not in node.to_dict()
    with_user = NodeTarget.from_dict({**node.to_dict(), "username": "admin"})
    assert with_user.username == "admin" and with_user.to_dict()["username"] == "admin"


def test_switching_acl_users_on_a_live_cluster_is_refused_with_the_fix():
    nodes = [{"name": "m1"}]
    acl = {"users_acl": "user admin on", "masteruser": "replication", "masterauth": "x"}
    problem = acl_switch_problem({"nodes": nodes}, {"nodes": nodes, "acl": acl})
    assert problem and "runs without ACL users" in problem
    assert "pulumi config set alphapulse-redis-cluster:acl false" in problem
    assert acl_switch_problem({"nodes": nodes, "acl": acl}, {"nodes": nodes, "acl": acl}) is None
    assert acl_switch_problem({}, {"nodes": nodes, "acl": acl}) is None  # a new cluster
