"""Run the real Pulumi program (__main__.py) under Pulumi's mock monitor; record what it declares.

Used by the unit tier (mock resource outputs) and by the end-to-end harness, whose
`on_resource` callback creates each declared resource for real. The raw protobuf inputs
are kept too, so tests can see which values Pulumi would store as secrets.
"""

from __future__ import annotations

import runpy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.config_reader import PROJECT
from components.program_errors import USER_ACTIONABLE_EXIT_CODE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROGRAM = PROJECT_ROOT / "__main__.py"
SECRET_SIG = rpc._special_secret_sig  # the marker Pulumi wraps secret values in
SIG_KEY = rpc._special_sig_key

DYNAMIC_TYPE = "pulumi-python:dynamic/alphapulse:ClusterBootstrap"
K8S_OPERATIONS_TYPE = "pulumi-python:dynamic/alphapulse:KubernetesOperations"
SECRET_FILES_TYPE = "pulumi-python:dynamic/alphapulse:SecretFiles"
GENERATED_PASSWORD_TYPE = "random:index/randomPassword:RandomPassword"
TLS_MATERIAL_TYPE = "pulumi-python:dynamic/alphapulse:TlsMaterial"


def is_dynamic(type_token: str) -> bool:
    """Any Pulumi dynamic resource (its provider is pickled into its `__provider` input)."""
    return type_token.startswith("pulumi-python:dynamic")


@dataclass
class RecordedResource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]  # as a provider receives them: secrets still wrapped in a marker dict
    raw_inputs: Any  # JSON of the wire form: secrets still wrapped in their marker
    parent: str
    dependencies: list[str]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    provider: str = ""  # the explicit provider reference (urn::id), empty for the default

    @property
    def plain(self) -> dict[str, Any]:
        """The inputs with every secret unwrapped: what the resource really gets."""
        return unwrap_secrets(self.inputs)


def unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return unwrap_secrets(value["value"])
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


@dataclass
class ProgramRun:
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    secret_outputs: set[str]

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> RecordedResource:
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise KeyError(f"no resource named {name!r}; have {[r.name for r in self.resources]}")


OnResource = Callable[[RecordedResource], dict[str, Any]]


def default_outputs(resource: RecordedResource) -> dict[str, Any]:
    """Plausible provider outputs for the unit tier: inputs plus what providers compute."""
    outputs = dict(resource.inputs)
    if resource.type == GENERATED_PASSWORD_TYPE:
        outputs["result"] = "m" * int(resource.inputs.get("length", 32))
    if resource.type == "docker:index/remoteImage:RemoteImage":
        outputs["imageId"] = f"sha256:{resource.name}"
        outputs["repoDigest"] = f"{resource.inputs['name']}@sha256:0"
    if resource.type in (DYNAMIC_TYPE, K8S_OPERATIONS_TYPE):
        nodes = resource.inputs["nodes"]
        outputs["node_ids"] = {n["name"]: f"{i:040x}" for i, n in enumerate(nodes)}
        outputs["slot_ranges"] = {n["name"]: n["slots"] for n in nodes if n["role"] == "master"}
        outputs["cluster_state"] = "ok"
    if resource.type == SECRET_FILES_TYPE:
        outputs["file_names"] = sorted(unwrap_secrets(resource.inputs["files"]))
        outputs["generation"] = 1
    if resource.type == TLS_MATERIAL_TYPE:
        # Real certificates (the provider's own code, no I/O): tests can inspect them.
        from components.tls_material import TlsMaterialProvider

        made = TlsMaterialProvider().create(unwrap_secrets(resource.inputs))
        outputs.update(unwrap_secrets(made.outs))
    return outputs


class _RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, on_resource: OnResource):
        self.on_resource = on_resource

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        # Only component resources get here (custom ones go to on_resource): no provider state.
        return "", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise AssertionError(f"the program made an unexpected invoke: {args.token}")


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that keeps each request's wire form and resource options."""

    def __init__(self, on_resource: OnResource):
        super().__init__(_RecordingMocks(on_resource))
        self.on_resource = on_resource
        self.recorded: list[RecordedResource] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        if request.type == "pulumi:pulumi:Stack" or not request.custom:
            return super().RegisterResource(request)
        pulumi_mocks._ensure_event_loop()
        urn = self.make_urn(request.parent, request.type, request.name)
        resource = RecordedResource(
            type=request.type,
            name=request.name,
            urn=urn,
            inputs=rpc.deserialize_properties(request.object),
            raw_inputs=json_format.MessageToDict(request.object),
            parent=request.parent,
            dependencies=list(request.dependencies),
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=bool(request.deleteBeforeReplace),
            ignore_changes=list(request.ignoreChanges),
            replace_on_changes=list(request.replaceOnChanges),
            provider=request.provider,
        )
        state = self.on_resource(resource)
        resource.outputs = state
        with self._lock:
            self.recorded.append(resource)
        resource_id = str(state.get("id", f"{request.name}_id"))
        obj = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id, state)
        return pulumi_mocks.resource_pb2.RegisterResourceResponse(
            urn=urn, id=resource_id, object=obj
        )


def run_program(
    stack: str,
    config: Mapping[str, str],
    secret_keys: tuple[str, ...] = ("password",),
    on_resource: OnResource = default_outputs,
    preview: bool = False,
) -> ProgramRun:
    """Run __main__.py for `stack` with `config` (keys without the project prefix)."""
    monitor = _RecordingMonitor(on_resource)
    # A fresh root Stack per run: outputs of an earlier run in this process must not leak in.
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(
        monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor
    )
    # Keys of other packages (e.g. `docker:host`) keep their own namespace.
    full = {(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in config.items()}
    pulumi.runtime.set_all_config(
        full, [f"{PROJECT}:{k}" for k in secret_keys if k in config]
    )
    _sync_await(run_pulumi_func(lambda: runpy.run_path(str(PROGRAM), run_name="__main__")))

    stack_resource = pulumi.runtime.get_root_resource()
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    for key, value in stack_resource.outputs.items():  # type: ignore[union-attr]
        output = pulumi.Output.from_input(value)
        outputs[key] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            secret_outputs.add(key)
    return ProgramRun(resources=list(monitor.recorded), outputs=outputs,
                      secret_outputs=secret_outputs)


def stack_config_file(stack: str) -> dict[str, str]:
    """The plain `alphapulse-redis-cluster:*` values of Pulumi.<stack>.yaml, without the prefix."""
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    prefix = f"{PROJECT}:"
    return {
        key[len(prefix):]: str(value)
        for key, value in (document.get("config") or {}).items()
        if key.startswith(prefix) and not isinstance(value, dict)  # dict = encrypted secret
    }


def config_problems(stack: str, config: Mapping[str, str],
                    on_resource: OnResource = default_outputs,
                    secret_keys: tuple[str, ...] = ("password",)) -> str:
    """Run the program on a config it must refuse: what it logged as an error, after checking
    that it ended as the official exec script expects a reported problem to end (exit 32,
    nothing else printed)."""
    logged: list[str] = []
    original = pulumi.log.error
    pulumi.log.error = lambda message, *args, **kwargs: logged.append(message)  # type: ignore
    try:
        run_program(stack, config, secret_keys=secret_keys, on_resource=on_resource)
    except SystemExit as exited:
        assert exited.code == USER_ACTIONABLE_EXIT_CODE, f"exit code {exited.code}: {logged}"
    else:
        raise AssertionError(f"the program accepted config {dict(config)}")
    finally:
        pulumi.log.error = original  # type: ignore[assignment]
    assert len(logged) == 1, logged
    return logged[0]
