# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Idempotency as a readable comparison: why an existing certificate must be issued again."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

try:
    from cryptography import x509
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = MISSING

from . import compat
from .constants import KEY_ROTATIONS
from .errors import PkiError
from .info import serial_hex
from .issue import BACKDATE, Issuer, signed_by
from .keys import key_type_of, public_fingerprint, same_public_key
from .names import cert_sans, common_name_of, san_strings
from .profiles import Profile

MAX_DAYS = 36500


def check_lifetime(valid_days: int, renew_days: int, renew_percent: int, run_interval_hours: int = 0) -> None:
    """Refuse lifetimes and renewal windows that make no sense (or would re-issue on every run), and a window
    shorter than the interval of the scheduled runs that renew (a certificate could expire between two runs)."""
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
    if run_interval_hours < 0:
        raise PkiError(f"must be 0 or more, got {run_interval_hours}", where="run_interval_hours")
    window = max(renew_days * 24.0, valid_days * 24.0 * renew_percent / 100)
    if run_interval_hours and window < run_interval_hours:
        raise PkiError(f"the renewal window ({window:g} hours: renew_before_days={renew_days}, renew_before_percent="
                       f"{renew_percent} of valid_days={valid_days}) is shorter than the scheduled runs' interval "
                       f"({run_interval_hours} hours): a certificate could expire between two runs; widen the window "
                       "(twice the interval leaves one failed run to retry)", where="run_interval_hours")


def ca_min_days(valid_days: int, renew_days: int, renew_percent: int) -> int:
    """The least a CA must have left for its leaves: a leaf's lifetime and its renewal window (the larger of the days
    and the percentage of the lifetime). Less, and the intermediate rotation is due before leaves outlive it."""
    return int(valid_days) + max(int(renew_days), -(-int(valid_days) * int(renew_percent) // 100))


def _rekey_before(value, where: str) -> dt.datetime:
    return compat.parse_past_instant(value, where, "a key made before it would be replaced on every run until then")


@dataclass(frozen=True)
class RenewPolicy:
    """Renew when fewer than ``days`` days or less than ``percent`` % of the lifetime remain (either may be 0); with
    ``key_rotation`` on_renewal a renewal certifies a new key made on the host, and ``rekey_before`` replaces the key
    of a certificate issued before that time. ``compromised``: the public keys (public_fingerprint) of certificates
    revoked for key_compromise, each with the serial that says so: never certified again. ``revoked``: the serials the
    CA's registry revokes (published or pending), each with its reason: a certificate with one is issued again."""

    days: int = 30
    percent: int = 0
    key_rotation: str = "never"
    rekey_before: dt.datetime | None = None
    compromised: dict = field(default_factory=dict, compare=False)
    revoked: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_params(cls, params: dict, compromised: dict | None = None, revoked: dict | None = None) -> RenewPolicy:
        """The policy of a module's renewal options (specs.RENEWAL), each checked."""
        if params.get("key_rotation", "never") not in KEY_ROTATIONS:
            raise PkiError(f"must be one of {', '.join(KEY_ROTATIONS)}, got {params['key_rotation']!r}",
                           where="key_rotation")
        before = params.get("rekey_before")
        return cls(days=params["renew_before_days"], percent=params["renew_before_percent"],
                   key_rotation=params.get("key_rotation", "never"),
                   rekey_before=_rekey_before(before, "rekey_before") if before not in (None, "") else None,
                   compromised=dict(compromised or {}), revoked=dict(revoked or {}))

    def with_rekey_before(self, value, where: str) -> RenewPolicy | None:
        """The policy for one certificate with its own rekey_before (the later of the two applies); None without."""
        if value in (None, ""):
            return None
        own = _rekey_before(value, where)
        return replace(self, rekey_before=max(own, self.rekey_before) if self.rekey_before else own)

    def renews_at(self, start: dt.datetime | None, end: dt.datetime) -> dt.datetime:
        """When a certificate valid from ``start`` to ``end`` becomes due (the first moment ``reasons`` gives one):
        ``days`` before its end or with ``percent`` % of its lifetime left, whichever comes first; without either,
        its end. The audit's renewal timestamp (cert-manager's certificate_renewal_timestamp_seconds)."""
        due = [end]
        if self.days:
            due.append(end - dt.timedelta(days=self.days))
        if self.percent and start is not None and end > start:
            due.append(end - (end - start) * self.percent / 100)
        return min(due)

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

    def new_key_reasons(self, name: str, existing: x509.Certificate | None, public_key, reissue: list[str],
                        key_state: str) -> list[str]:
        """Why the key on the host must be replaced before the certificate is issued (empty: sign its CSR). A key
        made by this run or waiting from an earlier one (``key_state`` not present) is new already. A compromised key is
        replaced whatever key_rotation says (never keeps keys through renewals, not a key revoked for compromise)."""
        if key_state != "present":
            return []
        own = existing is not None and same_public_key(existing.public_key(), public_key)
        reasons = []
        # Issued at its notBefore plus the backdating issue.py gives every certificate (clock skew).
        if self.rekey_before and own and compat.not_before(existing) + BACKDATE < self.rekey_before:
            reasons.append(f"issued before rekey_before ({self.rekey_before.isoformat()}): new key")
        compromised = self.compromised.get(public_fingerprint(public_key))
        if compromised and (reissue or reasons):
            # key_rotation=never keeps a key through renewals; a compromised key is never kept.
            reasons.append(f"its key is the key of certificate {compromised}, revoked for key_compromise: new key"
                           + (" (key_rotation=never keeps no compromised key)" if self.key_rotation == "never" else ""))
        elif self.key_rotation == "on_renewal" and own and reissue and not reasons:
            reasons.append("new key for the new certificate (key_rotation=on_renewal)")
        return reasons

    def check_signable(self, name: str, public_key) -> None:
        """The last check before a certificate is signed: never for a compromised key."""
        compromised = self.compromised.get(public_fingerprint(public_key))
        if compromised:
            raise PkiError(f"{name}: refusing to certify the key of certificate {compromised}, revoked for "
                           "key_compromise (a key revoked for compromise is never certified again)",
                           where="key_rotation")


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
    ours = signed_by(existing, issuer.cert)
    if not ours:
        reasons.append(f"issuer changed (now {issuer.cert.subject.rfc4514_string()})")
    # A PKI engine (issuer.signer) writes the subject and the extensions by its role: the common name, the names
    # and the usage PostgreSQL needs are compared, not the engine's own choices.
    engine = issuer.signer is not None
    if (common_name_of(existing.subject) != common_name_of(wanted.subject)) if engine else \
            existing.subject != wanted.subject:
        reasons.append(f"subject changed ({existing.subject.rfc4514_string()} -> {wanted.subject.rfc4514_string()})")
    have, want = set(san_strings(cert_sans(existing))), set(san_strings(wanted.sans))
    if have != want:
        delta = [f"+{n}" for n in sorted(want - have)] + [f"-{n}" for n in sorted(have - want)]
        reasons.append(f"subject alternative names changed ({' '.join(delta)})")
    profile_diff = wanted.profile.engine_differences(existing) if engine else \
        wanted.profile.differences(existing, key_type_of(public_key))
    if profile_diff:
        reasons.append(f"profile changed ({', '.join(profile_diff)})")
    revoked = renew.revoked.get(existing.serial_number)
    if revoked and ours:
        reasons.append(f"certificate {serial_hex(existing.serial_number)} is revoked ({revoked})")
    reasons.extend(renew.reasons(existing, at))
    return reasons
