"""Deploy harness: stands in for the Pulumi engine and the docker provider where no CLI exists.

It runs the real `__main__.py` under Pulumi's mock monitor. Each declared resource is created
for real as it is registered (Pulumi registers a resource only once its inputs and
`depends_on` are resolved, so creation follows the dependency order): Docker resources by
`DockerEngine`, the random password by the OS's CSPRNG, and the bootstrap resource by the
dynamic provider deserialized from the `__provider` string Pulumi would store, called through
`check` and `create` as the provider process does.

A second run against recorded state is the stand-in for `pulumi preview`: each resource's new
inputs are compared with the recorded ones, the dynamic provider's own `diff` is asked, and
nothing is created or changed.

    python -m tests.support.deploy_harness up --outputs outputs.json   # deploy the dev stack
    python -m tests.support.deploy_harness down --outputs outputs.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import string
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dill

from tests.support.docker_engine import DockerEngine
from tests.support.images import ensure_images
from tests.support.program_runner import (
    ProgramRun,
    RecordedResource,
    is_dynamic,
    run_program,
    stack_config_file,
)

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
CONTAINER = "docker:index/container:Container"
PROVIDER_KEY = "__provider"


def local_image_config() -> dict[str, str]:
    """Point the stack at images built here from Debian's binaries (no registry exists)."""
    images = ensure_images()
    return {
        "redisImage": images["redis"],
        "exporterImage": images["exporter"],
        "prometheusImage": images["prometheus"],
        "pullImages": "false",
    }


def load_provider(inputs: Mapping[str, Any]) -> Any:
    """The provider object exactly as `python -m pulumi.dynamic` gets it from Pulumi's state."""
    return dill.loads(base64.b64decode(inputs[PROVIDER_KEY]))


def _generate_password(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class StateEntry:
    type: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Deployment:
    """One stack deployed for real; `state` is what a Pulumi checkpoint would hold."""

    stack: str
    config: dict[str, str]
    engine: DockerEngine = field(default_factory=DockerEngine)
    state: dict[str, StateEntry] = field(default_factory=dict)
    last_run: ProgramRun | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_stack(cls, stack: str = "dev", **overrides: str) -> Deployment:
        config = {**stack_config_file(stack), **local_image_config(), **overrides}
        return cls(stack=stack, config=config)

    # -- pulumi up -----------------------------------------------------------------------
    def up(self) -> ProgramRun:
        """Create every declared resource (first deploy). Raises if anything fails."""
        self.last_run = run_program(self.stack, self.config, on_resource=self._create)
        return self.last_run

    def _create(self, resource: RecordedResource) -> dict[str, Any]:
        if resource.type == RANDOM_PASSWORD:
            outputs = {**resource.inputs,
                       "result": _generate_password(int(resource.inputs["length"]))}
        elif is_dynamic(resource.type):
            outputs = self._create_dynamic(resource)
        else:
            # The wire form keeps Pulumi's secret markers, so the engine can refuse a secret
            # anywhere but in an uploaded file.
            created = self.engine.apply(resource.type, resource.name, resource.raw_inputs)
            computed = {k: v for k, v in created.items() if k not in resource.inputs}
            outputs = {**resource.inputs, **computed}
        with self._lock:
            self.state[resource.urn] = StateEntry(resource.type, resource.inputs, outputs)
        return outputs

    def _create_dynamic(self, resource: RecordedResource) -> dict[str, Any]:
        # The engine hands providers plain values (the dynamic provider does not accept
        # secrets), so unwrap them as it would.
        inputs = resource.plain
        provider = load_provider(inputs)
        checked = provider.check({}, inputs)
        if checked.failures:
            reasons = [f"{f.property}: {f.reason}" for f in checked.failures]
            raise RuntimeError(f"{resource.urn}: check failed: {reasons}")
        result = provider.create(checked.inputs)
        return {"id": result.id, **(result.outs or {}), PROVIDER_KEY: inputs[PROVIDER_KEY]}

    # -- pulumi preview / pulumi up against the deployed stack --------------------------------
    def preview(self) -> list[str]:
        """Run the program again against the recorded state; return what would change."""
        return self._reconcile(apply=False)

    def update(self, **overrides: str) -> list[str]:
        """`pulumi up` after a config change: containers whose inputs changed are replaced
        (pulumi-docker forces replacement for them; delete-before-replace as declared), the
        dynamic resource is diffed and updated by its provider. Returns what changed."""
        self.config.update(overrides)
        return self._reconcile(apply=True)

    def _reconcile(self, apply: bool) -> list[str]:
        changes: list[str] = []

        def reconcile(resource: RecordedResource) -> dict[str, Any]:
            entry = self.state.get(resource.urn)
            if entry is None:
                changes.append(f"+ create {resource.urn}")
                return self._create(resource) if apply else dict(resource.inputs)
            if is_dynamic(resource.type):
                news = resource.plain
                provider = load_provider(news)
                diff = provider.diff(str(entry.outputs.get("id")), entry.outputs, news)
                if not diff.changes:
                    return entry.outputs
                changes.append(f"~ update {resource.urn}")
                if not apply:
                    return entry.outputs
                result = provider.update(str(entry.outputs.get("id")), entry.outputs, news)
                outputs = {"id": entry.outputs.get("id"), **(result.outs or {}),
                           PROVIDER_KEY: news[PROVIDER_KEY]}
            elif resource.type == RANDOM_PASSWORD or resource.inputs == entry.inputs:
                return entry.outputs
            else:
                changed = sorted(
                    key for key in set(resource.inputs) | set(entry.inputs)
                    if resource.inputs.get(key) != entry.inputs.get(key)
                )
                changes.append(f"+- replace {resource.urn}: {changed}")
                if not apply:
                    return entry.outputs
                if resource.type != CONTAINER:
                    raise RuntimeError(f"{resource.urn}: the harness only replaces containers "
                                       f"(changed: {changed})")
                created = self.engine.replace_container(resource.name, resource.raw_inputs)
                computed = {k: v for k, v in created.items() if k not in resource.inputs}
                outputs = {**resource.inputs, **computed}
            with self._lock:
                self.state[resource.urn] = StateEntry(resource.type, resource.inputs, outputs)
            return outputs

        self.last_run = run_program(self.stack, self.config, on_resource=reconcile)
        recorded = {r.urn for r in self.last_run.resources}
        gone = [urn for urn in self.state if urn not in recorded]
        changes += [f"- delete {urn}" for urn in gone]
        if apply:
            for urn in gone:
                self._delete(urn)
        return changes

    def _delete(self, urn: str) -> None:
        entry = self.state.pop(urn)
        if is_dynamic(entry.type):
            load_provider(entry.outputs).delete(str(entry.outputs.get("id")), entry.outputs)
        elif entry.type != RANDOM_PASSWORD:
            raise RuntimeError(f"{urn}: the harness does not delete {entry.type} on update")

    # -- pulumi destroy ----------------------------------------------------------------------
    def down(self, keep_volumes: bool = False) -> None:
        for entry in self.state.values():
            if is_dynamic(entry.type):
                # The provider's delete only forgets; it works from outputs alone.
                load_provider(entry.outputs).delete(str(entry.outputs.get("id")), entry.outputs)
        self.engine.destroy_all(keep_volumes=keep_volumes)
        self.state.clear()

    def write_outputs(self, path: Path) -> None:
        """The stack outputs as `pulumi stack output --json --show-secrets` prints them (0600)."""
        assert self.last_run is not None, "deploy first"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.last_run.outputs, handle, indent=2, sort_keys=True)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.deploy_harness",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--outputs", type=Path, default=Path(".test-artifacts/dev-outputs.json"))
    args = parser.parse_args(argv)
    if args.action == "up":
        deployment = Deployment.for_stack(args.stack)
        deployment.up()
        deployment.write_outputs(args.outputs)
        print(f"deployed stack {args.stack}; outputs (with the password, mode 0600) in "
              f"{args.outputs}")
        print(f"check it: python -m clusterops health --stack-outputs {args.outputs}")
        return 0
    outputs = json.loads(args.outputs.read_text())
    remove_deployed(outputs)
    print(f"removed the containers, network and secrets volumes of {outputs['cluster_name']}; "
          "data volumes kept (docker volume rm them to delete the data)")
    return 0


def remove_deployed(outputs: Mapping[str, Any]) -> None:
    """Remove what `up` created in another process, found by the names in its outputs."""
    prefix = outputs["cluster_name"]
    names = [n["container_name"] for n in outputs["nodes"]]
    services = [f"{prefix}-redis-exporter", f"{prefix}-prometheus"]
    # Data volumes stay; the secrets volumes go: they hold a password and nothing else.
    secrets = [f"{name}-secrets" for name in names + services[:1]]
    remove_docker_objects(names + services, outputs["network_name"], secrets)


def remove_docker_objects(
    containers: list[str], network: str, volumes: list[str] | None = None
) -> None:
    """Force-remove containers (with their anonymous volumes), a network and named volumes;
    whatever does not exist is skipped."""
    subprocess.run(["docker", "rm", "-f", "-v", *containers], capture_output=True, check=False)
    subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True,
                       check=False)


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
