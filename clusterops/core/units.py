"""Redis memory units, parsed exactly as redis.conf reads them (src/util.c memtoull)."""

import re

# redis.conf: "1k => 1000 bytes, 1kb => 1024 bytes, 1m => 1000000, 1mb => 1024*1024, 1g, 1gb".
_MULTIPLIERS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}
_PATTERN = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


def parse_memory(text: str) -> int:
    """Return the byte count of a Redis memory string like '512mb' or '1gb'.

    Raises ValueError naming the accepted units when the text is not one.
    """
    match = _PATTERN.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _MULTIPLIERS:
        raise ValueError(
            f"{text!r} is not a Redis memory size; use a whole number with an optional unit "
            "b, k, kb, m, mb, g or gb (for example 512mb or 1gb)"
        )
    return int(match.group(1)) * _MULTIPLIERS[unit]


def format_memory(num_bytes: int) -> str:
    """The shortest exact Redis spelling of a byte count (for redis.conf and messages)."""
    for unit in ("gb", "mb", "kb"):
        size = _MULTIPLIERS[unit]
        if num_bytes % size == 0 and num_bytes >= size:
            return f"{num_bytes // size}{unit}"
    return str(num_bytes)


def format_bytes(value: float) -> str:
    """A byte count for people (B, KiB, MiB, GiB)."""
    if abs(value) < 1024:
        return f"{value:.0f} B"
    for unit in ("KiB", "MiB"):
        value /= 1024
        if abs(value) < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} GiB"
