"""How this process reaches the cluster: one object, made once per command or provider call.

A :class:`clusterops.core.model.NodeTarget` says where a node is and how to talk to it (the address
this process reaches, the user, the CA its certificate is signed by): plain facts, serialized
into provider inputs and stack outputs. :class:`Access` adds what is secret or local to this
process (the password, the timeouts) and is the one place redis-py clients are made from the
two, so no path can forget the TLS options, the ACL user or the redaction of the password in an
error. Functions take an ``Access``, never a bare password.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import redis

from clusterops.core.errors import redact
from clusterops.core.model import NodeTarget
from clusterops.node.connection import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_SOCKET_TIMEOUT_S,
    no_retry_client,
    tls_options,
)

# MIGRATE of a large batch and a slot's COUNTKEYSINSLOT may take seconds on a loaded node.
DATA_SOCKET_TIMEOUT_S = 30.0
DATA_CONNECT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Access:
    """The password of the nodes' user (None: no AUTH) and this process's timeouts."""

    password: str | None = field(repr=False)
    socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S

    def with_password(self, password: str | None) -> Access:
        """The same access with another password (a rotation's old and new ones)."""
        return replace(self, password=password)

    def client(self, node: NodeTarget, socket_timeout_s: float | None = None,
               connect_timeout_s: float | None = None, **options: object) -> redis.Redis:
        """An admin client (text replies, no hidden retries) as the node's user."""
        return no_retry_client(
            node.host, node.port, self.password,
            self.socket_timeout_s if socket_timeout_s is None else socket_timeout_s,
            self.connect_timeout_s if connect_timeout_s is None else connect_timeout_s,
            node.tls_ca, node.username, **options)

    def data_client(self, node: NodeTarget, client_name: str = "clusterops-migrate"
                    ) -> redis.Redis:
        """A binary-safe client (keys are bytes) with a long socket timeout, for MIGRATE."""
        options: dict[str, Any] = tls_options(node.tls_ca)
        return redis.Redis(host=node.host, port=node.port, username=node.username,
                           password=self.password, socket_timeout=DATA_SOCKET_TIMEOUT_S,
                           socket_connect_timeout=DATA_CONNECT_TIMEOUT_S,
                           decode_responses=False, client_name=client_name, **options)

    def migrate_auth(self, node: NodeTarget) -> tuple[Any, ...]:
        """MIGRATE's credentials for ``node``: AUTH2 names the ACL user (the admin user with
        acl: true), plain AUTH is the default user's password."""
        if not self.password:
            return ()
        return ("AUTH2", node.username, self.password) if node.username \
            else ("AUTH", self.password)

    def redact(self, text: str) -> str:
        """``text`` with the password replaced, for errors and logs."""
        return redact(text, self.password)
