"""The cluster's network: a bridge, a namespace per node, and routes between the pod networks.

Each node's pods live on its own CNI bridge (`cni0`, in the node's namespace) in its /24 of
10.244.0.0/16. A node reaches another node's pods by a route through that node's address on the
shared bridge: frames cross the root namespace as bridged traffic only (never routed there), so
Docker's FORWARD DROP policy in the root namespace sees them only through br_netfilter, where
one rule of ours lets the bridge talk to itself (as tests/support/netns_hosts.py does).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from local_kubernetes.layout import BRIDGE, CONTROL_PLANE_ADDRESS, NODE_NETWORK, NODES, Node

FORWARD_RULE = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]


class NetworkError(RuntimeError):
    pass


def run(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"`{' '.join(args)}` failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()}")
    return done


def in_node(node: Node, args: Sequence[str], check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    return run(["nsenter", f"--net={node.netns_path}", *args], check=check)


def exists() -> bool:
    return run(["ip", "link", "show", BRIDGE], check=False).returncode == 0


def create() -> None:
    prefix = NODE_NETWORK.prefixlen
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{CONTROL_PLANE_ADDRESS}/{prefix}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    run(["iptables", "-I", *FORWARD_RULE])
    for node in NODES:
        run(["ip", "netns", "add", node.name])
        run(["ip", "link", "add", node.root_veth, "type", "veth", "peer", "name", "eth0",
             "netns", node.name])
        run(["ip", "link", "set", node.root_veth, "master", BRIDGE, "up"])
        inside = ["ip", "-n", node.name]
        run([*inside, "addr", "add", f"{node.address}/{prefix}", "dev", "eth0"])
        run([*inside, "link", "set", "eth0", "up"])
        run([*inside, "link", "set", "lo", "up"])
        run([*inside, "route", "add", "default", "via", CONTROL_PLANE_ADDRESS])
        for other in NODES:
            if other != node:
                run([*inside, "route", "add", other.pod_cidr, "via", other.address])
        # The node forwards between its pods' bridge and eth0, like any Kubernetes node.
        in_node(node, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    # The control plane (apiserver, CoreDNS) answers pods directly: return routes to them.
    for node in NODES:
        run(["ip", "route", "replace", node.pod_cidr, "via", node.address])


def cut_link(node: Node) -> None:
    """The node drops off the network; its processes keep running (a node loss)."""
    run(["ip", "link", "set", node.root_veth, "down"])


def restore_link(node: Node) -> None:
    run(["ip", "link", "set", node.root_veth, "up"])


def remove() -> None:
    """Remove whatever an earlier run left; missing pieces are skipped."""
    for node in NODES:
        run(["ip", "route", "del", node.pod_cidr], check=False)
        run(["ip", "netns", "del", node.name], check=False)
        run(["ip", "link", "del", node.root_veth], check=False)
    run(["ip", "link", "del", BRIDGE], check=False)
    while run(["iptables", "-D", *FORWARD_RULE], check=False).returncode == 0:
        pass
