"""Pulumi's own Python language host (scripts/build-python-language-host.sh), spoken to over
gRPC as the engine does: what it tells the engine to load for this program."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc

from tests.support.grpc_plugins import language_host
from tests.support.pulumi_cli import PROJECT_ROOT, ensure_project_venv

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host() -> Iterator[language_pb2_grpc.LanguageRuntimeStub]:
    ensure_project_venv()
    with language_host() as stub:
        yield stub


def program_info(root: Path, virtualenv: str = "venv") -> language_pb2.ProgramInfo:
    options = struct_pb2.Struct()
    options.update({"toolchain": "pip", "virtualenv": virtualenv})
    return language_pb2.ProgramInfo(root_directory=str(root), program_directory=str(root),
                                    entry_point=".", options=options)


def pinned(package: str) -> str:
    for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


def test_the_program_requires_exactly_the_plugins_of_the_pinned_sdks(host):
    """The engine loads these plugins at exactly these versions before the program runs: each
    must be one scripts/install-pulumi.sh builds (kubernetes too, on Docker stacks)."""
    response = host.GetRequiredPackages(language_pb2.GetRequiredPackagesRequest(
        info=program_info(PROJECT_ROOT)))
    required = sorted((p.name, p.kind, p.version.removeprefix("v")) for p in response.packages)
    assert required == [
        ("docker", "resource", pinned("pulumi-docker")),
        ("kubernetes", "resource", pinned("pulumi-kubernetes")),
        ("random", "resource", pinned("pulumi-random")),
    ]
