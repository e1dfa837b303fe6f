"""Operator commands against a Kubernetes stack run in a short-lived pod (clusterops.cli.in_pod):
the command line it runs, the pod it starts, and that the pod goes whatever happens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusterops.cli import in_pod
from clusterops.cli.in_pod import (
    IN_POD_ENV,
    SECRET_DIR,
    WORK_DIR,
    PodTarget,
    Transfers,
    delegated,
    pod_argv,
    pod_manifest,
    pod_target,
    run_in_pod,
    untar_into,
)
from clusterops.core.errors import TargetsError

OUTPUTS: dict[str, Any] = {
    "target": "kubernetes",
    "maxmemory_bytes": 536870912,
    "location": {"namespace": "redis", "tools_image": "example/bootstrap:1",
                 "auth_secret": "alphapulse-auth", "client_pod_label": "alphapulse/client=true"},
    "nodes": [
        {"name": "m1", "dns_name": "m1-0.h.redis.svc.cluster.local", "port": 6379,
         "role": "master"},
        {"name": "r1", "dns_name": "r1-0.h.redis.svc.cluster.local", "port": 6379,
         "role": "replica"},
    ],
}


def target() -> PodTarget:
    found = pod_target(OUTPUTS, "outputs.json")
    assert found is not None
    return found


def test_the_pod_runs_the_same_command_with_the_nodes_by_name_and_the_mounted_password() -> None:
    argv = pod_argv("fix", ["--stack-outputs", "k8s.json", "--apply", "--timeout", "30"],
                    target())
    assert argv == [
        "python", "-m", "clusterops", "fix", "--apply", "--timeout", "30",
        "--node", "m1=m1-0.h.redis.svc.cluster.local:6379:master",
        "--node", "r1=r1-0.h.redis.svc.cluster.local:6379:replica",
        "--maxmemory", "536870912", "--password-file", f"{SECRET_DIR}/password"]


def test_every_local_source_option_is_dropped_in_both_spellings() -> None:
    argv = pod_argv("health", ["--stack-outputs=k8s.json", "--password-file", "/home/me/pw",
                               "--via-host-ports", "--json", "--maxmemory", "1gb"], target())
    assert "k8s.json" not in " ".join(argv) and "/home/me/pw" not in argv
    assert "--via-host-ports" not in argv and "--json" in argv
    assert argv.count("--maxmemory") == 1 and "1gb" in argv  # the user's value wins


def test_the_pod_is_restricted_and_labelled_as_a_client() -> None:
    pod = pod_manifest("clusterops-health-abc123", target())
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == "redis"
    assert pod["metadata"]["labels"]["alphapulse/client"] == "true"
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["image"] == "example/bootstrap:1"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}
    assert {"name": IN_POD_ENV, "value": "1"} in container["env"]
    assert spec["volumes"][0]["secret"]["secretName"] == "alphapulse-auth"


class FakeKubectl:
    def __init__(self, exec_code: int = 0, fail_wait: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.exec_code, self.fail_wait = exec_code, fail_wait

    def run(self, *args: str, stdin: str | None = None) -> str:
        self.calls.append(args)
        if args[0] == "wait" and self.fail_wait:
            raise TargetsError("`kubectl wait` failed: timed out")
        return ""

    def stream(self, *args: str) -> int:
        self.calls.append(args)
        return self.exec_code

    def run_bytes(self, *args: str, stdin: bytes | None = None) -> bytes:
        """exec of TAR_IN stores what it is sent; exec of TAR_OUT sends it back."""
        self.calls.append(args)
        if "-i" in args:
            self.uploaded = stdin
            return b""
        return self.uploaded


def test_the_commands_exit_code_comes_back_and_the_pod_is_deleted() -> None:
    kubectl = FakeKubectl(exec_code=1)
    assert run_in_pod("health", ["--stack-outputs", "k8s.json"], target(), kubectl) == 1
    verbs = [call[0] for call in kubectl.calls]
    assert verbs == ["create", "wait", "exec", "delete"]
    name = kubectl.calls[1][2].removeprefix("pod/")
    assert kubectl.calls[3][:3] == ("delete", "pod", name)


def test_a_pod_that_never_gets_ready_is_deleted_too() -> None:
    kubectl = FakeKubectl(fail_wait=True)
    with pytest.raises(TargetsError, match="timed out"):
        run_in_pod("health", [], target(), kubectl)
    assert kubectl.calls[-1][:2] == ("delete", "pod")


def test_a_partition_drill_and_unknown_commands_are_refused_before_anything_starts() -> None:
    kubectl = FakeKubectl()
    with pytest.raises(TargetsError, match="partition is not supported on a Kubernetes stack"):
        run_in_pod("drill", ["--master", "all", "--mode", "partition"], target(), kubectl)
    with pytest.raises(TargetsError, match="`dance` cannot run against a Kubernetes stack"):
        run_in_pod("dance", [], target(), kubectl)
    assert kubectl.calls == []


def test_only_kubernetes_outputs_are_delegated_and_never_from_inside_the_pod(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    monkeypatch.setattr(in_pod, "run_in_pod", lambda command, *_: started.append(command) or 0)
    monkeypatch.delenv(IN_POD_ENV, raising=False)
    assert delegated("health", [], {"target": "docker", "location": {}}, "x") is None
    assert delegated("health", [], None, "") is None
    assert delegated("health", [], OUTPUTS, "x") == 0 and started == ["health"]
    monkeypatch.setenv(IN_POD_ENV, "1")
    assert delegated("health", [], OUTPUTS, "x") is None


def test_outputs_of_an_older_program_name_what_is_missing() -> None:
    older = {**OUTPUTS, "location": {k: v for k, v in OUTPUTS["location"].items()
                                     if k != "tools_image"}}
    with pytest.raises(TargetsError, match="location.tools_image"):
        pod_target(older, "old.json")


def test_a_backup_is_written_in_the_pod_and_copied_here(tmp_path: Path) -> None:
    transfers = Transfers()
    argv = pod_argv("backup", ["--stack-outputs", "k8s.json", "--dest", str(tmp_path / "b")],
                    target(), transfers)
    assert argv[argv.index("--dest") + 1] == f"{WORK_DIR}/out"
    assert transfers.download == [(f"{WORK_DIR}/out", tmp_path / "b")] and not transfers.upload
    default = Transfers()
    pod_argv("backup", [], target(), default)
    assert default.download == [(f"{WORK_DIR}/out", Path("backups"))]


def test_a_restores_folder_is_copied_into_the_pod_first(tmp_path: Path) -> None:
    folder = tmp_path / "20261206T000000Z"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    transfers = Transfers()
    argv = pod_argv("restore", [f"--from={folder}", "--merge"], target(), transfers)
    assert argv[argv.index("--from") + 1] == f"{WORK_DIR}/in/20261206T000000Z"
    assert transfers.upload == [(folder, f"{WORK_DIR}/in/20261206T000000Z")]
    with pytest.raises(TargetsError, match="not a folder here"):
        pod_argv("restore", ["--from", str(tmp_path / "missing")], target())


def test_folders_travel_both_ways_intact(tmp_path: Path) -> None:
    """What the command reads in the pod and what comes back are the same bytes (the fake
    kubectl hands the uploaded tar back as the download)."""
    source = tmp_path / "backup" / "20261206T000000Z"
    source.mkdir(parents=True)
    (source / "manifest.json").write_text('{"slots_covered": 16384}')
    (source / "m1.rdb").write_bytes(bytes(range(256)) * 40)
    kubectl = FakeKubectl()
    assert run_in_pod("restore", ["--from", str(source)], target(), kubectl) == 0
    back = tmp_path / "back"
    untar_into(kubectl.uploaded, back)
    assert (back / "m1.rdb").read_bytes() == (source / "m1.rdb").read_bytes()
    assert [c[0] for c in kubectl.calls] == ["create", "wait", "exec", "exec", "delete"]


def test_a_download_cannot_write_outside_its_folder(tmp_path: Path) -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.TarError):
        untar_into(buffer.getvalue(), tmp_path / "dest")
    assert not (tmp_path / "escaped").exists()
