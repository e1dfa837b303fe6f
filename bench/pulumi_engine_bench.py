"""Wall-clock time of the real Pulumi commands on the dev stack, beside the engine's own floor.

Each repetition makes a fresh copy of the dev stack (own file backend, local images) and times:

- `pulumi up` of the fresh stack (network, 13 volumes, 7 containers healthy, secret files
  written, cluster formed and verified), previewing first as a user's `pulumi up` does;
- a no-op `pulumi preview` right after (the program runs, every resource is diffed);
- `pulumi destroy`.

Reference, measured in the same run: `pulumi preview` of an empty Python program with the same
CLI, language host and backend, the fixed cost of starting the engine and the program that
every command of ours pays too.

Usage: python bench/pulumi_engine_bench.py [--repetitions 3]
(needs scripts/install-pulumi.sh and a Docker engine; scripts/setup-test-env.sh)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from tests.support.deploy_fixtures import (  # noqa: E402
    local_image_config,
    purge_leftovers,
    stack_file_config,
)
from tests.support.pulumi_cli import PulumiStack, new_stack, pulumi_missing  # noqa: E402


def timed(action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def empty_program(root: Path) -> PulumiStack:
    workdir = root / "empty"
    workdir.mkdir()
    (workdir / "Pulumi.yaml").write_text(
        "name: empty\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n")
    (workdir / "__main__.py").write_text("import pulumi\n\npulumi.export('nothing', None)\n")
    (workdir / "venv").symlink_to(PROJECT_ROOT / "venv")
    (root / "empty-backend").mkdir()
    stack = PulumiStack("bench", workdir, root / "empty-backend")
    stack.run("stack", "init", "bench", "--secrets-provider", "passphrase")
    return stack


def summary(name: str, values: list[float]) -> str:
    return (f"{name:<34} median {statistics.median(values):6.2f} s   "
            f"min {min(values):6.2f}   max {max(values):6.2f}   (n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    if reason := pulumi_missing():
        print(reason, file=sys.stderr)
        return 2
    config = local_image_config()
    results: dict[str, list[float]] = {"up": [], "noop": [], "destroy": [], "floor": []}
    with tempfile.TemporaryDirectory() as tmp:
        floor = empty_program(Path(tmp))
        for rep in range(args.repetitions):
            purge_leftovers({**stack_file_config("dev"), **config}, "dev")
            stack = new_stack(Path(tmp) / f"rep{rep}", "dev", config)
            try:
                results["floor"].append(timed(lambda: floor.run("preview", "--stack", "bench")))
                results["up"].append(timed(lambda s=stack: s.run(
                    "up", "--stack", "dev", "--yes")))
                results["noop"].append(timed(lambda s=stack: s.run(
                    "preview", "--stack", "dev", "--expect-no-changes")))
            finally:
                results["destroy"].append(timed(lambda s=stack: s.destroy()))
            print(f"repetition {rep + 1}: up {results['up'][-1]:.2f} s, no-op preview "
                  f"{results['noop'][-1]:.2f} s, destroy {results['destroy'][-1]:.2f} s, "
                  f"empty-program preview {results['floor'][-1]:.2f} s", flush=True)
    print()
    print(summary("pulumi up (fresh dev stack)", results["up"]))
    print(summary("pulumi preview (no change)", results["noop"]))
    print(summary("pulumi destroy", results["destroy"]))
    print(summary("reference: empty-program preview", results["floor"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
