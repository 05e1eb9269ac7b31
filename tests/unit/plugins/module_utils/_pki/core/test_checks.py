"""Reissue decisions: each change to the wanted state yields exactly the reason a user should read."""

from __future__ import annotations

import dataclasses

import pytest
from pkitools import Pki, days_ago

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.checks import RenewPolicy, Wanted, reissue_reasons
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name, parse_sans
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import CLIENT, SERVER

NAME = "db1.example.com"


def _wanted(**changes):
    base = Wanted(build_name(NAME), tuple(parse_sans([NAME, "10.0.0.5"])), SERVER)
    return dataclasses.replace(base, **changes)


CASES = [
    # (what differs, expected reason parts)
    ("nothing", []),
    ("key", ["certificate does not match the private key"]),
    ("issuer", ["issuer changed"]),
    ("sans", ["subject alternative names changed (+DNS:db1.internal -IP:10.0.0.5)"]),
    ("subject", ["subject changed"]),
    ("profile", ["profile changed (extended key usage)"]),
    ("renew_days", ["expires in"]),
    ("renew_percent", ["of its lifetime left"]),
    ("expired", ["expired on"]),
]


@pytest.mark.parametrize("differs,expected", CASES)
def test_reissue_reasons(differs, expected):
    pki = Pki()
    key, cert = pki.leaf(name=NAME, sans=(NAME, "10.0.0.5"), days=365)
    public_key, wanted, issuer, renew = key.public_key(), _wanted(), pki.issuer, RenewPolicy(days=30)
    if differs == "key":
        public_key = generate_key("ec-p256").public_key()
    elif differs == "issuer":
        issuer = Pki().issuer
    elif differs == "sans":
        wanted = _wanted(sans=tuple(parse_sans([NAME, "db1.internal"])))
    elif differs == "subject":
        wanted = _wanted(subject=build_name("db1"))
    elif differs == "profile":
        wanted = _wanted(profile=CLIENT)
    elif differs == "renew_days":
        key, cert = pki.leaf(name=NAME, sans=(NAME, "10.0.0.5"), days=20)
        public_key = key.public_key()
    elif differs == "renew_percent":
        key, cert = pki.leaf(name=NAME, sans=(NAME, "10.0.0.5"), days=100, at=days_ago(80))
        public_key, renew = key.public_key(), RenewPolicy(days=0, percent=33)
    elif differs == "expired":
        key, cert = pki.leaf(name=NAME, sans=(NAME, "10.0.0.5"), days=10, at=days_ago(20))
        public_key = key.public_key()
    reasons = reissue_reasons(cert, public_key, wanted, issuer, renew)
    assert len(reasons) == len(expected), reasons
    for part, reason in zip(expected, reasons):
        assert part in reason


def test_missing_certificate():
    pki = Pki()
    assert reissue_reasons(None, generate_key("ec-p256").public_key(), _wanted(), pki.issuer, RenewPolicy()) == [
        "no certificate yet"]


def test_renewal_policy_off_keeps_an_old_certificate():
    pki = Pki()
    key, cert = pki.leaf(name=NAME, sans=(NAME, "10.0.0.5"), days=20)
    assert reissue_reasons(cert, key.public_key(), _wanted(), pki.issuer, RenewPolicy(days=0, percent=0)) == []
