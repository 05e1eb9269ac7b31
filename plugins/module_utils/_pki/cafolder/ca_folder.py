# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The controller's CA folder as a whole, in one call: root, intermediate (named for its generation), the CRL of
every CA (the registry's revocations and the given ones; retired intermediates revoked by the root) and the
combined ``crl.pem`` PostgreSQL's ``ssl_crl_file`` reads. The pgtls.ssl.ca_folder action runs it in the
controller's own process: no module is started.

The whole folder is one write plan (planner.Plan): CA material given as content is parsed and checked against the
folder first, then the root, the intermediate it signs and every CRL are computed in memory (each step reads what
the steps before it planned), the plan is checked, and only then is anything written - under one lock. Bad input
of any kind changes nothing, and check mode sees the whole run.

Layout (cafolder.Layout): root.{crt,key,crl}, intermediate.{crt,key,crl}, intermediate.generation, crl.pem,
revoked.yml, issued/, and during an intermediate rotation previous/intermediate.{crt,key,crl} and retired/*.crt.
"""

from __future__ import annotations

import os

from ..core import compat, planner
from ..core.errors import PkiError
from ..core.files import Attrs
from ..core.info import fingerprint, serial_hex
from ..core.issue import ca_problem, is_self_signed, signed_by
from ..core.keys import load_private_key, same_public_key
from ..core.layout import Layout
from ..core.specs import CA, CRL, REVOKED_ENTRY
from . import revocation_registry as registry
from .ca import check_numbers as check_ca_numbers
from .ca import plan_ca
from .crl import check_numbers as check_crl_numbers
from .crl import plan_crl

# Each CA's material given as content (vault, AWX credential): option, file, kind.
CONTENT = (("root_cert_content", "root.crt", "ca_certificate"), ("root_key_content", "root.key", "ca_key"),
           ("intermediate_cert_content", "intermediate.crt", "ca_certificate"),
           ("intermediate_key_content", "intermediate.key", "ca_key"))


def _defaults(spec: dict, **given) -> dict:
    params = {name: entry.get("default") for name, entry in spec.items()}
    params.update(given)
    return params


def _revoked(entries: list[dict]) -> list[dict]:
    return [_defaults(REVOKED_ENTRY, **{k: v for k, v in entry.items() if v is not None}) for entry in entries]


def ensure_folder(params: dict, check_mode: bool) -> dict:
    """The action's entry: every number checked, then one plan for the whole folder under its lock."""
    check_crl_numbers(params, "crl_")
    check_ca_numbers(params)
    folder = params["path"]
    planner.check_ca_folder(folder, "path")
    done = planner.run("ca_folder", lambda plan: plan_folder(plan, params), check_mode, lock=folder,
                       lock_timeout=params["lock_timeout"], ca_folders=[folder])
    if check_mode and not done["exists"]:
        done["warnings"].append(f"check mode: the CA in {folder} does not exist yet, so every certificate, key and "
                                "setting that depends on it would be created; run without --check once to compare "
                                "against real material")
    return done


def plan_folder(plan: planner.Plan, params: dict) -> dict:
    folder = params["path"]
    layout = Layout(folder)
    exists = os.path.exists(layout.intermediate_cert)
    changes = []
    if not os.path.isdir(folder):
        plan.mkdir(folder, Attrs(0o700), where="path")
        changes.append(f"{folder}: created")
    changes += _plan_content(plan, layout, params)
    if not plan.exists(layout.root_cert) and (os.path.lexists(layout.next_root) or
                                              os.path.lexists(layout.previous_root)):
        # A switch cut short between its moves: a new root made here would replace the fleet's trust anchor.
        raise PkiError(f"{layout.root_cert} is missing while a root rotation is under way (next-root/, previous-root/):"
                       " its switch was interrupted; run the rotate playbook with pgtls_rotate_root=switch (step=switch)"
                       " again to finish it", where="path")
    gen = layout.generation(plan.read)
    passphrase = params.get("root_key_passphrase")
    root_gen = layout.root_generation(plan.read)
    done = plan_ca(plan, _defaults(CA, cert_path=layout.root_cert, key_path=layout.root_key,
                                   key_type=params["key_type"],
                                   common_name=params["root_common_name"] + (f" R{root_gen}" if root_gen > 1 else ""),
                                   lock_timeout=params["lock_timeout"], key_passphrase=passphrase))
    warnings = list(done.get("warnings", []))
    changes += [f"root.crt: {c}" for c in done.get("reasons", [])] or (["root CA created"] if done["changed"] else [])
    name = params["intermediate_common_name"] + (f" G{gen}" if gen > 1 else "")
    done = plan_ca(plan, _defaults(CA, cert_path=layout.intermediate_cert, key_path=layout.intermediate_key,
                                   key_type=params["key_type"], common_name=name,
                                   issuer_cert_path=layout.root_cert, issuer_key_path=layout.root_key,
                                   lock_timeout=params["lock_timeout"], issuer_key_passphrase=passphrase))
    warnings += done.get("warnings", [])
    changes += [f"intermediate.crt: {c}" for c in done.get("reasons", [])] or (
        ["intermediate CA created"] if done["changed"] else [])
    if params["crl"]:
        changes += _plan_crls(plan, layout, params)
    return {"changed": bool(changes), "exists": exists, "changes": changes, "generation": gen, "warnings": warnings}


def _plan_content(plan: planner.Plan, layout: Layout, params: dict) -> list[str]:
    """CA material given as content, parsed and checked before anything is written: each certificate a CA, the root
    self-signed, the intermediate signed by the root, each key matching its certificate (given or in the folder).
    A folder file that already holds other valid material is never replaced (a stale or wrong credential must not
    replace a CA); one that holds the same material in other bytes is kept."""
    given = {option: params.get(option) for option, _name, _kind in CONTENT if params.get(option)}
    if not given:
        return []
    passphrase = params.get("root_key_passphrase")
    loaded = {}
    for option, name, kind in CONTENT:
        text = given.get(option)
        if text is None:
            continue
        data = text.encode() if text.endswith("\n") else (text + "\n").encode()
        if kind == "ca_certificate":
            certs = compat.load_certificates(data, option)
            if len(certs) != 1:
                raise PkiError(f"holds {len(certs)} certificates; give the {name} certificate alone", where=option)
            problem = ca_problem(certs[0])
            if problem:
                raise PkiError(problem, where=option)
            loaded[option] = (data, certs[0])
        else:
            secret = passphrase if option == "root_key_content" else None
            loaded[option] = (data, load_private_key(data, secret, option))

    def cert_of(option: str, name: str):
        if option in loaded:
            return loaded[option][1]
        on_disk = plan.read(layout.path(name), option, missing_ok=True)
        try:
            return compat.load_certificates(on_disk, layout.path(name))[0] if on_disk else None
        except PkiError:
            return None

    root = cert_of("root_cert_content", "root.crt")
    inter = cert_of("intermediate_cert_content", "intermediate.crt")
    if "root_cert_content" in loaded and not is_self_signed(root):
        raise PkiError(f"{root.subject.rfc4514_string()} is not self-signed: root_cert_content holds a root CA",
                       where="root_cert_content")
    if "intermediate_cert_content" in loaded and (root is None or not signed_by(inter, root)):
        raise PkiError(f"{inter.subject.rfc4514_string()} was not issued by the root "
                       f"{root.subject.rfc4514_string() if root is not None else '(none given, none in the folder)'}",
                       where="intermediate_cert_content")
    for key_option, cert, label in (("root_key_content", root, "root"), ("intermediate_key_content", inter,
                                                                         "intermediate")):
        if key_option in loaded and cert is not None and not same_public_key(loaded[key_option][1], cert):
            raise PkiError(f"the key does not match the {label} certificate {cert.subject.rfc4514_string()} "
                           f"(serial {serial_hex(cert.serial_number)})", where=key_option)
    changes = []
    for option, name, kind in CONTENT:
        if option not in loaded:
            continue
        data, value = loaded[option]
        path = layout.path(name)
        current = plan.read(path, option, missing_ok=True, nofollow=True)
        if current is not None and current.strip():
            same = _same_material(current, value, kind, option, passphrase, path)
            if same is True:
                continue
            if same is False:
                raise PkiError(f"{path} already holds other {'certificate' if kind == 'ca_certificate' else 'key'} "
                               f"material than {option}; refusing to replace a CA's file (fix the credential, or "
                               "move the CA folder away to start from it)", where=option)
        changes.append(f"{name}: written from {option}")
        plan.write(path, data, Attrs(0o600), kind=kind, where=option,
                   passphrase=passphrase if option == "root_key_content" else None)
    return changes


def _same_material(current: bytes, value, kind: str, option: str, passphrase, path: str) -> bool | None:
    """Does the file hold the same certificate (or key) as the content? None when the file is damaged (a repair:
    the content replaces it)."""
    try:
        if kind == "ca_certificate":
            return fingerprint(compat.load_certificates(current, path)[0]) == fingerprint(value)
        secret = passphrase if option == "root_key_content" else None
        return same_public_key(load_private_key(current, secret, path), value)
    except PkiError:
        return None


def _plan_crls(plan: planner.Plan, layout: Layout, params: dict) -> list[str]:
    """The CRL of every CA the servers trust, and crl.pem with all of them: the root's (its retired intermediates
    revoked), the intermediate's (the registry's revocations and the given ones), and during a rotation those of the
    previous intermediate (previous/), of the published new root (next-root/) and of the previous root and its last
    intermediate (previous-root/)."""
    changes = []
    registry_entries = [{"serial_number": str(e["serial_number"]), "reason": e.get("reason") or "unspecified",
                         "revocation_date": str(e["revocation_date"]) if e.get("revocation_date") else None}
                        for e in registry.published(registry.load(layout.registry, plan.read))]
    revocations = _revoked(list(params["revoked"]) + registry_entries)
    serials = [r for r in revocations if r.get("serial_number")]
    root = compat.load_certificates(plan.read(layout.root_cert, "path"), layout.root_cert)[0]
    old_root_path = os.path.join(layout.previous_root, "root.crt")
    old_root = (compat.load_certificates(plan.read(old_root_path, "path", nofollow=True), old_root_path)[0]
                if plan.exists(old_root_path) else None)
    retired = {"root": [], "old": []}
    for path in _retired_intermediates(plan, layout):
        cert = compat.load_certificates(plan.read(path, "path", nofollow=True), path)[0]
        if signed_by(cert, root):
            retired["root"].append({"certificate_path": path, "reason": "superseded"})
        elif old_root is not None and signed_by(cert, old_root):
            retired["old"].append({"certificate_path": path, "reason": "superseded"})
        elif not any(signed_by(cert, r) for r in _retired_roots(plan, layout)):
            raise PkiError(f"{path} holds {cert.subject.rfc4514_string()}, which this folder's root did not issue: "
                           "retired/ holds the root's retired intermediates only; move it out", where="path")
    common = {"lock_timeout": params["lock_timeout"]}
    leaf_crl = {"next_update_days": params["crl_next_update_days"], "renew_before_days": params["crl_renew_before_days"],
                **common}
    root_crl = {"next_update_days": 365, "renew_before_days": 60,
                "issuer_key_passphrase": params.get("root_key_passphrase"), **common}

    def crl(folder: str, name: str, issuer: str, revoked: list, kind: dict) -> tuple[str, dict]:
        label = os.path.relpath(os.path.join(folder, name), layout.folder)
        return label, _defaults(CRL, path=os.path.join(folder, name), revoked=revoked,
                                issuer_cert_path=os.path.join(folder, issuer + ".crt"),
                                issuer_key_path=os.path.join(folder, issuer + ".key"), **kind)

    steps = [crl(layout.folder, "root.crl", "root", _revoked(retired["root"]), root_crl)]
    if plan.exists(layout.previous_file("intermediate.crt")):
        steps.append(crl(layout.previous, "intermediate.crl", "intermediate", serials, leaf_crl))
    if plan.exists(os.path.join(layout.next_root, "root.crt")):
        steps.append(crl(layout.next_root, "root.crl", "root", [], root_crl))
    if old_root is not None:
        steps.append(crl(layout.previous_root, "root.crl", "root", _revoked(retired["old"]), root_crl))
        if plan.exists(os.path.join(layout.previous_root, "intermediate.crt")):
            steps.append(crl(layout.previous_root, "intermediate.crl", "intermediate", serials, leaf_crl))
    label, last = crl(layout.folder, "intermediate.crl", "intermediate", revocations, leaf_crl)
    last.update(combined_path=layout.crl_bundle, combine_with=[p["path"] for _label, p in steps])
    steps.append((label, last))
    for label, crl_params in steps:
        try:
            done = plan_crl(plan, crl_params, layout.folder)
        except PkiError as exc:
            raise PkiError(f"{label}: {exc}") from None
        if done["changed"]:
            changes.append(f"{label}: {', '.join(done.get('reasons') or ['signed'])}")
    return changes


def _retired_intermediates(plan: planner.Plan, layout: Layout) -> list[str]:
    return [os.path.join(layout.retired, n) for n in plan.listdir(layout.retired) if n.endswith(".crt")]


def _retired_roots(plan: planner.Plan, layout: Layout) -> list:
    """The roots of finished root rotations (retired/root-<SERIAL>.pem, the root first)."""
    return [compat.load_certificates(plan.read(path, "path", nofollow=True), path)[0]
            for path in layout.retired_roots(plan.listdir)]
