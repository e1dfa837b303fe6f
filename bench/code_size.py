"""How big clusterops/ is, in code lines, at several git revisions (issue 15's size goal).

Code lines are counted with Python's tokenizer: a line counts when a token other than a
comment stands on it, and docstrings do not count (they are prose). Physical lines are shown
beside them. Two scopes per revision:

- ``package``: every ``clusterops/**/*.py`` at that revision;
- ``core``: the modules of the issue's scope, i.e. those present when it was filed
  (``--filing-rev``) or at the tip of the consolidation branch (``--core-rev``: the modules the
  consolidation split out). Modules added later for later features (scaling, restore, the
  repair commands, ...) are left out, so the filing revision and today compare like with like.

    python bench/code_size.py                      # filing, consolidation tip, HEAD
    python bench/code_size.py 39dfc88 HEAD --per-module

The first revision is the reference; each row shows its change against it.
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import sys
import tokenize
from dataclasses import dataclass

FILING_REV = "39dfc88"  # clusterops/ when issue 15 was filed
CORE_REV = "049820f^2"  # the clusterops-core branch as merged: the consolidation, no features
PACKAGE = "clusterops"
SKIPPED_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                  tokenize.DEDENT, tokenize.ENDMARKER}


@dataclass(frozen=True)
class Size:
    code: int
    physical: int

    def __add__(self, other: Size) -> Size:
        return Size(self.code + other.code, self.physical + other.physical)


def docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def measure(source: str) -> Size:
    """Code lines (no comments, docstrings or blank lines) and physical lines of one module."""
    prose = docstring_lines(ast.parse(source))
    code: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in SKIPPED_TOKENS:
            code.update(line for line in range(token.start[0], token.end[0] + 1)
                        if line not in prose)
    return Size(len(code), len(source.splitlines()))


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def modules_at(rev: str) -> list[str]:
    listed = git("ls-tree", "-r", "--name-only", rev, "--", PACKAGE).split()
    return [path for path in listed if path.endswith(".py")]


def sizes_at(rev: str) -> dict[str, Size]:
    return {path: measure(git("show", f"{rev}:{path}")) for path in modules_at(rev)}


def total(sizes: dict[str, Size], only: set[str] | None = None) -> Size:
    picked = [size for path, size in sizes.items() if only is None or path in only]
    return sum(picked, Size(0, 0))


def change(now: int, reference: int) -> str:
    return f"{(now - reference) / reference:+.1%}" if reference else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revs", nargs="*", default=[FILING_REV, CORE_REV, "HEAD"],
                        help="revisions; the first is the reference [filing, core tip, HEAD]")
    parser.add_argument("--filing-rev", default=FILING_REV,
                        help="the core: the modules present at this revision ... [%(default)s]")
    parser.add_argument("--core-rev", default=CORE_REV,
                        help="... and at this one [%(default)s]")
    parser.add_argument("--per-module", action="store_true",
                        help="also list every module of the last revision against the first")
    args = parser.parse_args(argv)

    core = set(modules_at(args.filing_rev)) | set(modules_at(args.core_rev))
    measured = {rev: sizes_at(rev) for rev in args.revs}
    reference = measured[args.revs[0]]
    ref_package, ref_core = total(reference), total(reference, core)
    print(f"{'revision':<12} {'package code':>12} {'(lines)':>8} {'vs ref':>7}   "
          f"{'core code':>9} {'(lines)':>8} {'vs ref':>7}")
    for rev, sizes in measured.items():
        package, in_core = total(sizes), total(sizes, core)
        print(f"{rev:<12} {package.code:>12} {package.physical:>8} "
              f"{change(package.code, ref_package.code):>7}   {in_core.code:>9} "
              f"{in_core.physical:>8} {change(in_core.code, ref_core.code):>7}")
    print(f"core: the {len(core)} modules present at {args.filing_rev} or {args.core_rev}")
    if args.per_module:
        last = measured[args.revs[-1]]
        print(f"\n{'module':<40} {args.revs[0]:>10} {args.revs[-1]:>10}")
        for path in sorted(set(reference) | set(last)):
            before = reference[path].code if path in reference else "-"
            after = last[path].code if path in last else "-"
            mark = "" if path in core else "  (not core)"
            print(f"{path:<40} {before!s:>10} {after!s:>10}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
