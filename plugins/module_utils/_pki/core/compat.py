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

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n")


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


# A date this far ahead of this host's clock is a mistake (a typo, or a clock far off), not a plan.
FUTURE_SLACK = dt.timedelta(minutes=5)


def parse_past_instant(value, where: str, future: str, at: dt.datetime | None = None) -> dt.datetime:
    """An ISO 8601 date and time (``2024-12-31``, ``2024-12-31T10:00:00Z``, with an offset; no zone means UTC), not
    in the future (``future`` says why): anything else is refused naming ``where``, before any file is written."""
    if isinstance(value, dt.datetime):
        date = value
    elif isinstance(value, dt.date):
        date = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            date = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise PkiError(f"{text[:40]!r} is not an ISO 8601 date such as 2024-12-31 or 2024-12-31T10:00:00Z",
                           where=where) from None
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    at = at or now()
    if date > at + FUTURE_SLACK:
        raise PkiError(f"{date.isoformat()} is in the future (now is {at.isoformat(timespec='seconds')}): {future}",
                       where=where)
    return date


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
    # One pass: each BEGIN looks for its END once; a label whose END is missing is not searched for again,
    # so a file of BEGIN lines without END stays linear (a regex with a lazy .+? is quadratic there).
    blocks = []
    no_end: set[bytes] = set()
    pos = 0
    while True:
        match = _PEM_BEGIN.search(data, pos)
        if match is None:
            return blocks
        found = match.group(1)
        pos = match.end()
        if found in no_end:
            continue
        marker = b"-----END " + found + b"-----"
        end = data.find(marker, pos)
        if end < 0:
            no_end.add(found)
            continue
        pos = end + len(marker)
        if label is None or found.decode() == label:
            blocks.append(data[match.start():pos] + b"\n")


def parser_message(exc: Exception) -> str:
    """cryptography's parser errors, without the Rust debug text (``ParseError { kind: ShortData ... }``)."""
    text = str(exc)
    if "ParseError" in text or "{" in text or "asn1" in text.lower():
        return "its DER content cannot be parsed (truncated or damaged)"
    return text.rstrip(".") or type(exc).__name__


def _load_all(data: bytes, where: str, label: str, noun: str, loader) -> list:
    blocks = pem_blocks(data, label)
    if not blocks:
        raise PkiError(f"contains no PEM {noun} (-----BEGIN {label}-----)", where=where)
    loaded = []
    for index, block in enumerate(blocks):
        try:
            loaded.append(loader(block))
        except Exception as exc:  # ValueError, or a Rust panic surfaced as another type on some releases
            raise PkiError(f"{noun} #{index + 1} is malformed: {parser_message(exc)}", where=where) from None
    return loaded


def load_certificates(data: bytes, where: str) -> list[x509.Certificate]:
    """Load every certificate of a PEM bundle, in file order; fail naming ``where`` if there is none."""
    return _load_all(data, where, "CERTIFICATE", "certificate", x509.load_pem_x509_certificate)


def load_crls(data: bytes, where: str) -> list[x509.CertificateRevocationList]:
    return _load_all(data, where, "X509 CRL", "CRL", x509.load_pem_x509_crl)


def load_csr(data: bytes, where: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(data)
    except Exception as exc:  # ValueError, or a parser error of another type on some releases
        raise PkiError(f"is not a valid PEM certificate signing request: {parser_message(exc)}",
                       where=where) from None
    if not csr.is_signature_valid:
        raise PkiError("the CSR's signature does not verify (not signed by the key it carries)", where=where)
    return csr
