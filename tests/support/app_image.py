"""A local Python image for examples/app-stack's application, built from Debian's packages.

There is no registry here (no python:3.11-slim to pull, no pip inside a build). Like
tests/support/images.py (whose recipe machinery this reuses), the image is one tar layer
streamed into `docker import`: Debian's python3.11 interpreter with the libraries it and its
extension modules load, its standard library, and redis-py from Debian's python3-redis (4.3.4)
with the packages it imports. The application's code is not in the image: the app stack
uploads it, so one image serves every revision.

API: `ensure_app_image() -> ref`.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from tests.support.images import (
    REPOSITORY_PREFIX,
    Entry,
    ImageBuildError,
    ImageRecipe,
    _base_entries,
    _build_lock,
    _complete,
    _labels,
    _library_entries,
    binary_version,
    ensure_image,
)

PYTHON = Path("/usr/bin/python3.11")
STDLIB = Path("/usr/lib/python3.11")
DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
# What `import redis.cluster` loads from dist-packages (python3-redis and its dependencies).
PACKAGES = ("redis", "packaging", "async_timeout")
SKIPPED_PARTS = {"__pycache__", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip"}


def _tree(source: Path, target: str, skipped: Collection[str] = SKIPPED_PARTS) -> list[Entry]:
    """Every regular file under `source` (symlinks followed when their target exists), except
    under directories named in `skipped`."""
    entries = []
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in skipped)
        for name in sorted(files):
            path = Path(root) / name
            if name.endswith(".pth") or not path.exists():
                continue  # .pth: the host's site hooks; dangling: the host's /etc links
            relative = path.relative_to(source).as_posix()
            entries.append(Entry(f"{target}/{relative}", "file", 0o644, source=path.resolve()))
    return entries


def app_recipe() -> ImageRecipe:
    missing = [str(p) for p in (PYTHON, STDLIB, *(DIST_PACKAGES / p for p in PACKAGES))
               if not p.exists()]
    if missing:
        raise ImageBuildError(f"{', '.join(missing)} not found: install the Debian packages "
                              "python3.11 and python3-redis (apt-get install python3-redis)")
    stdlib = _tree(STDLIB, str(STDLIB))
    extensions = [e.source for e in stdlib if e.source and e.source.suffix == ".so"]
    # Each package with its *.dist-info/*.egg-info: redis-py reads its version from there.
    trees = [DIST_PACKAGES / name for name in PACKAGES]
    trees += [info for name in PACKAGES for info in sorted(DIST_PACKAGES.glob(f"{name}-*-info"))]
    packages = [entry for tree in trees for entry in _tree(tree, f"{DIST_PACKAGES}/{tree.name}")]
    version = binary_version([str(PYTHON), "--version"], r"Python (\d+\.\d+\.\d+)")
    redis_version = binary_version(
        [str(PYTHON), "-c", "import redis; print('redis', redis.__version__)"],
        r"redis (\d+\.\d+\.\d+)")
    description = f"python {version} + redis-py {redis_version} from Debian's packages"
    users = [("root", 0, "/root", "/bin/sh"), ("app", 10001, "/app", "/sbin/nologin")]
    entries = [
        Entry("/usr/bin/python3.11", "file", 0o755, source=PYTHON),
        Entry("/usr/bin/python3", "symlink", 0o777, target="python3.11"),
        Entry("/app", "dir", 0o755, uid=10001, gid=10001),
        *stdlib,
        *packages,
        *_base_entries(users),
        *_library_entries([PYTHON, *[p for p in extensions if p is not None]]),
    ]
    return ImageRecipe(
        role="app",
        repository=f"{REPOSITORY_PREFIX}/python-redis",
        tag=f"{version}-redis{redis_version}",
        entries=_complete(entries),
        changes=(
            "ENV PATH=/usr/bin:/bin",
            "ENV PYTHONDONTWRITEBYTECODE=1",
            "USER app",
            "WORKDIR /app",
            # Like python:3.11-slim: no entrypoint, so a container's command runs as given.
            'CMD ["python3"]',
            *_labels("app", description),
        ),
        description=description,
    )


def ensure_app_image() -> str:
    with _build_lock():
        return ensure_image(app_recipe()).ref
