"""The server's own tools a backup or restore runs (CLI, RDB checker, server), under either
engine's name, and what to do when one cannot read a newer RDB format.

Searched first in the directory ``$CLUSTEROPS_SERVER_BIN`` (an engine's ``bin``, e.g. a Valkey
8 or Redis 7.2 build), then on PATH; each kind under its Redis name, then its Valkey name
(Valkey's packages need not carry the redis-* links). Debian's redis-tools 7.0 read RDB
format 10 only: the snapshots of Redis 7.2 and Valkey 8 are format 11, which they refuse with
"Can't handle RDB format version 11"; :func:`newer_format_fix` turns that into the fix.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from clusterops.core.errors import UsageError

SERVER_BIN_ENV = "CLUSTEROPS_SERVER_BIN"
_NEWER_FORMAT = re.compile(r"Can't handle RDB format version (\d+)")


def find_tool(kind: str) -> str:
    """The path of the ``kind`` tool (``cli``, ``check-rdb``, ``server``)."""
    names = (f"redis-{kind}", f"valkey-{kind}")
    folder = os.environ.get(SERVER_BIN_ENV)
    if folder:
        for name in names:
            path = Path(folder) / name
            if os.access(path, os.X_OK):
                return str(path)
    for name in names:
        if found := shutil.which(name):
            return found
    raise UsageError(
        f"neither {' nor '.join(names)} is in ${SERVER_BIN_ENV} ({folder or 'unset'}) or on "
        f"PATH. Fix: install Debian's redis-tools and redis-server, or set {SERVER_BIN_ENV} "
        "to the bin directory of the cluster's engine")


def rdb_file_version(path: Path) -> int | None:
    """The RDB format of a snapshot, from its header (``REDIS0011`` -> 11)."""
    with path.open("rb") as handle:
        header = handle.read(9)
    digits = header[5:] if header.startswith(b"REDIS") else b""
    return int(digits) if digits.isdigit() else None


def newer_format_fix(output: str, tool: str) -> str | None:
    """When ``tool`` said it cannot read the file's RDB format: what to do (else None)."""
    found = _NEWER_FORMAT.search(output)
    if not found:
        return None
    return (f"{tool} cannot read RDB format {found.group(1)} (written by Redis 7.2+ or "
            f"Valkey); Debian's redis 7.0 tools read format 10 at most. Fix: set "
            f"{SERVER_BIN_ENV} to the bin directory of a Redis 7.2+ or Valkey build (e.g. "
            "scripts/build-engines.sh's), or run this where the cluster's own image is")
