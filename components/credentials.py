"""Who talks to the nodes with which password, and the TLS state the provider reloads on.

Both targets: the admin user (the bootstrap and the operations), the exporter user (the
exporter and the probes), the nodes' auth.conf and users.acl, and the `tls` bag of the
cluster-forming provider. With `acl: false` every one of them is the cluster password.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from clusterops.provision.acl_users import FIXED_NAMES, render_users_acl
from components.redis_conf import render_acl_auth_conf, render_auth_conf
from components.spec import ClusterSpec
from components.tls_material import TlsMaterial


@dataclass(frozen=True)
class Credentials:
    """Who talks to the nodes with which password, and what the nodes' secret files hold."""

    admin_user: str | None  # None: the default user (no ACL users)
    admin_password: pulumi.Output[str]  # the bootstrap's, the handover's
    exporter_user: str | None
    exporter_password: pulumi.Output[str]  # the exporter's and the healthcheck's
    auth_conf: pulumi.Output[str]
    users_acl: pulumi.Output[str] | None = None
    replication_password: pulumi.Output[str] | None = None

    def _acl_parts(self) -> pulumi.Output[list[str]] | None:
        if self.users_acl is None or self.replication_password is None:
            return None
        return pulumi.Output.all(self.users_acl, self.replication_password)

    @property
    def bootstrap_acl(self) -> pulumi.Output[dict[str, str]] | None:
        """With ACL users: the users the nodes' users.acl holds and the replicas' credentials,
        which the bootstrap sets live (ACL SETUSER, CONFIG SET masterauth)."""
        parts = self._acl_parts()
        return parts.apply(lambda p: {"users_acl": p[0], "masteruser": FIXED_NAMES[
            "replication"], "masterauth": p[1]}) if parts is not None else None

    @property
    def digest(self) -> pulumi.Output[str] | None:
        """With ACL users: what changes when any user's password does (the handovers refuse a
        rolling replacement in the same run, see components/node_handover.py)."""
        parts = self._acl_parts()
        return pulumi.Output.secret(parts.apply(
            lambda p: hashlib.sha256("\n".join(p).encode()).hexdigest())
        ) if parts is not None else None


def cluster_credentials(spec: ClusterSpec, password: pulumi.Output[str],
                 acl_passwords: Mapping[str, pulumi.Input[str]] | None) -> Credentials:
    if not spec.acl:
        return Credentials(None, password, None, password, password.apply(render_auth_conf))
    if not acl_passwords or set(acl_passwords) != {"admin", "exporter", "replication"}:
        raise ValueError("acl: true needs the admin, exporter and replication passwords")
    secret = {role: pulumi.Output.secret(value) for role, value in acl_passwords.items()}
    users_acl = pulumi.Output.secret(pulumi.Output.all(app=password, **secret).apply(
        lambda passwords: render_users_acl(passwords, spec.acl_app_user, spec.acl_app_rules)))
    replication = FIXED_NAMES["replication"]
    return Credentials(
        FIXED_NAMES["admin"], secret["admin"], FIXED_NAMES["exporter"], secret["exporter"],
        secret["replication"].apply(lambda pw: render_acl_auth_conf(replication, pw)),
        users_acl, secret["replication"])


def tls_bag(tls: TlsMaterial) -> pulumi.Output[dict[str, str]]:
    """The provider's `tls` input: the CA bundle clients trust, and a token that changes with
    any certificate, so an update makes every node load its files again."""
    return pulumi.Output.all(tls.ca_bundle, tls.certs).apply(
        lambda parts: {"ca_bundle": parts[0], "token": hashlib.sha256(
            json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]})
