"""Chain verification: our verdict must equal openssl verify's on every case."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from pkitools import Pki, days_ago, issuer_of, openssl, openssl_verify

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.chain import order_problems, verify_chain, weak_crypto
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import issue_certificate
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import SERVER


def _case(name):
    """Return (leaf, untrusted, roots, purpose) for a named situation."""
    pki = Pki()
    _key, leaf = pki.leaf()
    if name == "good":
        return leaf, [pki.int], [pki.root], "server"
    if name == "missing_intermediate":
        return leaf, [], [pki.root], "server"
    if name == "wrong_root":
        return leaf, [pki.int], [Pki().root], "server"
    if name == "client_cert_as_server":
        _key, client = pki.client()
        return client, [pki.int], [pki.root], "server"
    if name == "expired_leaf":
        _key, old = pki.leaf(days=10, at=days_ago(30))
        return old, [pki.int], [pki.root], "server"
    if name == "not_yet_valid_leaf":
        _key, future = pki.leaf(days=10, at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3))
        return future, [pki.int], [pki.root], "server"
    if name == "leaf_signed_by_leaf":
        key, middle = pki.leaf(name="not-a-ca")
        child_key = generate_key("ec-p256")
        child = issue_certificate(subject=build_name("child"), public_key=child_key.public_key(), profile=SERVER,
                                  valid_days=30, issuer=issuer_of(middle, key))
        return child, [middle, pki.int], [pki.root], "server"
    if name == "pathlen_exceeded":
        sub_key = generate_key("ec-p256")
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import INTERMEDIATE_CA
        sub = issue_certificate(subject=build_name("Sub CA"), public_key=sub_key.public_key(),
                                profile=INTERMEDIATE_CA, valid_days=100, issuer=pki.issuer)
        _key, deep = pki.leaf(issuer=issuer_of(sub, sub_key))
        return deep, [sub, pki.int], [pki.root], "server"
    if name == "intermediate_as_anchor":
        return leaf, [], [pki.int], "server"
    if name == "root_directly":
        _key, direct = pki.leaf(issuer=pki.root_issuer)
        return direct, [], [pki.root], "server"
    raise AssertionError(name)


CASES = ["good", "missing_intermediate", "wrong_root", "client_cert_as_server", "expired_leaf",
         "not_yet_valid_leaf", "leaf_signed_by_leaf", "pathlen_exceeded", "root_directly", "intermediate_as_anchor"]


@pytest.mark.parametrize("name", CASES)
def test_verdict_equals_openssl(tmp_path, name):
    leaf, untrusted, roots, purpose = _case(name)
    oracle_ok, output = openssl_verify(tmp_path, leaf, untrusted=untrusted, roots=roots,
                                       purpose={"server": "sslserver", "client": "sslclient"}[purpose])
    problems = verify_chain([leaf, *untrusted], roots, purpose)
    assert (not problems) is oracle_ok, f"ours: {problems}\nopenssl: {output}"


def test_order_problems_flag_a_file_that_is_not_leaf_first():
    pki = Pki()
    _key, leaf = pki.leaf()
    assert order_problems([leaf, pki.int]) == []
    assert order_problems([pki.int, leaf])
    assert "did not issue" in order_problems([leaf, pki.root])[0]


WEAK = [
    # (openssl req arguments, expected finding)
    (["-newkey", "rsa:1024", "-sha256"], "RSA key of 1024 bits"),
    (["-newkey", "rsa:2048", "-sha1"], "signed with SHA1"),
    (["-newkey", "rsa:2048", "-sha256"], None),
]


@pytest.mark.parametrize("args,expected", WEAK)
def test_weak_crypto_is_named(tmp_path, args, expected):
    done = openssl("req", "-x509", "-nodes", "-subj", "/CN=weak", "-days", "1", *args,
                   "-keyout", tmp_path / "k.pem", "-out", tmp_path / "c.pem", "-config", "/dev/null")
    assert done.returncode == 0, f"openssl could not make the weak test certificate: {done.stderr.decode()[:300]}"
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    problems = weak_crypto(cert)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems
