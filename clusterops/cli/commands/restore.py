"""``python -m clusterops restore``: load a backup into a cluster of any shape
(clusterops.tasks.restore).

Exit code: 0 restored and verified; 1 the backup is damaged or incomplete, the target is not
ready, or it differs from the backup afterwards; 2 usage, target and authentication errors,
including a target that already holds keys without --merge (raised for the CLI).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from clusterops.cli.commands import progress_to_stderr
from clusterops.cli.targets import add_target_arguments, load_targets
from clusterops.core.errors import UsageError
from clusterops.tasks.restore import READY_TIMEOUT_S, run_restore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR",
                        help="a backup folder written by `python -m clusterops backup`")
    parser.add_argument("--merge", action="store_true",
                        help="restore into a cluster that already holds keys")
    parser.add_argument("--replace", action="store_true",
                        help="with --merge: the backup's value wins a conflict "
                        "(default: the target's value is kept)")
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT_S, metavar="S",
                        help="wait this long for the target's cluster_state:ok "
                        f"[{READY_TIMEOUT_S:g}]")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    if args.replace and not args.merge:
        raise UsageError("--replace only applies with --merge (an empty target has no "
                         "conflicts)")
    targets = load_targets(args)
    report = run_restore(args.source, targets, merge=args.merge, replace=args.replace,
                         ready_timeout_s=args.ready_timeout,
                         progress=progress_to_stderr)
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    else:
        print(f"restored {report.keys_moved} of {report.keys_in_backup} keys from "
              f"{report.files} file(s) in {report.seconds}s ({report.keys_per_second:,.0f} "
              f"keys/s); verified {report.verified_keys} keys: {report.missing} missing, "
              f"{report.different} different, {report.slot_count_mismatches} slot count "
              f"mismatches; digest backup {report.backup_digest[:16]} target "
              f"{report.target_digest[:16]}")
        for example in report.examples:
            print(f"  e.g. {example}")
        for problem in report.problems:
            print(f"FAILED: {problem}")
    return 0 if report.ok else 1
