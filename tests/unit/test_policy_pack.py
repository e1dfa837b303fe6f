"""The policy pack's rules: each with a passing and a violating case.

Two ways in: (1) the real program under Pulumi's mocks for a prod-like stack, its resources fed
as AnalyzeRequests (wire form, secrets still marked) to pulumi_policy's own Analyze servicer,
as the engine does; (2) a rule's `validate` called with constructed arguments, for cases the
program cannot produce (a plain-text password). tests/e2e/test_policy_pack.py runs the pack on
the real engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
)
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import unknown_checking_proxy

from policy.prod_guard import (
    BOOTSTRAP,
    CONTAINER,
    PACK_NAME,
    POLICIES,
    REMOTE_IMAGE,
    SECRET_FILES,
    SecretText,
    image_is_pinned,
    is_prod_stack,
    stack_of,
)
from tests.support.program_runner import ProgramRun, run_program, stack_config_file

PASSWORD = "prod-secret-password-0123456789"
RULES = {policy.name: policy for policy in POLICIES}


def servicer() -> _PolicyAnalyzerServicer:
    return _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", POLICIES, EnforcementLevel.MANDATORY,
                                   None, None, None, None, None, None, None)


def violations(run: ProgramRun) -> list[tuple[str, str]]:
    """(policy, resource name) of every diagnostic the pack reports for the program's
    resources, each sent as the engine sends it."""
    analyzer = servicer()
    found = []
    for resource in run.resources:
        properties = struct_pb2.Struct()
        properties.update(resource.raw_inputs)
        request = analyzer_pb2.AnalyzeRequest(
            type=resource.type, urn=resource.urn, name=resource.name, properties=properties,
            options=analyzer_pb2.AnalyzerResourceOptions(protect=resource.protect),
        )
        response = analyzer.Analyze(request, None)
        for diagnostic in response.diagnostics:
            assert diagnostic.enforcementLevel == analyzer_pb2.MANDATORY, diagnostic
            found.append((diagnostic.policyName, resource.name))
    return sorted(found)


def prod_run(stack: str = "prod", **overrides: str) -> ProgramRun:
    config = {**stack_config_file("prod"), "password": PASSWORD, **overrides}
    if overrides.get("passwordPolicy") == "generate":
        del config["password"]
    return run_program(stack, config)


def policies_hit(run: ProgramRun) -> set[str]:
    return {policy for policy, _ in violations(run)}


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return prod_run()


def test_the_repository_prod_config_passes_every_rule(prod: ProgramRun):
    assert violations(prod) == []


def test_rules_do_not_apply_to_dev_stacks():
    # Dev violates most rules on purpose (generated password, unprotected data).
    dev = run_program("dev", stack_config_file("dev"))
    assert violations(dev) == []


@pytest.mark.parametrize("stack", ["prod-eu", "team-prod"])
def test_prod_like_stack_names_are_guarded(stack: str):
    assert is_prod_stack(stack)
    assert ("data-volumes-protected", "redis-cluster-master-1-data") in violations(
        prod_run(stack, protectData="false"))


def test_unprotected_data_volumes_violate(prod: ProgramRun):
    found = violations(prod_run(protectData="false"))
    assert {p for p, _ in found} == {"data-volumes-protected"}
    # The six node data volumes, not the secrets volumes (they hold nothing the config lacks).
    assert len(found) == 6 and all(name.endswith("-data") for _, name in found)


def test_a_generated_password_violates():
    found = violations(prod_run(passwordPolicy="generate"))
    assert found == [("password-secret-not-generated", "redis-password")]


def test_no_replicas_violates():
    assert policies_hit(prod_run(replicasPerMaster="0")) == {"replica-per-master"}


@pytest.mark.parametrize("timeout_ms", ["300", "5000"])
def test_node_timeout_outside_bounds_violates(timeout_ms: str):
    found = violations(prod_run(nodeTimeoutMs=timeout_ms))
    assert {p for p, _ in found} == {"node-timeout-bounds"} and len(found) == 6


def test_all_interfaces_is_refused_for_every_port_without_auth():
    found = violations(prod_run(bindAddress="0.0.0.0"))
    # The exporter's HTTP endpoint has no authentication, nor has each node's cluster bus.
    assert {p for p, _ in found} == {"no-open-publish-without-auth"}
    assert len(found) == 7 and ("no-open-publish-without-auth",
                                "redis-cluster-redis-exporter") in found


def test_a_node_client_port_with_auth_may_be_public_but_its_bus_may_not():
    conf = "port 6379\ninclude /run/secrets/redis/auth.conf\n"
    props = {"uploads": [{"file": "/usr/local/etc/redis/redis.conf", "content": conf}],
             "ports": [{"internal": 6379, "external": 7001, "ip": "0.0.0.0"},
                       {"internal": 16379, "external": 17001, "ip": "127.0.0.1"}]}
    assert reported("no-open-publish-without-auth", args(CONTAINER, props)) == []
    props["ports"][1]["ip"] = "0.0.0.0"
    found = reported("no-open-publish-without-auth", args(CONTAINER, props))
    assert len(found) == 1 and "port(s) 17001 on all interfaces" in found[0]


def test_an_unpinned_image_violates():
    found = violations(prod_run(redisImage="redis:latest", pullImages="true"))
    assert {p for p, _ in found} == {"images-pinned"}
    assert ("images-pinned", "redis-cluster-redis-image") in found


# -- rules called directly ---------------------------------------------------------------------
def args(type_: str, props: dict[str, Any], stack: str = "prod",
         protect: bool = False) -> ResourceValidationArgs:
    urn = f"urn:pulumi:{stack}::alphapulse-redis-cluster::{type_}::r"
    opts = PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
    return ResourceValidationArgs(type_, props, urn, "r", opts, None)


def reported(rule: str, call_args: ResourceValidationArgs) -> list[str]:
    messages: list[str] = []
    report: Callable[..., None] = lambda message, urn=None: messages.append(message)  # noqa: E731
    RULES[rule].validate(call_args, report)
    return messages


def test_a_plain_text_password_violates_and_a_secret_passes():
    plain = reported("password-secret-not-generated", args(BOOTSTRAP, {"password": PASSWORD}))
    secret = reported("password-secret-not-generated",
                      args(BOOTSTRAP, {"password": SecretText(PASSWORD)}))
    assert len(plain) == 1 and "plain text" in plain[0] and PASSWORD not in plain[0]
    assert secret == []


def test_plain_secret_files_violate_and_unknown_ones_do_not():
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # pulumi_policy's unknown-string sentinel
    files = {"auth.conf": "requirepass x", "password": SecretText("x")}
    found = reported("password-secret-not-generated", args(SECRET_FILES, {"files": files}))
    assert len(found) == 1 and "auth.conf are plain text" in found[0]
    props = unknown_checking_proxy({"files": {"password": SecretText(unknown)}})
    assert reported("password-secret-not-generated", args(SECRET_FILES, props)) == []


def test_an_open_port_on_a_node_without_auth_violates():
    conf = "port 6379\ncluster-node-timeout 1000\n"
    props = {"uploads": [{"file": "/usr/local/etc/redis/redis.conf", "content": conf}],
             "ports": [{"internal": 6379, "external": 7001}]}  # no ip: Docker binds 0.0.0.0
    assert reported("no-open-publish-without-auth", args(CONTAINER, props))
    props["uploads"][0]["content"] = conf + "requirepass x\n"
    assert reported("no-open-publish-without-auth", args(CONTAINER, props)) == []


@pytest.mark.parametrize(("ref", "pinned"), [
    ("redis:7.0.15-bookworm", True),
    ("redis@sha256:" + "a" * 64, True),
    ("sha256:" + "b" * 64, True),
    ("registry.local:5000/team/redis:7.0.15", True),
    ("redis", False),
    ("redis:latest", False),
    ("registry.local:5000/team/redis", False),
])
def test_image_pinning(ref: str, pinned: bool):
    assert image_is_pinned(ref) is pinned
    assert (reported("images-pinned", args(REMOTE_IMAGE, {"name": ref})) == []) is pinned


def test_stack_is_read_from_the_urn():
    assert stack_of("urn:pulumi:team-prod::proj::docker:index/volume:Volume::v") == "team-prod"
    with pytest.raises(ValueError, match="not a Pulumi URN"):
        stack_of("arn:aws:thing")
