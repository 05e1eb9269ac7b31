"""Keys: each type round-trips, passphrases behave, fingerprints agree with openssl's view of the public key."""

from __future__ import annotations

import hashlib

import pytest
from pkitools import key_pem, openssl, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import (
    KEY_TYPES,
    generate_key,
    key_type_of,
    load_private_key,
    public_fingerprint,
)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_generated_key_type_and_fingerprint_match_openssl(tmp_path, key_type):
    key = generate_key(key_type)
    assert key_type_of(key) == key_type
    path = write(tmp_path / "k.pem", key_pem(key))
    der = openssl("pkey", "-in", path, "-pubout", "-outform", "DER").stdout
    assert der, "openssl could not read the key"
    assert public_fingerprint(key) == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa2048", "ed25519"])
def test_encrypted_key_round_trips_and_openssl_needs_the_passphrase(tmp_path, key_type):
    key = generate_key(key_type)
    data = key_pem(key, "correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in data
    loaded = load_private_key(data, "correct horse", "key")
    assert public_fingerprint(loaded) == public_fingerprint(key)
    path = write(tmp_path / "k.pem", data)
    assert openssl("pkey", "-in", path, "-passin", "pass:wrong", "-noout").returncode != 0
    assert openssl("pkey", "-in", path, "-passin", "pass:correct horse", "-noout").returncode == 0


LOAD_ERRORS = [
    # (what is stored, passphrase, message part)
    ("encrypted", None, "encrypted but no passphrase"),
    ("encrypted", "wrong", "wrong passphrase"),
    ("plain", "extra", "not encrypted"),
    ("garbage", None, "not a PEM private key"),
    ("truncated", None, "malformed"),
]


@pytest.mark.parametrize("stored,passphrase,message", LOAD_ERRORS)
def test_load_errors_name_the_source_and_the_problem(stored, passphrase, message):
    key = generate_key("ec-p256")
    data = {
        "encrypted": key_pem(key, "Right-Pa55"),
        "plain": key_pem(key),
        "garbage": b"hello",
        "truncated": key_pem(key)[:60] + b"\n-----END PRIVATE KEY-----\n",
    }[stored]
    with pytest.raises(PkiError) as err:
        load_private_key(data, passphrase, "issuer_key_path (/x/ca.key)")
    assert "issuer_key_path (/x/ca.key)" in str(err.value)
    assert message in str(err.value)
    body_lines = [line for line in data.decode(errors="replace").splitlines() if line and "-----" not in line]
    assert "Right-Pa55" not in str(err.value)
    assert not any(line in str(err.value) for line in body_lines), "key material leaked into the message"


def test_unknown_key_type_is_refused():
    with pytest.raises(PkiError, match="unsupported key type 'dsa1024'"):
        generate_key("dsa1024")
