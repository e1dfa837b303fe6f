"""Apply settings to every running node with CONFIG SET: a setting change without a restart.

The deployment declares the settings Redis changes at run time (maxmemory, maxmemory-policy,
appendfsync, save, cluster-node-timeout, ...). This module makes every node's live value match
them, the way the password rotation switches the password:

1. every node is read first (CONFIG GET); if one cannot be reached before the deadline, or
   does not know a setting, nothing is changed anywhere;
2. on each node that differs, one CONFIG SET with every differing setting (Redis 7.0 applies
   a multi-setting CONFIG SET atomically: all or none on that node);
3. unless the deployment already wrote the same values into the files the nodes start from,
   CONFIG REWRITE persists them, so a restart keeps them;
4. every node is read again and must report the declared values.

Idempotent: comparing with the live values (not with what was asked last time) finishes an
interrupted run and undoes a hand-made CONFIG SET. No client connection is dropped, no
replica resyncs and no key moves, so clients see no error window from the change itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import redis

from clusterops.core.errors import ClusterOpsError, NodesUnreachableError
from clusterops.core.model import NodeTarget
from clusterops.core.poll import Deadline, poll
from clusterops.core.units import parse_memory
from clusterops.node.access import Access
from clusterops.node.connection import persist_config
from clusterops.node.observe import is_auth_error

POLL_INTERVAL_S = 0.1
# Settings Redis reports in bytes (CONFIG GET) while a config may spell them 512mb.
MEMORY_SETTINGS = ("maxmemory",)

# The TLS file directives: CONFIG SET of them, even to the same paths, reloads the files.
TLS_FILE_SETTINGS = ("tls-cert-file", "tls-key-file", "tls-ca-cert-file")


class LiveConfigError(ClusterOpsError):
    """A setting could not be applied (or verified) on a node; the message says which."""


@dataclass
class SettingsReport:
    # node -> {setting: (live value before, declared value)} for what this run changed
    changed: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)  # config file updated by CONFIG REWRITE
    without_config_file: list[str] = field(default_factory=list)  # runtime only


def canonical(setting: str, value: str) -> str:
    """A value as CONFIG GET reports it, so '512mb' and '536870912' compare equal."""
    if setting in MEMORY_SETTINGS:
        return str(parse_memory(value))
    return " ".join(value.split())


def settings_problems(settings: Mapping[str, object]) -> list[str]:
    """Pure: why these settings cannot be applied as they are (empty when they can)."""
    problems = []
    for setting, value in settings.items():
        if not isinstance(setting, str) or not setting or not isinstance(value, str):
            problems.append(f"{setting!r}: settings map names to text values")
            continue
        try:
            canonical(setting, value)
        except ValueError as exc:
            problems.append(f"{setting}: {exc}")
    return problems


def differences(settings: Mapping[str, str], live: Mapping[str, str]) -> dict[str, str]:
    """Pure: the declared settings whose live value differs, mapped to the live value."""
    return {
        key: live[key] for key in settings
        if key in live and canonical(key, live[key]) != canonical(key, settings[key])
    }


def _read(conn: redis.Redis, settings: Mapping[str, str]) -> dict[str, str]:
    live: dict[str, str] = {}
    for key in settings:
        live.update(conn.config_get(key))
    return live


def _read_all(
    nodes: Sequence[NodeTarget], conns: Mapping[str, redis.Redis], settings: Mapping[str, str],
    access: Access, deadline: Deadline, timeout_s: float,
) -> dict[str, dict[str, str]]:
    """CONFIG GET of every setting on every node, waiting (until the deadline) for nodes that
    do not answer yet; a refused password is not waited for."""
    lives: dict[str, dict[str, str]] = {}

    def everyone() -> tuple[bool, dict[str, str]]:
        failures = {}
        for node in nodes:
            if node.name in lives:
                continue
            try:
                lives[node.name] = _read(conns[node.name], settings)
            except redis.RedisError as exc:
                if is_auth_error(exc):
                    raise LiveConfigError(
                        f"{node.name} ({node.address}) refused the password: "
                        f"{access.redact(str(exc))}. Nothing was changed on any node."
                    ) from exc
                failures[node.name] = access.redact(f"{type(exc).__name__}: {exc}")
        return not failures, failures

    done, failures = poll(everyone, deadline, POLL_INTERVAL_S)
    if not done:
        raise NodesUnreachableError(failures, timeout_s)
    return lives


def apply_settings(
    nodes: Sequence[NodeTarget],
    access: Access,
    settings: Mapping[str, str],
    timeout_s: float = 30.0,
    rewrite_config: bool = True,
    force: Sequence[str] = (),
) -> SettingsReport:
    """Make every node's live value of each setting the declared one (see the module doc).

    ``rewrite_config`` False: the deployment already wrote these values into the config file
    each node starts from (and the server may not be able to write that file). ``force``:
    settings set even when the live value already matches, e.g. the TLS file paths, whose
    CONFIG SET makes Redis load rotated certificates.
    """
    report = SettingsReport()
    if not settings:
        return report
    problems = settings_problems(settings)
    if problems:
        raise LiveConfigError("cannot apply these settings: " + "; ".join(problems))
    deadline = Deadline.after(timeout_s)
    with ExitStack() as stack:
        conns = {node.name: stack.enter_context(access.client(node)) for node in nodes}
        lives = _read_all(nodes, conns, settings, access, deadline, timeout_s)
        for node in nodes:
            unknown = sorted(set(settings) - set(lives[node.name]))
            if unknown:
                raise LiveConfigError(
                    f"{node.name} ({node.address}) does not know the setting(s) "
                    f"{', '.join(unknown)} (CONFIG GET returns nothing): its Redis version does "
                    "not support them. Nothing was changed on any node. Fix: remove them from "
                    "the declared settings or upgrade the image.")
        for node in nodes:
            differing = differences(settings, lives[node.name])
            differing.update({key: lives[node.name].get(key, "") for key in force
                              if key in settings and key not in differing})
            if not differing:
                continue
            pairs = [part for key in differing for part in (key, settings[key])]
            try:
                conns[node.name].execute_command("CONFIG", "SET", *pairs)
            except redis.RedisError as exc:
                done = ", ".join(sorted(report.changed)) or "none"
                raise LiveConfigError(
                    f"{node.name} ({node.address}): CONFIG SET {' '.join(differing)} failed: "
                    f"{access.redact(str(exc))}. That node kept its values (CONFIG SET is "
                    f"all or nothing); nodes already changed: {done}. Fix the cause and run the "
                    "deployment again: it finishes from the live values."
                ) from exc
            report.changed[node.name] = {
                key: (old, settings[key]) for key, old in differing.items()}
            if rewrite_config:
                _rewrite(node, conns[node.name], access, report)
        _verify(nodes, conns, settings)
    return report


def _rewrite(
    node: NodeTarget, conn: redis.Redis, access: Access, report: SettingsReport
) -> None:
    try:
        rewritten = persist_config(conn)
    except redis.ResponseError as exc:
        raise LiveConfigError(
            f"{node.name} ({node.address}): CONFIG REWRITE failed: "
            f"{access.redact(str(exc))}; the new settings are live but a restart "
            "would lose them. Fix: make the node's config file writable by Redis."
        ) from exc
    (report.rewritten if rewritten else report.without_config_file).append(node.name)


def _verify(
    nodes: Sequence[NodeTarget], conns: Mapping[str, redis.Redis], settings: Mapping[str, str]
) -> None:
    """Read back every node: a setting Redis accepted but normalised differently (or a node
    changed by someone else meanwhile) must not pass unnoticed."""
    wrong = {}
    for node in nodes:
        differing = differences(settings, _read(conns[node.name], settings))
        if differing:
            wrong[node.name] = ", ".join(
                f"{key} is {value!r}, declared {settings[key]!r}"
                for key, value in differing.items())
    if wrong:
        raise LiveConfigError(
            "after CONFIG SET, nodes still differ from the declared settings: "
            + "; ".join(f"{name}: {why}" for name, why in wrong.items()))
