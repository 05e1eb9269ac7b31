"""Issued certificates checked by openssl: chains verify for the right purpose, the CA profile is the manual's."""

from __future__ import annotations

import pytest
from pkitools import Pki, openssl, openssl_verify, pem, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import KEY_TYPES

PURPOSE_CASES = [
    # (profile, openssl purpose, verifies)
    ("server", "sslserver", True),
    ("client", "sslclient", True),
    ("server", "sslclient", False),
    ("client", "sslserver", False),
]


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_chain_of_every_key_type_verifies_with_openssl(tmp_path, key_type):
    pki = Pki(key_type=key_type)
    _key, leaf = pki.leaf(key_type=key_type)
    ok, output = openssl_verify(tmp_path, leaf, untrusted=[pki.int], roots=[pki.root], purpose="sslserver")
    assert ok, output


@pytest.mark.parametrize("profile,purpose,verifies", PURPOSE_CASES)
def test_extended_key_usage_is_what_openssl_enforces(tmp_path, profile, purpose, verifies):
    pki = Pki()
    _key, leaf = pki.leaf() if profile == "server" else pki.client()
    ok, output = openssl_verify(tmp_path, leaf, untrusted=[pki.int], roots=[pki.root], purpose=purpose)
    assert ok is verifies, output


def test_intermediate_alone_is_not_a_trust_anchor(tmp_path):
    pki = Pki()
    _key, leaf = pki.leaf()
    ok, output = openssl_verify(tmp_path, leaf, roots=[pki.int])
    assert not ok and "unable to get issuer certificate" in output


@pytest.mark.parametrize("which,expected", [
    ("root", ["CA:TRUE", "Certificate Sign, CRL Sign"]),
    ("int", ["CA:TRUE, pathlen:0", "Certificate Sign, CRL Sign"]),
])
def test_ca_profile_matches_the_manuals_v3_ca(tmp_path, which, expected):
    pki = Pki()
    cert = pki.root if which == "root" else pki.int
    text = openssl("x509", "-noout", "-text", "-in", write(tmp_path / "ca.pem", pem(cert))).stdout.decode()
    for needle in expected:
        assert needle in text
    assert "X509v3 Basic Constraints: critical" in text
    assert "X509v3 Key Usage: critical" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "X509v3 Authority Key Identifier" in text


def test_leaf_never_outlives_its_issuer():
    pki = Pki(int_days=10)
    _key, leaf = pki.leaf(days=365)
    assert compat.not_after(leaf) <= compat.not_after(pki.int)


def test_rsa_leaf_has_key_encipherment_ec_leaf_does_not(tmp_path):
    pki = Pki()
    texts = {}
    for key_type in ("rsa2048", "ec-p256"):
        _key, leaf = pki.leaf(key_type=key_type)
        texts[key_type] = openssl("x509", "-noout", "-ext", "keyUsage", "-in",
                                  write(tmp_path / f"{key_type}.pem", pem(leaf))).stdout.decode()
    assert "Key Encipherment" in texts["rsa2048"]
    assert "Key Encipherment" not in texts["ec-p256"]
