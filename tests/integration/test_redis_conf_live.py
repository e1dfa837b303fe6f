"""The rendered redis.conf is accepted by the real redis-server and takes effect."""

import dataclasses
import subprocess
from pathlib import Path

import pytest
import redis

from components.redis_conf import (
    AUTH_CONF_NAME,
    CONF_DIR,
    render_auth_conf,
    render_redis_conf,
)
from components.spec import build_spec
from components.topology import plan_cluster
from tests.support.redis_nodes import pick_free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
PASSWORD = 'odd "pass\\word" with spaces 123'


def test_real_redis_server_accepts_the_rendered_config(tmp_path: Path):
    spec = build_spec({"maxmemory": "64mb", "nodeTimeoutMs": "1500"}, "dev", False)
    port = pick_free_port()
    node = dataclasses.replace(plan_cluster(spec).nodes[0], ip="127.0.0.1", port=port,
                               bus_port=port + 10000)
    text = render_redis_conf(spec, node).replace("dir /data", f"dir {tmp_path}")
    (tmp_path / "redis.conf").write_text(text.replace(CONF_DIR, str(tmp_path)))
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / AUTH_CONF_NAME).write_text(render_auth_conf(PASSWORD))
    log = (tmp_path / "redis.log").open("w")
    server = subprocess.Popen(["redis-server", str(tmp_path / "redis.conf")], stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(port=port, password=PASSWORD, socket_timeout=1)

        def answers() -> tuple[bool, str]:
            if server.poll() is not None:  # it exited: its log says why, waiting will not help
                pytest.fail(f"redis-server exited: {(tmp_path / 'redis.log').read_text()}")
            return bool(client.ping()), "PONG"

        wait_until("redis-server to answer PING", answers, 10)
        live = client.config_get("*")
        assert live["cluster-enabled"] == "yes"
        assert live["appendonly"] == "yes" and live["appendfsync"] == "everysec"
        assert live["maxmemory"] == str(64 * 1024**2)
        assert live["cluster-node-timeout"] == "1500"
        assert live["cluster-replica-validity-factor"] == "0"
        assert live["save"] == "900 1 300 10 60 10000"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong", socket_timeout=1).ping()
    finally:
        server.terminate()
        server.wait(10)
        log.close()
