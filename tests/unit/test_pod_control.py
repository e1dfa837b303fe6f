"""The drill against a Kubernetes stack: the fault requests between the drill in the tools pod
and the command that started it, and the kubectl calls that inject each fault."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from clusterops.cli import in_pod
from clusterops.cli.pod_control import (
    PARTITION_REFUSED,
    REQUEST_PREFIX,
    PodSignalControl,
    RelayNodeControl,
    answer,
    check_drill_mode,
    serve,
)
from clusterops.core.errors import NodeControlError, TargetsError

PODS = {"master-1": "redis-shard-1-0", "replica-1": "redis-shard-1-1"}


class FakeKubectl:
    """Records each call; `get pod` answers with the redis container's (restarts, ready)."""

    def __init__(self, statuses: list[tuple[int, bool]] | None = None,
                 fail_exec: str | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.statuses = list(statuses or [(0, True)])
        self.fail_exec = fail_exec

    def run(self, *args: str, stdin: str | None = None) -> str:
        self.calls.append(args)
        if args[0] == "exec" and self.fail_exec:
            raise TargetsError(self.fail_exec)
        if args[:2] == ("get", "pod"):
            restarts, ready = self.statuses.pop(0) if len(self.statuses) > 1 \
                else self.statuses[0]
            return json.dumps({"status": {"containerStatuses": [
                {"name": "follow-peer-addresses", "restartCount": 9, "ready": True},
                {"name": "redis", "restartCount": restarts, "ready": ready}]}})
        return ""


def signals(kubectl: FakeKubectl) -> list[tuple[str, str]]:
    """(pod, signal) of every exec: into the sidecar, by the redis-server process's name."""
    sent = []
    for call in kubectl.calls:
        if call[0] == "exec":
            assert call[2:4] == ("-c", "follow-peer-addresses"), call
            script = call[-1]
            assert "redis-server" in script and "/proc/" in script
            sent.append((call[1], script.split("kill -", 1)[1].split()[0]))
    return sent


def test_stop_is_a_hang_until_the_drill_restores_it() -> None:
    kubectl = FakeKubectl()
    control = PodSignalControl(kubectl, PODS)  # type: ignore[arg-type]
    control.stop("master-1")
    control.start("master-1")
    assert signals(kubectl) == [("redis-shard-1-0", "STOP"), ("redis-shard-1-0", "CONT")]


def test_kill_then_start_waits_for_the_kubelets_restart() -> None:
    # Before the kill: 2 restarts. Then the old container, then the new one not ready yet.
    kubectl = FakeKubectl([(2, True), (2, False), (3, False), (3, True)])
    control = PodSignalControl(kubectl, PODS)  # type: ignore[arg-type]
    control.kill("replica-1")
    control.start("replica-1")
    assert signals(kubectl) == [("redis-shard-1-1", "KILL")]
    assert sum(1 for c in kubectl.calls if c[:2] == ("get", "pod")) == 4


def test_a_restart_that_never_comes_is_an_error_naming_the_node() -> None:
    control = PodSignalControl(FakeKubectl([(0, True)]), PODS,  # type: ignore[arg-type]
                               restart_timeout_s=0.2)
    control.kill("master-1")
    with pytest.raises(NodeControlError, match="master-1's redis container was not restarted"):
        control.start("master-1")


def test_partition_and_unknown_nodes_are_refused_with_why() -> None:
    control = PodSignalControl(FakeKubectl(), PODS)  # type: ignore[arg-type]
    with pytest.raises(NodeControlError, match="partition is not supported"):
        control.isolate("master-1")
    with pytest.raises(NodeControlError, match="unknown node 'master-9'"):
        control.stop("master-9")
    with pytest.raises(TargetsError, match="partition is not supported"):
        check_drill_mode(["--master", "all", "--mode", "partition"])
    with pytest.raises(TargetsError):
        check_drill_mode(["--mode=partition"])
    check_drill_mode(["--master", "all", "--mode", "stop"])


def test_a_failed_exec_answers_an_error_on_one_line() -> None:
    control = PodSignalControl(FakeKubectl(fail_exec="pod not found\nat all"),  # type: ignore
                               PODS)
    line = answer(control, "abc123 stop master-1")
    assert line.startswith("abc123 error SIGSTOP to master-1's redis-server")
    assert "\n" not in line
    assert answer(control, "abc123 dance master-1") == "abc123 error unknown action 'dance'"


def test_the_relay_asks_and_reads_the_answer_to_its_own_request(monkeypatch) -> None:
    monkeypatch.setattr("clusterops.cli.pod_control.secrets.token_hex", lambda _n: "t0k")
    out = io.StringIO()
    RelayNodeControl(out=out, answers=io.StringIO("t0k ok\n")).stop("master-1")
    assert out.getvalue() == f"{REQUEST_PREFIX}t0k stop master-1\n"
    with pytest.raises(NodeControlError, match="no partition here"):
        RelayNodeControl(out=io.StringIO(), answers=io.StringIO(
            "t0k error no partition here\n")).isolate("master-1")
    # An answer to another request is an error, never taken for an ok.
    with pytest.raises(NodeControlError, match="another request"):
        RelayNodeControl(out=io.StringIO(), answers=io.StringIO("x9 ok\n")).kill("master-1")
    with pytest.raises(NodeControlError, match="no answer"):
        RelayNodeControl(out=io.StringIO(), answers=io.StringIO("")).start("master-1")
    assert "kill" in RelayNodeControl.recovers_in_place


def test_serve_answers_requests_and_passes_everything_else_through() -> None:
    """A real child process plays the drill in the pod: it asks twice and reports."""
    child = (
        "import sys\n"
        f"p = {REQUEST_PREFIX!r}\n"
        "print('drilling master-1', flush=True)\n"
        "print(p + 't1 stop master-1', flush=True); a1 = sys.stdin.readline().strip()\n"
        "print(p + 't2 isolate master-1', flush=True); a2 = sys.stdin.readline().strip()\n"
        "print('answers: ' + a1 + ' | ' + a2, flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, bufsize=1)
    kubectl = FakeKubectl()
    out = io.StringIO()
    assert serve(process, PodSignalControl(kubectl, PODS), out) == 0  # type: ignore[arg-type]
    lines = out.getvalue().splitlines()
    assert lines[0] == "drilling master-1"
    assert lines[1] == f"answers: t1 ok | t2 error {PARTITION_REFUSED}"
    assert signals(kubectl) == [("redis-shard-1-0", "STOP")]


def test_the_drill_runs_in_the_pod_with_the_relay_and_its_pods_known() -> None:
    target = in_pod.PodTarget("ns", "tools:1", "auth", "client=true",
                              ("master-1=redis-shard-1-0.nodes.ns.svc.cluster.local:6379:master",),
                              None, admin_user="admin", tls=True)
    argv = in_pod.pod_argv("drill", ["--master", "all", "--mode", "stop", "--stack-outputs",
                                     "o.json"], target)
    assert "--control-relay" in argv and "o.json" not in argv
    assert argv[argv.index("--mode") + 1] == "stop"
    assert argv[argv.index("--user") + 1] == "admin"
    assert argv[argv.index("--password-file") + 1].endswith("/admin-password")
    assert argv[argv.index("--tls-ca-file") + 1].endswith("/tls-ca.crt")
    assert in_pod.pod_of(target.node_flags[0]) == ("master-1", "redis-shard-1-0")
