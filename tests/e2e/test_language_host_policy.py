"""Pulumi's own language host's RunPlugin, spoken to over gRPC as the v3.274 engine does for
`pulumi preview --policy-pack policy`: it must start the pack, stream the analyzer's port on
stdout, and stop the pack when the engine cancels the call."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2_grpc, language_pb2, language_pb2_grpc

from policy.prod_guard import PACK_NAME, POLICIES
from tests.support.grpc_plugins import language_host
from tests.support.pulumi_cli import PROJECT_ROOT
from tests.support.team_stacks import POLICY_DIR, ensure_policy_venv
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
START_DEADLINE_S = 60


@pytest.fixture(scope="module")
def host() -> Iterator[language_pb2_grpc.LanguageRuntimeStub]:
    ensure_policy_venv()
    with language_host() as stub:
        yield stub


def plugin_request(kind: str) -> language_pb2.RunPluginRequest:
    options = struct_pb2.Struct()
    options.update({"virtualenv": "venv"})
    info = language_pb2.ProgramInfo(root_directory=str(POLICY_DIR),
                                    program_directory=str(POLICY_DIR), entry_point=".",
                                    options=options)
    # As the engine sends it: its address last, the project directory as pwd.
    return language_pb2.RunPluginRequest(pwd=str(PROJECT_ROOT), args=["127.0.0.1:1"],
                                         info=info, kind=kind)


def test_run_plugin_serves_the_policy_pack_and_stops_it_on_cancel(host):
    stream = host.RunPlugin(plugin_request("analyzer"), timeout=START_DEADLINE_S)
    first_line = b""
    for message in stream:
        first_line += message.stdout
        if b"\n" in first_line:
            break
    port = int(first_line.split(b"\n", 1)[0])
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    analyzer = analyzer_pb2_grpc.AnalyzerStub(channel)
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == PACK_NAME
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in POLICIES)

    stream.cancel()  # what the engine does when it closes the plugin

    def stopped() -> tuple[bool, str]:
        try:
            analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=1)
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.UNAVAILABLE, exc.code().name
        return False, "still answering"

    wait_until("the policy pack to stop after the call was cancelled", stopped, 20, 0.1)
    channel.close()
