"""The configuration files of each component, as text (pure: no side effects).

Settings that this machine needs and a production node would not, each with its reason:
- cgroup v1 and no systemd: kubelet `failCgroupV1: false`, `cgroupDriver: cgroupfs`, and a
  per-node `cgroupRoot` so three kubelets do not manage one cgroup tree.
- Three kubelets share one kernel, one memory and one disk: `enforceNodeAllocatable: []` and
  eviction thresholds at their floor (one kubelet must not evict another node's pods over the
  machine's totals), image GC off (the images are imported, not pullable again).
- This VM lacks CAP_SYS_RESOURCE: containerd's CRI `restrict_oom_score_adj = true`, or runc
  fails with "failed to update /proc/self/oom_score_adj: Permission denied".
- kube-proxy runs in a node's network namespace: `conntrack.maxPerCore: 0` leaves the global
  nf_conntrack_max alone (read-only there).
- Kubelets allow any authenticated-or-anonymous caller (`AlwaysAllow`): a single-machine test
  cluster; production kubelets use webhook authorization.
"""

from __future__ import annotations

import json

from local_kubernetes.layout import (
    CLUSTER_DOMAIN,
    CNI_BIN_DIR,
    DNS_ADDRESS,
    PAUSE_IMAGE,
    POD_NETWORK,
    Node,
)


def kubeconfig(server: str, ca_file: str, token: str, user: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server,
                                                   "certificate-authority": ca_file}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }, indent=2)


def containerd_config(node: Node) -> str:
    state = node.state_dir / "containerd"
    return f"""version = 2
root = "{state / 'root'}"
state = "{node.run_dir / 'containerd'}"

[grpc]
  address = "{node.containerd_socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{state / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{node.state_dir / 'cni'}"
"""


def cni_config(node: Node) -> str:
    return json.dumps({
        "cniVersion": "0.4.0",
        "name": "alphapulse-pods",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_cidr}]],
                      "routes": [{"dst": "0.0.0.0/0"}],
                      # Per node: the default /var/lib/cni/networks would be shared.
                      "dataDir": str(node.state_dir / "cni-ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2)


def kubelet_config(node: Node) -> str:
    return json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.address,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{node.name}",
        "cgroupsPerQOS": True,
        "failSwapOn": False,
        "enforceNodeAllocatable": [],
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": False,
        "protectKernelDefaults": False,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDNS": [DNS_ADDRESS],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(node.state_dir / "resolv.conf"),
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "podLogsDir": str(node.state_dir / "pod-logs"),
        "serializeImagePulls": False,
        "maxPods": 30,
        "nodeStatusUpdateFrequency": "4s",
        "staticPodPath": "",
    }, indent=2)


def kube_proxy_config(node: Node, kubeconfig_file: str) -> str:
    return json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": str(POD_NETWORK),
        "hostnameOverride": node.name,
        "bindAddress": node.address,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "clientConnection": {"kubeconfig": kubeconfig_file},
        "conntrack": {"maxPerCore": 0, "min": 0},
    }, indent=2)


def corefile(kubeconfig_file: str) -> str:
    # No `forward`: this machine has no upstream resolver to ask, and a cluster name that is
    # not known is answered NXDOMAIN here rather than sent anywhere.
    return f"""{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    bind {DNS_ADDRESS}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig_file} local
        pods insecure
        ttl 5
    }}
    cache 5
}}
.:53 {{
    bind {DNS_ADDRESS}
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""
