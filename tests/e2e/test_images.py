"""The local images work as the official ones would, driven with the plain docker CLI.

One redis container on a user network with a fixed subnet gets its config by `docker cp` and is
reached from the host both at its static IP and through a port published on 127.0.0.1; the
exporter image scrapes it; the prometheus image runs its tools. The cache is checked by building
throw-away copies of a recipe, never by removing the shared images other test runs may use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from components.redis_conf import HEALTHCHECK_COMMAND, PASSWORD_FILE_PATH, REDIS_CONF_PATH
from tests.e2e.conftest import docker
from tests.support import images
from tests.support.waiting import wait_for, wait_until

pytestmark = pytest.mark.e2e

CONF_PATH = REDIS_CONF_PATH
PASSWORD_PATH = PASSWORD_FILE_PATH
# The stack's own healthcheck: the password comes from a file on stdin, never from argv.
HEALTHCHECK = HEALTHCHECK_COMMAND




def inspect(kind: str, name: str) -> dict:
    return json.loads(docker(kind, "inspect", name).stdout)[0]


def published_port(container: str, port: str) -> int:
    """The host port docker chose for `port` (published on 127.0.0.1 with no fixed number)."""
    binding = docker("port", container, port).stdout.split()[0]
    host, _, number = binding.rpartition(":")
    assert host == "127.0.0.1", binding
    return int(number)


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read().decode()


@dataclass
class RedisOnNetwork:
    container: str
    network: str
    ip: str
    host_port: int
    password: str


@pytest.fixture(scope="module")
def redis_on_network(
    local_images: dict[str, str],
    free_subnet: Callable[[], ipaddress.IPv4Network],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RedisOnNetwork]:
    subnet = free_subnet()
    name = f"e2e-img-{secrets.token_hex(4)}"
    ip = str(subnet.network_address + 10)
    password = secrets.token_urlsafe(24)
    private = tmp_path_factory.mktemp("redis-image")  # pytest makes it 0700
    conf = private / "redis.conf"
    conf.write_text(f"port 6379\nrequirepass {password}\nappendonly yes\n")
    conf.chmod(0o644)  # redis runs as uid 999 after the entrypoint drops root
    # The stack mounts its secrets as a directory; copying one in creates it the same way.
    secrets_dir = private / Path(PASSWORD_PATH).parent.name
    secrets_dir.mkdir()
    password_file = secrets_dir / Path(PASSWORD_PATH).name
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)  # read by the healthcheck, which runs as root

    docker("network", "create", "--subnet", str(subnet), name)
    try:
        docker(
            "create", "--name", name, "--network", name, "--ip", ip,
            "--publish", "127.0.0.1::6379",
            local_images["redis"], "redis-server", CONF_PATH,
        )
        # The secrets directory first: redis.conf lives in it, as in the stack's files volume.
        docker("cp", str(secrets_dir), f"{name}:{Path(PASSWORD_PATH).parent.parent}")
        docker("cp", str(conf), f"{name}:{CONF_PATH}")
        docker("start", name)
        yield RedisOnNetwork(name, name, ip, published_port(name, "6379/tcp"), password)
    finally:
        docker("rm", "--force", "--volumes", name, check=False)
        docker("network", "rm", name, check=False)


def test_redis_starts_with_the_config_given_by_docker_cp(redis_on_network: RedisOnNetwork):
    stack = redis_on_network

    def ping_static_ip() -> bool:
        return redis.Redis(host=stack.ip, port=6379, password=stack.password).ping()

    wait_for("PING at the container's static IP", ping_static_ip)
    client = redis.Redis(host="127.0.0.1", port=stack.host_port, password=stack.password)
    assert client.ping(), "PING through the port published on 127.0.0.1"
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("dir") == {"dir": "/data"}
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=stack.ip, port=6379).ping()

    # Like the official image, the entrypoint drops root: redis-server runs as uid 999.
    status = docker("exec", stack.container, "cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["999"] * 4, uid_line


def test_the_healthcheck_command_passes_and_fails_under_sh(redis_on_network: RedisOnNetwork):
    stack = redis_on_network
    wait_for("redis to answer",
             lambda: redis.Redis(host=stack.ip, password=stack.password).ping())
    right = docker("exec", stack.container, "sh", "-c", HEALTHCHECK, check=False)
    assert right.returncode == 0, right.stderr

    docker("exec", stack.container, "sh", "-c", f"echo wrong > {PASSWORD_PATH}.wrong")
    wrong = docker(
        "exec", stack.container, "sh", "-c",
        HEALTHCHECK.replace(PASSWORD_PATH, f"{PASSWORD_PATH}.wrong"),
        check=False,
    )
    assert wrong.returncode != 0, "a wrong password must fail the healthcheck"


def test_exporter_image_serves_metrics_of_the_redis_on_the_network(
    redis_on_network: RedisOnNetwork, local_images: dict[str, str], tmp_path: Path
):
    stack = redis_on_network
    name = f"{stack.container}-exporter"
    exporter_ip = stack.ip.rsplit(".", 1)[0] + ".20"
    # 1.45 reads a JSON map of redis URI -> password; it runs as uid 59000, hence 0644.
    password_file = tmp_path / "exporter-passwords.json"
    password_file.write_text(json.dumps({f"redis://{stack.ip}:6379": stack.password}))
    password_file.chmod(0o644)
    try:
        docker(
            "create", "--name", name, "--network", stack.network, "--ip", exporter_ip,
            "--publish", "127.0.0.1::9121",
            local_images["exporter"],
            f"--redis.addr=redis://{stack.ip}:6379", "--redis.password-file=/passwords.json",
        )
        docker("cp", str(password_file), f"{name}:/passwords.json")
        docker("start", name)
        port = published_port(name, "9121/tcp")

        def scraped_up() -> tuple[bool, str]:
            text = http_get(f"http://127.0.0.1:{port}/metrics")
            return "\nredis_up 1\n" in text, text

        metrics = wait_until("the exporter to report redis_up 1", scraped_up)
        assert "redis_exporter_build_info" in metrics
        assert "redis_connected_clients" in metrics
        assert "\nredis_up 1\n" in http_get(f"http://{exporter_ip}:9121/metrics")
        assert inspect("container", name)["Config"]["User"] == "59000:59000"
    finally:
        docker("rm", "--force", "--volumes", name, check=False)


def test_prometheus_image_prints_its_version_and_checks_its_config(local_images: dict[str, str]):
    image = local_images["prometheus"]
    version = images.binary_version(["prometheus", "--version"], r"version (\d+\.\d+\.\d+)")
    server = docker("run", "--rm", image, "--version")
    assert f"prometheus, version {version}" in server.stdout + server.stderr
    tool = docker("run", "--rm", "--entrypoint", "/bin/promtool", image, "--version")
    assert f"promtool, version {version}" in tool.stdout + tool.stderr
    check = docker(
        "run", "--rm", "--entrypoint", "/bin/promtool", image,
        "check", "config", "/etc/prometheus/prometheus.yml",
    )
    assert "SUCCESS" in check.stdout + check.stderr


def test_images_have_the_official_images_paths_and_config(local_images: dict[str, str]):
    redis_config = inspect("image", local_images["redis"])["Config"]
    assert redis_config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert redis_config["Cmd"] == ["redis-server"]
    assert redis_config["WorkingDir"] == "/data"
    assert "/data" in redis_config["Volumes"]
    listing = docker(
        "run", "--rm", "--entrypoint", "sh", local_images["redis"], "-c",
        "readlink /usr/local/bin/redis-check-aof; readlink /usr/local/bin/redis-check-rdb;"
        " stat -c '%U %n' /data /usr/local/etc/redis; redis-cli --version",
    ).stdout.split("\n")
    assert listing[:4] == [
        "redis-server", "redis-server", "redis /data", "root /usr/local/etc/redis"
    ], listing

    exporter_config = inspect("image", local_images["exporter"])["Config"]
    assert exporter_config["Entrypoint"] == ["/redis_exporter"]
    assert "9121/tcp" in exporter_config["ExposedPorts"]

    prometheus_config = inspect("image", local_images["prometheus"])["Config"]
    assert prometheus_config["Entrypoint"] == ["/bin/prometheus"]
    assert prometheus_config["User"] == "nobody"
    assert prometheus_config["WorkingDir"] == "/prometheus"
    assert "/prometheus" in prometheus_config["Volumes"]


def test_images_are_rebuilt_only_when_their_inputs_change(local_images: dict[str, str]):
    for role, ref in local_images.items():
        recipe = images.RECIPES[role]()
        labels = inspect("image", ref)["Config"]["Labels"]
        assert labels[images.LABEL_INPUTS] == recipe.inputs_hash, role

    before = {ref: inspect("image", ref)["Id"] for ref in local_images.values()}
    started = time.monotonic()
    again = images.ensure_images_report()
    cached_s = time.monotonic() - started
    assert {r.action for r in again} == {"cached"}
    assert {ref: inspect("image", ref)["Id"] for ref in local_images.values()} == before

    # A throw-away copy of the redis recipe under another name: same work as a cold build.
    probe = dataclasses.replace(
        images.redis_recipe(), repository=f"alphapulse-local/cache-probe-{secrets.token_hex(3)}"
    )
    kept = f"{probe.repository}:kept"
    try:
        cold = images.ensure_image(probe)
        assert cold.action == "built"
        assert images.ensure_image(probe).action == "cached"
        # Untagged but still present under another tag: found by its label, tagged again.
        docker("tag", probe.ref, kept)
        docker("image", "rm", probe.ref)
        assert images.ensure_image(probe).action == "retagged"
        assert inspect("image", probe.ref)["Id"] == inspect("image", kept)["Id"]
        changed = dataclasses.replace(probe, changes=(*probe.changes, "ENV PROBE=1"))
        assert changed.inputs_hash != probe.inputs_hash
    finally:
        docker("image", "rm", probe.ref, kept, check=False)
    print(f"\nredis image cold build {cold.seconds:.2f} s; all three cached {cached_s:.2f} s")


def test_redis_binary_in_the_image_is_the_debian_one(local_images: dict[str, str]):
    host = hashlib.sha256(images.host_binary("redis-server").read_bytes()).hexdigest()
    inside = docker(
        "run", "--rm", "--entrypoint", "sha256sum", local_images["redis"],
        "/usr/local/bin/redis-server",
    ).stdout.split()[0]
    assert inside == host
