"""Short-lived redis-py admin connections to one planned node.

One client per node per operation, created inside the function that uses it: nothing global, so
the library is safe to use from Pulumi's provider process (pickled providers) and from threads.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clusterops.model import NodeTarget

DEFAULT_SOCKET_TIMEOUT_S = 2.0
DEFAULT_CONNECT_TIMEOUT_S = 1.0


def admin_client(
    node: NodeTarget,
    password: str | None,
    socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> redis.Redis:
    """A client for ``node``'s admin address with short timeouts and no hidden retries.

    redis-py's default retry policy backs off for seconds on a refused connection; our callers
    poll against their own deadline, so every failure must surface at once.
    """
    return redis.Redis(
        host=node.admin_host,
        port=node.admin_port,
        password=password,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
        client_name="clusterops",
    )
