"""components/peer-addresses.sh, mode `nodes-conf` (the init container of every Redis pod), on
the nodes.conf that Redis 7.0 and Redis 7.2+/Valkey write: only the moved peers' IPs change,
everything else is kept byte for byte (ids, flags, epochs, slots, 7.2's auxiliary fields)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.k8s_cluster import PEER_ADDRESSES_SCRIPT
from tests.support.dns_stub import dns_stub

ME = "shard-1-0.nodes.ns.svc.cluster.local"
MOVED = "shard-2-0.nodes.ns.svc.cluster.local"
NOT_YET = "shard-3-0.nodes.ns.svc.cluster.local"

NODES_CONF_7_0 = f"""\
aaaa 10.0.0.1:6379@16379,{ME} myself,master - 0 0 1 connected 0-5460
bbbb 10.0.0.2:6379@16379,{MOVED} master - 0 1700000000 2 connected 5461-10922
cccc 10.0.0.3:6379@16379,{NOT_YET} master - 0 1700000000 3 connected 10923-16383
vars currentEpoch 3 lastVoteEpoch 0
"""

# Redis 7.2.6 cluster.c clusterGenNodeDescription: aux fields follow the hostname in nodes.conf.
NODES_CONF_7_2 = f"""\
aaaa 10.0.0.1:6379@16379,{ME},tls-port=0,shard-id=s1 myself,master - 0 0 1 connected 0-5460
bbbb 10.0.0.2:6379@16379,{MOVED},tls-port=0,shard-id=s2 master - 0 1700000000 2 connected 5461-10922
cccc 10.0.0.3:6379@16379,{NOT_YET},tls-port=0,shard-id=s3 master - 0 17000 3 connected 10923-16383
dddd 10.0.0.4:6379@16379,,tls-port=0,shard-id=s1 slave aaaa 0 1700000000 1 connected
vars currentEpoch 3 lastVoteEpoch 0
"""


def refresh(tmp_path: Path, text: str, table: dict[str, str]) -> tuple[str, str]:
    conf = tmp_path / "nodes.conf"
    conf.write_text(text)
    done = subprocess.run(["sh", str(PEER_ADDRESSES_SCRIPT), "nodes-conf", str(conf)],
                          env=dns_stub(table, tmp_path), capture_output=True, text=True,
                          check=True, timeout=30)
    return conf.read_text(), done.stderr


@pytest.mark.parametrize("text", [NODES_CONF_7_0, NODES_CONF_7_2], ids=["redis-7.0", "redis-7.2"])
def test_only_the_peers_that_moved_change(tmp_path: Path, text: str) -> None:
    # Mine resolves to the same IP, one peer to a new one, one peer not at all (no pod yet).
    after, said = refresh(tmp_path, text, {ME: "10.0.0.1", MOVED: "10.9.9.2"})
    assert after == text.replace("10.0.0.2:", "10.9.9.2:")
    assert said.strip() == f"peer-addresses: {MOVED} 10.0.0.2 -> 10.9.9.2"


def test_a_fresh_node_without_nodes_conf_is_left_alone(tmp_path: Path) -> None:
    conf = tmp_path / "nodes.conf"
    subprocess.run(["sh", str(PEER_ADDRESSES_SCRIPT), "nodes-conf", str(conf)],
                   env=dns_stub({}, tmp_path), check=True, timeout=30)
    assert not conf.exists()


def test_a_name_that_is_not_a_dns_name_never_reaches_the_shell(tmp_path: Path) -> None:
    hostile = "x;touch${IFS}pwned"
    text = f"bbbb 10.0.0.2:6379@16379,{hostile} master - 0 0 2 connected 1\n"
    after, _ = refresh(tmp_path, text, {})
    assert after == text
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_an_unknown_mode_is_refused_with_the_usage(tmp_path: Path) -> None:
    done = subprocess.run(["sh", str(PEER_ADDRESSES_SCRIPT), "refresh"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "usage:" in done.stderr
