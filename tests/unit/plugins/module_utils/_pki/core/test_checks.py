"""Reissue decisions: each change to the wanted state yields exactly the reason a user should read."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pkitools import Pki, days_ago

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
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


# The key policy: when the key on the host is replaced before a certificate is issued --------------------------------
REISSUE = ["subject alternative names changed (+DNS:db1)"]


@pytest.mark.parametrize("rotation, state, reissue, own, expected", [
    ("on_renewal", "present", REISSUE, True, ["new key for the new certificate (key_rotation=on_renewal)"]),
    ("on_renewal", "present", [], True, []),                  # nothing issued: the key stays
    ("on_renewal", "created", REISSUE, True, []),             # made by this run: new already
    ("on_renewal", "pending", REISSUE, True, []),             # waiting from an earlier run: new already
    ("on_renewal", "replaced", REISSUE, True, []),
    ("on_renewal", "present", REISSUE, False, []),            # the certificate is another key's: this key is new
    ("never", "present", REISSUE, True, []),
])
def test_new_key_reasons(rotation, state, reissue, own, expected):
    pki = Pki()
    key, cert = pki.leaf(name=NAME, sans=(NAME,), days=365)
    public_key = key.public_key() if own else generate_key("ec-p256").public_key()
    policy = RenewPolicy(key_rotation=rotation)
    assert policy.new_key_reasons(NAME, cert, public_key, reissue, state) == expected


def test_rekey_before_replaces_the_key_of_an_older_certificate_only():
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat

    pki = Pki()
    key, cert = pki.leaf(name=NAME, sans=(NAME,), days=365, at=days_ago(3))
    policy = RenewPolicy.from_params({"renew_before_days": 30, "renew_before_percent": 0, "key_rotation": "never",
                                      "rekey_before": (compat.now() - dt.timedelta(days=1)).isoformat()})
    assert policy.new_key_reasons(NAME, cert, key.public_key(), [], "present")[0].startswith("issued before rekey_before")
    newer = RenewPolicy.from_params({"renew_before_days": 30, "renew_before_percent": 0, "key_rotation": "never",
                                     "rekey_before": (compat.now() - dt.timedelta(days=4)).isoformat()})
    assert newer.new_key_reasons(NAME, cert, key.public_key(), [], "present") == []
    # A certificate's own date wins when it is later; an earlier one leaves the task's.
    assert newer.with_rekey_before("2001-01-01", "clients[0].rekey_before").rekey_before == newer.rekey_before
    assert newer.with_rekey_before("", "x") is None


def test_a_compromised_key_is_replaced_whatever_the_key_rotation_never_signed():
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import public_fingerprint

    pki = Pki()
    key, cert = pki.leaf(name=NAME, sans=(NAME,), days=365)
    record = {public_fingerprint(key.public_key()): "0B:AD (db1)"}
    on_renewal = RenewPolicy(key_rotation="on_renewal", compromised=record)
    assert on_renewal.new_key_reasons(NAME, cert, key.public_key(), REISSUE, "present") == [
        "its key is the key of certificate 0B:AD (db1), revoked for key_compromise: new key"]
    # Even when the certificate on disk is another key's (the compromised key came back).
    assert on_renewal.new_key_reasons(NAME, None, key.public_key(), ["no certificate yet"], "present")
    assert on_renewal.new_key_reasons(NAME, cert, key.public_key(), [], "present") == []  # nothing to sign
    never = RenewPolicy(key_rotation="never", compromised=record)
    assert never.new_key_reasons(NAME, cert, key.public_key(), REISSUE, "present") == [
        "its key is the key of certificate 0B:AD (db1), revoked for key_compromise: new key (key_rotation=never keeps "
        "no compromised key)"]
    with pytest.raises(PkiError, match="refusing to certify the key of certificate 0B:AD"):
        never.check_signable(NAME, key.public_key())
    never.check_signable(NAME, generate_key("ec-p256").public_key())


@pytest.mark.parametrize("params, where", [
    ({"key_rotation": "sometimes"}, "key_rotation"),
    ({"rekey_before": "2999-01-01"}, "rekey_before"),
    ({"rekey_before": "soon"}, "rekey_before"),
])
def test_bad_key_policies_are_refused_naming_the_option(params, where):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError

    with pytest.raises(PkiError) as caught:
        RenewPolicy.from_params({"renew_before_days": 30, "renew_before_percent": 33, **params})
    assert caught.value.where == where


@pytest.mark.parametrize("valid_days,policy,due_days_before_end", [
    (365, RenewPolicy(days=30, percent=33), 120.45),   # a third of 365 days: the percentage comes first
    (365, RenewPolicy(days=30, percent=0), 30),
    (90, RenewPolicy(days=45, percent=33), 45),        # the days come first
    (7, RenewPolicy(days=1, percent=33), 2.31),        # a short-lived certificate
    (7, RenewPolicy(days=0, percent=0), 0),            # never due before its end
])
def test_renews_at_is_the_first_moment_the_policy_gives_a_reason(valid_days, policy, due_days_before_end):
    """The audit's renewal timestamp is exactly where renewal starts: no reason a second before it, one after."""
    _key, cert = Pki().leaf(days=valid_days)
    start, end = compat.not_before(cert), compat.not_after(cert)
    due = policy.renews_at(start, end)
    assert abs((end - due).total_seconds() / 86400 - due_days_before_end) < 0.01
    second = dt.timedelta(seconds=1)
    assert policy.reasons(cert, due - second) == []
    assert policy.reasons(cert, due + second) != []
    assert policy.renews_at(None, end) == end - dt.timedelta(days=policy.days)  # no not-before: the days only
