"""Exceptions raised by the cluster operations: one base, one exit-code policy.

Every error clusterops raises is a :class:`ClusterOpsError`; its ``exit_code`` is what the CLI
exits with (the CLI alone prints errors): 1 when a check failed or data is at risk, 2 for
usage, target and authentication errors (:class:`UsageError`), which no retry can fix.

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


EXIT_FAILED = 1  # a check or drill failed, or data is at risk
EXIT_USAGE = 2  # usage, target or authentication error


class ClusterOpsError(RuntimeError):
    """Base class of every error raised by clusterops."""

    exit_code = EXIT_FAILED


class UsageError(ClusterOpsError):
    """The command cannot run as asked: bad options, unusable targets, no way to act."""

    exit_code = EXIT_USAGE


class TargetsError(UsageError, ValueError):
    """The targets or the password could not be determined; the message says why and what to do.

    Messages never contain the password.
    """


class AuthError(UsageError):
    """A node refused the password (or wants one and got none): waiting cannot fix it."""


class DrillError(ClusterOpsError):
    """The drill could not run or could not restore the node; the message says why."""


class NodeControlError(UsageError):
    """A fault could not be injected or undone; the message says which node and why."""


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


class EngineMismatchError(UsageError):
    """A node runs another server than the stack's `engine` (or one too old): nothing was
    formed or changed; the message names the node, what it runs, the key and the fix."""
