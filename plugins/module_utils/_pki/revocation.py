# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""CRLs from a declarative list (module pgtls.ssl.crl), and the combined file for ``ssl_crl_file``."""

from __future__ import annotations

import datetime as dt

try:
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    Encoding = MISSING

from . import compat
from .crl import Revocation, build_crl, parse_serial, resign_reasons
from .errors import PkiError
from .files import Attrs, ensure_file, parse_mode, read_bytes, resolve_gid, resolve_uid
from .info import crl_info, diff_text
from .issue import load_issuer


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


def ensure_crl(params: dict, check_mode: bool) -> dict:
    if params["next_update_days"] < 1:
        raise PkiError("must be at least 1", where="next_update_days")
    if not 0 <= params["renew_before_days"] < params["next_update_days"]:
        raise PkiError(f"must be at least 0 and less than next_update_days ({params['next_update_days']}), "
                       "else the CRL would be signed again on every run", where="renew_before_days")
    issuer = load_issuer(params, "issuer")
    wanted = wanted_revocations(params, issuer)
    attrs = Attrs(parse_mode(params["mode"], "mode"), resolve_uid(params.get("owner"), "owner"),
                  resolve_gid(params.get("group"), "group"))
    path = params["path"]
    existing_data = read_bytes(path, "path", missing_ok=True)
    existing = None
    reasons: list[str] = []
    if existing_data is not None:
        try:
            existing = compat.load_crls(existing_data, f"path ({path})")[0]
        except PkiError as exc:
            reasons.append(f"the existing file is not a CRL ({exc})")
    reasons = reasons or resign_reasons(existing, issuer, wanted, dt.timedelta(days=params["renew_before_days"]))
    crl = existing
    changes: list[str] = []
    if reasons:
        crl = build_crl(issuer, wanted, existing, dt.timedelta(days=params["next_update_days"]))
        changes += ensure_file(path, crl.public_bytes(Encoding.PEM), attrs, "path", check_mode)
    else:
        changes += ensure_file(path, existing_data, attrs, "path", check_mode)
        if changes:
            reasons.append(f"{path}: {', '.join(changes)}")
    crl_pem = crl.public_bytes(Encoding.PEM) if crl is not existing else existing_data
    if params.get("combined_path"):
        parts = []
        for index, other in enumerate(params.get("combine_with") or []):
            where = f"combine_with[{index}]"
            data = read_bytes(other, where)
            compat.load_crls(data, f"{where} ({other})")
            parts.append(data if data.endswith(b"\n") else data + b"\n")
        parts.append(crl_pem)
        combined_changes = ensure_file(params["combined_path"], b"".join(parts), attrs, "combined_path", check_mode)
        if combined_changes:
            reasons.append(f"{params['combined_path']}: {', '.join(combined_changes)}")
    before = crl_info(existing) if existing is not None else None
    after = crl_info(crl)
    return {
        "changed": bool(reasons),
        "reasons": reasons,
        "crl": after,
        "path": path,
        "combined_path": params.get("combined_path"),
        "diff": {"before": diff_text(before), "after": diff_text(after), "before_header": path, "after_header": path},
    }
