"""Names: SAN parsing, and host matching checked against openssl's -checkhost/-checkip (libpq's rules)."""

from __future__ import annotations

import pytest
from pkitools import Pki, openssl, pem, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import host_matches, parse_san, san_strings

SAN_CASES = [
    ("db1.example.com", "DNS:db1.example.com"),
    ("DNS:DB1.Example.COM", "DNS:db1.example.com"),
    ("10.1.2.3", "IP:10.1.2.3"),
    ("IP:10.1.2.3", "IP:10.1.2.3"),
    ("::1", "IP:::1"),
    ("*.db.example.com", "DNS:*.db.example.com"),
    ("localhost", "DNS:localhost"),
]
BAD_SANS = ["db 1.example.com", "IP:db1", "-bad.example.com", "db_1.example.com", "", "*.*.example.com"]


@pytest.mark.parametrize("value,expected", SAN_CASES)
def test_san_forms(value, expected):
    assert san_strings([parse_san(value, "x")]) == [expected]


@pytest.mark.parametrize("value", BAD_SANS)
def test_bad_san_names_the_option_and_value(value):
    with pytest.raises(PkiError) as err:
        parse_san(value, "subject_alt_names[3]")
    assert str(err.value).startswith("subject_alt_names[3]: ")
    assert repr(value) in str(err.value)


HOST_CASES = [
    # (cn, sans, host)
    ("db1.example.com", ["db1.example.com"], "db1.example.com"),
    ("db1.example.com", ["db1.example.com"], "DB1.example.com"),
    ("db1.example.com", ["db1.example.com"], "db2.example.com"),
    ("db1.example.com", ["*.example.com"], "db9.example.com"),
    ("db1.example.com", ["*.example.com"], "a.b.example.com"),
    ("db1.example.com", ["*.example.com"], "example.com"),
    ("db1.example.com", ["other.example.com"], "db1.example.com"),  # CN ignored once a DNS SAN exists
    ("db1.example.com", [], "db1.example.com"),  # no SAN at all: CN is used
    ("db1.example.com", ["10.0.0.5"], "10.0.0.5"),
    ("db1.example.com", ["10.0.0.5"], "10.0.0.6"),
    ("db1.example.com", ["db1.example.com"], "10.0.0.5"),
]


@pytest.mark.parametrize("cn,sans,host", HOST_CASES)
def test_host_matching_agrees_with_openssl(tmp_path, cn, sans, host):
    pki = Pki()
    _key, leaf = pki.leaf(name=cn, sans=sans)
    path = write(tmp_path / "leaf.pem", pem(leaf))
    flag = "-checkip" if host.replace(".", "").isdigit() else "-checkhost"
    oracle = openssl("x509", "-noout", "-in", path, flag, host).stdout.decode()
    assert host_matches(leaf, host) is ("does match" in oracle), oracle
