"""TLS material for the cluster: a private CA and one certificate per node, made by the deploy.

A Pulumi dynamic resource (like GeneratedPassword) built on the `cryptography` library, instead
of a pulumi-tls plugin to build and ship. Keys are made in the provider's `create`/`update`
and kept only as secrets (state, outputs); the preview shows them as unknown.

- The CA (ECDSA P-256, 10 years) is made once and kept; `generation` makes a new one. Or the
  operator supplies it (`tlsCaCert` and the secret `tlsCaKey`: the organisation's own CA, e.g.
  an intermediate with its chain up to the root): the nodes' certificates are signed with it,
  every certificate of that chain is trusted, and supplying a different CA rotates like a new
  generation (the previous CA stays trusted during the switch).
- Each node's certificate (ECDSA P-256, `certDays`, default 365) names every address a
  client may use for that node: its name, its container IP, its host's address, 127.0.0.1 and
  localhost (the published ports). It is server and client certificate in one: Redis presents
  it on the cluster bus and to replicas' masters too.
- A preview re-issues (keeping the CA) a certificate whose names changed or that expires within
  RENEW_BEFORE_DAYS, so a regular `pulumi up` keeps them fresh; the nodes reload their files
  with CONFIG SET (no restart).
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pulumi import dynamic
from pulumi.runtime import rpc

CA_DAYS = 3650
DEFAULT_CERT_DAYS = 365
RENEW_BEFORE_DAYS = 30


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_ca(common_name: str, days: int = CA_DAYS) -> tuple[str, str]:
    """(key PEM, certificate PEM) of a new self-signed CA.

    Each CA gets a name of its own (a random suffix) and a key identifier: during a rotation
    nodes trust the new and the previous CA at once, and OpenSSL looks an issuer up by name
    (then by key identifier). Two CAs of one name and no identifiers made it pick the wrong
    one, and a node still serving the previous certificate failed verification (seen on
    Kubernetes, where each pod reloads when its kubelet updates the files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"{common_name} {secrets.token_hex(4)}")])
    now = _now()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), _cert_pem(cert)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def issue(ca_key_pem: str, ca_cert_pem: str, common_name: str, names: Sequence[str],
          days: int = DEFAULT_CERT_DAYS) -> tuple[str, str]:
    """(key PEM, certificate PEM) for a node, signed by the CA, valid for `names`."""
    ca_key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_san(names), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return _key_pem(key), _cert_pem(cert)


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The issuing CA's key identifier (its own extension when it has one: an operator's CA)."""
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key())  # type: ignore[arg-type]


def expires(cert_pem: str) -> datetime.datetime:
    return x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc


def cert_names(cert_pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted([str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
                  + san.get_values_for_type(x509.DNSName))


def _certificates(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def supplied_ca_problems(chain_pem: str, key_pem: str, cert_days: int) -> list[str]:
    """Why an operator's CA could not sign the nodes' certificates (empty when it can).

    ``chain_pem``: the signing CA's certificate first, then each issuer up to a self-signed
    root (Redis and clients trust every one of them, and OpenSSL needs the whole chain).
    ``key_pem``: the signing CA's private key, unencrypted PEM. No message quotes the key."""
    try:
        chain = _certificates(chain_pem)
    except ValueError as err:
        return [f"is not PEM certificates ({err}). Fix: paste the PEM text, -----BEGIN "
                "CERTIFICATE----- included"]
    if not chain:
        return ["holds no certificate. Fix: paste the PEM text, -----BEGIN CERTIFICATE----- "
                "included"]
    found = []
    signer = chain[0]
    for depth, cert in enumerate(chain):
        constraints = _ca_constraints(cert)
        if constraints is None or not constraints.ca:
            which = "its first certificate" if depth == 0 else "a certificate of the chain"
            found.append(f"{which} ({cert.subject.rfc4514_string()}) is not a CA "
                         "(basicConstraints CA:TRUE). Fix: give the signing CA first, then "
                         "its issuers")
        # `depth` CAs sit between this one and a node certificate (OpenSSL checks it).
        elif constraints.path_length is not None and constraints.path_length < depth:
            found.append(f"{cert.subject.rfc4514_string()} allows no CA below it "
                         f"(pathlen:{constraints.path_length}). Fix: sign the nodes with a CA "
                         "that may issue end-entity certificates here")
    for cert, issuer in zip(chain, chain[1:] + chain[-1:], strict=True):
        try:
            cert.verify_directly_issued_by(issuer)
        except Exception:  # noqa: BLE001 (InvalidSignature and ValueError have no common base)
            what = "is not self-signed" if cert is chain[-1] else "is not issued by the next one"
            found.append(f"{cert.subject.rfc4514_string()} {what}. Fix: give the chain in "
                         "order, from the signing CA up to its self-signed root")
            break
    needed = _now() + datetime.timedelta(days=cert_days)
    for cert in chain:
        if cert.not_valid_after_utc < needed:
            found.append(f"{cert.subject.rfc4514_string()} expires on "
                         f"{cert.not_valid_after_utc:%Y-%m-%d}, before node certificates of "
                         f"tlsCertDays {cert_days} would. Fix: renew that CA, or lower "
                         "tlsCertDays")
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as err:
        return [*found, f"tlsCaKey is not an unencrypted PEM private key ({err}). Fix: "
                "decrypt it (e.g. `openssl pkey -in ca.key`)"]
    if _public(key.public_key()) != _public(signer.public_key()):
        found.append("tlsCaKey is not the key of the first certificate of tlsCaCert. "
                     "Fix: give the signing CA's own key")
    return found


def _ca_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _public(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def problems(ca_cert_pem: str, cert_pem: str, key_pem: str) -> list[str]:
    """Why a certificate would not work (expired, not signed by the CA, key mismatch)."""
    found = []
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    ca = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    if cert.not_valid_after_utc <= _now():
        found.append(f"expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception) as err:  # InvalidSignature has no common base
        found.append(f"not signed by the cluster CA ({type(err).__name__})")
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if _public(key.public_key()) != _public(cert.public_key()):
        found.append("its key does not match the certificate")
    return found


# --------------------------------------------------------------------------- the resource


def _plain(value: Any) -> Any:
    return rpc.unwrap_rpc_secret(value)


def _needs_new_cert(names: Sequence[str], cert_pem: str | None) -> bool:
    if not cert_pem:
        return True
    if cert_names(cert_pem) != sorted(names):
        return True
    return expires(cert_pem) - _now() < datetime.timedelta(days=RENEW_BEFORE_DAYS)


class TlsMaterialProvider(dynamic.ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        failures = []
        nodes = news.get("nodes")
        if not isinstance(nodes, Mapping) or not nodes:
            failures.append(dynamic.CheckFailure("nodes", "no nodes to make certificates for"))
        return dynamic.CheckResult(dict(news), failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [key for key in ("generation", "cert_days", "cluster", "supplied_ca_cert")
                   if (olds.get(key) or None) != (news.get(key) or None)]
        certs = olds.get("certs") or {}
        nodes = news.get("nodes") or {}
        if any(_needs_new_cert(names, certs.get(name)) for name, names in nodes.items()) \
                or set(certs) != set(nodes):
            changed.append("nodes")
        return dynamic.DiffResult(changes=bool(changed), replaces=[],
                                  delete_before_replace=False)

    def _issue(self, props: Mapping[str, Any], olds: Mapping[str, Any] | None) -> dict[str, Any]:
        supplied = props.get("supplied_ca_cert") or None
        fresh_ca = olds is None or olds.get("generation") != props.get("generation") \
            or (olds.get("supplied_ca_cert") or None) != supplied
        # Trusted during a CA rotation: the new CA and the one it replaces, so nodes that have
        # reloaded and nodes that have not yet still accept each other.
        bundle_tail = str(olds["ca_cert"]) if olds and fresh_ca else (
            str(olds.get("previous_ca_cert") or "") if olds else "")
        if supplied and bundle_tail == supplied:  # a new generation of the same operator CA
            bundle_tail = ""
        if fresh_ca:
            # The operator's CA when supplied (its chain is what gets trusted), else our own.
            ca_key, ca_cert = (str(_plain(props["supplied_ca_key"])), supplied) if supplied \
                else make_ca(f"{props['cluster']} Redis cluster CA")
            certs: dict[str, str] = {}
            keys: dict[str, str] = {}
        else:
            assert olds is not None
            ca_key, ca_cert = str(_plain(olds["ca_key"])), str(olds["ca_cert"])
            certs = dict(olds.get("certs") or {})
            keys = {k: str(v) for k, v in (_plain(olds.get("keys")) or {}).items()}
        days = int(props.get("cert_days") or DEFAULT_CERT_DAYS)
        nodes = {str(k): list(v) for k, v in (props.get("nodes") or {}).items()}
        for name, names in nodes.items():
            if fresh_ca or olds.get("cert_days") != props.get("cert_days") \
                    or _needs_new_cert(names, certs.get(name)):
                keys[name], certs[name] = issue(ca_key, ca_cert, name, names, days)
        certs = {k: v for k, v in certs.items() if k in nodes}
        keys = {k: v for k, v in keys.items() if k in nodes}
        return {
            **{k: props.get(k) for k in ("nodes", "generation", "cert_days", "cluster")},
            "supplied_ca_cert": supplied,  # its key is `ca_key` then: not kept twice
            "ca_cert": ca_cert,
            "previous_ca_cert": bundle_tail or None,
            "ca_bundle": ca_cert + bundle_tail,
            "ca_key": rpc.wrap_rpc_secret(ca_key),
            "certs": certs,
            "keys": rpc.wrap_rpc_secret(keys),
            "not_after": min(expires(c) for c in certs.values()).isoformat(),
        }

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(f"tls-{secrets.token_hex(4)}", self._issue(props, None))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]
               ) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(self._issue(news, olds))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        return dynamic.ReadResult(id_, props)


class TlsMaterial(dynamic.Resource, module="alphapulse", name="TlsMaterial"):
    """`ca_cert` (public), `certs` {node: PEM}; `ca_key` and `keys` {node: PEM} are secrets."""

    ca_cert: pulumi.Output[str]
    ca_bundle: pulumi.Output[str]  # what nodes and clients trust: ca_cert (+ the previous CA)
    certs: pulumi.Output[dict[str, str]]
    keys: pulumi.Output[dict[str, str]]
    not_after: pulumi.Output[str]

    def __init__(self, resource_name: str, *, cluster: str, nodes: Mapping[str, Sequence[str]],
                 generation: int = 1, cert_days: int = DEFAULT_CERT_DAYS,
                 supplied_ca_cert: str | None = None,
                 supplied_ca_key: pulumi.Input[str] | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """``supplied_ca_cert``/``supplied_ca_key``: the operator's CA (chain PEM, and the key as
        a secret) to sign with instead of a CA of our own (validated by the spec)."""
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["ca_key", "keys"]))
        super().__init__(
            TlsMaterialProvider(), resource_name,
            {"cluster": cluster, "nodes": {k: sorted(v) for k, v in nodes.items()},
             "generation": generation, "cert_days": cert_days,
             "supplied_ca_cert": supplied_ca_cert,
             "supplied_ca_key": pulumi.Output.secret(supplied_ca_key) if supplied_ca_key
             else None, "ca_cert": None,
             "previous_ca_cert": None, "ca_bundle": None, "ca_key": None, "certs": None,
             "keys": None, "not_after": None},
            opts)
