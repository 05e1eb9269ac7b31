# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The controller's CA folder as a whole, in one call: root, intermediate (named for its generation), the CRL of
every CA (the registry's revocations and the given ones; retired intermediates revoked by the root) and the
combined ``crl.pem`` PostgreSQL's ``ssl_crl_file`` reads. The pgtls.ssl.ca_folder action runs it in the
controller's own process: no module is started, and each step keeps its own lock and dry run (ca, crl).

Layout (cafolder.Layout): root.{crt,key,crl}, intermediate.{crt,key,crl}, intermediate.generation, crl.pem,
revoked.yml, issued/, and during an intermediate rotation previous/intermediate.{crt,key,crl} and retired/*.crt.
"""

from __future__ import annotations

import glob
import os

from .authority import ensure_ca
from .cafolder import Layout
from .errors import PkiError
from .files import Attrs, read_bytes, write_atomic
from .registry import _load as load_registry
from .revocation import ensure_crl
from .specs import CA, CRL, REVOKED_ENTRY

# Where each CA's material goes when it is given as content (vault, AWX credential).
CONTENT_FILES = (("root_cert_content", "root.crt"), ("root_key_content", "root.key"),
                 ("intermediate_cert_content", "intermediate.crt"), ("intermediate_key_content", "intermediate.key"))


def _defaults(spec: dict, **given) -> dict:
    params = {name: entry.get("default") for name, entry in spec.items()}
    params.update(given)
    return params


def _revoked(entries: list[dict]) -> list[dict]:
    return [_defaults(REVOKED_ENTRY, **{k: v for k, v in entry.items() if v is not None}) for entry in entries]


def _ensure_content(folder: str, params: dict, check_mode: bool) -> list[str]:
    changes = []
    for option, name in CONTENT_FILES:
        content = params.get(option)
        if not content:
            continue
        path = os.path.join(folder, name)
        data = content.encode() if content.endswith("\n") else (content + "\n").encode()
        if read_bytes(path, option, missing_ok=True, nofollow=True) not in (data, content.encode()):
            changes.append(f"{name}: written from {option}")
            if not check_mode:
                write_atomic(path, data, Attrs(0o600, None, None), option)
    return changes


def ensure_folder(params: dict, check_mode: bool) -> dict:
    folder = params["path"]
    layout = Layout(folder)
    root = {name: layout.path(f"root.{name}") for name in ("crt", "key", "crl")}
    inter = {name: layout.path(f"intermediate.{name}") for name in ("crt", "key", "crl")}
    exists = os.path.exists(inter["crt"])
    changes = []
    if not os.path.isdir(folder):
        if os.path.lexists(folder):
            raise PkiError(f"{folder} exists and is not a folder", where="path")
        changes.append(f"{folder}: created")
        if check_mode:
            return {"changed": True, "exists": False, "changes": changes, "generation": 1}
        try:
            os.makedirs(folder, mode=0o700)
        except OSError as exc:
            raise PkiError(f"cannot create {folder}: {exc.strerror}", where="path") from None
    changes += _ensure_content(folder, params, check_mode)
    gen = layout.generation()
    passphrase = {"key_passphrase": params.get("root_key_passphrase")}
    issuer_passphrase = {"issuer_key_passphrase": params.get("root_key_passphrase")}
    done = ensure_ca(_defaults(CA, cert_path=root["crt"], key_path=root["key"], key_type=params["key_type"],
                               common_name=params["root_common_name"], lock_timeout=params["lock_timeout"],
                               **passphrase), check_mode)
    warnings = list(done.get("warnings", []))
    changes += [f"root.crt: {c}" for c in done.get("reasons", [])] or (["root CA created"] if done["changed"] else [])
    if check_mode and not os.path.exists(root["crt"]):
        return {"changed": True, "exists": exists, "changes": changes + ["intermediate CA created"],
                "generation": gen, "warnings": warnings}
    name = params["intermediate_common_name"] + (f" G{gen}" if gen > 1 else "")
    done = ensure_ca(_defaults(CA, cert_path=inter["crt"], key_path=inter["key"], key_type=params["key_type"],
                               common_name=name, issuer_cert_path=root["crt"], issuer_key_path=root["key"],
                               lock_timeout=params["lock_timeout"], **issuer_passphrase), check_mode)
    warnings += done.get("warnings", [])
    changes += [f"intermediate.crt: {c}" for c in done.get("reasons", [])] or (
        ["intermediate CA created"] if done["changed"] else [])
    if params["crl"] and not (check_mode and not os.path.exists(inter["crt"])):
        changes += _ensure_crls(layout, params, root, inter, check_mode)
    return {"changed": bool(changes), "exists": exists, "changes": changes, "generation": gen, "warnings": warnings}


def _ensure_crls(layout: Layout, params: dict, root: dict, inter: dict, check_mode: bool) -> list[str]:
    changes = []
    previous = {name: os.path.join(layout.previous, f"intermediate.{name}") for name in ("crt", "key", "crl")}
    has_previous = os.path.exists(previous["crt"])
    registry = [{"serial_number": str(e["serial_number"]), "reason": e.get("reason") or "unspecified",
                 "revocation_date": str(e["revocation_date"]) if e.get("revocation_date") else None}
                for e in load_registry(layout.path("revoked.yml"))]
    revocations = _revoked(list(params["revoked"]) + registry)
    retired = [{"certificate_path": path, "reason": "superseded"}
               for path in sorted(glob.glob(os.path.join(layout.retired, "*.crt")))]
    common = {"lock_timeout": params["lock_timeout"]}
    steps = [("root.crl", _defaults(CRL, path=root["crl"], revoked=_revoked(retired), issuer_cert_path=root["crt"],
                                    issuer_key_path=root["key"], issuer_key_passphrase=params.get("root_key_passphrase"),
                                    next_update_days=365, renew_before_days=60, **common))]
    if has_previous:
        steps.append(("previous/intermediate.crl", _defaults(
            CRL, path=previous["crl"], revoked=[r for r in revocations if r.get("serial_number")],
            issuer_cert_path=previous["crt"], issuer_key_path=previous["key"],
            next_update_days=params["crl_next_update_days"], renew_before_days=params["crl_renew_before_days"],
            **common)))
    steps.append(("intermediate.crl", _defaults(
        CRL, path=inter["crl"], revoked=revocations, issuer_cert_path=inter["crt"], issuer_key_path=inter["key"],
        next_update_days=params["crl_next_update_days"], renew_before_days=params["crl_renew_before_days"],
        combined_path=layout.crl_bundle,
        combine_with=[root["crl"]] + ([previous["crl"]] if has_previous else []),
        **common)))
    for label, crl_params in steps:
        try:
            done = ensure_crl(crl_params, check_mode)
        except PkiError as exc:
            raise PkiError(f"{label}: {exc}") from None
        if done["changed"]:
            changes.append(f"{label}: {', '.join(done.get('reasons') or ['signed'])}")
    return changes
