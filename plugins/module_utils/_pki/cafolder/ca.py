# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Root and intermediate CAs (module pgtls.ssl.ca). An existing, valid CA is never replaced implicitly."""

from __future__ import annotations

import dataclasses
import os

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from ..core.deps import MISSING

    x509 = Encoding = MISSING

from ..core import compat, planner
from ..core.errors import PkiError
from ..core.files import Attrs, parse_mode, resolve_gid, resolve_uid
from ..core.info import cert_info, diff_text
from ..core.issue import ca_problem, issue_certificate, load_issuer, signed_by
from ..core.keys import generate_key, key_type_of, load_private_key, private_key_pem, public_fingerprint, same_public_key
from ..core.names import build_name
from ..core.profiles import INTERMEDIATE_CA, ROOT_CA, extension

DEFAULT_DAYS = {"root_ca": 3650, "intermediate_ca": 1825}


MAX_DAYS = 36500


def _check_options(params: dict, issuer) -> object:
    """Everything about the options that can be refused before a file is written; returns the profile."""
    check_numbers(params)
    if issuer is None:
        return ROOT_CA
    profile = INTERMEDIATE_CA
    if params.get("path_length") is not None:
        profile = dataclasses.replace(profile, path_length=params["path_length"])
    limit = extension(issuer.cert, x509.BasicConstraints).path_length
    if limit is not None and profile.path_length >= limit:
        who = issuer.cert.subject.rfc4514_string()
        if limit == 0:
            raise PkiError(f"the issuer {who} has path length 0: it may issue only end-entity certificates, and a CA "
                           "signed by it is rejected by OpenSSL (error 25, path length constraint exceeded); sign "
                           "with its parent instead", where=issuer.source or "issuer_cert_path")
        raise PkiError(f"must be less than the issuer's path length ({limit}), got {profile.path_length}",
                       where="path_length")
    return profile


def check_numbers(params: dict) -> None:
    """The numbers of a CA's options, refused before anything is read or written."""
    if params.get("valid_days") is not None and not 1 <= params["valid_days"] <= MAX_DAYS:
        raise PkiError(f"must be between 1 and {MAX_DAYS} days, got {params['valid_days']}", where="valid_days")
    if params.get("path_length") is not None and params["path_length"] < 0:
        raise PkiError(f"must be 0 or more, got {params['path_length']}", where="path_length")
    if params.get("lock_timeout", 0) < 0:
        raise PkiError(f"must not be negative, got {params['lock_timeout']}", where="lock_timeout")


def ensure_ca(params: dict, check_mode: bool) -> dict:
    """Module entry (pgtls.ssl.ca): the CA planned, checked, then written under the CA folder's lock."""
    check_numbers(params)
    folder = os.path.dirname(os.path.abspath(params["cert_path"]))
    return planner.run("ca", lambda plan: plan_ca(plan, params), check_mode, lock=folder,
                       lock_timeout=params.get("lock_timeout", 120))


def plan_ca(plan: planner.Plan, params: dict) -> dict:
    """Declare one CA's key and certificate to ``plan``; return the module's result. Reads go through the plan, so
    an issuer planned earlier in the same run (the ca_folder's root) signs here."""
    plan.options({"cert_path": params["cert_path"], "key_path": params["key_path"]},
                 {"issuer_cert_path": params.get("issuer_cert_path"),
                  "issuer_key_path": params.get("issuer_key_path"),
                  "issuer_chain_path": params.get("issuer_chain_path")})
    plan.claim(params["key_path"], kind="ca_key", where="key_path")
    plan.claim(params["cert_path"], kind="ca_certificate", where="cert_path")
    issuer = load_issuer(params, "issuer", read=plan.read)
    profile = _check_options(params, issuer)
    valid_days = params.get("valid_days") or DEFAULT_DAYS[profile.name]
    subject = build_name(params["common_name"], params.get("subject"), where="subject")
    uid = resolve_uid(params.get("owner"), "owner")
    gid = resolve_gid(params.get("group"), "group")
    key_attrs = Attrs(parse_mode(params["key_mode"], "key_mode"), uid, gid)
    cert_attrs = Attrs(parse_mode(params["cert_mode"], "cert_mode"), uid, gid)
    cert_path, key_path = params["cert_path"], params["key_path"]
    passphrase = params.get("key_passphrase")
    cert_data = plan.read(cert_path, "cert_path", missing_ok=True)
    key_data = plan.read(key_path, "key_path", missing_ok=True, nofollow=True)
    cert = compat.load_certificates(cert_data, f"cert_path ({cert_path})")[0] if cert_data else None
    key = load_private_key(key_data, passphrase, f"key_path ({key_path})") if key_data else None
    if issuer is not None and key is not None and same_public_key(key, issuer.cert.public_key()):
        raise PkiError(f"{key_path} holds the issuer's own key ({issuer.cert.subject.rfc4514_string()}): an "
                       "intermediate needs a key of its own", where="key_path")
    result = {"changed": False, "reasons": [], "warnings": [], "kind": profile.name}

    if cert is not None and not params["force"]:
        if key is None:
            raise PkiError(f"the CA certificate {cert_path} exists but its key does not; a CA is never replaced "
                           "implicitly: restore the key or set force=true to create a new CA", where="key_path")
        if not same_public_key(cert.public_key(), key):
            raise PkiError(f"the CA certificate {cert_path} and the key {key_path} do not match", where="key_path")
        problem = ca_problem(cert)
        if problem:
            raise PkiError(f"{problem}; a CA is never replaced implicitly: set force=true to create a new one",
                           where="cert_path")
        drift = []
        if cert.subject != subject:
            drift.append(f"subject is {cert.subject.rfc4514_string()}, options ask for {subject.rfc4514_string()}")
        if key_type_of(key) != params["key_type"]:
            drift.append(f"key type is {key_type_of(key)}, options ask for {params['key_type']}")
        if issuer is not None and not signed_by(cert, issuer.cert):
            drift.append(f"it was not issued by {issuer.cert.subject.rfc4514_string()}")
        if issuer is None and cert.issuer != cert.subject:
            drift.append("it is not self-signed but no issuer was given")
        if drift:
            result["warnings"].append(f"existing CA {cert_path} kept although " + "; ".join(drift)
                                      + " (set force=true to replace it)")
        for path, attrs, kind, where in ((key_path, key_attrs, "ca_key", "key_path"),
                                         (cert_path, cert_attrs, "ca_certificate", "cert_path")):
            changes = plan.keep(path, attrs, kind=kind, where=where)
            if changes:
                result["changed"] = True
                result["reasons"].append(f"{path}: {', '.join(changes)}")
        return _finish(result, cert, key, cert_path, key_path, before=cert)

    result["changed"] = True
    result["reasons"].append("forced" if cert is not None else "no CA certificate yet")
    if key is None or params["force"] or key_type_of(key) != params["key_type"]:
        key = generate_key(params["key_type"])
        key_data = private_key_pem(key, passphrase)
    new_cert = issue_certificate(subject=subject, public_key=key.public_key(), profile=profile,
                                 valid_days=valid_days, issuer=issuer, self_signing_key=key)
    plan.write(key_path, key_data, key_attrs, kind="ca_key", where="key_path", passphrase=passphrase,
               matches=cert_path)
    plan.write(cert_path, new_cert.public_bytes(Encoding.PEM), cert_attrs, kind="ca_certificate", where="cert_path",
               issued_by=issuer.cert if issuer is not None else new_cert)
    return _finish(result, new_cert, key, cert_path, key_path, before=cert)


def _finish(result, cert, key, cert_path, key_path, before) -> dict:
    result["certificate"] = cert_info(cert)
    result["cert_path"] = cert_path
    result["key"] = {"path": key_path, "type": key_type_of(key), "public_key_fingerprint": public_fingerprint(key)}
    result["diff"] = {"before": diff_text(cert_info(before) if before is not None else None),
                      "after": diff_text(result["certificate"]), "before_header": cert_path, "after_header": cert_path}
    return result
