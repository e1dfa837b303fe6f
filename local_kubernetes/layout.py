"""Where everything of the local Kubernetes cluster lives: names, addresses, directories.

One bridge in the root network namespace joins the control plane (on the bridge's own address)
and three worker nodes, each a network namespace with its own containerd, kubelet and kube-proxy
(`nsenter --net`: only the network namespace changes; `ip netns exec` would remount /sys and
hide the cgroup mounts the kubelet needs). Every address is private to this machine and made
here; nothing else is ever contacted.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

PREFIX = "apk8s"
BRIDGE = f"{PREFIX}br0"
NODE_NETWORK = ipaddress.ip_network("10.214.0.0/24")
CONTROL_PLANE_ADDRESS = str(NODE_NETWORK[1])  # the bridge's address in the root namespace
POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
SERVICE_NETWORK = "10.96.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
# CoreDNS answers on the control plane's address: every pod reaches it through its node's
# default route, with no Service or kube-proxy rule in the way.
DNS_ADDRESS = CONTROL_PLANE_ADDRESS
APISERVER_PORT = 6443
KUBERNETES_VERSION = "v1.35.0"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
STORAGE_CLASS = "local-static"
VOLUMES_PER_NODE = 4

STATE_ROOT = Path(os.environ.get("ALPHAPULSE_K8S_STATE", "/var/lib/alphapulse-k8s"))
RUN_ROOT = Path("/run/alphapulse-k8s")
TOOLS_BIN = Path(os.environ.get("PULUMI_TOOLS_DIR",
                                Path.home() / ".cache" / "alphapulse-pulumi")) / "bin"
CNI_BIN_DIR = Path("/usr/lib/cni")


@dataclass(frozen=True)
class Node:
    index: int  # 1-based

    @property
    def name(self) -> str:
        return f"{PREFIX}-n{self.index}"

    @property
    def address(self) -> str:
        return str(NODE_NETWORK[10 + self.index])

    @property
    def root_veth(self) -> str:
        return f"{PREFIX}n{self.index}r"

    @property
    def pod_cidr(self) -> str:
        return str(list(POD_NETWORK.subnets(new_prefix=24))[self.index])

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.name}"

    @property
    def state_dir(self) -> Path:
        return STATE_ROOT / self.name

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.name

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def volumes_dir(self) -> Path:
        """Where this node's static PersistentVolumes keep their data."""
        return self.state_dir / "volumes"


NODES = tuple(Node(i) for i in (1, 2, 3))


def kubeconfig_path() -> Path:
    return STATE_ROOT / "admin.kubeconfig"
