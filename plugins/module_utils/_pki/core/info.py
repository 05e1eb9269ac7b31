# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Public facts about certificates and CRLs, as results and diffs show them (never key material)."""

from __future__ import annotations

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = hashes = MISSING

from . import compat
from .errors import PkiError
from .files import read_bytes
from .keys import colon_hex, key_type_of, public_fingerprint
from .names import cert_sans, san_strings
from .profiles import extension


def fingerprint(cert: x509.Certificate) -> str:
    return colon_hex(cert.fingerprint(hashes.SHA256()))


def leaf_fingerprint(path: str, where: str) -> str | None:
    """SHA-256 of the first certificate in ``path`` (the leaf a server serves from it); None when the file is
    missing, empty or unreadable."""
    data = read_bytes(path, where, missing_ok=True, nofollow=True)
    try:
        return fingerprint(compat.load_certificates(data, path)[0]) if data else None
    except PkiError:
        return None


def serial_hex(serial: int) -> str:
    text = f"{serial:X}"
    return colon_hex(bytes.fromhex(text if len(text) % 2 == 0 else "0" + text))


def days_left(cert: x509.Certificate, at=None) -> int:
    at = at or compat.now()
    return int((compat.not_after(cert) - at).total_seconds() // 86400)


def cert_info(cert: x509.Certificate, at=None) -> dict:
    constraints = extension(cert, x509.BasicConstraints)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": serial_hex(cert.serial_number),
        "not_before": compat.not_before(cert).isoformat(),
        "not_after": compat.not_after(cert).isoformat(),
        "days_left": days_left(cert, at),
        "subject_alt_names": san_strings(cert_sans(cert)),
        "key_type": key_type_of(cert.public_key()),
        "is_ca": bool(constraints and constraints.ca),
        "fingerprint_sha256": fingerprint(cert),
        "public_key_fingerprint": public_fingerprint(cert.public_key()),
    }


def crl_info(crl: x509.CertificateRevocationList) -> dict:
    number = extension(crl, x509.CRLNumber)
    next_update = compat.crl_next_update(crl)
    return {
        "issuer": crl.issuer.rfc4514_string(),
        "crl_number": number.crl_number if number else None,
        "last_update": compat.crl_last_update(crl).isoformat(),
        "next_update": next_update.isoformat() if next_update else None,
        "revoked_serials": sorted(serial_hex(r.serial_number) for r in crl),
    }


def diff_text(info: dict | None) -> str:
    """A stable, human-readable rendering for diff mode (metadata only)."""
    if not info:
        return "(absent)\n"
    keys = ("subject", "subject_alt_names", "issuer", "not_after", "fingerprint_sha256", "public_key_fingerprint",
            "crl_number", "next_update", "revoked_serials")
    lines = []
    for key in keys:
        if key in info:
            value = info[key]
            if isinstance(value, list):
                value = ", ".join(value) or "-"
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"
