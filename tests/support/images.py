"""Local container images for the e2e tests, built from this machine's Debian binaries.

There is no registry here, so the images the stack would pull (redis, oliver006/redis_exporter,
prom/prometheus) are replaced by small local ones with the same paths, entrypoints and users, so
one container spec works with both. Each image is a single layer streamed as a tar into
`docker import` (no build context on disk, exact modes and owners from the tar headers):

  alphapulse-local/redis:<redis version>        /usr/local/bin/redis-server (+ redis-cli, the
      redis-check-aof/rdb and redis-sentinel links), docker-entrypoint.sh that drops to uid 999
      like the official one, /data (VOLUME, WORKDIR, owned by redis), /usr/local/etc/redis/.
  alphapulse-local/redis-exporter:<version>     /redis_exporter, USER 59000:59000, port 9121.
  alphapulse-local/prometheus:<version>         /bin/prometheus, /bin/promtool, /etc/prometheus,
      /prometheus (VOLUME, WORKDIR), USER nobody, port 9090.

Every image also carries the shared libraries its binaries load (found with ldd, including the
dynamic loader) and a static busybox with its applets in /bin (sh, grep, cat, ls, ps, sleep, ...)
so healthchecks and debugging work.

Caching: each image is labelled with a SHA-256 over its recipe (layout, modes, owners, image
config) and the content of every file it copies; when an image with that label exists, nothing is
built. Changing a Debian package, this module's layout or a context file changes the hash.

  alphapulse-local/redis:7.2.6, alphapulse-local/valkey:8.0.1  the engines of the matrix,
      from scripts/build-engines.sh's builds (engine_recipe), on demand.

API: `ensure_images() -> {"redis": ref, "exporter": ref, "prometheus": ref}`;
`ensure_engine_image("valkey-8.0") -> ref`.
CLI: `python -m tests.support.images` builds what is missing and prints the refs.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REPOSITORY_PREFIX = "alphapulse-local"
LABEL_INPUTS = "org.alphapulse.test-image.inputs-sha256"
LABEL_ROLE = "org.alphapulse.test-image.role"
# Bump when this module changes the image in a way the recipe's JSON does not capture.
RECIPE_VERSION = "1"
CONTEXT_DIR = Path(__file__).with_name("images")
LOCK_FILE = Path("/tmp/alphapulse-local-images.lock")
ROLES = ("redis", "exporter", "prometheus")

REDIS_UID = 999  # the official redis image's redis user
EXPORTER_UID = 59000  # the official oliver006/redis_exporter image's USER
NOBODY_UID = 65534  # prom/prometheus runs as nobody
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Host binaries and the Debian package that provides each (named in errors).
DEBIAN_PACKAGE_OF = {
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
    "redis-benchmark": "redis-tools",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "busybox": "busybox-static",
    "getent": "libc-bin",
}


class ImageBuildError(RuntimeError):
    """A local image could not be built; the message says what is missing or what failed."""


@dataclass(frozen=True)
class Entry:
    """One filesystem entry of an image: a file (from the host or inline), a dir or a symlink."""

    path: str  # absolute path inside the image
    kind: str  # "file" | "dir" | "symlink"
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    source: Path | None = None  # host file whose content is copied (kind "file")
    data: bytes | None = None  # inline content (kind "file")
    target: str | None = None  # link target (kind "symlink")

    def describe(self) -> dict[str, object]:
        """The entry as JSON-able data for the inputs hash (file content by its SHA-256)."""
        content = None
        if self.kind == "file":
            content = _sha256_file(self.source) if self.source else _sha256(self.data or b"")
        return {
            "path": self.path,
            "kind": self.kind,
            "mode": self.mode,
            "owner": [self.uid, self.gid],
            "target": self.target,
            "content_sha256": content,
        }


@dataclass(frozen=True)
class ImageRecipe:
    role: str
    repository: str
    tag: str
    entries: tuple[Entry, ...]
    changes: tuple[str, ...]  # Dockerfile instructions for `docker import --change`
    description: str = ""

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    @functools.cached_property
    def inputs_hash(self) -> str:
        """SHA-256 over the layout, the image config and the content of every file."""
        recipe = {
            "recipe_version": RECIPE_VERSION,
            "ref": self.ref,
            "changes": list(self.changes),
            "entries": [entry.describe() for entry in self.entries],
        }
        return _sha256(json.dumps(recipe, sort_keys=True).encode())


# --------------------------------------------------------------------------- host inspection


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def host_binary(name: str) -> Path:
    """The real file behind a command on PATH (symlinks resolved), or a clear error."""
    found = shutil.which(name)
    if not found:
        package = DEBIAN_PACKAGE_OF.get(name, "?")
        raise ImageBuildError(
            f"'{name}' not found on PATH: install the Debian package '{package}' "
            "(scripts/setup-test-env.sh does it)"
        )
    return Path(found).resolve()


def shared_libraries(binary: Path) -> list[str]:
    """Absolute paths (as the loader names them) of every library `binary` loads, loader included.

    Returns [] for a static binary. A library ldd cannot find is an error, not a silent gap.
    """
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    if "not a dynamic executable" in output or "statically linked" in output:
        return []
    if result.returncode != 0:
        raise ImageBuildError(f"ldd {binary} failed: {output.strip()}")
    libraries = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if "=> not found" in line:
            raise ImageBuildError(f"{binary} needs a library that is not installed: {line}")
        match = re.match(r"^(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)$", line)
        if match:
            libraries.append(match.group(1))
    return libraries


def binary_version(command: list[str], pattern: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(pattern, result.stdout + result.stderr)
    if not match:
        raise ImageBuildError(f"cannot read the version from `{' '.join(command)}`")
    return match.group(1)


# --------------------------------------------------------------------------- recipe building


def _passwd_entries(users: Iterable[tuple[str, int, str, str]]) -> list[Entry]:
    """/etc/passwd and /etc/group for (name, id, home, shell) users; each user has its own group."""
    passwd = "".join(f"{n}:x:{i}:{i}:{n}:{home}:{shell}\n" for n, i, home, shell in users)
    group = "".join(f"{n if n != 'nobody' else 'nogroup'}:x:{i}:\n" for n, i, _, _ in users)
    return [
        Entry("/etc/passwd", "file", 0o644, data=passwd.encode()),
        Entry("/etc/group", "file", 0o644, data=group.encode()),
    ]


def _base_entries(users: Iterable[tuple[str, int, str, str]]) -> list[Entry]:
    nsswitch = b"passwd: files\ngroup: files\nhosts: files dns\n"
    return [
        Entry("/tmp", "dir", 0o1777),
        Entry("/root", "dir", 0o700),
        Entry("/etc/nsswitch.conf", "file", 0o644, data=nsswitch),
        *_passwd_entries(users),
    ]


def _busybox_entries() -> list[Entry]:
    """Static busybox at /bin/busybox and a /bin symlink for each of its applets."""
    busybox = host_binary("busybox")
    if shared_libraries(busybox):
        raise ImageBuildError(f"{busybox} is not static: install the Debian package busybox-static")
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    entries = [Entry("/bin/busybox", "file", 0o755, source=busybox)]
    entries += [
        Entry(f"/bin/{applet}", "symlink", 0o777, target="busybox")
        for applet in sorted(set(applets))
        if applet != "busybox" and "/" not in applet
    ]
    return entries


def _library_entries(binaries: Iterable[Path]) -> list[Entry]:
    """Each library at the path the loader asks for, as a regular file (no host symlink chains)."""
    paths: dict[str, Path] = {}
    for binary in binaries:
        for library in shared_libraries(binary):
            paths.setdefault(library, Path(library).resolve())
    return [Entry(path, "file", 0o755, source=real) for path, real in sorted(paths.items())]


def _context_file(name: str) -> bytes:
    return (CONTEXT_DIR / name).read_bytes()


def _labels(role: str, description: str) -> list[str]:
    return [
        f"LABEL {LABEL_ROLE}={role}",
        f'LABEL org.opencontainers.image.description="{description}"',
    ]


def redis_recipe() -> ImageRecipe:
    server = host_binary("redis-server")
    cli = host_binary("redis-cli")
    # The official image is Debian with libc-bin: the Kubernetes target's nodes.conf refresh
    # (components/peer-addresses.sh) resolves peers' pod names with getent.
    getent = host_binary("getent")
    binaries = [server, cli, getent]
    entries = [
        Entry("/usr/bin/getent", "file", 0o755, source=getent),
        Entry("/usr/local/bin/redis-server", "file", 0o755, source=server),
        Entry("/usr/local/bin/redis-cli", "file", 0o755, source=cli),
        # Like the official image: one binary, its mode chosen by the name it is started as.
        *(
            Entry(f"/usr/local/bin/{name}", "symlink", 0o777, target="redis-server")
            for name in ("redis-check-aof", "redis-check-rdb", "redis-sentinel")
        ),
        Entry(
            "/usr/local/bin/docker-entrypoint.sh",
            "file",
            0o755,
            data=_context_file("docker-entrypoint.sh"),
        ),
        Entry("/usr/local/etc/redis", "dir", 0o755),
        Entry("/data", "dir", 0o755, uid=REDIS_UID, gid=REDIS_UID),
    ]
    benchmark = shutil.which("redis-benchmark")
    if benchmark:
        real = Path(benchmark).resolve()
        binaries.append(real)
        entries.append(Entry("/usr/local/bin/redis-benchmark", "file", 0o755, source=real))
    users = [
        ("root", 0, "/root", "/bin/sh"),
        ("redis", REDIS_UID, "/data", "/sbin/nologin"),
        ("nobody", NOBODY_UID, "/nonexistent", "/sbin/nologin"),
    ]
    # Resolved, the Debian binary is named redis-check-rdb and would start in that mode.
    version = binary_version(["redis-server", "--version"], r"v=(\d+\.\d+\.\d+)")
    description = f"redis {version} from Debian's redis-server package"
    return ImageRecipe(
        role="redis",
        repository=f"{REPOSITORY_PREFIX}/redis",
        tag=version,
        entries=_complete(
            entries + _base_entries(users) + _busybox_entries() + _library_entries(binaries)
        ),
        changes=(
            f"ENV {PATH_ENV}",
            "VOLUME /data",
            "WORKDIR /data",
            "EXPOSE 6379",
            'ENTRYPOINT ["docker-entrypoint.sh"]',
            'CMD ["redis-server"]',
            *_labels("redis", description),
        ),
        description=description,
    )


def exporter_recipe() -> ImageRecipe:
    exporter = host_binary("prometheus-redis-exporter")
    users = [("root", 0, "/root", "/bin/sh"), ("nobody", NOBODY_UID, "/nonexistent", "/bin/false")]
    version = binary_version([str(exporter), "--version"], r"Exporter v?(\d+\.\d+\.\d+)")
    description = f"redis_exporter {version} from Debian's prometheus-redis-exporter package"
    return ImageRecipe(
        role="exporter",
        repository=f"{REPOSITORY_PREFIX}/redis-exporter",
        tag=version,
        entries=_complete(
            [Entry("/redis_exporter", "file", 0o755, source=exporter)]
            + _base_entries(users)
            + _busybox_entries()
            + _library_entries([exporter])
        ),
        changes=(
            f"ENV {PATH_ENV}",
            f"USER {EXPORTER_UID}:{EXPORTER_UID}",
            "EXPOSE 9121",
            'ENTRYPOINT ["/redis_exporter"]',
            *_labels("exporter", description),
        ),
        description=description,
    )


def prometheus_recipe() -> ImageRecipe:
    prometheus = host_binary("prometheus")
    promtool = host_binary("promtool")
    users = [("root", 0, "/root", "/bin/sh"), ("nobody", NOBODY_UID, "/home", "/bin/false")]
    version = binary_version([str(prometheus), "--version"], r"version (\d+\.\d+\.\d+)")
    description = f"prometheus {version} from Debian's prometheus package"
    owned = {"uid": NOBODY_UID, "gid": NOBODY_UID}
    return ImageRecipe(
        role="prometheus",
        repository=f"{REPOSITORY_PREFIX}/prometheus",
        tag=version,
        entries=_complete(
            [
                Entry("/bin/prometheus", "file", 0o755, source=prometheus),
                Entry("/bin/promtool", "file", 0o755, source=promtool),
                Entry("/etc/prometheus", "dir", 0o755, **owned),
                Entry(
                    "/etc/prometheus/prometheus.yml",
                    "file",
                    0o644,
                    data=_context_file("prometheus.yml"),
                    **owned,
                ),
                Entry("/usr/share/prometheus/console_libraries", "dir", 0o755),
                Entry("/usr/share/prometheus/consoles", "dir", 0o755),
                Entry("/prometheus", "dir", 0o755, **owned),
            ]
            + _base_entries(users)
            + _busybox_entries()
            + _library_entries([prometheus, promtool])
        ),
        changes=(
            f"ENV {PATH_ENV}",
            "USER nobody",
            "EXPOSE 9090",
            "VOLUME /prometheus",
            "WORKDIR /prometheus",
            'ENTRYPOINT ["/bin/prometheus"]',
            'CMD ["--config.file=/etc/prometheus/prometheus.yml", '
            '"--storage.tsdb.path=/prometheus", '
            '"--web.console.libraries=/usr/share/prometheus/console_libraries", '
            '"--web.console.templates=/usr/share/prometheus/consoles"]',
            *_labels("prometheus", description),
        ),
        description=description,
    )


def engine_recipe(role: str, redis_links: bool = False) -> ImageRecipe:
    """An engine of the matrix built from the vendored sources (scripts/build-engines.sh):
    ``redis-7.2`` (Redis 7.2.6) or ``valkey-8.0`` (Valkey 8.0.1), laid out like its official
    image. The Valkey one has only the valkey-* names, user valkey (999): what the code needs
    from it is asked of the server, never assumed from redis-cli. ``redis_links``: also the
    redis-* names as links, as Valkey's own `make install` makes them (a Valkey image a
    `engine: redis` stack could start by mistake)."""
    from tests.support.engines import find_engine

    build = find_engine(role)
    if isinstance(build, str):
        raise ImageBuildError(build)
    server_name, cli_name = Path(build.server).name, Path(build.cli).name
    family = build.engine
    server, cli = Path(build.server).resolve(), Path(build.cli).resolve()
    getent = host_binary("getent")
    entries = [
        Entry("/usr/bin/getent", "file", 0o755, source=getent),
        Entry(f"/usr/local/bin/{server_name}", "file", 0o755, source=server),
        Entry(f"/usr/local/bin/{cli_name}", "file", 0o755, source=cli),
        *(Entry(f"/usr/local/bin/{family}-{mode}", "symlink", 0o777, target=server_name)
          for mode in ("check-aof", "check-rdb", "sentinel")),
        Entry("/usr/local/bin/docker-entrypoint.sh", "file", 0o755,
              data=_context_file("docker-entrypoint.sh")),
        Entry(f"/usr/local/etc/{family}", "dir", 0o755),
        Entry("/data", "dir", 0o755, uid=REDIS_UID, gid=REDIS_UID),
    ]
    if redis_links and family != "redis":
        entries += [Entry(f"/usr/local/bin/redis-{mode}", "symlink", 0o777,
                          target=f"{family}-{mode}") for mode in ("server", "cli")]
    users = [("root", 0, "/root", "/bin/sh"), (family, REDIS_UID, "/data", "/sbin/nologin"),
             ("nobody", NOBODY_UID, "/nonexistent", "/sbin/nologin")]
    version = ".".join(str(part) for part in build.version)
    description = f"{family} {version} built with TLS from the vendored sources"
    return ImageRecipe(
        role=role + ("-redis-links" if redis_links else ""),
        repository=f"{REPOSITORY_PREFIX}/{family}",
        tag=version + ("-redis-links" if redis_links else ""),
        entries=_complete(entries + _base_entries(users) + _busybox_entries()
                          + _library_entries([server, cli, getent])),
        changes=(
            f"ENV {PATH_ENV}",
            f"ENV SERVER={server_name}",
            f"ENV SERVER_USER={family}",
            "VOLUME /data",
            "WORKDIR /data",
            "EXPOSE 6379",
            'ENTRYPOINT ["docker-entrypoint.sh"]',
            f'CMD ["{server_name}"]',
            *_labels(role, description),
        ),
        description=description,
    )


RECIPES = {"redis": redis_recipe, "exporter": exporter_recipe, "prometheus": prometheus_recipe,
           "redis-7.2": lambda: engine_recipe("redis-7.2"),
           "valkey-8.0": lambda: engine_recipe("valkey-8.0"),
           "valkey-8.0-redis-links": lambda: engine_recipe("valkey-8.0", redis_links=True)}
# Built on demand (ensure_engine_image), not by ensure_images.
ENGINE_ROLES = ("redis-7.2", "valkey-8.0", "valkey-8.0-redis-links")


def _complete(entries: list[Entry]) -> tuple[Entry, ...]:
    """Add root-owned 0755 parent dirs that were not declared; sort so parents come first."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        if entry.path in by_path:
            raise ImageBuildError(f"two entries for {entry.path} in one image recipe")
        by_path[entry.path] = entry
    for path in list(by_path):
        for parent in PurePosixPath(path).parents:
            if str(parent) != "/" and str(parent) not in by_path:
                by_path[str(parent)] = Entry(str(parent), "dir", 0o755)
    return tuple(by_path[path] for path in sorted(by_path, key=lambda p: PurePosixPath(p).parts))


# --------------------------------------------------------------------------- docker side


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ImageBuildError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _image_label(ref: str, label: str) -> str | None:
    result = _docker(
        "image",
        "inspect",
        "--format",
        f'{{{{ index .Config.Labels "{label}" }}}}',
        ref,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def _image_id(ref: str) -> str | None:
    result = _docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _write_tar(entries: Iterable[Entry], stream: io.IOBase) -> None:
    # Fixed mtime: the same inputs give the same layer.
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path.lstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, 0
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.target or ""
                tar.addfile(info)
            elif entry.source is not None:
                info.size = entry.source.stat().st_size
                with entry.source.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                data = entry.data or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def build_image(recipe: ImageRecipe) -> str:
    """Stream the recipe's filesystem into `docker import`; returns the new image id."""
    changes = [*recipe.changes, f"LABEL {LABEL_INPUTS}={recipe.inputs_hash}"]
    argv = ["docker", "import", "--message", recipe.description]
    for change in changes:
        argv += ["--change", change]
    argv += ["-", recipe.ref]
    # docker import prints only at the end, so reading its pipes after the tar cannot deadlock.
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdin and process.stdout and process.stderr
        # A BrokenPipeError means docker import died; its stderr says why.
        with contextlib.suppress(BrokenPipeError), process.stdin:
            _write_tar(recipe.entries, process.stdin)
        stdout, stderr = process.stdout.read(), process.stderr.read()
        process.wait()
    if process.returncode != 0:
        raise ImageBuildError(
            f"docker import of {recipe.ref} failed: {stderr.decode(errors='replace').strip()}"
        )
    return stdout.decode().strip()


@dataclass(frozen=True)
class EnsureResult:
    role: str
    ref: str
    action: str  # "cached" | "retagged" | "built"
    seconds: float


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    # Several test runs may start at once (CI steps, helpers): one builder at a time.
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_image(recipe: ImageRecipe) -> EnsureResult:
    """Make `recipe.ref` an image built from exactly these inputs, building only when needed."""
    started = time.monotonic()
    wanted = recipe.inputs_hash
    if _image_label(recipe.ref, LABEL_INPUTS) == wanted:
        return EnsureResult(recipe.role, recipe.ref, "cached", time.monotonic() - started)
    previous = _image_id(recipe.ref)
    same_inputs = _docker(
        "images", "--quiet", "--no-trunc", "--filter", f"label={LABEL_INPUTS}={wanted}"
    ).stdout.split()
    if same_inputs:
        _docker("tag", same_inputs[0], recipe.ref)
        action = "retagged"
    else:
        build_image(recipe)
        action = "built"
    if previous and previous != _image_id(recipe.ref):
        # The replaced build is ours and now untagged; leave it if a container still uses it.
        _docker("image", "rm", previous, check=False)
    return EnsureResult(recipe.role, recipe.ref, action, time.monotonic() - started)


def ensure_images_report(roles: Iterable[str] = ROLES) -> list[EnsureResult]:
    if shutil.which("docker") is None:
        raise ImageBuildError("docker CLI not found: install the Debian package docker.io")
    with _build_lock():
        return [ensure_image(RECIPES[role]()) for role in roles]


def ensure_engine_image(role: str) -> str:
    """Build (or reuse) the local image of an engine of the matrix; returns its ref."""
    return ensure_images_report([role])[0].ref


def ensure_images() -> dict[str, str]:
    """Build (or reuse) the local images; returns {"redis"|"exporter"|"prometheus": image ref}."""
    return {result.role: result.ref for result in ensure_images_report()}


def main(argv: list[str] | None = None) -> int:
    roles = (argv if argv is not None else sys.argv[1:]) or list(ROLES)
    unknown = sorted(set(roles) - set(RECIPES))
    if unknown:
        print(f"unknown image role(s): {', '.join(unknown)}; known: {', '.join(RECIPES)}")
        return 2
    try:
        results = ensure_images_report(roles)
    except ImageBuildError as error:
        print(f"image build failed: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(f"{result.role:<11} {result.ref:<45} {result.action:<8} {result.seconds:6.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def docker_available(timeout_s: float = 15.0) -> str | None:
    """None when the docker CLI and engine answer; otherwise why not (for pytest.skip)."""
    if shutil.which("docker") is None:
        return "docker CLI not found on PATH (Debian package docker.io; scripts/setup-test-env.sh)"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer within {timeout_s:.0f} s"
    if result.returncode != 0 or not result.stdout.strip():
        first = (result.stderr.strip().splitlines() or ["no output"])[0]
        return f"docker engine not answering ({first}); start it: scripts/setup-test-env.sh"
    return None
