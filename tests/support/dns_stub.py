"""A `getent` on PATH that answers from a table: the cluster DNS, for the Kubernetes target's
shell scripts run outside a pod."""

from __future__ import annotations

import os
from pathlib import Path


def dns_stub(table: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """An environment in which `getent hosts NAME` answers from `table` (what the cluster DNS
    answers for the headless Service's pod records)."""
    stub = tmp_path / "dns"
    stub.mkdir(exist_ok=True)
    (stub / "hosts").write_text("".join(f"{ip} {name}\n" for name, ip in table.items()))
    getent = stub / "getent"
    getent.write_text(
        "#!/bin/sh\n"
        '[ "$1" = hosts ] || exit 2\n'
        f"awk -v h=\"$2\" '$2 == h {{print $1 \"  \" $2; found=1}} END {{exit !found}}' "
        f"{stub / 'hosts'}\n"
    )
    getent.chmod(0o755)
    return {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}"}
