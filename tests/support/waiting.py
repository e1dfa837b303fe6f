"""The tests' way to wait: clusterops' polling helper, failing the test with what it saw last.

Every tier uses these (integration, e2e, support code that fails a test), so no test writes its
own deadline loop, and every timeout says what it was waiting for and what it saw instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
import redis

from clusterops.core.poll import Deadline, poll

T = TypeVar("T")

# What a probe may raise while the thing it waits for is on its way (a node restarting, an
# HTTP endpoint not up yet): remembered as "last seen", never a test error on its own.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError, ValueError,
                                                     KeyError)


def wait_until(
    what: str, probe: Callable[[], tuple[bool, T]], timeout_s: float = 15.0,
    interval_s: float = 0.05,
) -> T:
    """Poll ``probe`` (returns ``(done, what it saw)``) until done; fail the test with the last
    thing seen when ``timeout_s`` passes. Returns what the probe saw when it was done."""

    def guarded() -> tuple[bool, object]:
        try:
            return probe()
        except TRANSIENT_ERRORS as exc:
            return False, f"{type(exc).__name__}: {exc}"

    done, seen = poll(guarded, Deadline.after(timeout_s), interval_s)
    if not done:
        pytest.fail(f"timed out after {timeout_s}s waiting for {what}; last seen: {seen!r}")
    return seen  # type: ignore[return-value]


def wait_for(
    what: str, probe: Callable[[], object], timeout_s: float = 15.0, interval_s: float = 0.05
) -> object:
    """Poll ``probe`` until it returns a truthy value, and return that value (see
    :func:`wait_until`)."""

    def truthy() -> tuple[bool, object]:
        value = probe()
        return bool(value), value

    return wait_until(what, truthy, timeout_s, interval_s)
