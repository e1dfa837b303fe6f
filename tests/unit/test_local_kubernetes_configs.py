"""local_kubernetes/configs.py and layout.py: the files each component of the local cluster
reads. Three nodes share one machine, so nothing a node owns may be shared with another; and the
cluster must never reach an address it did not make."""

from __future__ import annotations

import ipaddress
import json
import tomllib

from local_kubernetes import configs
from local_kubernetes.layout import (
    CONTROL_PLANE_ADDRESS,
    NODE_NETWORK,
    NODES,
    POD_NETWORK,
    SERVICE_NETWORK,
)


def test_every_node_owns_its_addresses_directories_sockets_and_cgroups():
    kubelets = [json.loads(configs.kubelet_config(node)) for node in NODES]
    containerds = [tomllib.loads(configs.containerd_config(node)) for node in NODES]
    cnis = [json.loads(configs.cni_config(node)) for node in NODES]
    owned = {
        "cgroupRoot": [k["cgroupRoot"] for k in kubelets],
        "podLogsDir": [k["podLogsDir"] for k in kubelets],
        "kubelet address": [k["address"] for k in kubelets],
        "runtime socket": [k["containerRuntimeEndpoint"] for k in kubelets],
        "containerd root": [c["root"] for c in containerds],
        "containerd state": [c["state"] for c in containerds],
        "containerd socket": [c["grpc"]["address"] for c in containerds],
        "pod subnet": [c["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] for c in cnis],
        "ipam data": [c["plugins"][0]["ipam"]["dataDir"] for c in cnis],
    }
    for what, values in owned.items():
        assert len(set(values)) == len(NODES), f"{what} shared between nodes: {values}"
    for kubelet, containerd in zip(kubelets, containerds, strict=True):
        assert kubelet["containerRuntimeEndpoint"] == f"unix://{containerd['grpc']['address']}"


def test_what_this_machine_needs_is_set():
    kubelet = json.loads(configs.kubelet_config(NODES[0]))
    # cgroup v1 without systemd
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"
    # three kubelets on one machine's totals: none may evict another node's pods
    assert kubelet["enforceNodeAllocatable"] == []
    cri = tomllib.loads(configs.containerd_config(NODES[0]))["plugins"][
        "io.containerd.grpc.v1.cri"]
    # no CAP_SYS_RESOURCE here: runc fails on oom_score_adj otherwise
    assert cri["restrict_oom_score_adj"] is True
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False


def test_the_networks_are_private_and_do_not_overlap():
    networks = {"nodes": NODE_NETWORK, "pods": POD_NETWORK,
                "services": ipaddress.ip_network(SERVICE_NETWORK),
                # tests/support/netns_hosts.py's Docker hosts
                "netns hosts": ipaddress.ip_network("10.213.0.0/24")}
    for name, network in networks.items():
        assert network.is_private, name
    names = sorted(networks)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not networks[first].overlaps(networks[second]), (first, second)
    for node in NODES:
        assert ipaddress.ip_network(node.pod_cidr).subnet_of(POD_NETWORK)
        assert ipaddress.ip_address(node.address) in NODE_NETWORK
    assert ipaddress.ip_address(CONTROL_PLANE_ADDRESS) in NODE_NETWORK


def test_cluster_dns_answers_only_cluster_names_and_forwards_nothing():
    corefile = configs.corefile("/x/coredns.kubeconfig")
    assert "forward" not in corefile and "rcode NXDOMAIN" in corefile
    assert corefile.count(f"bind {CONTROL_PLANE_ADDRESS}") == 2


def test_kube_proxy_binds_to_its_node():
    for node in NODES:
        proxy = json.loads(configs.kube_proxy_config(node, "/x/kube-proxy.kubeconfig"))
        assert proxy["mode"] == "iptables" and proxy["bindAddress"] == node.address
        assert proxy["hostnameOverride"] == node.name
        # read-only inside a network namespace: leave the global table size alone
        assert proxy["conntrack"]["maxPerCore"] == 0
