"""``python -m clusterops failback``: the planned masters take their shards back
(clusterops.repair.failback).

Dry run by default; ``--apply`` issues CLUSTER FAILOVER on each planned master that is a
replica now. Exit code: 0 every planned master is a master (afterwards, with --apply); 1 some
are not (dry run: there is work to do) or a shard cannot be handed back; 2 usage, target and
authentication errors (raised for the CLI).
"""

from __future__ import annotations

import argparse

from clusterops.cli.commands import add_dry_run_arguments, run_plan_then_apply
from clusterops.repair.failback import apply_failback, preview_failback

DEFAULT_TIMEOUT_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dry_run_arguments(parser, "do it (default: print what would be done)", DEFAULT_TIMEOUT_S,
                          "per shard: wait this long for the sync and the switch")


def run(args: argparse.Namespace) -> int:
    return run_plan_then_apply(args, preview_failback, apply_failback, "fail back", "failback")
