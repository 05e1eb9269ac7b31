# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Idempotency as a readable comparison: why an existing certificate must be issued again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

try:
    from cryptography import x509
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = MISSING

from . import compat
from .errors import PkiError
from .issue import Issuer, signed_by
from .keys import key_type_of, same_public_key
from .names import cert_sans, san_strings
from .profiles import Profile

MAX_DAYS = 36500


def check_lifetime(valid_days: int, renew_days: int, renew_percent: int) -> None:
    """Refuse lifetimes and renewal windows that make no sense (or would re-issue on every run)."""
    if not 1 <= valid_days <= MAX_DAYS:
        raise PkiError(f"must be between 1 and {MAX_DAYS} days, got {valid_days}", where="valid_days")
    if renew_days < 0:
        raise PkiError(f"must be 0 or more, got {renew_days}", where="renew_before_days")
    if renew_days >= valid_days:
        raise PkiError(f"({renew_days}) must be less than valid_days ({valid_days}), else every run would issue "
                       "the certificate again", where="renew_before_days")
    if not 0 <= renew_percent <= 99:
        raise PkiError(f"must be between 0 and 99, got {renew_percent} (100 would renew on every run)",
                       where="renew_before_percent")


@dataclass(frozen=True)
class RenewPolicy:
    """Renew when fewer than ``days`` days or less than ``percent`` % of the lifetime remain (either may be 0)."""

    days: int = 30
    percent: int = 0

    def reasons(self, cert: x509.Certificate, at: dt.datetime) -> list[str]:
        start, end = compat.not_before(cert), compat.not_after(cert)
        if end <= at:
            return [f"expired on {end.isoformat()}"]
        left = end - at
        reasons = []
        if self.days and left < dt.timedelta(days=self.days):
            reasons.append(f"expires in {left.days} days (renew_before_days={self.days})")
        lifetime = end - start
        if self.percent and lifetime.total_seconds() > 0:
            remaining = 100.0 * left.total_seconds() / lifetime.total_seconds()
            if remaining < self.percent:
                reasons.append(f"{remaining:.0f}% of its lifetime left (renew_before_percent={self.percent})")
        return reasons


@dataclass(frozen=True)
class Wanted:
    subject: x509.Name
    sans: tuple
    profile: Profile


def reissue_reasons(
    existing: x509.Certificate | None,
    public_key,
    wanted: Wanted,
    issuer: Issuer,
    renew: RenewPolicy,
    at: dt.datetime | None = None,
) -> list[str]:
    """Every reason the certificate for ``public_key`` must be issued again; empty: keep it."""
    at = at or compat.now()
    if existing is None:
        return ["no certificate yet"]
    reasons = []
    if not same_public_key(existing.public_key(), public_key):
        reasons.append("certificate does not match the private key")
    if not signed_by(existing, issuer.cert):
        reasons.append(f"issuer changed (now {issuer.cert.subject.rfc4514_string()})")
    if existing.subject != wanted.subject:
        reasons.append(f"subject changed ({existing.subject.rfc4514_string()} -> {wanted.subject.rfc4514_string()})")
    have, want = set(san_strings(cert_sans(existing))), set(san_strings(wanted.sans))
    if have != want:
        delta = [f"+{n}" for n in sorted(want - have)] + [f"-{n}" for n in sorted(have - want)]
        reasons.append(f"subject alternative names changed ({' '.join(delta)})")
    profile_diff = wanted.profile.differences(existing, key_type_of(public_key))
    if profile_diff:
        reasons.append(f"profile changed ({', '.join(profile_diff)})")
    reasons.extend(renew.reasons(existing, at))
    return reasons
