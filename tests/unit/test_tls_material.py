"""The cluster's CA and node certificates: names, renewal, CA rotation (real `cryptography`)."""

import datetime

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
