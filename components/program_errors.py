"""How the program ends on a config problem: the list of problems, and nothing else.

Pulumi's Python exec script (`pulumi-language-python-exec`, shipped in the SDK module) logs a
`pulumi.RunError` and exits 1; the language host then reports "program exited with non-zero
exit code: 1" and the CLI adds "an unhandled error occurred". Exit code 32 is the exec script's
own signal that the program already showed the user an actionable message: the host then asks
the engine to bail quietly, and `pulumi preview`/`up` print only our error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pulumi

from components.spec import ConfigError

# PYTHON_PROCESS_EXITED_AFTER_SHOWING_USER_ACTIONABLE_MESSAGE_CODE in the exec script, and
# pythonProcessExitedAfterShowingUserActionableMessage in the language host.
USER_ACTIONABLE_EXIT_CODE = 32


@contextmanager
def config_problems_reported() -> Iterator[None]:
    """Turn a ConfigError raised inside into one error diagnostic and a quiet exit."""
    try:
        yield
    except ConfigError as error:
        pulumi.log.error(str(error))
        raise SystemExit(USER_ACTIONABLE_EXIT_CODE) from None
