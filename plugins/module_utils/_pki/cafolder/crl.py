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
    from ..core.deps import MISSING

    x509 = Encoding = MISSING

from ..core import compat, planner
from ..core import layout as cafolder
from ..core.crls import (
    Revocation,
    build_crl,
    crl_signed_by,
    entries,
    parse_reason,
    parse_revocation_date,
    parse_serial,
    resign_reasons,
)
from ..core.errors import PkiError
from ..core.files import MAX_CRL_BYTES, Attrs, parse_mode, read_bytes, resolve_gid, resolve_uid
from ..core.info import crl_info, diff_text
from ..core.issue import load_issuer
from ..core.profiles import extension


def wanted_revocations(params: dict, issuer, read=read_bytes) -> list[Revocation]:
    wanted: dict[int, Revocation] = {}
    for index, entry in enumerate(params.get("revoked") or []):
        where = f"revoked[{index}]"
        if entry.get("serial_number") not in (None, ""):
            serial = parse_serial(entry["serial_number"], f"{where}.serial_number")
        else:
            if entry.get("certificate_content"):
                data, cert_where = entry["certificate_content"].encode(), f"{where}.certificate_content"
            else:
                data = read(entry["certificate_path"], f"{where}.certificate_path")
                cert_where = f"{where}.certificate_path ({entry['certificate_path']})"
            cert = compat.load_certificates(data, cert_where)[0]
            if cert.issuer != issuer.cert.subject:
                raise PkiError(f"the certificate was issued by {cert.issuer.rfc4514_string()}, not by this CRL's "
                               f"issuer {issuer.cert.subject.rfc4514_string()}", where=cert_where)
            serial = cert.serial_number
        reason = parse_reason(entry.get("reason"), f"{where}.reason")
        date = parse_revocation_date(entry["revocation_date"], f"{where}.revocation_date") \
            if entry.get("revocation_date") else None
        if serial in wanted:
            if wanted[serial].reason != reason:
                raise PkiError(f"serial {serial:X} is listed twice, with reasons {wanted[serial].reason} and "
                               f"{reason}", where=where)
            continue
        wanted[serial] = Revocation(serial, reason, date)
    return list(wanted.values())


MAX_DAYS = 36500


def check_numbers(params: dict, prefix: str = "") -> None:
    """The CRL's lifetime and renewal window (``prefix``: ca_folder names them crl_next_update_days...)."""
    next_update, renew = params[f"{prefix}next_update_days"], params[f"{prefix}renew_before_days"]
    if not 1 <= next_update <= MAX_DAYS:
        raise PkiError(f"must be between 1 and {MAX_DAYS}, got {next_update}", where=f"{prefix}next_update_days")
    if not 0 <= renew < next_update:
        raise PkiError(f"must be at least 0 and less than {prefix}next_update_days ({next_update}), else the CRL "
                       f"would be signed again on every run, got {renew}", where=f"{prefix}renew_before_days")
    if params.get("lock_timeout", 0) < 0:
        raise PkiError(f"must not be negative, got {params['lock_timeout']}", where="lock_timeout")


def _combine_parts(params: dict, read) -> list[bytes]:
    """Read and check every file of O(combine_with) before anything is written (CRLs of any CA: a bundle for
    ssl_crl_file holds the CRL of every CA the servers trust, a previous intermediate's during a rotation)."""
    parts = []
    for index, other in enumerate(params.get("combine_with") or []):
        where = f"combine_with[{index}]"
        data = read(other, where, limit=MAX_CRL_BYTES)
        compat.load_crls(data, f"{where} ({other})")
        parts.append(data if data.endswith(b"\n") else data + b"\n")
    return parts


def ensure_crl(params: dict, check_mode: bool) -> dict:
    """Module entry (pgtls.ssl.crl): plan (read and check every input, refuse every bad output), then sign and write
    under the CA folder's lock."""
    check_numbers(params)
    folder = os.path.dirname(os.path.abspath(params["path"]))
    return planner.run("crl", lambda plan: plan_crl(plan, params), check_mode, lock=folder,
                       lock_timeout=params.get("lock_timeout", 120))


def plan_crl(plan: planner.Plan, params: dict, state_folder: str | None = None) -> dict:
    """Declare one CA's CRL (and the combined file) to ``plan``; return the module's result. ``state_folder``: where
    the last CRL numbers are kept (the CA folder's state.json; by default the CRL's own folder)."""
    path, combined = params["path"], params.get("combined_path")
    plan.options({"path": path, "combined_path": combined},
                 {**{f"combine_with[{i}]": p for i, p in enumerate(params.get("combine_with") or [])},
                  "issuer_cert_path": params.get("issuer_cert_path"),
                  "issuer_key_path": params.get("issuer_key_path")})
    plan.claim(path, kind="crl", where="path")
    if combined:
        plan.claim(combined, kind="crl", where="combined_path")
    issuer = load_issuer(params, "issuer", read=plan.read)
    wanted = wanted_revocations(params, issuer, plan.read)
    attrs = Attrs(parse_mode(params["mode"], "mode"), resolve_uid(params.get("owner"), "owner"),
                  resolve_gid(params.get("group"), "group"))
    folder = state_folder or os.path.dirname(os.path.abspath(path))
    existing_data = plan.read(path, "path", missing_ok=True, limit=MAX_CRL_BYTES)
    parts = _combine_parts(params, plan.read)
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
    crl_pem = existing_data
    crl = existing
    if reasons:
        # The number never goes back, even when the file was lost or replaced: state.json remembers it.
        last = cafolder.last_crl_number(folder, issuer.cert, plan)
        if existing is not None and crl_signed_by(existing, issuer.cert):
            previous_number = extension(existing, x509.CRLNumber)
            last = max(last, previous_number.crl_number if previous_number else 0)
        crl = build_crl(issuer, wanted, existing, dt.timedelta(days=params["next_update_days"]), number=last + 1)
        crl_pem = crl.public_bytes(Encoding.PEM)
        plan.write(path, crl_pem, attrs, kind="crl", where="path", signed_by=issuer.cert)
        cafolder.record_crl_number(plan, folder, issuer.cert, last + 1)
    else:
        changes = plan.write(path, existing_data, attrs, kind="crl", where="path")
        if changes:
            reasons.append(f"{path}: {', '.join(changes)}")
    if combined:
        combined_changes = plan.write(combined, b"".join([*parts, crl_pem]), attrs, kind="crl",
                                      where="combined_path")
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
