"""Exceptions raised by the cluster operations.

Every message names the node(s) concerned and says what was seen. No message ever contains the
password: text that comes from elsewhere (server replies, redis-py errors) is passed through
:func:`redact` before it is put in a message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def redact(text: str, *secrets: str | None) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class ClusterOpsError(RuntimeError):
    """Base class of every error raised by clusterops."""


class PlanError(ClusterOpsError, ValueError):
    """The planned topology itself is invalid (before any node is contacted)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid cluster plan: " + "; ".join(self.problems))


class NodesUnreachableError(ClusterOpsError):
    """Some nodes did not answer (or refused our password) before the deadline."""

    def __init__(self, failures: Mapping[str, str], timeout_s: float) -> None:
        self.failures = dict(failures)
        detail = "; ".join(f"{name}: {why}" for name, why in self.failures.items())
        super().__init__(
            f"{len(self.failures)} node(s) not reachable within {timeout_s:g}s: {detail}. "
            "Nothing was changed on any node."
        )


class UnsafeClusterStateError(ClusterOpsError):
    """The nodes hold data or know nodes outside the plan: forming a cluster could cost data."""

    def __init__(self, reasons: Mapping[str, list[str]]) -> None:
        self.reasons = {name: list(why) for name, why in reasons.items()}
        detail = "; ".join(f"{name}: {', '.join(why)}" for name, why in self.reasons.items())
        super().__init__(
            f"refusing to form or adopt the cluster: {detail}. Nothing was changed on any node; "
            "these nodes are not the planned cluster and are not empty, so fix or empty them "
            "by hand (this tool never runs CLUSTER RESET, FLUSHALL or FLUSHDB)."
        )


class FormationTimeoutError(ClusterOpsError):
    """The cluster did not reach the expected state before the deadline."""

    def __init__(self, stage: str, lagging: Iterable[str], last_state: str, timeout_s: float):
        self.stage = stage
        self.lagging = list(lagging)
        self.last_state = last_state
        super().__init__(
            f"timed out after {timeout_s:g}s while {stage}; not done: "
            f"{', '.join(self.lagging) or '(none named)'}; last state seen: {last_state}"
        )


class ClusterCommandError(ClusterOpsError):
    """A node rejected an admin command we had to run."""


class PasswordRotationError(ClusterOpsError):
    """The password could not be changed on every node, or replication did not stay up."""
