# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Certificate revocation lists: a declarative list in, a signed CRL out, re-signed only when needed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

try:
    from cryptography import x509
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = MISSING

from . import compat
from .constants import REVOCATION_REASONS
from .errors import PkiError
from .issue import Issuer
from .keys import signing_hash, verify_signature
from .profiles import extension

# Our option names are the ReasonFlags member names.
REASONS = {name: getattr(x509.ReasonFlags, name) for name in REVOCATION_REASONS}
_REASON_NAMES = {flag: name for name, flag in REASONS.items()}


@dataclass(frozen=True)
class Revocation:
    serial: int
    reason: str = "unspecified"
    date: dt.datetime | None = None


def parse_serial(value, where: str) -> int:
    """Accept an integer, ``0x``-prefixed hex, or colon-separated hex as printed by openssl and our results."""
    if isinstance(value, int):
        return check_serial(value, where)
    text = str(value).strip()
    try:
        if text.lower().startswith("0x"):
            serial = int(text[2:], 16)
        elif ":" in text:
            serial = int(text.replace(":", ""), 16)
        else:
            serial = int(text, 10)
    except ValueError:
        raise PkiError(f"{value!r} is not a serial number (decimal, 0x-hex or colon-separated hex)",
                       where=where) from None
    return check_serial(serial, where)


def check_serial(serial: int, where: str) -> int:
    """RFC 5280 4.1.2.2: a positive integer of at most 20 octets (cryptography accepts at most 159 bits)."""
    if serial <= 0:
        raise PkiError(f"serial {serial} is not positive (RFC 5280 wants a positive serial number)", where=where)
    if serial.bit_length() > 159:
        raise PkiError(f"serial {serial:X} has {serial.bit_length()} bits; at most 159 fit in a certificate",
                       where=where)
    return serial


def parse_revocation_date(value, where: str, at: dt.datetime | None = None) -> dt.datetime:
    """An ISO 8601 date and time not in the future (compat.parse_past_instant)."""
    return compat.parse_past_instant(value, where, "a revocation is dated when it happened", at)


def parse_reason(value, where: str) -> str:
    reason = "unspecified" if value in (None, "") else str(value)
    if reason not in REASONS:
        raise PkiError(f"{reason[:40]!r} is not a revocation reason; use one of {', '.join(REVOCATION_REASONS)}",
                       where=where)
    return reason


def entries(crl: x509.CertificateRevocationList) -> dict[int, Revocation]:
    found = {}
    for revoked in crl:
        reason = "unspecified"
        try:
            flag = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
            reason = _REASON_NAMES.get(flag, "unspecified")
        except x509.ExtensionNotFound:
            pass
        found[revoked.serial_number] = Revocation(revoked.serial_number, reason, compat.revocation_date(revoked))
    return found


def crl_signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    if crl.issuer != ca.subject:
        return False
    return verify_signature(ca.public_key(), crl.signature, crl.tbs_certlist_bytes, crl.signature_hash_algorithm)


def resign_reasons(
    existing: x509.CertificateRevocationList | None,
    issuer: Issuer,
    wanted: list[Revocation],
    renew_before: dt.timedelta,
    at: dt.datetime | None = None,
) -> list[str]:
    """Why the CRL must be signed again (empty: keep it)."""
    at = at or compat.now()
    if existing is None:
        return ["no CRL yet"]
    if not crl_signed_by(existing, issuer.cert):
        return ["the existing CRL was not signed by this CA"]
    reasons = []
    have = {serial: rev.reason for serial, rev in entries(existing).items()}
    want = {rev.serial: rev.reason for rev in wanted}
    if have != want:
        added = len(set(want) - set(have))
        removed = len(set(have) - set(want))
        changed = len([s for s in set(want) & set(have) if want[s] != have[s]])
        reasons.append(f"revocation list changed (+{added} -{removed} ~{changed})")
    next_update = compat.crl_next_update(existing)
    if next_update is None:
        reasons.append("the existing CRL has no nextUpdate")
    elif next_update <= at:
        reasons.append(f"the existing CRL expired on {next_update.isoformat()}")
    elif next_update - at < renew_before:
        reasons.append(f"nextUpdate {next_update.isoformat()} is within the renewal window")
    return reasons


def build_crl(
    issuer: Issuer,
    wanted: list[Revocation],
    previous: x509.CertificateRevocationList | None,
    next_update: dt.timedelta,
    at: dt.datetime | None = None,
    number: int | None = None,
) -> x509.CertificateRevocationList:
    """Sign a CRL listing ``wanted``; dates already on ``previous`` are kept. Its CRLNumber is ``number``, or
    the previous one plus one."""
    at = at or compat.now()
    known = entries(previous) if previous is not None else {}
    if number is None:
        number = 1
        if previous is not None:
            previous_number = extension(previous, x509.CRLNumber)
            number = (previous_number.crl_number + 1) if previous_number else 1
    key = issuer.key()
    ski = extension(issuer.cert, x509.SubjectKeyIdentifier)
    aki = (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski) if ski is not None
           else x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key()))
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(at)
        .next_update(at + next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(aki, critical=False)
    )
    for rev in sorted(wanted, key=lambda r: r.serial):
        date = rev.date or (known[rev.serial].date if rev.serial in known else at)
        entry = x509.RevokedCertificateBuilder().serial_number(rev.serial).revocation_date(date)
        if rev.reason != "unspecified":
            entry = entry.add_extension(x509.CRLReason(REASONS[rev.reason]), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key, signing_hash(key))


def never_older(installed: bytes, wanted: bytes) -> tuple[bytes, list[str]]:
    """A CRL file never goes back. Two runs at once on one host (two revoke jobs) each read the CA's CRL before
    installing it: the one that read first may install last, and would put back a CRL without the other's
    revocation. So for each CRL in ``wanted`` whose CA (issuer name and key identifier) has one in ``installed``
    with a higher CRL number that lasts at least as long, the installed one stays in its place. A CA made again with
    the same name has another key identifier: its CRL replaces the old one's. Returns the content to write (``wanted``
    itself when nothing is kept) and the CAs whose CRL was kept."""
    marker = b"-----BEGIN X509 CRL-----"
    if marker not in installed or marker not in wanted:
        return wanted, []
    try:
        have = {}
        for block in compat.pem_blocks(installed, "X509 CRL"):
            crl = x509.load_pem_x509_crl(block)
            key = _crl_key(crl)
            if key is not None:
                have[key] = (block, crl)
        out, kept = wanted, []
        for block in compat.pem_blocks(wanted, "X509 CRL"):
            crl = x509.load_pem_x509_crl(block)
            key = _crl_key(crl)
            if key is None or key not in have:
                continue
            old_block, old = have[key]
            old_next, new_next = compat.crl_next_update(old), compat.crl_next_update(crl)
            if _crl_number(old) > _crl_number(crl) and old_next is not None and new_next is not None \
                    and old_next >= new_next:
                out = out.replace(block.rstrip(b"\n"), old_block.rstrip(b"\n"), 1)
                kept.append(f"{crl.issuer.rfc4514_string()} (CRL number {_crl_number(old)} installed, "
                            f"{_crl_number(crl)} given)")
    except Exception:  # noqa: BLE001 - not CRLs this can compare: written as given (the plan checks the content)
        return wanted, []
    return out, kept


def _crl_key(crl: x509.CertificateRevocationList):
    aki = extension(crl, x509.AuthorityKeyIdentifier)
    if aki is None or not aki.key_identifier or extension(crl, x509.CRLNumber) is None:
        return None
    return crl.issuer.rfc4514_string(), aki.key_identifier


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return extension(crl, x509.CRLNumber).crl_number


def chain_crl_problems(
    chain: list[x509.Certificate],
    crls: list[x509.CertificateRevocationList],
    at: dt.datetime | None = None,
) -> list[str]:
    """What PostgreSQL's CRL check (X509_V_FLAG_CRL_CHECK_ALL) would reject: a CA in ``chain`` (CA certificates,
    root included) without a CRL it signed, or one whose nextUpdate has passed, or a revoked certificate."""
    at = at or compat.now()
    problems = []
    by_issuer = {}
    for crl in crls:
        by_issuer.setdefault(crl.issuer, []).append(crl)
    for index, cert in enumerate(chain):
        constraints = extension(cert, x509.BasicConstraints)
        if constraints is not None and constraints.ca:
            candidates = [c for c in by_issuer.get(cert.subject, []) if crl_signed_by(c, cert)]
            label = cert.subject.rfc4514_string()
            if not candidates:
                problems.append(f"no CRL signed by {label}: PostgreSQL fails with 'unable to get certificate CRL'")
            else:
                fresh = [c for c in candidates if (compat.crl_next_update(c) or at) > at]
                if not fresh:
                    problems.append(f"the CRL of {label} has expired (nextUpdate passed)")
        for crl in by_issuer.get(cert.issuer, []):
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                problems.append(f"certificate #{index + 1} ({cert.subject.rfc4514_string()}) is revoked")
                break
    return problems
