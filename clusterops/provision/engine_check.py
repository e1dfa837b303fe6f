"""Refuse, before the first write, nodes whose server is not the stack's engine.

The image's tag is not trusted: every node is asked (``INFO server``, part of each snapshot)
and must run the `engine` the stack names, at a version we support
(clusterops/core/engines.py). A Valkey image under `engine: redis` would otherwise form a
cluster whose healthchecks, upgrade path and backups were planned for the other server.
"""

from __future__ import annotations

from collections.abc import Sequence

from clusterops.core.engines import engine_problem
from clusterops.core.errors import EngineMismatchError
from clusterops.core.model import NodeTarget
from clusterops.core.poll import Deadline
from clusterops.node.access import Access
from clusterops.node.observe import NodeSnapshot
from clusterops.provision.formation import wait_until_reachable


def engine_problems(snapshots: Sequence[NodeSnapshot], engine: str) -> list[str]:
    """Pure: why each observed node may not serve a stack of ``engine`` (empty: all may)."""
    problems = []
    for snapshot in snapshots:
        identity = snapshot.identity
        if identity is None:
            problems.append(f"{snapshot.name} ({snapshot.address}) did not say which server "
                            "it is (INFO server has no version)")
            continue
        problem = engine_problem(engine, identity, f"{snapshot.name} ({snapshot.address})")
        if problem:
            problems.append(problem)
    return problems


def refuse_other_engine(nodes: Sequence[NodeTarget], access: Access, engine: str,
                        timeout_s: float) -> None:
    """Wait until every node answers, then raise :class:`EngineMismatchError` naming each
    node that runs another engine or too old a version. Read-only."""
    snapshots = wait_until_reachable(nodes, access, Deadline.after(timeout_s), timeout_s)
    problems = engine_problems(snapshots, engine)
    if problems:
        raise EngineMismatchError("; ".join(problems))
