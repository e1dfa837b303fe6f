"""Security settings both targets read: TLS on every link and ACL users.

Prod stacks default to both on. Each reader returns a frozen value; problems go to the
ConfigReader.
"""

from __future__ import annotations

from dataclasses import dataclass

from clusterops.provision.acl_users import (
    DEFAULT_APP_RULES,
    DEFAULT_APP_USER,
    app_rules_problems,
    app_user_problems,
)
from components.config_reader import PROJECT, ConfigReader
from components.node_settings import ACL_PASSWORD_KEYS
from components.tls_material import supplied_ca_problems


@dataclass(frozen=True)
class TlsSettings:
    """TLS on every link (components/tls_material.py makes the CA and node certificates)."""

    tls: bool = False
    tls_cert_days: int = 365
    tls_generation: int = 1
    tls_ca_cert: str | None = None  # the operator's CA chain (tlsCaCert); its key is a secret


def read_tls(reader: ConfigReader, prod: bool) -> TlsSettings:
    # Prod stacks default to TLS on: their data and password never cross a network in
    # clear text; dev stays plaintext for easy redis-cli debugging.
    tls = reader.boolean("tls", prod)
    cert_days = reader.integer(
        "tlsCertDays", 365, 2 * 30 + 1, 3650,
        "use 365 (renewed by any pulumi up in the last 30 days); at least 61")
    return TlsSettings(
        tls=tls,
        tls_cert_days=cert_days,
        tls_generation=reader.integer(
            "tlsGeneration", 1, 1, 1_000_000, "use 1, and add 1 to replace the CA"),
        tls_ca_cert=_supplied_ca(reader, tls, cert_days),
    )


def _supplied_ca(reader: ConfigReader, tls: bool, cert_days: int) -> str | None:
    """tlsCaCert and tlsCaKey: both or neither, only with tls, and a CA that can sign the node
    certificates for tlsCertDays (the key is judged here, and never kept in the spec)."""
    chain, key = reader.verbatim("tlsCaCert") or None, reader.verbatim("tlsCaKey") or None
    if chain is None and key is None:
        return None
    if chain is None or key is None:
        given, missing = ("tlsCaCert", "tlsCaKey") if chain else ("tlsCaKey", "tlsCaCert")
        reader.fail(missing, f"is needed with {given}. Fix: set both (`pulumi config set "
                    f"{PROJECT}:tlsCaCert -- \"$(cat ca-chain.pem)\"` and `pulumi config set "
                    f"--secret {PROJECT}:tlsCaKey -- \"$(cat ca.key)\"`), or neither")
        return None
    if not tls:
        reader.fail("tlsCaCert", "only applies with TLS. Fix: set tls to true, or remove "
                    "tlsCaCert and tlsCaKey")
        return None
    for problem in supplied_ca_problems(chain, key, cert_days):
        on_key = problem.startswith("tlsCaKey ")
        reader.fail("tlsCaKey" if on_key else "tlsCaCert", problem.removeprefix("tlsCaKey "))
    return chain


@dataclass(frozen=True)
class AclSettings:
    """ACL users (clusterops/provision/acl_users.py): admin, app, exporter, replication;
    default off."""

    acl: bool = False
    acl_app_user: str = DEFAULT_APP_USER
    acl_app_rules: str = DEFAULT_APP_RULES


def read_acl(reader: ConfigReader, prod: bool) -> AclSettings:
    """ACL users: on by default in prod stacks, like TLS (one password must not open CONFIG,
    FLUSHALL and CLUSTER RESET to the application)."""
    acl = AclSettings(
        acl=reader.boolean("acl", prod),
        acl_app_user=reader.text("aclAppUser", DEFAULT_APP_USER),
        acl_app_rules=" ".join(reader.text("aclAppRules", DEFAULT_APP_RULES).split()),
    )
    for problem in app_user_problems(acl.acl_app_user):
        reader.fail("aclAppUser", problem)
    for problem in app_rules_problems(acl.acl_app_rules):
        reader.fail("aclAppRules", problem)
    if not acl.acl:
        for key in ("aclAppUser", "aclAppRules", *ACL_PASSWORD_KEYS.values()):
            if reader.verbatim(key) is not None:
                reader.fail(key, "only applies with ACL users. Fix: set acl to true, or remove "
                            "it")
    return acl
