# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""CRLs from a declarative list (module pgtls.ssl.crl), and the combined file for ``ssl_crl_file``."""

from __future__ import annotations

import datetime as dt
import os

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = Encoding = MISSING

from . import cafolder, compat
from .crl import Revocation, build_crl, crl_signed_by, entries, parse_serial, resign_reasons
from .errors import PkiError
from .files import (
    MAX_CRL_BYTES,
    Attrs,
    check_distinct,
    check_folder,
    check_replaceable,
    ensure_file,
    parse_mode,
    read_bytes,
    resolve_gid,
    resolve_uid,
)
from .info import crl_info, diff_text
from .issue import load_issuer
from .profiles import extension


def wanted_revocations(params: dict, issuer) -> list[Revocation]:
    wanted: dict[int, Revocation] = {}
    for index, entry in enumerate(params.get("revoked") or []):
        where = f"revoked[{index}]"
        if entry.get("serial_number") not in (None, ""):
            serial = parse_serial(entry["serial_number"], f"{where}.serial_number")
        else:
            if entry.get("certificate_content"):
                data, cert_where = entry["certificate_content"].encode(), f"{where}.certificate_content"
            else:
                data = read_bytes(entry["certificate_path"], f"{where}.certificate_path")
                cert_where = f"{where}.certificate_path ({entry['certificate_path']})"
            cert = compat.load_certificates(data, cert_where)[0]
            if cert.issuer != issuer.cert.subject:
                raise PkiError(f"the certificate was issued by {cert.issuer.rfc4514_string()}, not by this CRL's "
                               f"issuer {issuer.cert.subject.rfc4514_string()}", where=cert_where)
            serial = cert.serial_number
        date = None
        if entry.get("revocation_date"):
            try:
                date = dt.datetime.fromisoformat(entry["revocation_date"].replace("Z", "+00:00"))
            except ValueError:
                raise PkiError(f"{entry['revocation_date']!r} is not an ISO 8601 date",
                               where=f"{where}.revocation_date") from None
            if date.tzinfo is None:
                date = date.replace(tzinfo=compat.UTC)
        if serial in wanted:
            raise PkiError(f"serial {serial:X} is listed twice", where=where)
        wanted[serial] = Revocation(serial, entry.get("reason") or "unspecified", date)
    return list(wanted.values())


MAX_DAYS = 36500


def _check_numbers(params: dict) -> None:
    if not 1 <= params["next_update_days"] <= MAX_DAYS:
        raise PkiError(f"must be between 1 and {MAX_DAYS}, got {params['next_update_days']}", where="next_update_days")
    if not 0 <= params["renew_before_days"] < params["next_update_days"]:
        raise PkiError(f"must be at least 0 and less than next_update_days ({params['next_update_days']}), "
                       "else the CRL would be signed again on every run", where="renew_before_days")
    if params.get("lock_timeout", 0) < 0:
        raise PkiError("must not be negative", where="lock_timeout")


def _combine_parts(params: dict) -> list[bytes]:
    """Read and check every file of O(combine_with) before anything is written."""
    parts = []
    for index, other in enumerate(params.get("combine_with") or []):
        where = f"combine_with[{index}]"
        data = read_bytes(other, where, limit=MAX_CRL_BYTES)
        compat.load_crls(data, f"{where} ({other})")
        parts.append(data if data.endswith(b"\n") else data + b"\n")
    return parts


def ensure_crl(params: dict, check_mode: bool) -> dict:
    """Plan (read and check every input, refuse every bad output), then sign and write under the CA folder's lock."""
    _check_numbers(params)
    path, combined = params["path"], params.get("combined_path")
    check_distinct({"path": path, "combined_path": combined,
                    **{f"combine_with[{i}]": p for i, p in enumerate(params.get("combine_with") or [])},
                    "issuer_cert_path": params.get("issuer_cert_path"),
                    "issuer_key_path": params.get("issuer_key_path")})
    if combined and os.path.realpath(combined) in {os.path.realpath(p) for p in params.get("combine_with") or []}:
        raise PkiError("is also listed in combine_with", where="combined_path")
    issuer = load_issuer(params, "issuer")
    wanted = wanted_revocations(params, issuer)
    attrs = Attrs(parse_mode(params["mode"], "mode"), resolve_uid(params.get("owner"), "owner"),
                  resolve_gid(params.get("group"), "group"))
    check_folder(path, "path")
    if combined:
        check_folder(combined, "combined_path")
    folder = os.path.dirname(os.path.abspath(path))
    # A dry run first: bad input fails here, before the lock file or anything else is created.
    plan = _ensure_crl_locked(params, True, issuer, wanted, attrs, folder)
    if check_mode or not plan["changed"]:
        return plan
    with cafolder.locked(folder, params.get("lock_timeout", 120)):
        return _ensure_crl_locked(params, False, issuer, wanted, attrs, folder)


def _ensure_crl_locked(params, check_mode, issuer, wanted, attrs, folder) -> dict:
    path, combined = params["path"], params.get("combined_path")
    existing_data = read_bytes(path, "path", missing_ok=True, limit=MAX_CRL_BYTES)
    check_replaceable(path, "crl", "path", existing_data)
    if combined:
        check_replaceable(combined, "crl", "combined_path")
    parts = _combine_parts(params)
    existing = None
    reasons: list[str] = []
    if existing_data is not None and existing_data.strip():
        try:
            existing = compat.load_crls(existing_data, f"path ({path})")[0]
        except PkiError as exc:
            reasons.append(f"the existing CRL is damaged ({exc})")
    if params.get("revoked_mode", "add") == "add" and existing is not None and crl_signed_by(existing, issuer.cert):
        # Read under the lock: a run that added its own revocation a moment ago keeps it.
        listed = {rev.serial for rev in wanted}
        wanted = wanted + [rev for serial, rev in entries(existing).items() if serial not in listed]
    reasons = reasons or resign_reasons(existing, issuer, wanted, dt.timedelta(days=params["renew_before_days"]))
    crl = existing
    changes: list[str] = []
    if reasons:
        # The number never goes back, even when the file was lost or replaced: state.json remembers it.
        last = cafolder.last_crl_number(folder, issuer.cert)
        if existing is not None and crl_signed_by(existing, issuer.cert):
            previous_number = extension(existing, x509.CRLNumber)
            last = max(last, previous_number.crl_number if previous_number else 0)
        crl = build_crl(issuer, wanted, existing, dt.timedelta(days=params["next_update_days"]), number=last + 1)
        changes += ensure_file(path, crl.public_bytes(Encoding.PEM), attrs, "path", check_mode)
        if not check_mode:
            cafolder.record_crl_number(folder, issuer.cert, last + 1)
    else:
        changes += ensure_file(path, existing_data, attrs, "path", check_mode)
        if changes:
            reasons.append(f"{path}: {', '.join(changes)}")
    crl_pem = crl.public_bytes(Encoding.PEM) if crl is not existing else existing_data
    if combined:
        combined_changes = ensure_file(combined, b"".join([*parts, crl_pem]), attrs, "combined_path", check_mode)
        if combined_changes:
            reasons.append(f"{combined}: {', '.join(combined_changes)}")
    before = crl_info(existing) if existing is not None else None
    after = crl_info(crl)
    return {
        "changed": bool(reasons),
        "reasons": reasons,
        "crl": after,
        "path": path,
        "combined_path": combined,
        "diff": {"before": diff_text(before), "after": diff_text(after), "before_header": path, "after_header": path},
    }
