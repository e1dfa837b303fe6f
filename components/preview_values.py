"""What a dynamic provider's check/diff may receive during a preview: values not known yet.

The engine passes an input it cannot compute before `up` (a generated password, a name from a
resource not created yet) as an unknown, possibly nested inside a secret, a map or a list.
Providers must decide nothing from such a value; this is the one test for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import rpc


def contains_unknown(value: Any) -> bool:
    if isinstance(value, Unknown) or value == rpc.UNKNOWN:
        return True
    if rpc.is_rpc_secret(value):
        return contains_unknown(rpc.unwrap_rpc_secret(value))
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_unknown(v) for v in value)
    return False
