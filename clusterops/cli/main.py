"""Operator command line: ``python -m clusterops <command> [options]``.

Each command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their command is chosen, so a command
whose module is missing or broken fails on its own and never takes the others down.

Exit codes: 0 healthy / done; 1 a check or drill failed, or data is at risk; 2 usage, target
or authentication error; 130 interrupted. A command returns 0 or 1 for what it measured and
raises :class:`~clusterops.core.errors.ClusterOpsError` when it cannot; this module alone prints
errors, and maps each to its ``exit_code``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

import redis
from redis.exceptions import RedisClusterException

from clusterops.cli.in_pod import delegated
from clusterops.cli.targets import stack_outputs_of
from clusterops.core.errors import EXIT_FAILED, EXIT_USAGE, ClusterOpsError

PROG = "python -m clusterops"
EXIT_INTERRUPTED = 130

# command -> module; every module provides add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, str] = {
    "health": "clusterops.cli.commands.health",
    "drill": "clusterops.cli.commands.drill",
    "backup": "clusterops.cli.commands.backup",
    "restore": "clusterops.cli.commands.restore",
    "fix": "clusterops.cli.commands.fix",
    "failback": "clusterops.cli.commands.failback",
    "rebalance": "clusterops.cli.commands.rebalance",
}
# One-line summaries kept here so `--help` lists commands without importing any of them.
SUMMARIES: dict[str, str] = {
    "health": "check cluster state, slots, replication, memory and a write/read round trip",
    "drill": "failover drill: fault a master, measure recovery, verify no acknowledged loss",
    "backup": "a fresh, verified RDB snapshot of every master, with a slot manifest",
    "restore": "load a backup into a cluster of any shape, then verify it key by key",
    "fix": "finish open slots and serve unserved ones, never dropping a key (dry run default)",
    "failback": "planned masters take their shards back by CLUSTER FAILOVER (dry run default)",
    "rebalance": "spread slots evenly over the current masters (dry run default)",
}


class CommandUnavailable(Exception):
    """The module behind a command cannot be imported or lacks the command interface."""


def load_command(name: str) -> ModuleType:
    module_name = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandUnavailable(
            f"command '{name}' is not available: importing {module_name} failed ({exc})"
        ) from exc
    missing = [
        attr for attr in ("add_arguments", "run") if not callable(getattr(module, attr, None))
    ]
    if missing:
        raise CommandUnavailable(
            f"command '{name}' is not available: {module_name} lacks {', '.join(missing)}"
        )
    return module


def top_level_help() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        f"usage: {PROG} COMMAND [options]",
        "",
        "Operator commands for the AlphaPulse Redis Cluster.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {SUMMARIES.get(name, '')}" for name in COMMANDS]
    lines += ["", f"Run `{PROG} COMMAND --help` for the options of one command."]
    return "\n".join(lines)


def build_command_parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    # No abbreviations: `--password X` must never be taken for `--password-file X`.
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {name}", description=SUMMARIES.get(name), allow_abbrev=False
    )
    module.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(top_level_help(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else EXIT_USAGE
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{PROG}: error: unknown command {name!r}\n\n{top_level_help()}", file=sys.stderr)
        return EXIT_USAGE
    try:
        module = load_command(name)
    except CommandUnavailable as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    parser = build_command_parser(name, module)
    try:
        args = parser.parse_args(rest)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return int(exc.code or 0)
    try:
        # A Kubernetes stack's nodes are reachable only inside its cluster: run it there.
        outputs, source = stack_outputs_of(args)
        in_pod = delegated(name, rest, outputs, source)
        if in_pod is not None:
            return in_pod
        return int(module.run(args))
    except ClusterOpsError as exc:
        print(f"{PROG} {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (redis.RedisError, RedisClusterException) as exc:
        # Commands turn what they expect into ClusterOpsErrors; anything else from redis-py is
        # still an answer about the cluster, never a traceback. Auth cannot fix itself: 2.
        print(f"{PROG} {name}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, redis.AuthenticationError) else EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG} {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
