"""Record what every child process of one program receives: argv and the whole environment.

`recording_wrapper(directory, "docker")` writes an executable `docker` into `directory/bin` that
saves its own /proc/self/environ and argv under `directory/calls`, then execs the real docker.
Put `directory/bin` first on PATH of the process under test: every `docker` it starts, and every
one its own children start, leaves a record. The wrapper reads nothing from its environment (a
variable naming the log directory would be exactly what a fix strips), so the paths are written
into it.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChildCall:
    argv: list[str]
    environ: dict[str, str]

    def __str__(self) -> str:
        return f"{shlex.join(self.argv)} (environment: {sorted(self.environ)})"


def recording_wrapper(directory: Path, program: str) -> Path:
    """Install the wrapper for `program`; returns the directory to put first on PATH."""
    real = shutil.which(program)
    if real is None:
        raise AssertionError(f"{program} is not on PATH: nothing to wrap")
    bin_dir, calls = directory / "bin", directory / "calls"
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / program
    wrapper.write_text(
        "#!/bin/sh\n"
        f"record={shlex.quote(str(calls))}/$$-$(date +%s%N)\n"
        "cat /proc/$$/environ >\"$record.environ\"\n"
        "printf '%s\\0' \"$0\" \"$@\" >\"$record.argv\"\n"
        f"exec {shlex.quote(real)} \"$@\"\n")
    wrapper.chmod(0o755)
    return bin_dir


def recorded_calls(directory: Path) -> list[ChildCall]:
    calls = []
    for argv_file in sorted((directory / "calls").glob("*.argv")):
        environ_file = argv_file.with_suffix(".environ")
        pairs = [entry.split("=", 1) for entry in
                 environ_file.read_bytes().decode(errors="replace").split("\0") if "=" in entry]
        argv = argv_file.read_bytes().decode(errors="replace").split("\0")[:-1]
        calls.append(ChildCall(argv, dict(pairs)))
    return calls
