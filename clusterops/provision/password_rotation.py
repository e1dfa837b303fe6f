"""Change the cluster password in place, without restarts and without breaking replication.

Order matters. ``masterauth`` (what a replica sends to its master) is set to the new password on
every node first; then ``requirepass`` (what a node demands). Replicas stay connected through
both steps: an established replication link is never re-authenticated, and a link that happens
to reconnect in between gets the new password accepted as soon as its master switched, moments
later. Finally ``CONFIG REWRITE`` persists both settings where the node has a config file, so a
restart keeps the new password.

Idempotent: a node that already accepts the new password (an earlier, interrupted run, or a node
recreated with the new config) is brought in line instead of failing.

With ACL users (acl: true), :func:`sync_acl_users` does the same for every user at once: the
users' new passwords are added beside the old ones, then ``masteruser``/``masterauth`` switch,
then each user is set to exactly its line of users.acl. Connected clients stay connected
throughout (ACL SETUSER never drops a connection; ACL LOAD would drop all of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import redis

from clusterops.core.errors import PasswordRotationError, redact
from clusterops.core.model import NodeTarget
from clusterops.core.poll import Deadline, poll
from clusterops.node.access import Access
from clusterops.node.connection import persist_config
from clusterops.node.observe import is_auth_error, observe_nodes, reply_text
from clusterops.provision.acl_users import parse_users_acl

POLL_INTERVAL_S = 0.05


@dataclass
class RotationReport:
    rotated: list[str] = field(default_factory=list)  # nodes we changed
    already_rotated: list[str] = field(default_factory=list)  # accepted the new one already
    rewritten: list[str] = field(default_factory=list)  # config file updated
    without_config_file: list[str] = field(default_factory=list)  # runtime only
    replica_links: dict[str, str] = field(default_factory=dict)  # replica -> link status after


def _connect(
    node: NodeTarget, access: Access, new_password: str, stack: ExitStack
) -> tuple[redis.Redis, bool]:
    """A client authenticated with the old password, else the new one (already rotated)."""
    secrets = (access.password, new_password)
    for attempt, already in ((access, False), (access.with_password(new_password), True)):
        conn = stack.enter_context(attempt.client(node))
        try:
            conn.ping()
            return conn, already
        except redis.RedisError as exc:
            if not is_auth_error(exc):
                raise PasswordRotationError(
                    f"{node.name} ({node.address}) is not reachable: "
                    f"{redact(str(exc), *secrets)}. Nothing was changed."
                ) from exc
    raise PasswordRotationError(
        f"{node.name} ({node.address}) accepts neither the old nor the new password. "
        "Nothing was changed."
    )


class _AllNodes:
    """One admin connection per node, each made with the old password or, where that is
    refused, the new one; every node is contacted before anything is changed."""

    def __init__(self, nodes: Sequence[NodeTarget], access: Access, new_password: str,
                 stack: ExitStack, report: RotationReport, secrets: tuple[str | None, ...]
                 ) -> None:
        self.nodes, self.secrets = nodes, secrets
        self.conns: dict[str, redis.Redis] = {}
        for node in nodes:
            self.conns[node.name], already = _connect(node, access, new_password, stack)
            (report.already_rotated if already else report.rotated).append(node.name)

    def each(self, step: str, *args: str) -> None:
        """Run one command on every node, in order; the first refusal stops the run."""
        for node in self.nodes:
            try:
                self.conns[node.name].execute_command(*args)
            except redis.RedisError as exc:
                raise PasswordRotationError(
                    f"{node.name}: {step} failed: {redact(str(exc), *self.secrets)}"
                ) from exc


def rotate_password(
    nodes: Sequence[NodeTarget],
    access: Access,
    new_password: str,
    timeout_s: float = 10.0,
    rewrite_config: bool = True,
) -> RotationReport:
    """Set ``masterauth`` then ``requirepass`` to ``new_password`` on every node (reached with
    ``access``, which holds the password they have now, or already the new one); persist it
    with CONFIG REWRITE unless ``rewrite_config`` is False (the deployment already wrote the
    new password into the files the nodes include).

    Every node is contacted before anything is changed. Afterwards every replica's link to its
    master must be up (polled until ``timeout_s``), else :class:`PasswordRotationError`.
    """
    if not new_password:
        raise PasswordRotationError("the new password is empty")
    secrets = (access.password, new_password)
    report = RotationReport()
    deadline = Deadline.after(timeout_s)
    with ExitStack() as stack:
        every = _AllNodes(nodes, access, new_password, stack, report, secrets)
        every.each("CONFIG SET masterauth", "CONFIG", "SET", "masterauth", new_password)
        every.each("CONFIG SET requirepass", "CONFIG", "SET", "requirepass", new_password)
        # A node that already accepted the new password got it from its config (a container
        # recreated with the new secret files): its file is right already, and may not be
        # writable by the server (the official image runs Redis as an unprivileged user).
        for node in (n for n in nodes if rewrite_config and n.name in report.rotated):
            try:
                rewritten = persist_config(every.conns[node.name])
            except redis.ResponseError as exc:
                raise PasswordRotationError(
                    f"{node.name}: CONFIG REWRITE failed: {redact(str(exc), *secrets)}; "
                    "the new password is live but would be lost on restart"
                ) from exc
            (report.rewritten if rewritten else report.without_config_file).append(node.name)

    report.replica_links = _wait_for_replica_links(
        nodes, access.with_password(new_password), deadline, timeout_s)
    return report


def unknown_categories(rules: Sequence[str], known: set[str]) -> list[str]:
    """The ACL categories (``+@name``/``-@name``) ``rules`` use that the server lacks."""
    used = {rule[2:].lower() for rule in rules if rule[:2] in ("+@", "-@")}
    return sorted(used - known - {"all"})


def refuse_unknown_categories(every: _AllNodes, parsed: Sequence[tuple[str, list[str]]]
                              ) -> None:
    """Before the first ACL change: every category the users' rules name exists on every
    node, as the server itself lists them (ACL CAT); the engines differ only in what they
    add, and a rule naming a missing one would be refused half-way through the users."""
    for node in every.nodes:
        categories = every.conns[node.name].execute_command("ACL", "CAT")
        known = {reply_text(category).lower() for category in categories}
        for name, rules in parsed:
            if missing := unknown_categories(rules, known):
                raise PasswordRotationError(
                    f"{node.name}: the rules of ACL user {name} name "
                    f"{', '.join('@' + c for c in missing)}, which this server does not have "
                    "(ACL CAT). Nothing was changed. Fix: aclAppRules without them")


def sync_acl_users(
    nodes: Sequence[NodeTarget],
    access: Access,
    new_password: str,
    users_acl: str,
    masteruser: str,
    masterauth: str,
    timeout_s: float = 10.0,
) -> RotationReport:
    """Make every node's live users exactly those of ``users_acl`` (the file its secrets volume
    already holds for the next start), as the nodes' user (admin) with ``access`` (the
    password they have now) or, where it is already accepted, ``new_password``.

    Three passes over all nodes, so nothing is refused in between: (1) each user gets its new
    password hash in addition to the old ones; (2) replicas authenticate with the new
    replication credentials; (3) each user is reset to its line (old hashes gone), and users
    that are not in the file are deleted. Every node is contacted before anything changes.
    """
    parsed = parse_users_acl(users_acl)
    if not parsed:
        raise PasswordRotationError("users.acl defines no user")
    secrets = (access.password, new_password, masterauth)
    report = RotationReport()
    deadline = Deadline.after(timeout_s)
    with ExitStack() as stack:
        every = _AllNodes(nodes, access, new_password, stack, report, secrets)
        refuse_unknown_categories(every, parsed)
        for name, rules in parsed:
            hashes = [rule for rule in rules if rule.startswith("#")]
            if hashes:
                every.each(f"ACL SETUSER {name} (new password)", "ACL", "SETUSER", name, *hashes)
        every.each("CONFIG SET masteruser masterauth", "CONFIG", "SET", "masteruser",
                   masteruser, "masterauth", masterauth)
        for name, rules in parsed:
            every.each(f"ACL SETUSER {name}", "ACL", "SETUSER", name, "reset", *rules)
        keep = {name for name, _rules in parsed}
        for conn in every.conns.values():
            extra = sorted(set(conn.execute_command("ACL", "USERS")) - keep)
            if extra:
                conn.execute_command("ACL", "DELUSER", *extra)

    report.replica_links = _wait_for_replica_links(
        nodes, access.with_password(new_password), deadline, timeout_s)
    return report


def _wait_for_replica_links(
    nodes: Sequence[NodeTarget], access: Access, deadline: Deadline, timeout_s: float
) -> dict[str, str]:
    """Log in with the new password everywhere; every replica's master link must be up."""

    def linked() -> tuple[bool, dict[str, str]]:
        links = {
            s.name: f"error: {s.error}" if not s.reachable
            else s.replication.get("master_link_status", "unknown")
            for s in observe_nodes(nodes, access)
            if not s.reachable or s.replication.get("role") == "slave"
        }
        return all(status == "up" for status in links.values()), links

    done, links = poll(linked, deadline, POLL_INTERVAL_S)
    if not done:
        detail = ", ".join(f"{name}: {status}" for name, status in links.items() if status != "up")
        raise PasswordRotationError(
            f"after {timeout_s:g}s with the new password, not every replica is linked: {detail}"
        )
    return links
