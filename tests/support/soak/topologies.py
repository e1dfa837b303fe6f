"""Deployed stacks for the soak, by the real `pulumi up`: one Docker host, or three Docker hosts
in network namespaces (tests/support/netns_hosts.py), each with its own names and subnet so a
soak never touches another stack."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.deploy_fixtures import DeployedStack, deploy_stack, local_image_config
from tests.support.netns_hosts import NetnsHosts
from tests.support.pulumi_cli import PulumiStack, new_stack
from tests.support.soak.nemesis import SoakTarget

NODE_TIMEOUT_S = 1.0
SINGLE_HOST = {"namePrefix": "apsoak", "subnet": "172.31.96.0/24", "basePort": "7601",
               "exporterPort": "9621", "nodeTimeoutMs": "1000"}
# As the multi-host e2e stack: TLS on every link and ACL users, traffic crossing machines.
SEVERAL_HOSTS = {"namePrefix": "apsoakmh", "subnet": "172.31.97.0/24", "basePort": "7801",
                 "exporterPort": "9821", "nodeTimeoutMs": "1000", "tls": "true", "acl": "true"}


@dataclass
class PulumiChanger:
    """`pulumi up` with some settings changed: what a deploy pipeline runs on a merge."""

    stack: PulumiStack

    def up(self, changes: Mapping[str, str]) -> dict[str, Any]:
        self.stack.set_config(changes)
        return self.stack.up()


@dataclass
class NetnsLinks:
    hosts: NetnsHosts

    def _host(self, name: str) -> Any:
        return next(h for h in self.hosts if h.name.split("-")[-1] == name)

    def cut(self, host: str) -> None:
        self.hosts.cut_link(self._host(host))

    def restore(self, host: str) -> None:
        self.hosts.restore_link(self._host(host))


def on_deployed(deployed: DeployedStack, with_pulumi: bool = True) -> SoakTarget:
    """A soak on a stack an e2e module already deployed (its fixture destroys it)."""
    return SoakTarget(deployed.outputs, deployed.outputs_file, NODE_TIMEOUT_S,
                      stack=PulumiChanger(deployed.stack) if with_pulumi else None)


@contextmanager
def single_host(workdir: Path, with_pulumi: bool = True) -> Iterator[SoakTarget]:
    """The dev stack on the local engine; destroyed afterwards."""
    for deployed in deploy_stack(workdir, "dev", **SINGLE_HOST):
        yield on_deployed(deployed, with_pulumi)


@contextmanager
def several_hosts(workdir: Path, with_pulumi: bool = True) -> Iterator[SoakTarget]:
    """Three engines in network namespaces, one `pulumi up` spreading the shards over them."""
    with NetnsHosts(prefix="aps", count=3, subnet="10.214.0.0/24") as hosts:
        images = local_image_config()
        hosts.load_images([images["redisImage"], images["exporterImage"]])
        setting = [{"name": h.name.split("-")[-1], "dockerHost": h.docker_host,
                    "address": h.address} for h in hosts]
        handle = new_stack(workdir, "dev", {**images, **SEVERAL_HOSTS,
                                            "hosts": json.dumps(setting)})
        try:
            outputs = handle.up()
            outputs_file = workdir / "outputs.json"
            handle.write_outputs(outputs_file)
            yield SoakTarget(outputs, outputs_file, NODE_TIMEOUT_S,
                             docker_hosts={h["name"]: h["dockerHost"] for h in setting},
                             links=NetnsLinks(hosts),
                             stack=PulumiChanger(handle) if with_pulumi else None)
        finally:
            handle.destroy(check=False)
            handle.remove()
