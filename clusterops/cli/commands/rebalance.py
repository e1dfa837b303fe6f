"""``python -m clusterops rebalance``: spread the slots evenly over the current masters
(clusterops.reshape.rebalance).

Dry run by default: prints each slot range that would move, its source, target and keys.
``--apply`` moves them. Exit code: 0 planned (dry run) or moved and even; 1 a move failed;
2 usage, target and authentication errors, and a cluster with open or unserved slots
(run fix first).
"""

from __future__ import annotations

import argparse

from clusterops.cli.commands import (
    add_dry_run_arguments,
    add_pacing_argument,
    progress_to_stderr,
    show_plan,
)
from clusterops.cli.targets import load_targets
from clusterops.reshape.rebalance import apply_rebalance, preview_rebalance

DEFAULT_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dry_run_arguments(parser, "move the slots (default: print the plan)", DEFAULT_TIMEOUT_S,
                          "wait this long for every node to agree afterwards")
    add_pacing_argument(parser)


def run(args: argparse.Namespace) -> int:
    targets = load_targets(args)
    plan = preview_rebalance(targets.nodes, targets.access)
    if not show_plan(args, plan, "move"):
        return 0
    stats = apply_rebalance(targets.nodes, targets.access, plan, args.timeout,
                            progress=progress_to_stderr,
                            max_keys_per_second=args.max_keys_per_second)
    print(f"moved {stats.slots} slot(s), {stats.keys} key(s) in {stats.elapsed_s:.2f}s "
          f"({stats.migrate_calls} MIGRATE call(s))")
    after = preview_rebalance(targets.nodes, targets.access)
    if not after.nothing_to_do:
        print("NOT EVEN afterwards: " + "; ".join(after.lines()))
        return 1
    return 0
