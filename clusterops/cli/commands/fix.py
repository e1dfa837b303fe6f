"""``python -m clusterops fix``: finish open slots and serve unserved ones (clusterops.repair.fix).

Dry run by default: prints what it would do. ``--apply`` does it. Exit code: 0 nothing (left)
to fix; 1 something to fix (dry run) or left unfixed; 2 usage, target and authentication
errors (raised for the CLI).
"""

from __future__ import annotations

import argparse
import functools

from clusterops.cli.commands import add_dry_run_arguments, add_pacing_argument, run_plan_then_apply
from clusterops.repair.fix import apply_fix, preview_fix

DEFAULT_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dry_run_arguments(parser, "do it (default: print what would be done)", DEFAULT_TIMEOUT_S,
                          "wait this long for the cluster to settle")
    add_pacing_argument(parser)


def run(args: argparse.Namespace) -> int:
    apply = functools.partial(apply_fix, max_keys_per_second=args.max_keys_per_second)
    return run_plan_then_apply(args, preview_fix, apply, "fix", "fix")
