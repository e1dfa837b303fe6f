"""``python -m clusterops fix``: finish open slots and serve unserved ones (clusterops.fix).

Dry run by default: prints what it would do. ``--apply`` does it. Exit code: 0 nothing (left)
to fix; 1 something to fix (dry run) or left unfixed; 2 usage, target and authentication
errors (raised for the CLI).
"""

from __future__ import annotations

import argparse

from clusterops.commands import add_dry_run_arguments, progress_to_stderr
from clusterops.fix import apply_fix, preview_fix
from clusterops.targets import load_targets

DEFAULT_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dry_run_arguments(parser, "do it (default: print what would be done)", DEFAULT_TIMEOUT_S,
                          "wait this long for the cluster to settle")


def run(args: argparse.Namespace) -> int:
    targets = load_targets(args)
    plan = preview_fix(targets.nodes, targets.password)
    for line in plan.lines():
        print(line)
    if not args.apply:
        if not plan.nothing_to_do:
            print("dry run: nothing changed; run again with --apply to fix")
        return 0 if plan.nothing_to_do and not plan.problems else 1
    if plan.nothing_to_do:
        return 0 if not plan.problems else 1
    after = apply_fix(targets.nodes, targets.password, args.timeout,
                      progress=progress_to_stderr)
    print("after fix: " + "; ".join(after.lines()))
    return 0 if after.nothing_to_do and not after.problems else 1
