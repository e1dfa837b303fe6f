"""Kubernetes manifests as plain objects, and their offline validation against the Kubernetes
OpenAPI schemas that the `kubernetes-validate` package ships (strict: unknown fields fail too).

Two sources: the objects the program declares under Pulumi's mocks (the fast tier), and the
YAML files the real pulumi-kubernetes provider writes in render mode (the e2e tier). Both go
through the same validation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.support.program_runner import ProgramRun, unwrap_secrets

# The three newest minor versions kubernetes-validate 1.37.0 ships (Kubernetes' current ones).
KUBERNETES_VERSIONS = ("1.35", "1.36", "1.37")
# Custom resources have no schema in the Kubernetes OpenAPI documents.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def _integral(value: Any) -> Any:
    """Protobuf Structs carry every number as a double; the API server (and the rendered YAML)
    see 2, not 2.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def manifests_from_run(run: ProgramRun) -> list[dict[str, Any]]:
    """Every Kubernetes object the program declared, as its manifest (secrets unwrapped)."""
    objects = []
    for resource in run.resources:
        if not resource.type.startswith("kubernetes:") or resource.type.startswith(
                "pulumi:providers:"):
            continue
        body = _integral(unwrap_secrets(dict(resource.inputs)))
        if "apiVersion" not in body or "kind" not in body:
            continue
        objects.append(body)
    return objects


def manifests_from_dir(directory: Path) -> dict[Path, dict[str, Any]]:
    """Every object of every YAML file under `directory` (render mode's output)."""
    found: dict[Path, dict[str, Any]] = {}
    for path in sorted(directory.rglob("*.yaml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if document:
                found[path if index == 0 else path.with_suffix(f".{index}.yaml")] = document
    return found


def kind_name(manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    return f"{manifest.get('kind')}/{meta.get('name')}"


def validation_problems(
    manifests: Iterable[Mapping[str, Any]], versions: Sequence[str] = KUBERNETES_VERSIONS
) -> list[str]:
    """One line per object and version that does not validate (empty: all valid)."""
    problems = []
    for manifest in manifests:
        if (manifest.get("apiVersion"), manifest.get("kind")) in CUSTOM_KINDS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(dict(manifest), version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(str(p) for p in exc.absolute_path)
                problems.append(f"{kind_name(manifest)} @ {version}: {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{kind_name(manifest)} @ {version}: {exc.message}")
    return problems
