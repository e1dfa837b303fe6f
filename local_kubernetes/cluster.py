"""The local Kubernetes cluster's lifecycle: up, status, down.

Control plane in the root network namespace, on the bridge's address: etcd (Debian's), then
kube-apiserver, kube-controller-manager and kube-scheduler (built by scripts/build-kubernetes.sh),
and CoreDNS (scripts/build-coredns.sh) answering cluster names on the same address. Each of the
three nodes runs containerd (Debian's, with runc and the CNI plugins), a kubelet and kube-proxy
in its own network namespace. Clients authenticate with static bearer tokens (the API server's
token file); the API server's serving certificate is the self-signed one it makes, and every
client trusts exactly that certificate.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clusterops.core.poll import Deadline, poll
from local_kubernetes import configs, network, processes
from local_kubernetes.api import Api, ApiError
from local_kubernetes.layout import (
    APISERVER_PORT,
    CONTROL_PLANE_ADDRESS,
    NODES,
    PAUSE_IMAGE,
    RUN_ROOT,
    SERVICE_NETWORK,
    STATE_ROOT,
    STORAGE_CLASS,
    TOOLS_BIN,
    VOLUMES_PER_NODE,
    Node,
    kubeconfig_path,
)

START_TIMEOUT_S = 120.0
NODE_READY_TIMEOUT_S = 180.0
TOKENS = ("admin", "controller-manager", "scheduler", "kube-proxy", "coredns",
          *(node.name for node in NODES))
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
                 "kube-proxy")
HOST_TOOLS = {"etcd": "etcd-server", "containerd": "containerd", "runc": "runc",
              "ctr": "containerd", "iptables": "iptables", "nsenter": "util-linux",
              "conntrack": "conntrack"}


class LocalClusterError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    """What `up` needs and this machine lacks, each with where it comes from."""
    missing = [f"{TOOLS_BIN / name} (scripts/build-kubernetes.sh)"
               for name in KUBE_BINARIES if not (TOOLS_BIN / name).exists()]
    if not (TOOLS_BIN / "coredns").exists():
        missing.append(f"{TOOLS_BIN / 'coredns'} (scripts/build-coredns.sh)")
    missing += [f"{tool} (apt-get install {package})" for tool, package in HOST_TOOLS.items()
                if shutil.which(tool) is None]
    if not (Path("/usr/lib/cni") / "bridge").exists():
        missing.append("the CNI plugins (apt-get install containernetworking-plugins)")
    return missing


def _tokens() -> dict[str, str]:
    """user -> token; made once per cluster and kept in its state directory."""
    path = STATE_ROOT / "tokens.csv"
    if not path.exists():
        groups = {"admin": "system:masters", "controller-manager": "system:masters",
                  "scheduler": "system:masters", "kube-proxy": "system:masters",
                  "coredns": "system:masters"}
        lines = []
        for user in TOKENS:
            node_user = user.startswith("apk8s-")
            name = f"system:node:{user}" if node_user else user
            group = "system:nodes" if node_user else groups[user]
            lines.append(f"{secrets.token_hex(24)},{name},{name},{group}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    by_user = {}
    for line in path.read_text().splitlines():
        token, name = line.split(",")[:2]
        by_user[name.removeprefix("system:node:")] = token
    return by_user


def _ca_file() -> Path:
    return STATE_ROOT / "apiserver-certs" / "apiserver.crt"


def _server() -> str:
    return f"https://{CONTROL_PLANE_ADDRESS}:{APISERVER_PORT}"


def api() -> Api:
    return Api(_server(), _ca_file(), _tokens()["admin"])


def _write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _kubeconfig(user: str) -> Path:
    path = STATE_ROOT / "kubeconfigs" / f"{user}.kubeconfig"
    return _write_private(path, configs.kubeconfig(_server(), str(_ca_file()),
                                                   _tokens()[user], user))


def _wait(what: str, probe: Any, timeout_s: float, names: Sequence[str]) -> None:
    def check() -> tuple[bool, str]:
        for name in names:
            problem = processes.exited_early(name)
            if problem:
                raise LocalClusterError(f"{what}: {problem}")
        return probe()

    done, seen = poll(check, Deadline.after(timeout_s), 0.5)
    if not done:
        raise LocalClusterError(f"{what} not within {timeout_s:g} s; last seen: {seen}")


def _start_control_plane() -> None:
    etcd_dir = STATE_ROOT / "etcd"
    processes.start("etcd", [
        "etcd", "--data-dir", str(etcd_dir), "--name", "local",
        "--listen-client-urls", "http://127.0.0.1:2479",
        "--advertise-client-urls", "http://127.0.0.1:2479",
        "--listen-peer-urls", "http://127.0.0.1:2480",
        "--initial-advertise-peer-urls", "http://127.0.0.1:2480",
        "--initial-cluster", "local=http://127.0.0.1:2480"])
    sa_key = STATE_ROOT / "sa.key"
    if not sa_key.exists():
        subprocess.run(["openssl", "genrsa", "-out", str(sa_key), "2048"], check=True,
                       capture_output=True)
    _tokens()
    processes.start("kube-apiserver", [
        str(TOOLS_BIN / "kube-apiserver"),
        "--etcd-servers=http://127.0.0.1:2479",
        f"--advertise-address={CONTROL_PLANE_ADDRESS}",
        f"--bind-address={CONTROL_PLANE_ADDRESS}", f"--secure-port={APISERVER_PORT}",
        f"--cert-dir={STATE_ROOT / 'apiserver-certs'}",
        f"--token-auth-file={STATE_ROOT / 'tokens.csv'}",
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={SERVICE_NETWORK}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={sa_key}",
        f"--service-account-signing-key-file={sa_key}",
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true",
        "--enable-admission-plugins=NodeRestriction"])
    _wait("kube-apiserver ready", lambda: (api().ready(), "not ready"), START_TIMEOUT_S,
          ["etcd", "kube-apiserver"])
    processes.start("kube-controller-manager", [
        str(TOOLS_BIN / "kube-controller-manager"),
        f"--kubeconfig={_kubeconfig('controller-manager')}",
        f"--service-account-private-key-file={sa_key}",
        f"--root-ca-file={_ca_file()}",
        "--use-service-account-credentials=false",
        "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10257",
        # Node loss is judged fast, as a production cluster tuned for it would.
        "--node-monitor-grace-period=20s"])
    processes.start("kube-scheduler", [
        str(TOOLS_BIN / "kube-scheduler"),
        f"--kubeconfig={_kubeconfig('scheduler')}",
        "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10259"])
    corefile = _write_private(STATE_ROOT / "Corefile",
                              configs.corefile(str(_kubeconfig("coredns"))))
    processes.start("coredns", [str(TOOLS_BIN / "coredns"), "-conf", str(corefile)])


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _v1_hierarchies() -> list[Path]:
    """Every cgroup v1 hierarchy mounted here (the kubelet checks its cgroupRoot in each)."""
    return [path for path in sorted(CGROUP_ROOT.iterdir())
            if path.is_dir() and path.name != "unified" and (path / "cgroup.procs").exists()]


def _make_node_cgroups(node: Node) -> None:
    """Create the node's cgroupRoot in every hierarchy: the kubelet (cgroupfs driver) expects
    it to exist and refuses to start otherwise ("cgroup [...] has some missing paths")."""
    for hierarchy in _v1_hierarchies():
        path = hierarchy / node.name
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":
            # A new cpuset starts empty and admits no task until it has CPUs and memory nodes.
            for setting in ("cpuset.cpus", "cpuset.mems"):
                (path / setting).write_text((hierarchy / setting).read_text())


def _remove_node_cgroups(node: Node) -> None:
    """rmdir the node's cgroup tree bottom-up (only empty cgroups can go)."""
    for hierarchy in _v1_hierarchies():
        root = hierarchy / node.name
        if not root.exists():
            continue
        for path in sorted((p for p in root.rglob("*") if p.is_dir()),
                           key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def _start_node(node: Node, images: Sequence[str]) -> None:
    _make_node_cgroups(node)
    _start_node_services(node, images)


def _start_node_services(node: Node, images: Sequence[str]) -> None:
    for directory in (node.state_dir, node.run_dir, node.state_dir / "cni",
                      node.volumes_dir):
        directory.mkdir(parents=True, exist_ok=True)
    (node.state_dir / "resolv.conf").write_text("# no upstream resolver on this machine\n")
    config = _write_private(node.state_dir / "containerd.toml", configs.containerd_config(node))
    (node.state_dir / "cni" / "10-alphapulse.conflist").write_text(configs.cni_config(node))
    processes.start(f"{node.name}-containerd", ["containerd", "--config", str(config)],
                    netns=node.netns_path)
    _wait(f"{node.name}: containerd", lambda: (node.containerd_socket.exists(), "no socket"),
          START_TIMEOUT_S, [f"{node.name}-containerd"])
    import_images(node, [PAUSE_IMAGE, *images])
    kubelet_config = _write_private(node.state_dir / "kubelet.json",
                                    configs.kubelet_config(node))
    processes.start(f"{node.name}-kubelet", [
        str(TOOLS_BIN / "kubelet"), f"--config={kubelet_config}",
        f"--kubeconfig={_kubeconfig(node.name)}",
        f"--root-dir={node.state_dir / 'kubelet'}",
        f"--cert-dir={node.state_dir / 'kubelet-pki'}",
        f"--hostname-override={node.name}", f"--node-ip={node.address}",
        f"--node-labels=topology.kubernetes.io/zone=zone-{node.index}"],
        netns=node.netns_path)
    proxy_config = _write_private(
        node.state_dir / "kube-proxy.json",
        configs.kube_proxy_config(node, str(_kubeconfig("kube-proxy"))))
    processes.start(f"{node.name}-kube-proxy", [
        str(TOOLS_BIN / "kube-proxy"), f"--config={proxy_config}"], netns=node.netns_path)


NODE_SERVICES = ("kube-proxy", "kubelet", "containerd")


def lose_node(node: Node) -> None:
    """A node loss as the rest of the cluster sees it: its link cut, its kubelet, kube-proxy
    and containerd stopped. Its pods' processes keep running, cut off (their shims outlive
    containerd), as on a node that hangs or drops off the network."""
    network.cut_link(node)
    for part in NODE_SERVICES:
        processes.stop(f"{node.name}-{part}")


def restore_node(node: Node) -> None:
    """The lost node back: link up, containerd, kubelet and kube-proxy started again (its
    images are still in its containerd); returns once the API server sees it Ready."""
    network.restore_link(node)
    _start_node_services(node, ())
    _wait(f"{node.name} Ready again", _nodes_ready, NODE_READY_TIMEOUT_S,
          [f"{node.name}-{part}" for part in NODE_SERVICES])


def import_images(node: Node, refs: Sequence[str]) -> None:
    """Copy images from the root namespace's Docker engine into the node's containerd (there is
    no registry to pull from)."""
    if not refs:
        return
    save = subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    load = subprocess.run(["ctr", "--address", str(node.containerd_socket), "-n", "k8s.io",
                           "images", "import", "-"],
                          stdin=save.stdout, capture_output=True, text=True, check=False)
    assert save.stderr is not None
    save_error = save.stderr.read().decode(errors="replace")
    save.wait()
    if save.returncode != 0 or load.returncode != 0:
        raise LocalClusterError(f"{node.name}: importing {list(refs)} failed: "
                                f"{save_error.strip()} {load.stderr.strip()}")


def _nodes_ready() -> tuple[bool, str]:
    try:
        items = api().get("/api/v1/nodes").get("items", [])
    except (ApiError, OSError) as exc:
        return False, str(exc)
    ready = {item["metadata"]["name"]: any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in item.get("status", {}).get("conditions", [])) for item in items}
    return (len(ready) == len(NODES) and all(ready.values())), str(ready)


def _storage() -> None:
    """A StorageClass with no provisioner and, per node, VOLUMES_PER_NODE local
    PersistentVolumes bound to that node: a PVC binds where its pod is scheduled."""
    client = api()
    client.apply("/apis/storage.k8s.io/v1/storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Retain"})
    for node in NODES:
        for index in range(VOLUMES_PER_NODE):
            path = node.volumes_dir / f"pv{index}"
            path.mkdir(parents=True, exist_ok=True)
            client.apply("/api/v1/persistentvolumes", {
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": f"{node.name}-pv{index}",
                             "labels": {"alphapulse.io/local-node": node.name}},
                "spec": {
                    "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS, "local": {"path": str(path)},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In",
                         "values": [node.name]}]}]}}}})


def recycle_released_volumes() -> list[str]:
    """Wipe every Released local volume (its claim was deleted) and make it Available again,
    as sig-storage-local-static-provisioner does on a real cluster: without it each deleted
    PVC would use up one of the VOLUMES_PER_NODE volumes for good. -> the names recycled.
    Volumes still Bound (a `protectData` stack's PVCs) are never touched."""
    client = api()
    recycled = []
    for volume in client.get("/api/v1/persistentvolumes").get("items", []):
        if (volume["spec"].get("storageClassName") != STORAGE_CLASS
                or volume.get("status", {}).get("phase") != "Released"):
            continue
        path = Path(volume["spec"]["local"]["path"])
        if path.is_dir():
            for entry in path.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        client.request("PATCH", f"/api/v1/persistentvolumes/{volume['metadata']['name']}",
                       {"spec": {"claimRef": None}},
                       content_type="application/merge-patch+json")
        recycled.append(volume["metadata"]["name"])
    return recycled


def up(images: Sequence[str] = ()) -> Path:
    """Start the cluster (after removing whatever an earlier run left) and return the path of
    an admin kubeconfig. `images` are imported into every node's containerd."""
    if os.geteuid() != 0:
        raise LocalClusterError("the local cluster needs root (namespaces, mounts, iptables)")
    missing = missing_tools()
    if missing:
        raise LocalClusterError("missing: " + "; ".join(missing))
    down()
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    network.create()
    _start_control_plane()
    for node in NODES:
        _start_node(node, images)
    _wait("every node Ready", _nodes_ready, NODE_READY_TIMEOUT_S,
          [f"{n.name}-{part}" for n in NODES for part in ("containerd", "kubelet")])
    _storage()
    admin = _kubeconfig("admin")
    shutil.copyfile(admin, kubeconfig_path())
    os.chmod(kubeconfig_path(), 0o600)
    return kubeconfig_path()


def _kill_node_cgroups(node: Node) -> None:
    """SIGKILL every process the node's kubelet put into its cgroup tree (the pods' processes
    outlive containerd: their shims keep them)."""
    for hierarchy in _v1_hierarchies():
        root = hierarchy / node.name
        if not root.exists():
            continue
        # os.walk, not rglob: cgroups vanish while we walk (their processes die), and os.walk
        # skips a folder that is gone where rglob raises.
        for folder, _dirs, files in os.walk(root):
            if "cgroup.procs" not in files:
                continue
            # A cgroup removed between the walk and the read: ENOENT, or ENODEV from the
            # kernel's cgroupfs (seen in a test's teardown).
            with contextlib.suppress(OSError):
                pids = (Path(folder) / "cgroup.procs").read_text().split()
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), 9)


def _unmount_under(path: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(path))), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def down() -> None:
    """Stop every process of the cluster and remove its network and state."""
    for node in NODES:
        for part in NODE_SERVICES[:2]:
            processes.stop(f"{node.name}-{part}")
    for node in NODES:
        _kill_node_cgroups(node)
        processes.stop(f"{node.name}-containerd")
        _kill_node_cgroups(node)
        _remove_node_cgroups(node)
    for name in ("coredns", "kube-scheduler", "kube-controller-manager", "kube-apiserver",
                 "etcd"):
        processes.stop(name)
    for name in processes.known():
        processes.stop(name)
    for netns in Path("/run/netns").glob("cni-*") if Path("/run/netns").exists() else []:
        subprocess.run(["ip", "netns", "del", netns.name], capture_output=True, check=False)
    network.remove()
    for path in (RUN_ROOT, STATE_ROOT):
        _unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)


def status() -> dict[str, Any]:
    """Which processes run, and the nodes as the API server sees them."""
    report: dict[str, Any] = {"processes": {name: bool(processes.pid_of(name))
                                            for name in processes.known()}}
    ready, seen = _nodes_ready() if processes.pid_of("kube-apiserver") else (False, "down")
    report["nodes_ready"] = ready
    report["nodes"] = seen
    report["kubeconfig"] = str(kubeconfig_path()) if kubeconfig_path().exists() else None
    return report
