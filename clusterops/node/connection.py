"""Short-lived redis-py admin connections to one planned node.

One client per node per operation, created inside the function that uses it: nothing global, so
the library is safe to use from Pulumi's provider process (pickled providers) and from threads.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

DEFAULT_SOCKET_TIMEOUT_S = 2.0
DEFAULT_CONNECT_TIMEOUT_S = 1.0
# How Redis refuses CONFIG REWRITE on a node started without a config file (config.c).
NO_CONFIG_FILE = "without a config file"


def tls_options(tls_ca: str | None) -> dict[str, object]:
    """redis-py options for a node that speaks only TLS: trust the cluster's CA and check that
    the certificate names the address we connect to. {} for plaintext."""
    if not tls_ca:
        return {}
    return {"ssl": True, "ssl_ca_data": tls_ca, "ssl_check_hostname": True,
            "ssl_cert_reqs": "required"}


def no_retry_client(
    host: str,
    port: int,
    password: str | None,
    socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    tls_ca: str | None = None,
    username: str | None = None,
    **options: object,
) -> redis.Redis:
    """A client with short timeouts and no hidden retries, for every clusterops command.

    redis-py's default retry policy backs off for seconds on a refused connection; our callers
    poll against their own deadline or report a dead node, so every failure must surface at
    once. ``options`` go to redis-py (e.g. ``protocol=2``).
    """
    return redis.Redis(
        host=host,
        port=port,
        username=username,
        password=password,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
        client_name="clusterops",
        **tls_options(tls_ca),  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def persist_config(conn: redis.Redis) -> bool:
    """CONFIG REWRITE: persist the live settings into the node's config file, so a restart keeps
    them. False when the node runs without a config file (there is nothing to persist into);
    any other refusal (e.g. a file Redis may not write) raises."""
    try:
        conn.execute_command("CONFIG", "REWRITE")
    except redis.ResponseError as exc:
        if NO_CONFIG_FILE in str(exc):
            return False
        raise
    return True
