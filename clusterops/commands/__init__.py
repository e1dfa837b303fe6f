"""The operator commands' front ends: options, rendering and exit codes (the CLI dispatches).

Each module provides ``add_arguments(parser)`` and ``run(args) -> int``; the library work
lives in clusterops proper. Errors are raised, never printed here: clusterops.cli prints them.
"""

from __future__ import annotations

from collections.abc import Sequence


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as columns two spaces apart; the last column is not padded (it may be long)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        .rstrip()
        for row in rows
    ]
