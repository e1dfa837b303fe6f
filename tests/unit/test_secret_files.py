"""SecretFiles' pure parts: the tar it streams, and its diff."""

import io
import tarfile

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
