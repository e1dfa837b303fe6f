"""Run an operator command against a Kubernetes stack: in a short-lived pod, where the nodes are.

A Kubernetes stack's nodes are reachable only inside the cluster, at their pods' DNS names (and a
cluster client follows MOVED redirects to each pod's own name, so a port-forward cannot stand in).
Given such a stack's outputs, ``python -m clusterops health|drill|fix|failback|rebalance|backup|
restore`` therefore starts a pod of the stack's tools image (``location.tools_image``: the
bootstrap Job's, which holds clusterops, redis-cli and redis-server) in the stack's namespace,
runs the same command in it with the nodes given by name and the password mounted from the
stack's Secret, streams its output back, returns its exit code, and deletes the pod whatever
happens (the drill's faults are injected from here, at its request:
clusterops/cli/pod_control.py). A backup is written in the pod and copied into ``--dest`` here;
a restore's ``--from`` folder is copied into the pod first. It talks to Kubernetes through
``kubectl`` (the current context, or $KUBECONFIG), as an operator does.

The pod passes the namespace's restricted Pod Security profile and carries the label the
NetworkPolicies admit clients by. It sleeps until deleted; the command runs in it with
``kubectl exec``, whose exit code is the command's.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from clusterops.core.errors import EXIT_USAGE, TargetsError

IN_POD_ENV = "CLUSTEROPS_IN_POD"  # set in the pod: there the command runs, never re-delegates
SECRET_DIR = "/etc/alphapulse/secret"
RUNNER_UID = 65532  # the tools image's user (k8s_bootstrap/Dockerfile)
READY_TIMEOUT_S = 120
WORK_DIR = "/tmp/clusterops"  # an emptyDir: backups written, restores read
# The drill's faults are injected from here, at the pod's request (clusterops/cli/pod_control.py).
SUPPORTED = ("health", "fix", "failback", "rebalance", "backup", "restore", "drill")
# Folder options: (option, where it lives in the pod, whether it is copied in or out).
FOLDERS = {"--dest": (f"{WORK_DIR}/out", "out"), "--from": (f"{WORK_DIR}/in", "in")}
DEFAULT_DEST = "backups"  # the backup command's own default for --dest
# Run in the pod (its working directory holds clusterops): the same two functions as here.
TAR_OUT = ("import sys; from clusterops.cli.in_pod import write_tar; "
           "write_tar(sys.argv[1], sys.stdout.buffer)")
TAR_IN = ("import sys; from clusterops.cli.in_pod import extract_tar; "
          "extract_tar(sys.stdin.buffer, sys.argv[1])")
# Options that name where the targets and the password come from: the pod gets its own.
SOURCE_OPTIONS = {"--stack-outputs": True, "--stack": True, "--password-file": True,
                  "--via-host-ports": False, "--node": True, "--user": True,
                  "--tls-ca-file": True}
# Keys of the stack's Secret (components/k8s_cluster.py) a tools pod mounts.
ADMIN_PASSWORD_KEY = "admin-password"
TLS_CA_KEY = "tls-ca.crt"


@dataclass(frozen=True)
class PodTarget:
    """What the outputs of a Kubernetes stack say about reaching its nodes from inside."""

    namespace: str
    image: str
    auth_secret: str
    client_label: str  # "key=value"
    node_flags: tuple[str, ...]  # NAME=DNS_NAME:PORT:ROLE
    maxmemory_bytes: int | None
    # With ACL users: the admin user, whose password the Secret holds as `admin-password`.
    admin_user: str | None = None
    tls: bool = False  # the nodes speak only TLS: the Secret's CA is mounted

    @property
    def password_key(self) -> str:
        """The Secret's key (and the file's name in the pod) of the password commands use."""
        return ADMIN_PASSWORD_KEY if self.admin_user else "password"

    @property
    def secret_keys(self) -> tuple[str, ...]:
        return (self.password_key, *((TLS_CA_KEY,) if self.tls else ()))


def pod_target(outputs: Mapping[str, Any], source: str) -> PodTarget | None:
    """The pod target of a Kubernetes stack's outputs; None for any other stack's."""
    location = outputs.get("location")
    if outputs.get("target") != "kubernetes" or not isinstance(location, Mapping):
        return None
    missing = [key for key in ("namespace", "tools_image", "auth_secret", "client_pod_label")
               if not location.get(key)]
    if missing:
        raise TargetsError(f"{source}: a Kubernetes stack's outputs without location."
                           f"{', location.'.join(missing)}: run `pulumi up` with this version "
                           "of the program, then export the outputs again")
    flags = tuple(f"{n['name']}={n['dns_name']}:{n['port']}:{n['role']}"
                  for n in outputs.get("nodes") or [])
    if not flags:
        raise TargetsError(f"{source}: the outputs list no nodes")
    return PodTarget(location["namespace"], location["tools_image"], location["auth_secret"],
                     location["client_pod_label"], flags, outputs.get("maxmemory_bytes"),
                     admin_user=outputs.get("admin_username") or None,
                     tls=bool(outputs.get("tls_ca_cert")))


@dataclass
class Transfers:
    """Folders copied into the pod before the command, and out of it afterwards."""

    upload: list[tuple[Path, str]] = field(default_factory=list)  # local folder -> pod folder
    download: list[tuple[str, Path]] = field(default_factory=list)  # pod folder -> local


def pod_argv(command: str, argv: Sequence[str], target: PodTarget,
             transfers: Transfers | None = None) -> list[str]:
    """The command line run in the pod: the user's options without the target and password
    sources, folders moved to the pod's work directory (recorded in ``transfers``), then the
    nodes by name and the mounted password file."""
    transfers = transfers if transfers is not None else Transfers()
    args = list(argv)
    if command == "backup" and not any(a.split("=")[0] == "--dest" for a in args):
        args += ["--dest", DEFAULT_DEST]
    kept: list[str] = []
    index = 0
    while index < len(args):
        name, has_value, value = args[index].partition("=")
        index += 1
        takes_value = SOURCE_OPTIONS.get(name, False) or name in FOLDERS
        if takes_value and not has_value and index < len(args):
            value = args[index]
            index += 1
        if name in FOLDERS:
            kept += [name, _in_pod(name, Path(value), transfers)]
        elif name not in SOURCE_OPTIONS:
            kept.append(args[index - 1])
    nodes = [flag for node in target.node_flags for flag in ("--node", node)]
    memory = ["--maxmemory", str(target.maxmemory_bytes)] \
        if target.maxmemory_bytes and not any(a.split("=")[0] == "--maxmemory" for a in kept) \
        else []
    user = ["--user", target.admin_user] if target.admin_user else []
    relay = ["--control-relay"] if command == "drill" else []
    tls = ["--tls-ca-file", f"{SECRET_DIR}/{TLS_CA_KEY}"] if target.tls else []
    return ["python", "-m", "clusterops", command, *kept, *nodes, *memory, *user, *tls, *relay,
            "--password-file", f"{SECRET_DIR}/{target.password_key}"]


def _in_pod(option: str, local: Path, transfers: Transfers) -> str:
    """Where ``option``'s folder is in the pod; the copy it needs is added to ``transfers``."""
    base, direction = FOLDERS[option]
    if direction == "out":
        transfers.download.append((base, local))
        return base
    if not local.is_dir():
        raise TargetsError(f"{option} {local}: not a folder here")
    inside = f"{base}/{local.resolve().name}"
    transfers.upload.append((local, inside))
    return inside


def pod_manifest(name: str, target: PodTarget) -> dict[str, Any]:
    """A pod that sleeps until deleted: restricted, no service account token, the password
    file from the stack's Secret, the label the NetworkPolicies admit clients by."""
    label_key, _, label_value = target.client_label.partition("=")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": target.namespace,
                     "labels": {label_key: label_value,
                                "app.kubernetes.io/component": "clusterops"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": True, "runAsUser": RUNNER_UID,
                                "runAsGroup": RUNNER_UID, "fsGroup": RUNNER_UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "clusterops",
                "image": target.image,
                "imagePullPolicy": "IfNotPresent",
                # Python, not `sleep`: the image is only known to hold Python and clusterops.
                "command": ["python", "-c", "import time; time.sleep(3600)"],
                "env": [{"name": IN_POD_ENV, "value": "1"}],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                              "limits": {"memory": "256Mi"}},
                "volumeMounts": [{"name": "auth", "mountPath": SECRET_DIR, "readOnly": True},
                                 {"name": "work", "mountPath": WORK_DIR}],
            }],
            "volumes": [
                {"name": "auth", "secret": {
                    "secretName": target.auth_secret, "defaultMode": 0o440,
                    "items": [{"key": k, "path": k} for k in target.secret_keys]}},
                # Backups and restores pass through here: as large as the data, so no limit.
                {"name": "work", "emptyDir": {}},
            ],
        },
    }


class Kubectl:
    """`kubectl` in one namespace; its own failures become a TargetsError naming the command."""

    def __init__(self, namespace: str, binary: str | None = None,
                 context: str | None = None) -> None:
        found = binary or os.environ.get("KUBECTL") or shutil.which("kubectl")
        if not found:
            raise TargetsError("this is a Kubernetes stack and `kubectl` is not on PATH: "
                               "install it (or set $KUBECTL) with a context for that cluster")
        self.binary, self.namespace = found, namespace
        # None: kubectl's current context (or $KUBECONFIG's), as an operator's shell has.
        self.prefix = [found, *(["--context", context] if context else []),
                       "--namespace", namespace]

    def run(self, *args: str, stdin: str | None = None) -> str:
        return self.run_bytes(*args, stdin=None if stdin is None else stdin.encode()).decode()

    def run_bytes(self, *args: str, stdin: bytes | None = None) -> bytes:
        done = subprocess.run([*self.prefix, *args], input=stdin, capture_output=True,
                              check=False)
        if done.returncode != 0:
            # The first words name the command; a long one (exec's script) is cut short.
            raise TargetsError(f"`kubectl {' '.join(args[:4])}` failed: "
                               f"{done.stderr.decode(errors='replace').strip()[-500:]}")
        return done.stdout

    def stream(self, *args: str) -> int:
        """Run with our stdout and stderr: the remote command's output as it comes."""
        return subprocess.run([*self.prefix, *args], check=False).returncode

    def exchange(self, *args: str, stdin: bytes) -> tuple[int, bytes]:
        """Run with ``stdin``; the exit code and stdout, stderr passed on as it comes."""
        done = subprocess.run([*self.prefix, *args], input=stdin, stdout=subprocess.PIPE,
                              check=False)
        return done.returncode, done.stdout


@contextmanager
def tools_pod(target: PodTarget, kubectl: Kubectl, purpose: str) -> Iterator[str]:
    """A ready pod of the tools image (its name), deleted on the way out whatever happens."""
    name = f"clusterops-{purpose}-{secrets.token_hex(3)}"
    kubectl.run("create", "-f", "-", stdin=json.dumps(pod_manifest(name, target)))
    try:
        kubectl.run("wait", "--for=condition=Ready", f"pod/{name}",
                    f"--timeout={READY_TIMEOUT_S}s")
        yield name
    finally:
        try:
            kubectl.run("delete", "pod", name, "--wait=false", "--ignore-not-found")
        except TargetsError as exc:
            print(f"could not delete pod {name}: {exc}", file=sys.stderr)


def run_in_pod(command: str, argv: Sequence[str], target: PodTarget,
               kubectl: Kubectl | None = None) -> int:
    """Start the pod, run the command in it, return its exit code; the pod is always deleted."""
    if command not in SUPPORTED:
        raise TargetsError(f"`{command}` cannot run against a Kubernetes stack; supported: "
                           f"{', '.join(SUPPORTED)}")
    kubectl = kubectl or Kubectl(target.namespace)
    if command == "drill":
        from clusterops.cli.pod_control import check_drill_mode

        check_drill_mode(argv)
    with tools_pod(target, kubectl, command) as name:
        print(f"running in pod {target.namespace}/{name}", file=sys.stderr)
        transfers = Transfers()
        pod_command = pod_argv(command, argv, target, transfers)
        for local, inside in transfers.upload:
            kubectl.run_bytes("exec", "-i", name, "--", "python", "-c", TAR_IN, inside,
                              stdin=tar_folder(local))
        code = _drill_in_pod(kubectl, name, pod_command, target) if command == "drill" \
            else kubectl.stream("exec", name, "--", *pod_command)
        for inside, local in transfers.download:
            untar_into(kubectl.run_bytes("exec", name, "--", "python", "-c", TAR_OUT, inside),
                       local)
            print(f"copied {target.namespace}/{name}:{inside} to {local}", file=sys.stderr)
        return code


def pod_of(node_flag: str) -> tuple[str, str]:
    """(node name, pod name) of a NAME=DNS_NAME:PORT:ROLE flag (the pod is the first label)."""
    name, _, address = node_flag.partition("=")
    return name, address.split(":", 1)[0].split(".", 1)[0]


def _drill_in_pod(kubectl: Kubectl, name: str, pod_command: Sequence[str],
                  target: PodTarget) -> int:
    """The drill runs in the pod; its fault requests are answered here, with kubectl."""
    from clusterops.cli.pod_control import PodSignalControl, serve

    control = PodSignalControl(kubectl, dict(pod_of(flag) for flag in target.node_flags))
    process = subprocess.Popen([*kubectl.prefix, "exec", "-i", name, "--", *pod_command],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               bufsize=1)
    return serve(process, control, sys.stdout)


def write_tar(folder: str | Path, out: IO[bytes]) -> None:
    """``folder``'s files as a tar stream on ``out`` (paths relative to it)."""
    with tarfile.open(fileobj=out, mode="w|") as archive:
        archive.add(str(folder), arcname=".")


def extract_tar(stream: IO[bytes], folder: str | Path) -> None:
    """A tar stream into ``folder``: regular files and folders only, nothing outside it.
    Checked here, not with extractall(filter=...): Debian's Python 3.11.2 (the local tools
    image) predates that parameter."""
    root = Path(folder).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            inside = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()) or not inside.is_relative_to(root):
                raise tarfile.TarError(f"refused {member.name!r}: not a plain file or folder "
                                       f"inside {root}")
            archive.extract(member, root, set_attrs=False)


def tar_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    write_tar(folder, buffer)
    return buffer.getvalue()


def untar_into(data: bytes, folder: Path) -> None:
    extract_tar(io.BytesIO(data), folder)


def delegated(command: str, argv: Sequence[str], outputs: Mapping[str, Any] | None,
              source: str) -> int | None:
    """The exit code of running the command in a pod when ``outputs`` are a Kubernetes
    stack's; None when the command runs here (any other stack, or already in the pod)."""
    if outputs is None or os.environ.get(IN_POD_ENV):
        return None
    target = pod_target(outputs, source)
    if target is None:
        return None
    try:
        return run_in_pod(command, argv, target)
    except TargetsError as exc:
        print(f"python -m clusterops {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
