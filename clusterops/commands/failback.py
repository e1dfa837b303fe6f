"""``python -m clusterops failback``: the planned masters take their shards back
(clusterops.failback).

Dry run by default; ``--apply`` issues CLUSTER FAILOVER on each planned master that is a
replica now. Exit code: 0 every planned master is a master (afterwards, with --apply); 1 some
are not (dry run: there is work to do) or a shard cannot be handed back; 2 usage, target and
authentication errors (raised for the CLI).
"""

from __future__ import annotations

import argparse

from clusterops.commands import add_dry_run_arguments, progress_to_stderr
from clusterops.failback import apply_failback, preview_failback
from clusterops.targets import load_targets

DEFAULT_TIMEOUT_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dry_run_arguments(parser, "do it (default: print what would be done)", DEFAULT_TIMEOUT_S,
                          "per shard: wait this long for the sync and the switch")


def run(args: argparse.Namespace) -> int:
    targets = load_targets(args)
    plan = preview_failback(targets.nodes, targets.password)
    for line in plan.lines():
        print(line)
    if not args.apply or plan.nothing_to_do:
        if not args.apply and not plan.nothing_to_do:
            print("dry run: nothing changed; run again with --apply to fail back")
        return 0 if plan.nothing_to_do and not plan.problems else 1
    after = apply_failback(targets.nodes, targets.password, args.timeout,
                           progress=progress_to_stderr)
    print("after failback: " + "; ".join(after.lines()))
    return 0 if after.nothing_to_do and not after.problems else 1
