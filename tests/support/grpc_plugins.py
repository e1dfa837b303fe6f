"""Talking to Pulumi plugins over gRPC the way the engine does, for tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import language_pb2_grpc

from tests.support.pulumi_cli import TOOLS_BIN

# Pulumi's own host, as scripts/build-python-language-host.sh installs it (beside its exec
# script, which it finds next to itself).
LANGUAGE_HOST = TOOLS_BIN / "pulumi-language-python"


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(values)
    return result


def from_struct(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a plugin process as the engine does, killing it if it will not go."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def language_host() -> Iterator[language_pb2_grpc.LanguageRuntimeStub]:
    """The installed language host, started as the engine starts it (engine address last, port
    on the first line of stdout). Nothing listens at that address: the host only dials it when
    a call needs the engine, and health-checks it first after five minutes."""
    if not LANGUAGE_HOST.exists():
        raise AssertionError(f"{LANGUAGE_HOST} is missing: run scripts/install-pulumi.sh")
    process = subprocess.Popen([str(LANGUAGE_HOST), "127.0.0.1:1"], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield language_pb2_grpc.LanguageRuntimeStub(channel)
        channel.close()
    finally:
        stop_process(process)
