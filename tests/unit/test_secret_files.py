"""SecretFiles' pure parts: the tar it streams, and its diff."""

import io
import tarfile

from pulumi.runtime import rpc

from components.docker_host import docker_cli_env
from components.secret_files import SecretFilesProvider, tar_of


def test_tar_holds_each_file_private_to_its_owner():
    data = tar_of({"password": "s3cret", "auth.conf": "requirepass s3cret\n"}, (999, 998))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert sorted(members) == ["auth.conf", "password"]
        for member in members.values():
            assert (member.mode, member.uid, member.gid) == (0o400, 999, 998)
        assert archive.extractfile(members["password"]).read() == b"s3cret"


def test_diff_ignores_the_pickle_and_reports_content_and_volume_changes():
    provider = SecretFilesProvider()
    olds = {"volume": "v", "image": "i", "owner": "999:999", "provider_version": "1",
            "files": {"password": "a"}, "generation": 3, "__provider": "old-pickle"}
    same = {**olds, "__provider": "new-pickle"}
    assert not provider.diff("id", olds, same).changes
    rotated = provider.diff("id", olds, {**same, "files": {"password": "b"}})
    assert rotated.changes and rotated.replaces == []
    moved = provider.diff("id", olds, {**same, "volume": "w"})
    assert moved.changes and moved.replaces == ["volume"]


def test_check_accepts_files_that_a_preview_does_not_know_yet():
    """First preview with a generated password: the whole `files` map is unknown."""
    provider = SecretFilesProvider()
    news = {"volume": rpc.UNKNOWN, "image": "i", "owner": "999:999", "files": rpc.UNKNOWN}
    assert provider.check({}, news).failures == []
    partly = {**news, "files": {"password": rpc.UNKNOWN, "auth.conf": "x"}}
    assert provider.check({}, partly).failures == []
    empty = provider.check({}, {**news, "files": {}})
    assert [f.property for f in empty.failures] == ["files"]


def test_check_refuses_file_names_that_are_not_plain():
    provider = SecretFilesProvider()
    for bad in ("../x", ".hidden", "a b", "x;rm"):
        result = provider.check({}, {"volume": "v", "image": "i", "files": {bad: "c"}})
        assert [f.property for f in result.failures] == ["files"], bad


def test_diff_with_unknowns_updates_and_replaces_only_for_a_new_volume():
    provider = SecretFilesProvider()
    olds = {"volume": "v", "image": "i", "owner": "1:1", "provider_version": "2",
            "files": {"password": "a"}}
    rotated = provider.diff("id", olds, {**olds, "files": rpc.UNKNOWN})
    assert rotated.changes and rotated.replaces == []
    moved = provider.diff("id", olds, {**olds, "volume": rpc.UNKNOWN})
    assert moved.changes and moved.replaces == ["volume"]


def test_docker_cli_is_pointed_at_the_stack_engine_only(monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "elsewhere")
    monkeypatch.setenv("DOCKER_HOST", "tcp://other:2376")
    env = docker_cli_env("ssh://deploy@redis-host")
    assert env["DOCKER_HOST"] == "ssh://deploy@redis-host"
    assert "DOCKER_CONTEXT" not in env


def test_config_files_are_plain_inputs_whose_change_is_an_in_place_update():
    provider = SecretFilesProvider()
    olds = {"volume": "v", "image": "i", "owner": "999:999", "provider_version": "1",
            "files": {"password": "a"}, "config_files": {"redis.conf": "maxmemory 512mb\n"}}
    changed = provider.diff("id", olds, {**olds, "config_files": {"redis.conf": "maxmemory 1gb\n"}})
    assert changed.changes and changed.replaces == []
    checked = provider.check({}, {**olds, "config_files": {"password": "x"}})
    assert [f.property for f in checked.failures] == ["config_files"]  # a name used twice
    assert "password" in checked.failures[0].reason


def test_new_provider_code_alone_is_no_change_and_an_update_keeps_the_generation(monkeypatch):
    """Only the provider's code changed (its version input): nothing to write, so the exporter
    that carries `generation` as a label is neither shown nor made a replacement. An update
    for another reason that leaves the content alone (a new image to write with) keeps it."""
    import components.secret_files as secret_files

    monkeypatch.setattr(secret_files, "write_files", lambda *args, **kwargs: None)
    provider = SecretFilesProvider()
    olds = {"volume": "v", "image": "i", "owner": "999:999", "provider_version": "1",
            "files": {"password": "a"}, "config_files": {}, "generation": 3}
    assert not provider.diff("id", olds, {**olds, "provider_version": "2"}).changes
    new_image = {**olds, "image": "j"}
    assert provider.diff("id", olds, new_image).changes
    assert provider.update("id", olds, new_image).outs["generation"] == 3
    rotated = {**olds, "files": {"password": "b"}}
    assert provider.update("id", olds, rotated).outs["generation"] == 4
