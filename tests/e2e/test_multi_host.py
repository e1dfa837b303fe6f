"""Several Docker hosts for real: three engines, each its own dockerd in its own network
namespace (tests/support/netns_hosts.py), one `pulumi up` spreading the shards over them.

The stack runs with TLS on every link and ACL users (tls: true, acl: true), as a cluster whose
traffic crosses machines should: the bus, replication and clients between the hosts are TLS.

What it proves: every node's resources land on the engine the plan puts it on; a client in a
fourth namespace (an application server elsewhere) follows MOVED to the hosts' addresses and
reaches all 16384 slots; health judges placement by Docker host; losing a whole host (its link
cut, under a SET + WAIT 1 writer) loses no acknowledged write, the cluster serves every slot
again, and the host's nodes rejoin when it comes back; and an unreachable host is a clear error
before anything is created.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from clusterops.core.poll import Deadline, poll
from tests.support.deploy_fixtures import (
    _skip_or_fail,
    local_image_config,
    require_docker_and_pulumi,
)
from tests.support.live_writer import LiveWriter, lost_acknowledged
from tests.support.netns_hosts import NetnsHosts, NetnsHostsError
from tests.support.pulumi_cli import PulumiStack, new_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Own names, subnets and ports: no collision with the other e2e stacks on the root engine.
PREFIX = "apmh"
CONFIG = {"namePrefix": PREFIX, "subnet": "172.31.90.0/24", "basePort": "7701",
          "exporterPort": "9721", "nodeTimeoutMs": "1000", "tls": "true", "acl": "true"}
RECOVERY_DEADLINE_S = 30.0
REJOIN_DEADLINE_S = 60.0
# Runs in the client namespace: writes and reads back one key in each of the 16384 slots,
# and reports which addresses the cluster client was sent to.
SLOT_CLIENT = """
import json, sys
from clusterops.client import from_stack_outputs
from clusterops.core.model import HASH_SLOTS, hash_tags
outputs = json.load(open(sys.argv[1]))
# The application user over TLS, checking each node's certificate names its host's address.
client = from_stack_outputs(outputs, "network", decode_responses=True)
keys = [f"slot:{{{tag}}}" for tag in hash_tags([(0, HASH_SLOTS - 1)], HASH_SLOTS, "s")]
pipe = client.pipeline()
for key in keys:
    pipe.set(key, key)
pipe.execute()
read = client.mget_nonatomic(keys)
print(json.dumps({"written": len(keys), "read_back": sum(v == k for k, v in zip(keys, read)),
                  "addresses": sorted({n.host for n in client.get_nodes()})}))
"""


def hosts_setting(hosts: NetnsHosts) -> str:
    return json.dumps([{"name": h.name.split("-")[-1], "dockerHost": h.docker_host,
                        "address": h.address} for h in hosts])


@pytest.fixture(scope="module")
def hosts() -> Iterator[NetnsHosts]:
    require_docker_and_pulumi()
    try:
        with NetnsHosts(prefix="aph", count=3) as created:
            images = local_image_config()
            created.load_images([images["redisImage"], images["exporterImage"]])
            yield created
    except NetnsHostsError as err:
        _skip_or_fail(f"cannot create network-namespace Docker hosts here: {err}")


@pytest.fixture(scope="module")
def stack(hosts: NetnsHosts, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[PulumiStack, dict[str, Any], Path]]:
    root = tmp_path_factory.mktemp("multi-host")
    handle = new_stack(root, "dev", {**local_image_config(), **CONFIG,
                                     "hosts": hosts_setting(hosts)})
    try:
        outputs = handle.up()
        outputs_file = root / "outputs.json"
        handle.write_outputs(outputs_file)
        yield handle, outputs, outputs_file
    finally:
        handle.destroy(check=False)
        handle.remove()


def tls_and_user(outputs: dict[str, Any]) -> dict[str, Any]:
    """The application user over TLS, trusting the cluster's CA."""
    return {"username": outputs["username"], "ssl": True, "ssl_ca_data": outputs["tls_ca_cert"],
            "ssl_cert_reqs": "required"}


def cluster_client(outputs: dict[str, Any]) -> RedisCluster:
    return RedisCluster(startup_nodes=[ClusterNode(*e.rsplit(":", 1))
                                       for e in outputs["seed_endpoints"]],
                        password=outputs["password"], socket_timeout=2,
                        socket_connect_timeout=2, **tls_and_user(outputs))


def node_client(outputs: dict[str, Any], node: dict[str, Any]) -> redis.Redis:
    return redis.Redis(node["ip"], node["port"], password=outputs["password"], socket_timeout=1,
                       socket_connect_timeout=1, **tls_and_user(outputs))


def _handle_outputs(stack) -> dict[str, Any]:
    return stack[1]


def scrape(exporter: str, node: dict[str, Any]) -> dict[str, str]:
    """The exporter's view of one node: metric name (no labels) -> value."""
    target = f"rediss://{node['ip']}:{node['port']}"
    text = subprocess.run(["curl", "-s", "-m", "20", f"{exporter}/scrape?target={target}"],
                          capture_output=True, text=True, timeout=30, check=False).stdout
    return dict(line.split(" ", 1) for line in text.splitlines()
                if line and not line.startswith("#") and "{" not in line)


def containers_on(host, label: str = "com.alphapulse.node") -> set[str]:
    done = host.docker("ps", "--filter", f"label={label}", "--format", "{{.Names}}")
    return set(done.stdout.split())


def test_every_node_runs_on_the_host_the_plan_names(hosts, stack):
    _handle, outputs, _file = stack
    assert outputs["cluster_state"] == "ok"
    assert outputs["announce"] == "host-address"
    nodes = outputs["nodes"]
    by_host = {h.name.split("-")[-1]: h for h in hosts}
    for name, host in by_host.items():
        planned = {n["name"] for n in nodes if n["host"] == name}
        assert containers_on(host) == planned, name
        address = host.address
        assert all(n["ip"] == address for n in nodes if n["host"] == name)
    assert Counter(n["host"] for n in nodes if n["role"] == "master") == {
        "h1": 1, "h2": 1, "h3": 1}
    host_of = {n["name"]: n["host"] for n in nodes}
    assert all(host_of[n["master"]] != n["host"] for n in nodes if n["role"] == "replica")
    # An exporter on every host, each scraping every node on every host.
    exporters = _handle_outputs(stack)["exporter_urls"]
    assert exporters == [f"http://{h.address}:{CONFIG['exporterPort']}" for h in hosts]
    for exporter in exporters:
        for node in nodes:
            assert scrape(exporter, node).get("redis_up") == "1", (exporter, node["name"])


def test_a_client_on_another_machine_reaches_every_slot(hosts, stack):
    _handle, _outputs, outputs_file = stack
    done = hosts.client_run([sys.executable, "-c", SLOT_CLIENT, str(outputs_file)],
                            cwd=PROJECT_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["written"] == result["read_back"] == 16384
    # Redirected only to the hosts' addresses, never to a container IP it cannot reach.
    assert set(result["addresses"]) == {h.address for h in hosts}


def test_health_judges_placement_by_docker_host(stack):
    _handle, _outputs, outputs_file = stack
    done = subprocess.run([sys.executable, "-m", "clusterops", "health", "--stack-outputs",
                           str(outputs_file), "--json"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    placement = [r for r in json.loads(done.stdout)["results"]
                 if r["check"] == "replica_placement"]
    assert len(placement) == 3 and all(r["status"] == "ok" for r in placement), placement
    assert all("on other hosts" in r["message"] for r in placement)


def roles(client: RedisCluster, outputs: dict[str, Any]) -> dict[str, str]:
    """Planned name -> live role, asked of each reachable node itself."""
    seen = {}
    for node in outputs["nodes"]:
        try:
            one = node_client(outputs, node)
            seen[node["name"]] = one.info("replication")["role"]
        except (redis.RedisError, OSError):
            seen[node["name"]] = "unreachable"
    return seen


def every_slot_served(outputs: dict[str, Any], lost_address: str) -> tuple[bool, str]:
    """Every node outside the lost host says cluster_state ok AND maps every slot to a master
    outside it (right after the loss they still say ok, with the lost master's slots)."""
    seen = {}
    for node in outputs["nodes"]:
        if node["ip"] == lost_address:
            continue
        try:
            one = node_client(outputs, node)
            state = one.cluster("info")["cluster_state"]
            owners = {f"{first}-{last}": reply[0][0].decode() if isinstance(
                reply[0][0], bytes) else reply[0][0]
                for first, last, *reply in one.execute_command("CLUSTER SLOTS")}
            on_lost = sorted(r for r, host in owners.items() if host == lost_address)
            seen[node["name"]] = f"{state}, slots on the lost host: {on_lost or 'none'}"
        except (redis.RedisError, OSError) as err:
            seen[node["name"]] = f"error {err}"
    done = all(v == "ok, slots on the lost host: none" for v in seen.values())
    return done, json.dumps(seen)


def test_losing_a_whole_host_loses_no_acknowledged_write_and_it_rejoins(hosts, stack):
    _handle, outputs, _file = stack
    lost = hosts[0]
    lost_name = lost.name.split("-")[-1]
    seeds = [tuple(e.rsplit(":", 1)) for e in outputs["seed_endpoints"]
             if not e.startswith(f"{lost.address}:")]
    writer = LiveWriter([(h, int(p)) for h, p in seeds], outputs["password"],
                        uuid.uuid4().hex[:8], **tls_and_user(outputs))
    writer.start()
    poll(lambda: (len(writer.result.acked) >= 200, None), Deadline.after(30), 0.1)
    cut_at = time.monotonic()
    hosts.cut_link(lost)
    try:
        served, seen = poll(lambda: every_slot_served(outputs, lost.address),
                            Deadline.after(RECOVERY_DEADLINE_S), 0.1)
        recovered_s = time.monotonic() - cut_at
        assert served, f"not every slot served {RECOVERY_DEADLINE_S}s after the loss: {seen}"
        # Writes go on after the loss. Only shards that kept a replica can acknowledge them
        # (WAIT 1): the promoted master and the master whose replica was on the lost host
        # have none until it returns, so those SETs succeed unacknowledged (500 ms each).
        def accepted() -> int:
            return len(writer.result.acked) + writer.result.unacked

        before = (accepted(), len(writer.result.acked))
        wrote, _ = poll(lambda: (accepted() >= before[0] + 30
                                 and len(writer.result.acked) > before[1], None),
                        Deadline.after(30), 0.1)
        assert wrote, f"writes did not go on after recovery: {writer.result.summary()}"
        # Monitoring outlives the host: h2's exporter reports h1's nodes down, the rest up.
        exporter = f"http://{hosts[1].address}:{CONFIG['exporterPort']}"
        up = {n["name"]: scrape(exporter, n).get("redis_up") for n in outputs["nodes"]}
        assert up == {n["name"]: "0" if n["host"] == lost_name else "1"
                      for n in outputs["nodes"]}, up
    finally:
        hosts.restore_link(lost)
    client = cluster_client(outputs)

    def rejoined() -> tuple[bool, dict[str, str]]:
        live = roles(client, outputs)
        masters = [n for n, r in live.items() if r == "master"]
        return "unreachable" not in live.values() and len(masters) == 3, live

    back, live = poll(rejoined, Deadline.after(REJOIN_DEADLINE_S), 0.5)
    result = writer.stop()
    assert back, f"the lost host's nodes did not rejoin: {live}"
    # The lost host's former master came back as a replica of its promoted replica.
    lost_master = next(n["name"] for n in outputs["nodes"]
                       if n["host"] == lost_name and n["role"] == "master")
    assert live[lost_master] == "slave", live
    missing = lost_acknowledged(writer, result)
    print(f"\nhost loss: every slot served again after {recovered_s:.2f} s; "
          f"{result.summary()}; {len(missing)} acknowledged writes lost")
    assert missing == [], f"{len(missing)} acknowledged writes lost: {missing[:5]}"


def test_an_unreachable_host_is_an_error_before_anything_is_created(hosts, tmp_path):
    setting = json.loads(hosts_setting(hosts))
    setting[1]["dockerHost"] = "unix:///run/aph-missing.sock"
    handle = new_stack(tmp_path, "dev", {**local_image_config(), **CONFIG,
                                         "namePrefix": "apmhbad",
                                         "hosts": json.dumps(setting)})
    try:
        done = handle.run("up", "--stack", handle.name, "--yes", "--skip-preview", check=False)
        assert done.returncode != 0
        text = done.stdout + done.stderr
        assert "hosts: h2: the Docker engine at unix:///run/aph-missing.sock does not answer" \
            in text, text[-3000:]
        assert "nothing was created or changed" in text
        assert handle.state()["deployment"].get("resources", []) in ([], None) or all(
            r["type"].startswith("pulumi:") for r in handle.state()["deployment"]["resources"])
        for host in hosts:
            assert not containers_on(host, "com.alphapulse.cluster=apmhbad")
    finally:
        handle.destroy(check=False)
        handle.remove()
