"""Version strings for dynamic providers, derived from the code they run.

Pulumi never re-runs a dynamic provider because its pickled code changed (pulumi/pulumi#12401):
only a changed input does. Each provider therefore carries a version input, and deriving it
from its source files means no edit can forget the bump.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def source_version(paths: Sequence[Path], root: Path = PROJECT_ROOT) -> str:
    """A digest of the files' paths (relative to ``root``) and bytes: changes with any edit."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
