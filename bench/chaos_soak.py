"""Chaos soak: random faults for a set time under checked workloads, on a stack `pulumi up`
deploys here (issue 29; the results are in docs/chaos.md).

Two topologies: ``single`` (the dev stack on the local Docker engine) and ``hosts`` (three
Docker engines in network namespaces, TLS and ACL users, one `pulumi up` over them). Clients
run a set workload (unique elements, SET + WAIT 1, all read back at the end) and a register
workload (rising versions, read all along); a nemesis picks faults at random from ``--seed``
(printed, so a run can be replayed), undoes each itself and waits for the cluster to heal by
itself, never repairing it (tests/support/soak/). The checker then reports acknowledged writes
lost (goal 0), unacknowledged writes lost and failed writes that appeared (Redis allows both),
stale reads (allowed, counted), availability, and per fault kind the heal time and the longest
unavailable window against its goal (node-timeout + 2 s; for a master cut off with its replica,
plus the cut's length).

    python bench/chaos_soak.py --topology single --minutes 30 [--seed N] [--json-out F]
    python bench/chaos_soak.py --topology hosts --minutes 30
    python bench/chaos_soak.py --topology single --minutes 3 --kinds kill_master,pause_replica

Exit status 1 when any goal was missed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from tests.support.soak.nemesis import KINDS  # noqa: E402
from tests.support.soak.report import print_report  # noqa: E402
from tests.support.soak.runner import SoakSettings, run_soak  # noqa: E402
from tests.support.soak.topologies import several_hosts, single_host  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", choices=("single", "hosts"), default="single")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    parser.add_argument("--kinds", default="",
                        help=f"comma-separated fault kinds (default: all the topology can run; "
                             f"known: {', '.join(KINDS)})")
    parser.add_argument("--no-pulumi", action="store_true",
                        help="no `pulumi up` faults (deploy only)")
    parser.add_argument("--json-out", type=Path, help="write the whole report here")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"--kinds: unknown {unknown}; known: {', '.join(KINDS)}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 31)
    settings = SoakSettings(seconds=args.minutes * 60, seed=seed, kinds=kinds or None)
    deploy = single_host if args.topology == "single" else several_hosts
    with tempfile.TemporaryDirectory(prefix="chaos-soak-") as workdir, \
            deploy(Path(workdir), with_pulumi=not args.no_pulumi) as target:
        result = run_soak(target, settings, log=lambda line: print(line, flush=True))
    report = {"topology": args.topology, **result.as_dict()}
    print_report(report)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
