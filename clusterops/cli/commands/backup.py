"""``python -m clusterops backup``: back up every current master (clusterops.tasks.backup).

Exit code: 0 when every slot is in the backup and every file checked out; 1 otherwise (data
at risk); usage, target and authentication errors exit 2 (raised for the CLI).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clusterops.cli.commands import table
from clusterops.cli.targets import add_target_arguments, load_targets
from clusterops.core.errors import UsageError
from clusterops.core.model import HASH_SLOTS, format_ranges
from clusterops.tasks.backup import DEFAULT_TIMEOUT_S, run_backup


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--dest", type=Path, default=Path("backups"),
                        help="directory for a new timestamped backup folder [backups]")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help="give up on one node's snapshot after this long "
                        f"[{DEFAULT_TIMEOUT_S:g}]")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args: argparse.Namespace) -> int:
    targets = load_targets(args)
    try:
        folder, results = run_backup(targets, args.dest, args.timeout)
    except OSError as exc:  # the destination cannot be written
        raise UsageError(f"cannot write the backup under {args.dest}: {exc}") from None
    manifest = json.loads((folder / "manifest.json").read_text())
    if args.json:
        print(json.dumps({"folder": str(folder), **manifest}, indent=2))
    else:
        rows = [("NODE", "SLOTS", "RESULT")]
        rows += [(r.node, format_ranges(r.slots), f"FAILED: {r.error}" if r.error else
                  f"{r.bytes} bytes, {r.keys_before} keys, sha256 {r.sha256[:12]}, {r.seconds}s")
                 for r in results]
        print("\n".join(table(rows)))
        print(f"backup in {folder}: {manifest['slots_covered']} of {HASH_SLOTS} slots")
    complete = manifest["slots_covered"] == HASH_SLOTS and not any(r.error for r in results)
    return 0 if complete else 1
