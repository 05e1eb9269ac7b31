"""CRLs: openssl accepts what we sign, and our view of 'a CRL for every CA' equals openssl -crl_check_all."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pkitools import Pki, openssl, openssl_verify, pem, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import (
    Revocation,
    build_crl,
    chain_crl_problems,
    entries,
    parse_serial,
    resign_reasons,
)
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import extension

DAY = dt.timedelta(days=1)


def test_signed_crl_verifies_with_openssl_and_lists_reasons(tmp_path):
    pki = Pki()
    crl = build_crl(pki.issuer, [Revocation(0x1234, "key_compromise"), Revocation(99)], None, 30 * DAY)
    path = write(tmp_path / "c.pem", crl.public_bytes(Encoding.PEM))
    done = openssl("crl", "-in", path, "-noout", "-text", "-CAfile", write(tmp_path / "ca.pem", pem(pki.int)))
    out = (done.stdout + done.stderr).decode()
    assert done.returncode == 0 and "verify OK" in out, out
    assert "Key Compromise" in out and "1234" in out
    assert "X509v3 CRL Number" in out and "X509v3 Authority Key Identifier" in out


def test_resigning_keeps_dates_and_increments_the_number():
    pki = Pki()
    first = build_crl(pki.issuer, [Revocation(7)], None, 30 * DAY, at=compat.now() - 5 * DAY)
    second = build_crl(pki.issuer, [Revocation(7), Revocation(8)], first, 30 * DAY)
    assert extension(second, x509.CRLNumber).crl_number == extension(first, x509.CRLNumber).crl_number + 1
    assert entries(second)[7].date == entries(first)[7].date
    assert entries(second)[8].date > entries(first)[7].date


RESIGN_CASES = [
    # (existing entries, wanted entries, age of existing in days, next update days, expected reason part or None)
    ([1, 2], [1, 2], 0, 30, None),
    ([1, 2], [2, 1], 0, 30, None),
    ([1], [1, 2], 0, 30, "revocation list changed (+1 -0 ~0)"),
    ([1, 2], [1], 0, 30, "revocation list changed (+0 -1 ~0)"),
    ([], [], 25, 30, "within the renewal window"),
    ([], [], 31, 30, "expired"),
]


@pytest.mark.parametrize("have,want,age,next_days,expected", RESIGN_CASES)
def test_resign_reasons(have, want, age, next_days, expected):
    pki = Pki()
    existing = build_crl(pki.issuer, [Revocation(s) for s in have], None, next_days * DAY,
                         at=compat.now() - age * DAY)
    reasons = resign_reasons(existing, pki.issuer, [Revocation(s) for s in want], 7 * DAY)
    if expected is None:
        assert reasons == []
    else:
        assert any(expected in r for r in reasons), reasons


def test_crl_of_another_ca_is_replaced():
    pki = Pki()
    other = build_crl(Pki().issuer, [], None, 30 * DAY)
    assert resign_reasons(other, pki.issuer, [], 7 * DAY) == ["the existing CRL was not signed by this CA"]


def _crl_situation(name, pki, leaf):
    fresh_root = build_crl(pki.root_issuer, [], None, 30 * DAY)
    fresh_int = build_crl(pki.issuer, [], None, 30 * DAY)
    if name == "all_present":
        return [fresh_root, fresh_int]
    if name == "root_crl_missing":
        return [fresh_int]
    if name == "intermediate_crl_missing":
        return [fresh_root]
    if name == "intermediate_crl_expired":
        return [fresh_root, build_crl(pki.issuer, [], None, 2 * DAY, at=compat.now() - 5 * DAY)]
    if name == "leaf_revoked":
        return [fresh_root, build_crl(pki.issuer, [Revocation(leaf.serial_number)], None, 30 * DAY)]
    if name == "intermediate_revoked":
        return [build_crl(pki.root_issuer, [Revocation(pki.int.serial_number)], None, 30 * DAY), fresh_int]
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["all_present", "root_crl_missing", "intermediate_crl_missing",
                                  "intermediate_crl_expired", "leaf_revoked", "intermediate_revoked"])
def test_chain_crl_problems_equal_openssl_crl_check_all(tmp_path, name):
    pki = Pki()
    _key, leaf = pki.client()
    crls = _crl_situation(name, pki, leaf)
    oracle_ok, output = openssl_verify(tmp_path, leaf, untrusted=[pki.int], roots=[pki.root], crls=crls,
                                       purpose="sslclient")
    problems = chain_crl_problems([leaf, pki.int, pki.root], crls)
    assert (not problems) is oracle_ok, f"ours: {problems}\nopenssl: {output}"


@pytest.mark.parametrize("text,value", [("255", 255), ("0xff", 255), ("00:FF", 255), (255, 255)])
def test_parse_serial_forms(text, value):
    assert parse_serial(text, "revoked[0].serial_number") == value


def test_parse_serial_error_names_the_option():
    with pytest.raises(PkiError, match=r"revoked\[2\].serial_number: 'zz' is not a serial number"):
        parse_serial("zz", "revoked[2].serial_number")
