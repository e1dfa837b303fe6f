"""SecretFiles writes secret files into a real Docker volume and rewrites them in place."""

from __future__ import annotations

import subprocess

import pytest

from components.secret_files import SecretFilesProvider
from tests.e2e.conftest import docker

pytestmark = pytest.mark.e2e


def listing(volume: str, image: str) -> dict[str, tuple[str, str]]:
    """name -> (mode uid:gid, content), read by a separate container."""
    out = docker("run", "--rm", "--entrypoint", "sh", "-v", f"{volume}:/s:ro", image, "-c",
                 "for f in /s/*; do echo \"$(stat -c '%a %u:%g' $f) $f $(cat $f)\"; done").stdout
    result = {}
    for line in out.splitlines():
        mode, owner, path, content = line.split(" ", 3)
        result[path.rsplit("/", 1)[1]] = (f"{mode} {owner}", content)
    return result


def test_files_are_written_private_and_rewritten_in_place(local_images, unique_name):
    image, volume = local_images["redis"], f"{unique_name}-secrets"
    provider = SecretFilesProvider()
    props = {"volume": volume, "image": image, "owner": "999:999", "provider_version": "1",
             "files": {"password": "first-secret", "auth.conf": "requirepass first-secret"}}
    docker("volume", "create", volume)
    try:
        created = provider.create(props)
        assert created.outs["generation"] == 1
        assert listing(volume, image) == {
            "auth.conf": ("400 999:999", "requirepass first-secret"),
            "password": ("400 999:999", "first-secret"),
        }
        assert not provider.diff(created.id, created.outs, props).changes

        rotated = {**props, "files": {"password": "second-secret",
                                      "auth.conf": "requirepass second-secret"}}
        assert provider.diff(created.id, created.outs, rotated).changes
        updated = provider.update(created.id, created.outs, rotated)
        assert updated.outs["generation"] == 2
        assert listing(volume, image)["password"] == ("400 999:999", "second-secret")
        inspect = docker("volume", "inspect", volume).stdout
        assert "second-secret" not in inspect and "first-secret" not in inspect

        # A file dropped from the set must not linger in the volume with an old secret.
        dropped = {**rotated, "files": {"password": "third-secret"}}
        provider.update(created.id, updated.outs, dropped)
        assert listing(volume, image) == {"password": ("400 999:999", "third-secret")}
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, check=False)


def test_check_refuses_paths_and_empty_files():
    provider = SecretFilesProvider()
    base = {"volume": "v", "image": "i", "owner": "0:0", "provider_version": "1"}
    bad_name = provider.check({}, {**base, "files": {"../escape": "x"}})
    assert [f.property for f in bad_name.failures] == ["files"]
    empty = provider.check({}, {**base, "files": {}})
    assert [f.property for f in empty.failures] == ["files"]
    assert provider.check({}, {**base, "files": {"ok": "x"}}).failures == []
