"""Config validation: every bad value is reported, naming its key, before anything is created."""

import pulumi
import pytest

from clusterops.core.units import format_memory, parse_memory
from components.spec import CONFIG_KEYS, ConfigError, build_spec

VALID_PASSWORD = "a-long-enough-password-1234"


def problems_for(raw: dict, stack: str = "dev", password_set: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build_spec(raw, stack, password_set)
    return caught.value.problems


def only_problem_about(raw: dict, key: str, **kwargs) -> str:
    problems = problems_for(raw, **kwargs)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"alphapulse-redis-cluster:{key}:"), problems
    assert "Fix:" in problems[0], problems
    return problems[0]


def test_defaults_are_the_guides_cluster():
    spec = build_spec({}, "dev", password_set=False)
    assert (spec.masters, spec.replicas_per_master, spec.node_count) == (3, 1, 6)
    assert spec.base_port == 7001 and spec.exporter_port == 9121
    assert spec.maxmemory_bytes == 512 * 1024**2 and spec.maxmemory == "512mb"
    assert spec.appendonly and spec.appendfsync == "everysec"
    assert spec.rdb_save == ((900, 1), (300, 10), (60, 10000))
    assert spec.node_timeout_ms <= 2000, "failover < 5 s needs node-timeout <= 2000 ms"
    assert spec.password_policy == "generate" and not spec.protect_data
    assert spec.redis_image.startswith("redis:7.") and ":" in spec.exporter_image


def test_prod_requires_a_password_and_protects_data():
    assert "password" in only_problem_about({}, "password", stack="prod")
    spec = build_spec({"password": VALID_PASSWORD}, "prod", password_set=True)
    assert spec.password_policy == "required" and spec.protect_data


@pytest.mark.parametrize(
    ("raw", "key", "says"),
    [
        ({"masters": "2"}, "masters", "at least 3"),
        ({"replicasPerMaster": "-1"}, "replicasPerMaster", "out of range"),
        ({"basePort": "60000"}, "basePort", "65535"),
        ({"exporterPort": "7003"}, "exporterPort", "collides"),
        ({"exporterPort": "17002"}, "exporterPort", "collides"),
        ({"maxmemory": "512 potatoes"}, "maxmemory", "not a Redis memory size"),
        ({"subnet": "172.28.0.0/29"}, "subnet", "/27"),
        ({"subnet": "not-a-net"}, "subnet", "not an IPv4 network"),
        ({"maxmemoryPolicy": "lru-please"}, "maxmemoryPolicy", "allkeys-lru"),
        ({"nodeTimeoutMs": "0"}, "nodeTimeoutMs", "out of range"),
        ({"appendfsync": "sometimes"}, "appendfsync", "everysec"),
        ({"rdbSave": "900"}, "rdbSave", "pairs"),
        ({"masters": "three"}, "masters", "not a whole number"),
        ({"mastres": "3"}, "mastres", "unknown setting"),
        ({"memoryLimit": "512mb"}, "memoryLimit", "64mb"),
        ({"minReplicasToWrite": "2"}, "minReplicasToWrite", "replicasPerMaster"),
        ({"bindAddress": "localhost"}, "bindAddress", "IP address"),
        ({"password": "short"}, "password", "16 characters"),
    ],
)
def test_each_bad_value_names_its_key(raw, key, says):
    assert says in only_problem_about(raw, key)


def test_all_problems_are_reported_at_once():
    problems = problems_for(
        {"masters": "2", "maxmemory": "512 potatoes", "nodeTimeoutMs": "0"}, stack="prod"
    )
    keys = sorted(p.split(":")[1] for p in problems)
    assert keys == ["masters", "maxmemory", "nodeTimeoutMs", "password"], problems
    message = str(ConfigError(problems))
    assert "nothing was created or changed" in message


def test_a_typo_gets_the_closest_key_suggested():
    problem = only_problem_about({"nodeTimoutMs": "1000"}, "nodeTimoutMs")
    assert "unknown setting" in problem and "did you mean nodeTimeoutMs?" in problem
    # Nothing close: the fix lists the known keys instead of guessing.
    far = only_problem_about({"zzzz": "1"}, "zzzz")
    assert "did you mean" not in far and "nodeTimeoutMs" in far


def test_config_problems_are_a_pulumi_run_error():
    # Pulumi prints a RunError's message alone; any other exception comes with a traceback.
    with pytest.raises(pulumi.RunError) as caught:
        build_spec({"masters": "2", "nodeTimoutMs": "1"}, "dev", False)
    assert isinstance(caught.value, ConfigError)
    assert "masters" in str(caught.value) and "nodeTimoutMs" in str(caught.value)


def test_larger_clusters_need_room_in_the_subnet():
    # Masters 4+ and replicas 16+ sit after the 3-master layout's block (stable addresses
    # under scaling, components.layout.node_index), so they need more room than their count.
    build_spec({"masters": "10", "replicasPerMaster": "2", "subnet": "10.9.0.0/24"}, "dev", False)
    problem = only_problem_about(
        {"masters": "10", "replicasPerMaster": "2", "subnet": "10.9.0.0/26"}, "subnet"
    )
    assert "30 nodes need 132" in problem


def test_every_config_key_is_in_the_readme():
    readme = (__import__("pathlib").Path(__file__).parents[2] / "README.md").read_text()
    missing = [key for key in CONFIG_KEYS if f"`{key}`" not in readme]
    assert not missing, f"README config table lacks {missing}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512mb", 512 * 1024**2), ("1gb", 1024**3), ("1g", 10**9), ("100", 100), ("64KB", 65536)],
)
def test_memory_units_follow_redis(text, expected):
    assert parse_memory(text) == expected


def test_memory_round_trip():
    for value in (512 * 1024**2, 1024**3, 1000, 3 * 1024):
        assert parse_memory(format_memory(value)) == value


def test_prod_defaults_to_tls_and_dev_to_plaintext():
    prod = build_spec({"password": VALID_PASSWORD}, "prod", password_set=True)
    dev = build_spec({}, "dev", password_set=False)
    assert prod.tls and not dev.tls
    assert not build_spec({"password": VALID_PASSWORD, "tls": "false"}, "prod", True).tls
    problem = only_problem_about({"tlsCertDays": "30"}, "tlsCertDays")
    assert "at least 61" in problem


def test_an_operators_ca_needs_both_keys_tls_and_a_usable_chain():
    from tests.unit.test_tls_material import company_pki

    key, chain, root = company_pki()
    spec = build_spec({"tls": "true", "tlsCaCert": chain, "tlsCaKey": key}, "dev", False)
    assert spec.tls_ca_cert == chain
    assert key not in repr(spec)  # the key is never kept in the spec, which is not secret
    assert "tlsCaCert" in only_problem_about({"tls": "true", "tlsCaKey": key}, "tlsCaCert")
    assert "tlsCaKey" in only_problem_about({"tls": "true", "tlsCaCert": chain}, "tlsCaKey")
    problem = only_problem_about({"tlsCaCert": chain, "tlsCaKey": key}, "tlsCaCert")
    assert "only applies with TLS" in problem
    problem = only_problem_about({"tls": "true", "tlsCaCert": root, "tlsCaKey": key}, "tlsCaKey")
    assert "not the key of the first certificate" in problem and key[40:80] not in problem
    problems = problems_for({"tls": "true", "tlsCaCert": chain, "tlsCaKey": key,
                             "tlsCertDays": "3650"})
    assert len(problems) == 2, problems  # the intermediate and the root both end too soon
    assert all(p.startswith("alphapulse-redis-cluster:tlsCaCert:") and "expires on" in p
               and "lower tlsCertDays" in p for p in problems), problems


# Each typed settings function on its own: it returns what it read and reports to the reader.

def reader_for(raw: dict):
    from components.config_reader import ConfigReader

    return ConfigReader(raw)


def keys_reported(reader) -> list[str]:
    return sorted(p.split(":")[1] for p in reader.problems)


def test_the_raw_config_is_only_read():
    from types import MappingProxyType

    raw = MappingProxyType({"masters": "4", "hosts": '[{"name": "h1", "dockerHost": '
                            '"unix:///run/h1.sock", "address": "10.1.0.11"}]'})
    spec = build_spec(raw, "dev", password_set=False)  # a read-only mapping: nothing writes it
    assert spec.masters == 4 and spec.bind_address == "0.0.0.0"
    assert "bindAddress" not in raw


def test_read_shape_and_its_address_span():
    from components.layout import read_shape

    reader = reader_for({"masters": "4", "replicasPerMaster": "9"})
    shape = read_shape(reader)
    assert (shape.masters, shape.replicas_per_master) == (4, 1)  # the bad value falls back
    assert keys_reported(reader) == ["replicasPerMaster"]
    assert shape.node_count == 8 and shape.index_span > shape.node_count  # master 4 sits after


def test_read_memory_reports_both_sizes_and_returns_bytes():
    from components.node_settings import read_memory

    reader = reader_for({"maxmemory": "8mb", "memoryLimit": "10mb", "maxmemoryPolicy": "lru"})
    memory = read_memory(reader)
    assert memory.maxmemory_bytes == 8 * 1024**2 and memory.memory_limit_bytes == 10 * 1024**2
    assert keys_reported(reader) == ["maxmemory", "maxmemoryPolicy", "memoryLimit"]
    assert read_memory(reader_for({"maxmemory": "1gb"})).memory_limit_bytes == 2 * 1024**3


def test_read_images_persistence_and_failover():
    from components.layout import Shape
    from components.node_settings import read_failover, read_images, read_persistence

    reader = reader_for({"redisImage": "my redis", "pullImages": "no", "rdbSave": "",
                         "appendonly": "maybe", "minReplicasToWrite": "2"})
    images = read_images(reader)
    assert images.redis_image == "my redis" and images.pull_images is False
    persistence = read_persistence(reader)
    assert persistence.rdb_save == () and persistence.appendonly is True
    failover = read_failover(reader, Shape(masters=3, replicas_per_master=1))
    assert failover.min_replicas_to_write == 2
    assert keys_reported(reader) == ["appendonly", "minReplicasToWrite", "redisImage"]


def test_read_protection_judges_every_password_and_keeps_none():
    from components.node_settings import read_protection

    reader = reader_for({"password": "short", "adminPassword": "x" * 16 + "\n"})
    protection = read_protection(reader, "prod", prod=True, password_set=False)
    assert protection.password_policy == "required" and protection.protect_data
    assert keys_reported(reader) == ["adminPassword", "password", "password"]
    assert "short" not in repr(protection)


def test_read_ports_reports_a_bad_range_and_a_collision_together():
    from components.docker_settings import read_ports
    from components.layout import Shape

    reader = reader_for({"basePort": "60000", "exporterPort": "60001", "bindAddress": "here"})
    ports = read_ports(reader, Shape(masters=3, replicas_per_master=1))
    assert (ports.base_port, ports.exporter_port, ports.bind_address) == (60000, 60001, "here")
    assert keys_reported(reader) == ["basePort", "bindAddress", "exporterPort"]


def test_read_network_sizes_the_subnet_for_the_shape():
    from components.docker_settings import read_network
    from components.layout import Shape

    reader = reader_for({"subnet": "10.9.0.0/28"})
    network = read_network(reader, "shop", Shape(masters=3, replicas_per_master=1))
    assert (network.network_name, network.subnet) == ("shop_redis-cluster", "10.9.0.0/28")
    assert network.admin_access == "container-ip"
    [problem] = reader.problems
    assert "6 nodes need 18" in problem and "/27" in problem


def test_read_tls_and_acl_default_on_in_prod_and_report_stray_keys():
    from components.security_settings import read_acl, read_tls

    reader = reader_for({"tlsCaKey": "PEM", "aclAppUser": "shop", "acl": "false",
                         "tlsGeneration": "0"})
    tls = read_tls(reader, prod=True)
    assert tls.tls and tls.tls_ca_cert is None and tls.tls_generation == 1
    acl = read_acl(reader, prod=True)
    assert not acl.acl and acl.acl_app_user == "shop"
    assert keys_reported(reader) == ["aclAppUser", "tlsCaCert", "tlsGeneration"]
    assert read_acl(reader_for({}), prod=True).acl


def test_read_common_collects_every_concern_at_once():
    from components.spec import read_common

    reader = reader_for({"masters": "2", "maxmemory": "1mb", "appendfsync": "never",
                         "exporterPort": "7001", "subnet": "nope"})
    common = read_common(reader, "dev", password_set=False)
    assert common.shape.masters == 3 and common.memory.maxmemory_bytes == 1024**2
    assert keys_reported(reader) == ["appendfsync", "exporterPort", "masters", "maxmemory",
                                     "memoryLimit", "subnet"]
