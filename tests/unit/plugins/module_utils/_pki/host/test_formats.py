"""Client key formats for other TLS stacks: PKCS#8 DER and PKCS#12, checked with openssl as the oracle."""

from __future__ import annotations

import os
import stat

import pytest
from pkitools import Pki, openssl, pem
from pkitools import sign_csr as _sign

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.host_material import host_material


def _client(tmp_path, passphrase="Pa55-word"):
    return {"name": "app", "key_path": str(tmp_path / "postgresql.key"), "cert_path": str(tmp_path / "postgresql.crt"),
            "common_name": "app", "key_mode": "0600", "pkcs8_path": str(tmp_path / "postgresql.pk8"),
            "pkcs12_path": str(tmp_path / "postgresql.p12"), "pkcs12_passphrase": passphrase}


def _issue(pki, item):
    prepared = host_material({"stage": "prepare", "items": [item]}, False)["item_results"][0]
    cert = _sign(pki, prepared["csr"])
    chain = pem(cert, pki.int)
    host_material({"stage": "install", "items": [dict(item, certificate=chain.decode())]}, False)
    return cert


def _pubkey(*args, input_data=None):
    done = openssl(*args, input_data=input_data)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_pkcs8_der_and_pkcs12_hold_the_key_and_chain(tmp_path):
    pki = Pki()
    item = _client(tmp_path)
    _issue(pki, item)
    pub_pem = _pubkey("pkey", "-in", item["key_path"], "-pubout")
    assert _pubkey("pkey", "-inform", "DER", "-in", item["pkcs8_path"], "-pubout") == pub_pem
    p12_key = openssl("pkcs12", "-in", item["pkcs12_path"], "-passin", "pass:Pa55-word", "-nocerts", "-nodes")
    assert p12_key.returncode == 0, p12_key.stderr.decode()
    assert _pubkey("pkey", "-pubout", input_data=p12_key.stdout) == pub_pem
    certs = openssl("pkcs12", "-in", item["pkcs12_path"], "-passin", "pass:Pa55-word", "-nokeys")
    out = certs.stdout.decode()
    assert out.count("BEGIN CERTIFICATE") == 2 and "Test Intermediate" in out
    assert openssl("pkcs12", "-in", item["pkcs12_path"], "-passin", "pass:wrong", "-nokeys").returncode != 0
    for path in (item["pkcs8_path"], item["pkcs12_path"]):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_formats_are_idempotent_and_follow_the_passphrase(tmp_path):
    pki = Pki()
    item = _client(tmp_path)
    _issue(pki, item)
    before = {p: os.stat(item[p]).st_ino for p in ("pkcs8_path", "pkcs12_path")}
    again = host_material({"stage": "prepare", "items": [item]}, False)["item_results"][0]
    assert again["changes"] == []
    assert {p: os.stat(item[p]).st_ino for p in before} == before
    changed = host_material({"stage": "prepare", "items": [_client(tmp_path, "other")]}, False)["item_results"][0]
    assert changed["changes"] == [f"{item['pkcs12_path']}: rewritten"]
    assert openssl("pkcs12", "-in", item["pkcs12_path"], "-passin", "pass:other", "-nokeys").returncode == 0


def test_formats_are_refused_without_a_passphrase_or_over_a_text_file(tmp_path):
    with pytest.raises(PkiError, match=r"pkcs12_passphrase: a PKCS#12 file needs a passphrase"):
        host_material({"stage": "prepare", "items": [_client(tmp_path, None)]}, False)
    (tmp_path / "postgresql.pk8").write_text("notes, not a key\n")
    with pytest.raises(PkiError, match=r"pkcs8_path: .*holds text, not a PKCS#8 DER key; refusing to replace it"):
        host_material({"stage": "prepare", "items": [_client(tmp_path)]}, False)
    assert sorted(os.listdir(tmp_path)) == ["postgresql.pk8"]
