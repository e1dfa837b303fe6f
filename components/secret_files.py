"""SecretFiles: a dynamic resource that writes secret files into a Docker volume.

Why not pulumi-docker's container `uploads`: every upload is a container input, and changing
one replaces the container. A password rotation would then restart every Redis node at once.
Here the files live in a small per-container volume, mounted read-only; rotating rewrites
them in place, the node containers stay up, and the bootstrap provider switches the live
password with CONFIG SET. The files are there for the next (re)start and for the healthcheck.

The content travels as a tar stream on the stdin of a short-lived `docker run` of an image the
stack already uses: never in an argv, an environment variable or `docker inspect`.

Facts from pulumi/pulumi that shape it (see components/bootstrap.py for the same list): the
module imports cleanly, the provider class holds no state, `diff` ignores the pickled
`__provider`, outputs repeat every input so `delete` works from outputs alone.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime import rpc

PROVIDER_VERSION = "1"
INPUT_KEYS = ("volume", "image", "files", "owner", "provider_version")
MOUNT = "/secrets"
DOCKER_TIMEOUT_S = 120


class SecretFilesError(RuntimeError):
    """Writing the files failed; the message names the volume and never a file's content."""


def _files(props: Mapping[str, Any]) -> dict[str, str]:
    files = rpc.unwrap_rpc_secret(props.get("files")) or {}
    return {str(name): str(rpc.unwrap_rpc_secret(content)) for name, content in files.items()}


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


def write_files(volume: str, image: str, files: Mapping[str, str], owner: tuple[int, int]) -> None:
    """Replace the volume's files with `files`, atomically per file (tar extracts then renames)."""
    docker = shutil.which("docker")
    if docker is None:
        raise SecretFilesError("the docker CLI is not on PATH; it writes the secret files")
    # Extract beside, then move over: a node (re)starting meanwhile reads old or new, never half.
    script = (
        f"set -e; umask 077; mkdir -p {MOUNT}/.incoming; "
        f"tar -x -o -f - -C {MOUNT}/.incoming; "
        f"for f in {MOUNT}/.incoming/*; do chown {owner[0]}:{owner[1]} \"$f\"; "
        f"mv -f \"$f\" {MOUNT}/; done; rmdir {MOUNT}/.incoming"
    )
    result = subprocess.run(
        [docker, "run", "--rm", "-i", "--network", "none", "--user", "0:0",
         "--entrypoint", "sh", "-v", f"{volume}:{MOUNT}", image, "-c", script],
        input=tar_of(files, owner), capture_output=True, timeout=DOCKER_TIMEOUT_S, check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()[-400:]
        raise SecretFilesError(f"writing secret files into volume {volume} failed: {detail}")


def _outputs(props: Mapping[str, Any], generation: int) -> dict[str, Any]:
    return {
        "volume": props["volume"],
        "image": props["image"],
        "files": rpc.wrap_rpc_secret(_files(props)),
        "owner": props.get("owner") or "0:0",
        "provider_version": props.get("provider_version"),
        "file_names": sorted(_files(props)),
        # Bumped on every rewrite: a container that reads the files only at start (the
        # exporter) carries it as a label and is recreated when it changes.
        "generation": generation,
    }


def _comparable(props: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "volume": props.get("volume"),
        "image": props.get("image"),
        "files": _files(props),
        "owner": props.get("owner") or "0:0",
        "provider_version": props.get("provider_version"),
    }


class SecretFilesProvider(dynamic.ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        failures = []
        for key in ("volume", "image"):
            if not news.get(key):
                failures.append(dynamic.CheckFailure(key, f"{key} is required"))
        files = news.get("files")
        if not isinstance(rpc.unwrap_rpc_secret(files), Mapping) or not _files(news):
            failures.append(dynamic.CheckFailure("files", "at least one file is required"))
        elif any("/" in name or name.startswith(".") for name in _files(news)):
            failures.append(dynamic.CheckFailure("files", "file names are plain names"))
        inputs = dict(news)
        inputs["files"] = rpc.wrap_rpc_secret(rpc.unwrap_rpc_secret(files))
        return dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        old, new = _comparable(olds), _comparable(news)
        changed = [key for key in INPUT_KEYS if old[key] != new[key]]
        return dynamic.DiffResult(
            changes=bool(changed),
            replaces=["volume"] if "volume" in changed else [],
            delete_before_replace=False,
        )

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        write_files(props["volume"], props["image"], _files(props), _owner(props))
        return dynamic.CreateResult(f"secret-files-{props['volume']}", _outputs(props, 1))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        write_files(news["volume"], news["image"], _files(news), _owner(news))
        return dynamic.UpdateResult(_outputs(news, int(olds.get("generation") or 0) + 1))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to do: the files go with their volume, which its own resource deletes."""


class SecretFiles(dynamic.Resource, module="alphapulse", name="SecretFiles"):
    """Secret files in a Docker volume, rewritten in place when their content changes."""

    generation: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        volume: pulumi.Input[str],
        image: pulumi.Input[str],
        files: pulumi.Input[Mapping[str, pulumi.Input[str]]],
        owner: str = "0:0",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "volume": volume,
            "image": image,
            "files": pulumi.Output.secret(files),
            "owner": owner,
            "provider_version": PROVIDER_VERSION,
            "file_names": None,
            "generation": None,
        }
        super().__init__(SecretFilesProvider(), resource_name, props, opts)
