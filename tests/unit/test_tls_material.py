"""The cluster's CA and node certificates: names, renewal, CA rotation (real `cryptography`)."""

import datetime
import subprocess

from components import tls_material
from components.tls_material import TlsMaterialProvider, cert_names, issue, make_ca, problems

NODES = {"n1": ["10.0.0.11", "127.0.0.1", "localhost", "n1"],
         "n2": ["10.0.0.12", "127.0.0.1", "localhost", "n2"]}


def made(**extra):
    props = {"cluster": "t", "nodes": NODES, "generation": 1, "cert_days": 365, **extra}
    return props, TlsMaterialProvider().create(props).outs


def plain(outs):
    from tests.support.program_runner import unwrap_secrets
    return unwrap_secrets(outs)


def test_each_node_gets_a_certificate_for_all_its_names_signed_by_the_ca():
    _props, outs = made()
    outs = plain(outs)
    for name, names in NODES.items():
        assert cert_names(outs["certs"][name]) == sorted(names)
        assert problems(outs["ca_cert"], outs["certs"][name], outs["keys"][name]) == []
    assert outs["ca_bundle"] == outs["ca_cert"]


def test_problems_name_a_foreign_ca_a_wrong_key_and_an_expired_certificate():
    ca_key, ca_cert = make_ca("a")
    other_key, other_ca = make_ca("b")
    key, cert = issue(ca_key, ca_cert, "n", ["n"], days=1)
    other_node_key, _ = issue(ca_key, ca_cert, "m", ["m"])
    assert any("not signed by the cluster CA" in p for p in problems(other_ca, cert, key))
    assert any("does not match" in p for p in problems(ca_cert, cert, other_node_key))
    assert problems(ca_cert, cert, key) == []


def test_a_preview_renews_certificates_near_expiry_or_with_new_names(monkeypatch):
    props, outs = made()
    provider = TlsMaterialProvider()
    olds = {**props, **plain(outs)}
    assert not provider.diff("id", olds, props).changes
    assert provider.diff("id", olds, {**props, "nodes": {**NODES, "n1": ["10.0.0.99"]}}).changes
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=340)
    monkeypatch.setattr(tls_material, "_now", lambda: later)
    assert provider.diff("id", olds, props).changes  # within 30 days of expiry
    renewed = plain(provider.update("id", olds, props).outs)
    assert renewed["ca_cert"] == olds["ca_cert"]  # same CA, new certificates
    assert renewed["certs"]["n1"] != olds["certs"]["n1"]


def test_a_new_generation_replaces_the_ca_and_trusts_both_during_the_switch():
    props, outs = made()
    olds = {**props, **plain(outs)}
    rotated = plain(TlsMaterialProvider().update("id", olds, {**props, "generation": 2}).outs)
    assert rotated["ca_cert"] != olds["ca_cert"]
    assert rotated["ca_bundle"] == rotated["ca_cert"] + olds["ca_cert"]
    assert problems(rotated["ca_cert"], rotated["certs"]["n2"], rotated["keys"]["n2"]) == []


def test_during_a_ca_rotation_both_generations_of_certificates_verify(tmp_path):
    """A node still serving the previous generation's certificate, checked against the
    rotated bundle (what each pod holds once its kubelet updated the files), verifies with
    OpenSSL: each CA has a name and a key identifier of its own. Before, both CAs had one
    name and no identifiers, and OpenSSL picked the new CA for an old certificate
    ("certificate verify failed", seen on Kubernetes)."""
    props, outs = made()
    olds = {**props, **plain(outs)}
    rotated = plain(TlsMaterialProvider().update("id", olds, {**props, "generation": 2}).outs)
    for cert in (olds["certs"]["n1"], rotated["certs"]["n1"]):
        done = openssl_verifies(rotated["ca_bundle"], cert, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    from cryptography import x509

    old_ca, new_ca = (x509.load_pem_x509_certificate(c.encode())
                      for c in (olds["ca_cert"], rotated["ca_cert"]))
    assert old_ca.subject != new_ca.subject
    aki = x509.load_pem_x509_certificate(rotated["certs"]["n1"].encode()).extensions \
        .get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = new_ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


# --------------------------------------------------------------------------- the operator's CA


def ca_pair(name: str, signer: tuple[str, str] | None = None, days: int = 1000,
            ca: bool = True, path_length: int | None = None) -> tuple[str, str]:
    """(key PEM, certificate PEM) of a CA, self-signed or signed by ``signer`` (key, cert): the
    usual shape of a company PKI is nodes signed by an intermediate, clients trusting the root."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signing_key, issuer = key, subject
    if signer is not None:
        signing_key = serialization.load_pem_private_key(signer[0].encode(), password=None)
        issuer = x509.load_pem_x509_certificate(signer[1].encode()).subject
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                       critical=True)
        .sign(signing_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def company_pki() -> tuple[str, str, str]:
    """(intermediate key, intermediate + root chain, root certificate)."""
    root = ca_pair("Ops Root CA", days=3000)
    key, cert = ca_pair("Ops Intermediate CA", signer=root)
    return key, cert + root[1], root[1]


def openssl_verifies(trusted: str, cert: str, tmp_path) -> subprocess.CompletedProcess[str]:
    """What Redis' OpenSSL says of ``cert`` when it trusts ``trusted`` (its tls-ca-cert-file)."""
    (tmp_path / "trusted.pem").write_text(trusted)
    (tmp_path / "cert.pem").write_text(cert)
    return subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "trusted.pem"),
                           str(tmp_path / "cert.pem")], capture_output=True, text=True,
                          check=False)


def test_an_operators_ca_chain_signs_every_node_and_the_whole_chain_is_trusted(tmp_path):
    key, chain, root = company_pki()
    _props, outs = made(supplied_ca_cert=chain, supplied_ca_key=key)
    outs = plain(outs)
    assert outs["ca_cert"] == chain and outs["ca_bundle"] == chain
    assert outs["ca_key"] == key and "supplied_ca_key" not in outs  # kept once, as ca_key
    for name in NODES:
        assert problems(chain, outs["certs"][name], outs["keys"][name]) == []
        done = openssl_verifies(outs["ca_bundle"], outs["certs"][name], tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        # The root alone is not enough for OpenSSL: hence the whole chain in the bundle.
        alone = openssl_verifies(root, outs["certs"][name], tmp_path)
        assert alone.returncode != 0


def test_switching_to_the_operators_ca_rotates_like_a_new_generation(tmp_path):
    props, outs = made()
    olds = {**props, **plain(outs)}
    key, chain, _root = company_pki()
    news = {**props, "supplied_ca_cert": chain, "supplied_ca_key": key}
    provider = TlsMaterialProvider()
    assert provider.diff("id", olds, news).changes
    switched = plain(provider.update("id", olds, news).outs)
    assert switched["ca_cert"] == chain
    # Nodes not yet reloaded still present certificates of the stack's own CA.
    assert switched["ca_bundle"] == chain + olds["ca_cert"]
    done = openssl_verifies(switched["ca_bundle"], switched["certs"]["n1"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    settled = {**news, **switched}
    assert not provider.diff("id", settled, news).changes  # same CA: nothing to do
    renewed = plain(provider.update("id", settled, {**news, "cert_days": 200}).outs)
    assert renewed["ca_cert"] == chain and renewed["ca_bundle"] == chain + olds["ca_cert"]


def test_an_unusable_operator_ca_is_named_with_its_fix():
    key, chain, root = company_pki()
    root_key, _ = make_ca("unrelated")
    leaf_key, leaf = ca_pair("not a CA", signer=ca_pair("r"), ca=False)
    short_root = ca_pair("short-lived root", days=100)
    capped_root = ca_pair("root allowing no intermediate", path_length=0)
    capped_key, capped = ca_pair("intermediate", signer=capped_root)
    cases = {
        "not PEM": ("garbage", key, "is not PEM certificates"),
        "no CA": (leaf, leaf_key, "is not a CA"),
        "out of order": (root + chain.replace(root, ""), key, "is not issued by the next one"),
        "no root": (chain.replace(root, ""), key, "is not self-signed"),
        "wrong key": (chain, root_key, "tlsCaKey is not the key of the first certificate"),
        "encrypted key": (chain, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END "
                          "ENCRYPTED PRIVATE KEY-----\n", "tlsCaKey is not an unencrypted"),
        "expires first": (short_root[1], short_root[0], "before node certificates of "
                          "tlsCertDays 365"),
        "path length": (capped + capped_root[1], capped_key, "allows no CA below it"),
    }
    for case, (cert, ca_key, expected) in cases.items():
        found = tls_material.supplied_ca_problems(cert, ca_key, 365)
        assert any(expected in p for p in found), (case, found)
        assert all("Fix:" in p for p in found), (case, found)
        assert not any(ca_key.splitlines()[1][:20] in p for p in found if len(ca_key) > 60)
    assert tls_material.supplied_ca_problems(chain, key, 365) == []


def test_a_new_generation_with_the_same_operators_ca_reissues_and_trusts_it_once():
    key, chain, _root = company_pki()
    props, outs = made(supplied_ca_cert=chain, supplied_ca_key=key)
    olds = {**props, **plain(outs)}
    bumped = plain(TlsMaterialProvider().update("id", olds, {**props, "generation": 2}).outs)
    assert bumped["ca_bundle"] == chain  # not the chain twice
    assert bumped["certs"]["n1"] != olds["certs"]["n1"]
    assert problems(chain, bumped["certs"]["n1"], bumped["keys"]["n1"]) == []
