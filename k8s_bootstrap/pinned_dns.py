"""Names this process resolves to addresses it was given, instead of asking DNS.

Why: right after a pod is replaced, cluster DNS can still answer with its old IP for a while
(caches, endpoint lag), and the Kubernetes API already knows the new one. Connecting to the
IP directly would lose the name, and with TLS the client checks the node's certificate against
the name it connected to (redis-py's ssl_check_hostname): the certificate names the pods' DNS
names, never their IPs, which change with every pod. So the connection keeps the name and only
the lookup is answered here. Every other name goes to the system resolver as usual.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

_system_getaddrinfo = socket.getaddrinfo


@contextmanager
def pinned(addresses: Mapping[str, str]) -> Iterator[None]:
    """Within the block, ``socket.getaddrinfo(name, ...)`` for a name in ``addresses`` looks up
    its pinned IP instead (an IP literal: no DNS query)."""
    known = {name.rstrip(".").lower(): ip for name, ip in addresses.items()}

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, (bytes, bytearray)):
            host = host.decode()
        key = host.rstrip(".").lower() if isinstance(host, str) else host
        return _system_getaddrinfo(known.get(key, host), *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = _system_getaddrinfo
