"""Local images for the local Kubernetes cluster (local_kubernetes/), built without a registry.

Each is one tar layer streamed into `docker import` with tests/support/images.py's machinery (the
same Entry/ImageRecipe layout, inputs-hash label cache and build lock):

  registry.k8s.io/pause:3.10     the sandbox image every pod starts first (containerd's
      sandbox_image, local_kubernetes/layout.py PAUSE_IMAGE); the name is the official one so
      containerd never tries to pull it. A single static /pause compiled here, at build time, from
      Kubernetes' own build/pause/linux/pause.c (module k8s.io/kubernetes in the Go module cache)
      with upstream's flags; USER 65535:65535 and ENTRYPOINT ["/pause"] like the official image.
  alphapulse-local/redis-cluster-bootstrap:<12 hex of the inputs hash>
      the layout of k8s_bootstrap/Dockerfile (python:3.11-slim + redis==8.1.0 + redis-server and
      redis-cli + clusterops/ + k8s_bootstrap/*.py in /app, USER 65532:65532, ENTRYPOINT
      ["python", "-m", "k8s_bootstrap"]) from Debian's python3.11, its stdlib and libraries,
      Debian's redis binaries, and the redis-py wheel from PyPI. The tag
      is the content hash because pods use imagePullPolicy IfNotPresent: a fixed tag would keep
      running a stale copy of clusterops after a code change.

API: `ensure_k8s_images() -> {"pause": ref, "bootstrap": ref}`.
CLI: `python3 -m tests.support.k8s_images` builds what is missing and prints the refs as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tests.support.app_image import PYTHON, STDLIB, _tree
from tests.support.app_image import SKIPPED_PARTS as APP_SKIPPED_PARTS
from tests.support.images import (
    REPOSITORY_PREFIX,
    EnsureResult,
    Entry,
    ImageBuildError,
    ImageRecipe,
    _base_entries,
    _build_lock,
    _busybox_entries,
    _complete,
    _labels,
    _library_entries,
    _sha256_file,
    binary_version,
    ensure_image,
    host_binary,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# --- pause
# The name containerd is configured with (local_kubernetes/layout.py PAUSE_IMAGE); not imported
# from there so these images build without the cluster's code.
PAUSE_REF = "registry.k8s.io/pause:3.10"
PAUSE_SOURCE_MODULE = "k8s.io/kubernetes@v1.35.0"  # the cluster's Kubernetes release
PAUSE_SOURCE = "build/pause/linux/pause.c"
# build/pause/Makefile's CFLAGS (-DVERSION=v$(TAG)-$(REV); the module zip has no git rev) and its
# strip step. gcc's output is deterministic here, so the binary's hash is a stable cache input.
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static", "-DVERSION=v3.10")
PAUSE_UID = 65535

# --- bootstrap
BOOTSTRAP_REPOSITORY = f"{REPOSITORY_PREFIX}/redis-cluster-bootstrap"
BOOTSTRAP_UID = 65532  # k8s_bootstrap/Dockerfile's USER and the Job's runAsUser
# Where pip on Debian installs (in Debian python3.11's sys.path), like a `pip install` would.
SITE_PACKAGES = "/usr/local/lib/python3.11/dist-packages"
# requirements.txt pins redis==8.1.0; each wheel is checked against the file first fetched here,
# so every build uses the same bytes. async-timeout: redis-py's dependency on Python < 3.11.3
# (Debian bookworm ships 3.11.2; redis.asyncio imports it there).
WHEELS = {
    "redis": ("8.1.0", "a4fe1aac3d3b3cc791d4b3d5931c5a956045dc951ee74d1c913ee3ac4d2ee9fb"),
    "async-timeout": ("5.0.1", "39e3809566ff85354557ec2398b55e096c8364bacac9405a7a1fa429e77fe76c"),
}
WHEEL_CACHE = (
    Path(os.environ.get("PULUMI_TOOLS_DIR", Path.home() / ".cache" / "alphapulse-pulumi"))
    / "wheels"
)
# Beyond the app image's skips: build-only files (the 24 MB static libpython in config-*),
# documentation data and 2to3, none of which clusterops or redis-py import.
STDLIB_SKIPPED = {*APP_SKIPPED_PARTS, "config-3.11-x86_64-linux-gnu", "pydoc_data", "lib2to3"}
APP_DIR = "/app"


# --------------------------------------------------------------------------- pause


def _go() -> str:
    go = os.environ.get("GO") or shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        raise ImageBuildError("no Go toolchain: needed to find Kubernetes' pause.c in the "
                              "module cache (scripts/build-kubernetes.sh needs it too)")
    return go


def pause_source() -> Path:
    """build/pause/linux/pause.c of the pinned Kubernetes release (downloaded when missing)."""
    result = subprocess.run([_go(), "mod", "download", "-json", PAUSE_SOURCE_MODULE],
                            capture_output=True, text=True, check=False, cwd=tempfile.gettempdir())
    try:
        module_dir = Path(json.loads(result.stdout)["Dir"])
    except (ValueError, KeyError) as exc:
        raise ImageBuildError(f"go mod download {PAUSE_SOURCE_MODULE} failed: "
                              f"{(result.stderr or result.stdout).strip()}") from exc
    source = module_dir / PAUSE_SOURCE
    if not source.is_file():
        raise ImageBuildError(f"{source} not found in {PAUSE_SOURCE_MODULE}")
    return source


def compile_pause(source: Path) -> bytes:
    """The static, stripped pause binary, compiled in a temporary directory."""
    for tool, package in (("gcc", "gcc"), ("strip", "binutils")):
        if shutil.which(tool) is None:
            raise ImageBuildError(f"'{tool}' not found: install the Debian package '{package}' "
                                  "(and libc6-dev for the static libc)")
    with tempfile.TemporaryDirectory(prefix="pause-build-") as tmp:
        binary = Path(tmp) / "pause"
        for argv in (["gcc", *PAUSE_CFLAGS, "-o", str(binary), str(source)],
                     ["strip", str(binary)]):
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise ImageBuildError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
        return binary.read_bytes()


def pause_recipe() -> ImageRecipe:
    source = pause_source()
    description = f"pause from {PAUSE_SOURCE_MODULE} {PAUSE_SOURCE}, gcc {' '.join(PAUSE_CFLAGS)}"
    repository, tag = PAUSE_REF.rsplit(":", 1)
    return ImageRecipe(
        role="pause",
        repository=repository,
        tag=tag,
        # The binary is in the hash as an entry; the source through this label.
        entries=_complete([Entry("/pause", "file", 0o755, data=compile_pause(source))]),
        changes=(
            f"USER {PAUSE_UID}:{PAUSE_UID}",
            'ENTRYPOINT ["/pause"]',
            f"LABEL org.alphapulse.pause.source-sha256={_sha256_file(source)}",
            *_labels("pause", description),
        ),
        description=description,
    )


# --------------------------------------------------------------------------- bootstrap


def _wheel(project: str) -> Path:
    """The pinned wheel from the local cache, fetched with pip (no dependencies) when missing."""
    version, sha256 = WHEELS[project]
    name = f"{project.replace('-', '_')}-{version}-py3-none-any.whl"
    cached = WHEEL_CACHE / name
    if not cached.exists():
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=WHEEL_CACHE) as tmp:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "--disable-pip-version-check", "-d", tmp, f"{project}=={version}"],
                capture_output=True, text=True, check=False)
            fetched = Path(tmp) / name
            if result.returncode != 0 or not fetched.exists():
                raise ImageBuildError(f"pip download {project}=={version} failed: "
                                      f"{(result.stderr or result.stdout).strip()[-500:]}")
            fetched.replace(cached)  # same filesystem: other builders see all of it or nothing
    if _sha256_file(cached) != sha256:
        raise ImageBuildError(f"{cached} does not have the pinned SHA-256 {sha256}; remove it "
                              "to fetch it again")
    return cached


def _wheel_entries(wheel: Path) -> list[Entry]:
    """The wheel unpacked into the site directory (a pure-Python wheel is just its files)."""
    with zipfile.ZipFile(wheel) as archive:
        return [Entry(f"{SITE_PACKAGES}/{member.filename}", "file", 0o644,
                      data=archive.read(member))
                for member in archive.infolist() if not member.is_dir()]


def _app_entries() -> list[Entry]:
    """clusterops/ (whole, as COPY clusterops/ does) and k8s_bootstrap/*.py, root-owned."""
    bootstrap = sorted((REPO_ROOT / "k8s_bootstrap").glob("*.py"))
    return [
        *_tree(REPO_ROOT / "clusterops", f"{APP_DIR}/clusterops", skipped={"__pycache__"}),
        *(Entry(f"{APP_DIR}/k8s_bootstrap/{path.name}", "file", 0o644, source=path)
          for path in bootstrap),
    ]


def bootstrap_recipe() -> ImageRecipe:
    if not (PYTHON.exists() and STDLIB.is_dir()):
        raise ImageBuildError(f"{PYTHON} not found: install the Debian package python3.11")
    version = binary_version([str(PYTHON), "--version"], r"Python (\d+\.\d+\.\d+)")
    projects = ["redis"]
    if tuple(int(part) for part in version.split(".")) < (3, 11, 3):
        projects.append("async-timeout")
    stdlib = _tree(STDLIB, str(STDLIB), skipped=STDLIB_SKIPPED)
    extensions = [e.source for e in stdlib if e.source and e.source.suffix == ".so"]
    users = [("root", 0, "/root", "/bin/sh"), ("nonroot", BOOTSTRAP_UID, APP_DIR, "/sbin/nologin")]
    # What k8s_bootstrap/Dockerfile copies from the official image, here Debian's: backup and
    # restore against a Kubernetes stack run in pods of this image (clusterops/cli/in_pod.py).
    server, cli = host_binary("redis-server"), host_binary("redis-cli")
    entries = [
        Entry("/usr/local/bin/redis-server", "file", 0o755, source=server),
        Entry("/usr/local/bin/redis-cli", "file", 0o755, source=cli),
        Entry("/usr/local/bin/redis-check-rdb", "symlink", 0o777, target="redis-server"),
        Entry("/usr/bin/python3.11", "file", 0o755, source=PYTHON),
        *(Entry(f"/usr/bin/{name}", "symlink", 0o777, target="python3.11")
          for name in ("python3", "python")),
        *stdlib,
        *(entry for project in projects for entry in _wheel_entries(_wheel(project))),
        *_app_entries(),
        *_base_entries(users),
        # A shell for `kubectl exec` and debugging, as python:3.11-slim has one.
        *_busybox_entries(),
        *_library_entries([PYTHON, *extensions, server, cli]),
    ]
    pinned = ", ".join(f"{p}=={WHEELS[p][0]}" for p in projects)
    description = f"k8s_bootstrap + clusterops on Debian's python {version} + {pinned}"
    recipe = ImageRecipe(
        role="bootstrap",
        repository=BOOTSTRAP_REPOSITORY,
        tag="content",  # replaced below by the hash of everything else
        entries=_complete(entries),
        changes=(
            "ENV PATH=/usr/local/bin:/usr/bin:/bin",
            "ENV LANG=C.UTF-8",
            # The image's files are root-owned and the Job runs as 65532: nothing to cache into.
            "ENV PYTHONDONTWRITEBYTECODE=1",
            f"WORKDIR {APP_DIR}",
            f"USER {BOOTSTRAP_UID}:{BOOTSTRAP_UID}",
            'ENTRYPOINT ["python", "-m", "k8s_bootstrap"]',
            *_labels("bootstrap", description),
        ),
        description=description,
    )
    return dataclasses.replace(recipe, tag=recipe.inputs_hash[:12])


# --------------------------------------------------------------------------- ensure


def ensure_k8s_images_report() -> list[EnsureResult]:
    if shutil.which("docker") is None:
        raise ImageBuildError("docker CLI not found: install the Debian package docker.io")
    with _build_lock():
        return [ensure_image(pause_recipe()), ensure_image(bootstrap_recipe())]


def ensure_k8s_images() -> dict[str, str]:
    """Build (or reuse) the cluster's local images; returns {"pause"|"bootstrap": image ref}."""
    return {result.role: result.ref for result in ensure_k8s_images_report()}


def main() -> int:
    try:
        results = ensure_k8s_images_report()
    except ImageBuildError as error:
        print(f"image build failed: {error}", file=sys.stderr)
        return 1
    for result in results:  # what happened on stderr; stdout stays machine-readable
        print(f"{result.role:<10} {result.ref:<58} {result.action:<8} {result.seconds:6.2f}s",
              file=sys.stderr)
    print(json.dumps({result.role: result.ref for result in results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
