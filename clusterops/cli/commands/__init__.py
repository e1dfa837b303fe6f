"""The operator commands' front ends: options, rendering and exit codes (the CLI dispatches).

Each module provides ``add_arguments(parser)`` and ``run(args) -> int``; the library work
lives in clusterops proper. Errors are raised, never printed here: clusterops.cli.main prints them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from clusterops.cli.targets import add_target_arguments, load_targets


def add_dry_run_arguments(parser: argparse.ArgumentParser, apply_help: str,
                          timeout_s: float, timeout_help: str) -> None:
    """The options of a command that only acts with ``--apply`` (fix, failback, rebalance)."""
    add_target_arguments(parser)
    parser.add_argument("--apply", action="store_true", help=apply_help)
    parser.add_argument("--timeout", type=float, default=timeout_s, metavar="S",
                        help=f"{timeout_help} [%(default)g]")


def show_plan(args: argparse.Namespace, plan: Any, verb: str) -> bool:
    """Print the plan's lines; True when it is to be carried out (``--apply`` and work to do),
    else say what a dry run with work to do leaves undone."""
    for line in plan.lines():
        print(line)
    if args.apply or plan.nothing_to_do:
        return bool(args.apply and not plan.nothing_to_do)
    print(f"dry run: nothing changed; run again with --apply to {verb}")
    return False


def add_pacing_argument(parser: argparse.ArgumentParser) -> None:
    """``--max-keys-per-second``: the key mover's ceiling (clusterops/reshape/pacing.py)."""
    parser.add_argument(
        "--max-keys-per-second", type=_positive, metavar="N",
        help="move at most N keys per second, in small rounds, so live clients wait less "
        "(default: as fast as the nodes take them); bench/reshard_bench.py measures the trade")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of keys per second")
    return value


def run_plan_then_apply(args: argparse.Namespace, preview: Callable[..., Any],
                        apply: Callable[..., Any], verb: str, name: str) -> int:
    """fix and failback: print the plan; with ``--apply`` carry it out and print what is
    left. 0 when nothing is (left) to do, 1 otherwise (a dry run with work to do included)."""
    targets = load_targets(args)
    plan = preview(targets.nodes, targets.access)
    if not show_plan(args, plan, verb):
        return 0 if plan.nothing_to_do and not plan.problems else 1
    after = apply(targets.nodes, targets.access, args.timeout, progress=progress_to_stderr)
    print(f"after {name}: " + "; ".join(after.lines()))
    return 0 if after.nothing_to_do and not after.problems else 1


def progress_to_stderr(line: str) -> None:
    """Progress lines go to stderr, so stdout holds only the plan and the result."""
    print(line, file=sys.stderr, flush=True)


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as columns two spaces apart; the last column is not padded (it may be long)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        .rstrip()
        for row in rows
    ]
