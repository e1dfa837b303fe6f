"""The engine matrix of the process tier: which server binaries a test can run.

- ``redis-7.0``: Debian's redis-server (7.0.15), the default image's version, from apt;
- ``redis-7.2``: Redis 7.2.6, and ``valkey-8.0``: Valkey 8.0.1, built with TLS from the vendored
  sources by scripts/build-engines.sh into the tools cache.

A test parametrized with :data:`ENGINE_LABELS` gets an :class:`EngineBuild` from the
``engine_build`` fixture; an engine that is not built skips with the command that builds it
(scripts/test.sh builds both, so the full suite never skips them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

TOOLS_DIR = Path(os.environ.get("PULUMI_TOOLS_DIR", Path.home() / ".cache/alphapulse-pulumi"))
ENGINES_DIR = TOOLS_DIR / "engines"


@dataclass(frozen=True)
class EngineBuild:
    label: str  # the test id: redis-7.0, redis-7.2, valkey-8.0
    engine: str  # the stack's `engine` value
    version: tuple[int, int, int]  # what INFO server must say
    server: str  # absolute path of the server binary
    cli: str  # absolute path of its CLI

    @property
    def bin_dir(self) -> Path:
        return Path(self.server).parent


# label -> (engine, version, server binary, where it comes from)
_MATRIX = {
    "redis-7.0": ("redis", (7, 0, 15), "redis-server", None),
    "redis-7.2": ("redis", (7, 2, 6), "redis-server", "redis-7.2.6"),
    "valkey-8.0": ("valkey", (8, 0, 1), "valkey-server", "valkey-8.0.1"),
}
ENGINE_LABELS = tuple(_MATRIX)


def find_engine(label: str) -> EngineBuild | str:
    """The build of ``label``, or why it is not here (a skip reason)."""
    engine, version, server_name, build = _MATRIX[label]
    cli_name = server_name.replace("-server", "-cli")
    if build is None:
        server, cli = shutil.which(server_name), shutil.which(cli_name)
        if server is None or cli is None:
            return f"{label}: Debian's redis-server/redis-tools are not installed"
        # Debian's binary is whatever apt installed: the matrix claims 7.0.x, so check it.
        said = subprocess.run([server, "--version"], capture_output=True, text=True).stdout
        if f"v={version[0]}.{version[1]}." not in said:
            return f"{label}: {server} is not Redis {version[0]}.{version[1]} ({said.strip()})"
    else:
        server = str(ENGINES_DIR / build / "bin" / server_name)
        cli = str(ENGINES_DIR / build / "bin" / cli_name)
        if not (os.access(server, os.X_OK) and os.access(cli, os.X_OK)):
            return f"{label}: not built (bash scripts/build-engines.sh builds it, cached)"
    return EngineBuild(label, engine, version, server, cli)


@pytest.fixture(params=ENGINE_LABELS)
def engine_build(request: pytest.FixtureRequest) -> EngineBuild:
    return require_engine(request.param)


def require_engine(label: str) -> EngineBuild:
    """The build of ``label``; a skip where it is not built, a failure in CI (scripts/test.sh
    builds every engine first)."""
    found = find_engine(label)
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the engine matrix: {found}")
        pytest.skip(found)
    return found
