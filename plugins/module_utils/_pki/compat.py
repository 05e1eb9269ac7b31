# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Small helpers that read certificates and CRLs the same way on cryptography 38 and the newest release.

Code that runs on targets must work with cryptography 38.0.4 (Debian 12), which lacks the ``*_utc``
properties (42), ``load_pem_x509_certificates`` (39) and ``verify_directly_issued_by`` (40).
"""

from __future__ import annotations

import datetime as dt
import re

try:
    from cryptography import x509
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = MISSING

from .errors import PkiError

UTC = dt.timezone.utc

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\r?\n.+?-----END (?P=label)-----", re.DOTALL
)


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _get(obj, utc_name: str, legacy_name: str) -> dt.datetime | None:
    if hasattr(obj, utc_name):
        return getattr(obj, utc_name)
    return _aware(getattr(obj, legacy_name))


def not_before(cert: x509.Certificate) -> dt.datetime:
    return _get(cert, "not_valid_before_utc", "not_valid_before")


def not_after(cert: x509.Certificate) -> dt.datetime:
    return _get(cert, "not_valid_after_utc", "not_valid_after")


def crl_last_update(crl: x509.CertificateRevocationList) -> dt.datetime:
    return _get(crl, "last_update_utc", "last_update")


def crl_next_update(crl: x509.CertificateRevocationList) -> dt.datetime | None:
    return _get(crl, "next_update_utc", "next_update")


def revocation_date(revoked: x509.RevokedCertificate) -> dt.datetime:
    return _get(revoked, "revocation_date_utc", "revocation_date")


def pem_blocks(data: bytes, label: str | None = None) -> list[bytes]:
    """Return the PEM blocks in ``data`` (optionally only those with ``label``), in order."""
    blocks = []
    for match in _PEM_BLOCK.finditer(data):
        if label is None or match.group("label").decode() == label:
            blocks.append(match.group(0) + b"\n")
    return blocks


def _load_all(data: bytes, where: str, label: str, noun: str, loader) -> list:
    blocks = pem_blocks(data, label)
    if not blocks:
        raise PkiError(f"contains no PEM {noun} (-----BEGIN {label}-----)", where=where)
    loaded = []
    for index, block in enumerate(blocks):
        try:
            loaded.append(loader(block))
        except ValueError as exc:
            raise PkiError(f"{noun} #{index + 1} is malformed: {exc}", where=where) from None
    return loaded


def load_certificates(data: bytes, where: str) -> list[x509.Certificate]:
    """Load every certificate of a PEM bundle, in file order; fail naming ``where`` if there is none."""
    return _load_all(data, where, "CERTIFICATE", "certificate", x509.load_pem_x509_certificate)


def load_crls(data: bytes, where: str) -> list[x509.CertificateRevocationList]:
    return _load_all(data, where, "X509 CRL", "CRL", x509.load_pem_x509_crl)


def load_csr(data: bytes, where: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise PkiError(f"is not a valid PEM certificate signing request: {exc}", where=where) from None
    if not csr.is_signature_valid:
        raise PkiError("the CSR's signature does not verify (not signed by the key it carries)", where=where)
    return csr
