"""SecretFiles: a dynamic resource that writes secret files into a Docker volume.

Why not pulumi-docker's container `uploads`: every upload is a container input, and changing
one replaces the container. A password rotation would then restart every Redis node at once.
Here the files live in a small per-container volume, mounted read-only; rotating rewrites
them in place, the node containers stay up, and the bootstrap provider switches the live
password with CONFIG SET. The files are there for the next (re)start and for the healthcheck.

Files that are not secret (a node's redis.conf) go beside them as ``config_files``: written the
same way, but a plain input, so `pulumi preview --diff` shows which lines change. Keeping
redis.conf here instead of in an upload is what lets a setting change without replacing the
container (the bootstrap provider applies it live with CONFIG SET).

The content travels as a tar stream on the stdin of a short-lived `docker run` of an image the
stack already uses: never in an argv, an environment variable or `docker inspect`.

The `docker` CLI is pointed at the same engine as the stack's pulumi-docker provider (the
`docker_host` input, from `docker:host` or DOCKER_HOST), never at whatever the ambient docker
context happens to be: otherwise the files and the containers could land on two engines.

Facts from pulumi/pulumi that shape it (see components/bootstrap.py for the same list): the
module imports cleanly, the provider class holds no state, `diff` ignores the pickled
`__provider`, outputs repeat every input so `delete` works from outputs alone. In a preview any
input may still be unknown (a generated password, a volume name not created yet): `check` and
`diff` must accept that and decide nothing from it.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime import rpc

from components.docker_host import DEFAULT_DOCKER_HOST, docker_cli_env
from components.preview_values import contains_unknown
from components.provider_version import module_version

# Derived from the code the provider runs, like the bootstrap's: a change to it makes existing
# stacks rewrite their files once with the new code (a changed pickle alone never would).
PROVIDER_VERSION = module_version(__name__)
INPUT_KEYS = ("volume", "image", "files", "config_files", "owner", "docker_host",
              "provider_version")
FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
MOUNT = "/secrets"
DOCKER_TIMEOUT_S = 120


class SecretFilesError(RuntimeError):
    """Writing the files failed; the message names the volume and never a file's content."""


def _files(props: Mapping[str, Any]) -> dict[str, str]:
    files = rpc.unwrap_rpc_secret(props.get("files")) or {}
    return {str(name): str(rpc.unwrap_rpc_secret(content)) for name, content in files.items()}


def _config_files(props: Mapping[str, Any]) -> dict[str, str]:
    return {str(name): str(content) for name, content in (props.get("config_files") or {}).items()}


def _all_files(props: Mapping[str, Any]) -> dict[str, str]:
    return {**_config_files(props), **_files(props)}


def _owner(props: Mapping[str, Any]) -> tuple[int, int]:
    uid, _, gid = str(props.get("owner") or "0:0").partition(":")
    return int(uid), int(gid or uid)


def tar_of(files: Mapping[str, str], owner: tuple[int, int]) -> bytes:
    """A tar of the files, readable by `owner` only (mode 0400)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in sorted(files.items()):
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o400
            info.uid, info.gid = owner
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_files(
    volume: str,
    image: str,
    files: Mapping[str, str],
    owner: tuple[int, int],
    docker_host: str = DEFAULT_DOCKER_HOST,
) -> None:
    """Make the volume hold exactly `files`: each written atomically (extracted beside, then
    renamed over), and any file no longer in the set removed, so a dropped secret does not
    linger."""
    docker = shutil.which("docker")
    if docker is None:
        raise SecretFilesError("the docker CLI is not on PATH; it writes the secret files")
    keep = "|".join(sorted(files))  # names are checked to be [A-Za-z0-9_.-]: safe in a pattern
    # Extract beside, then move over: a node (re)starting meanwhile reads old or new, never half.
    script = (
        f"set -e; umask 077; mkdir -p {MOUNT}/.incoming; "
        f"tar -x -o -f - -C {MOUNT}/.incoming; "
        f"for f in {MOUNT}/.incoming/*; do chown {owner[0]}:{owner[1]} \"$f\"; "
        f"mv -f \"$f\" {MOUNT}/; done; rmdir {MOUNT}/.incoming; "
        f"cd {MOUNT}; for f in *; do case \"$f\" in {keep}|'*') ;; *) rm -f \"$f\";; esac; done"
    )
    result = subprocess.run(
        [docker, "run", "--rm", "-i", "--network", "none", "--user", "0:0",
         "--entrypoint", "sh", "-v", f"{volume}:{MOUNT}", image, "-c", script],
        input=tar_of(files, owner), capture_output=True, timeout=DOCKER_TIMEOUT_S, check=False,
        env=docker_cli_env(docker_host),
    )
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()[-400:]
        raise SecretFilesError(f"writing secret files into volume {volume} failed: {detail}")


def _outputs(props: Mapping[str, Any], generation: int) -> dict[str, Any]:
    return {
        "volume": props["volume"],
        "image": props["image"],
        "files": rpc.wrap_rpc_secret(_files(props)),
        "config_files": _config_files(props),
        "owner": props.get("owner") or "0:0",
        "docker_host": _docker_host(props),
        "provider_version": props.get("provider_version"),
        "file_names": sorted(_all_files(props)),
        # Bumped on every rewrite that changes what the files hold: a container that reads
        # them only at start (the exporter) carries it as a label and is recreated with it.
        "generation": generation,
    }


# What a reader of the files sees; a new image or engine to write them with changes none of it.
CONTENT_KEYS = frozenset({"files", "config_files", "owner"})


def _docker_host(props: Mapping[str, Any]) -> str:
    return str(props.get("docker_host") or DEFAULT_DOCKER_HOST)


def _comparable(props: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "volume": props.get("volume"),
        "image": props.get("image"),
        "files": _files(props),
        "config_files": _config_files(props),
        "owner": props.get("owner") or "0:0",
        "docker_host": _docker_host(props),
        "provider_version": props.get("provider_version"),
    }


class SecretFilesProvider(dynamic.ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        failures = []
        for key in ("volume", "image"):
            if not news.get(key):
                failures.append(dynamic.CheckFailure(key, f"{key} is required"))
        files = news.get("files")
        if contains_unknown(files):
            pass  # a preview before the content exists (e.g. a generated password): judge later
        elif not isinstance(rpc.unwrap_rpc_secret(files), Mapping) or not _files(news):
            failures.append(dynamic.CheckFailure("files", "at least one file is required"))
        elif not all(FILE_NAME.fullmatch(name) for name in _files(news)):
            failures.append(dynamic.CheckFailure(
                "files", "file names are plain names of letters, digits, '_', '-' and '.', "
                "not starting with '.'"))
        config_files = news.get("config_files")
        if contains_unknown(config_files):
            pass
        elif config_files is not None and not isinstance(config_files, Mapping):
            failures.append(dynamic.CheckFailure("config_files", "must map file names to text"))
        elif not all(FILE_NAME.fullmatch(name) for name in _config_files(news)):
            failures.append(dynamic.CheckFailure(
                "config_files", "file names are plain names of letters, digits, '_', '-' and "
                "'.', not starting with '.'"))
        elif not contains_unknown(files) and set(_config_files(news)) & set(_files(news)):
            failures.append(dynamic.CheckFailure(
                "config_files", "a name is both a secret file and a config file: "
                f"{', '.join(sorted(set(_config_files(news)) & set(_files(news))))}"))
        inputs = dict(news)
        inputs["files"] = rpc.wrap_rpc_secret(rpc.unwrap_rpc_secret(files))
        return dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        unknown = [key for key in INPUT_KEYS if contains_unknown(news.get(key))]
        if unknown:
            # Only a changed volume can force a replacement; anything else unknown is an update.
            return dynamic.DiffResult(
                changes=True,
                replaces=["volume"] if "volume" in unknown else [],
                delete_before_replace=False,
            )
        old, new = _comparable(olds), _comparable(news)
        # New provider code alone (its version input) is no change: what it would do is write
        # the same bytes again. As an update it would make `generation` unknown in the preview
        # (the Python dynamic provider drops DiffResult.stables), and the exporter, which
        # carries it as a label, would be shown and made a replacement for nothing.
        changed = [key for key in INPUT_KEYS if key != "provider_version" and old[key] != new[key]]
        return dynamic.DiffResult(
            changes=bool(changed),
            replaces=["volume"] if "volume" in changed else [],
            delete_before_replace=False,
        )

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        write_files(props["volume"], props["image"], _all_files(props), _owner(props),
                    _docker_host(props))
        return dynamic.CreateResult(f"secret-files-{props['volume']}", _outputs(props, 1))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        write_files(news["volume"], news["image"], _all_files(news), _owner(news),
                    _docker_host(news))
        generation = int(olds.get("generation") or 0)
        same = all(_comparable(olds)[key] == _comparable(news)[key] for key in CONTENT_KEYS)
        return dynamic.UpdateResult(_outputs(news, generation if same else generation + 1))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to do: the files go with their volume, which its own resource deletes."""


class SecretFiles(dynamic.Resource, module="alphapulse", name="SecretFiles"):
    """Secret files (and plain config files beside them) in a Docker volume, rewritten in
    place when their content changes."""

    generation: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        volume: pulumi.Input[str],
        image: pulumi.Input[str],
        files: pulumi.Input[Mapping[str, pulumi.Input[str]]],
        owner: str = "0:0",
        docker_host: str = DEFAULT_DOCKER_HOST,
        config_files: pulumi.Input[Mapping[str, pulumi.Input[str]]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "volume": volume,
            "image": image,
            "files": pulumi.Output.secret(files),
            "config_files": config_files or {},
            "owner": owner,
            "docker_host": docker_host,
            "provider_version": PROVIDER_VERSION,
            "file_names": None,
            "generation": None,
        }
        super().__init__(SecretFilesProvider(), resource_name, props, opts)
