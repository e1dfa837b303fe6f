"""Read the whole project config bag, so unknown (mistyped) keys can be reported.

pulumi.Config only answers for keys you already know; a typo such as `mastres` would be
silently ignored. The runtime keeps every key in one map (set by the engine, or by mocks).
"""

from typing import Any

from pulumi.runtime import config as runtime_config

from components.config_reader import PROJECT


def raw_project_config() -> dict[str, Any]:
    """Every `alphapulse-redis-cluster:<key>` value, keyed by <key>."""
    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    prefix = PROJECT + ":"
    return {key[len(prefix):]: value for key, value in merged.items() if key.startswith(prefix)}

