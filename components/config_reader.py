"""ConfigReader: reads raw stack config values, recording a problem instead of raising.

Every settings function (components/node_settings.py, docker_settings.py, k8s_settings.py,
hosts.py) reads the raw config through one reader and returns a frozen value; the reader only
collects problems, so all of them are reported at once (components.spec.ConfigError).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clusterops.core.units import parse_memory

PROJECT = "alphapulse-redis-cluster"


class ConfigReader:
    """Parses raw config strings, recording a problem instead of raising on the first one."""

    def __init__(self, raw: Mapping[str, Any]):
        self.raw = raw  # key -> value as the engine (text) or mocks (any type) give it
        self.problems: list[str] = []

    def fail(self, key: str, problem: str) -> None:
        self.problems.append(f"{PROJECT}:{key}: {problem}")

    def given(self, key: str) -> bool:
        """Whether the stack sets `key` at all (even to an empty value)."""
        return key in self.raw

    def set_keys(self) -> list[str]:
        """Every key the stack sets, sorted."""
        return sorted(self.raw)

    def verbatim(self, key: str) -> str | None:
        """The value as text, not stripped (secrets, PEM); None when unset."""
        value = self.raw.get(key)
        return None if value is None else str(value)

    def text(self, key: str, default: str) -> str:
        value = self.raw.get(key)
        return default if value is None else str(value).strip()

    def integer(self, key: str, default: int, low: int, high: int, fix: str) -> int:
        value = self.raw.get(key)
        if value is None:
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            self.fail(key, f"{value!r} is not a whole number. Fix: {fix}")
            return default
        if not low <= number <= high:
            self.fail(key, f"{number} is out of range {low}..{high}. Fix: {fix}")
            return default  # so one bad value does not cascade into other keys' checks
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        self.fail(key, f"{value!r} is not a boolean. Fix: set it to true or false")
        return default

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.fail(key, f"{value!r} is not one of {', '.join(choices)}. Fix: pick one of them")
        return value

    def memory(self, key: str, default: str) -> int:
        value = self.text(key, default)
        try:
            return parse_memory(value)
        except ValueError:
            self.fail(key, f"{value!r} is not a Redis memory size. Fix: use a whole number with "
                      "an optional unit b, k, kb, m, mb, g or gb, e.g. 512mb or 1gb")
            return parse_memory(default)
