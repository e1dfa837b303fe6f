"""The cluster's long-running processes: started detached, found again by pidfile, stopped.

`up` returns while etcd, the control plane and every node's containerd, kubelet and kube-proxy
keep running; `down` (or a later `up` after a killed run) finds them by their pidfiles.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from clusterops.core.poll import Deadline, poll
from local_kubernetes.layout import RUN_ROOT, STATE_ROOT

STOP_TIMEOUT_S = 20.0
PID_DIR = RUN_ROOT / "pids"
LOG_DIR = STATE_ROOT / "logs"


def log_path(name: str) -> Path:
    return LOG_DIR / f"{name}.log"


def _pid_file(name: str) -> Path:
    return PID_DIR / f"{name}.pid"


def pid_of(name: str) -> int | None:
    """The pid of process `name` if it is still running."""
    try:
        pid = int(_pid_file(name).read_text().strip())
        # A zombie (exited, not yet reaped by the process that started it) counts as gone.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return None if state in ("Z", "X") else pid


def start(name: str, argv: Sequence[str], netns: str | None = None,
          env: dict[str, str] | None = None) -> int:
    """Start `argv` in its own session (in network namespace `netns` when given), logging to
    LOG_DIR/name.log; a process of that name still running is left as it is."""
    running = pid_of(name)
    if running:
        return running
    PID_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    command = [*(["nsenter", f"--net={netns}"] if netns else []), *argv]
    with log_path(name).open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env=env)
    _pid_file(name).write_text(f"{process.pid}\n")
    return process.pid


def exited_early(name: str) -> str | None:
    """None while `name` runs; else the tail of its log."""
    if pid_of(name):
        return None
    path = log_path(name)
    tail = path.read_text(errors="replace").splitlines()[-20:] if path.exists() else []
    return f"{name} is not running; log tail:\n" + "\n".join(tail)


def stop(name: str) -> None:
    """SIGTERM the process group of `name`, SIGKILL it after STOP_TIMEOUT_S."""
    pid = pid_of(name)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        gone, _ = poll(lambda: (pid_of(name) is None, None), Deadline.after(STOP_TIMEOUT_S), 0.2)
        if not gone:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            poll(lambda: (pid_of(name) is None, None), Deadline.after(STOP_TIMEOUT_S), 0.2)
    _pid_file(name).unlink(missing_ok=True)


def known() -> list[str]:
    return sorted(path.stem for path in PID_DIR.glob("*.pid")) if PID_DIR.exists() else []
