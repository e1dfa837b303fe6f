"""An application stack on the AlphaPulse Redis Cluster.

It reads the cluster stack's outputs through `pulumi.StackReference` (the password stays a
secret end to end), and runs one container on the cluster's Docker network that, at start,
writes and reads back a key in every one of the 16384 hash slots and reports the result in its
log and exit code (app/slot_check.py).

What the container gets, and how:
- the code: app/slot_check.py and the cluster's client helper (clusterops/client.py, a single
  file with no dependency but redis-py) as uploaded files: any python3 + redis-py image works;
- the connection: /app/cluster.json, uploaded as a Pulumi secret, holding only the outputs the
  helper reads. Never an environment variable or a command-line argument, which `docker
  inspect` and `ps` show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker

HERE = Path(__file__).resolve().parent
CLIENT_MODULE = HERE.parent.parent / "clusterops" / "client.py"
# The outputs contract versions this app reads (clusterops/client.py: OUTPUTS_SCHEMAS): 4 only
# added `target` and `location`; what the app reads kept its meaning on the Docker target.
OUTPUTS_VERSIONS = (3, 4)
# What the helper reads: nothing else of the cluster's outputs reaches the container.
CONNECTION_OUTPUTS = ("outputs_version", "seed_endpoints", "host_seed_endpoints", "nodes",
                      "client_settings", "password")


def require_version(version: Any) -> Any:
    # Numbers cross a StackReference as protobuf doubles: 1 arrives as 1.0.
    if isinstance(version, float) and version.is_integer():
        version = int(version)
    if version not in OUTPUTS_VERSIONS:
        raise ValueError(
            f"the cluster stack exports outputs_version {version!r}; this app understands "
            f"{', '.join(map(str, OUTPUTS_VERSIONS))}. Fix: update the app for the new outputs "
            "(clusterops/client.py describes them) or point clusterStack at a cluster of the "
            "matching revision")
    return version


def require_docker(target: Any) -> Any:
    # The app runs on the cluster's Docker network; a Kubernetes cluster has none (v4 `target`;
    # v3 stacks were always Docker and export no target).
    if target not in (None, "docker"):
        raise ValueError(
            f"the cluster stack's target is {target!r}; this app runs on the cluster's Docker "
            "network. Fix: point clusterStack at a Docker cluster stack")
    return target


config = pulumi.Config()
cluster = pulumi.StackReference(config.require("clusterStack"))
app_name = config.get("appName") or "slot-check"

outputs = {key: cluster.require_output(key) for key in CONNECTION_OUTPUTS}
# Only a cluster with tls: true exports its CA (a null output is not stored at all).
outputs["tls_ca_cert"] = cluster.get_output("tls_ca_cert")
# With ACL users, the application user's name (`password` is then that user's). Never the admin
# user's credentials: the app gets only what it needs.
outputs["username"] = cluster.get_output("username")
outputs["outputs_version"] = outputs["outputs_version"].apply(require_version)
outputs["target"] = cluster.get_output("target").apply(require_docker)
# Secret because it carries the password; Output.secret makes that explicit whatever the
# reference reports.
connection = pulumi.Output.secret(
    pulumi.Output.all(**outputs).apply(lambda values: json.dumps(values, sort_keys=True))
)
container_name = pulumi.Output.concat(cluster.require_output("cluster_name"), "-", app_name)

app = docker.Container(
    "slot-check",
    name=container_name,
    image=config.require("appImage"),
    command=["python3", "/app/slot_check.py", "/app/cluster.json"],
    uploads=[
        docker.ContainerUploadArgs(file="/app/slot_check.py",
                                   content=(HERE / "app" / "slot_check.py").read_text()),
        docker.ContainerUploadArgs(file="/app/alphapulse_client.py",
                                   content=CLIENT_MODULE.read_text()),
        docker.ContainerUploadArgs(file="/app/cluster.json", content=connection),
    ],
    networks_advanced=[
        docker.ContainerNetworksAdvancedArgs(name=cluster.require_output("network_name"))
    ],
    # A one-shot check: it exits when done and its exit code is the result, so the provider
    # must neither wait for it to stay up nor restart it.
    must_run=False,
    restart="no",
    labels=[docker.ContainerLabelArgs(label="com.alphapulse.app", value=app_name)],
)

pulumi.export("container_name", app.name)
pulumi.export("network_name", cluster.require_output("network_name"))
