# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The CA folder as the mirror of a PKI engine (OpenBao or Vault; pgtls.ssl.ca_folder with ``openbao``): the engine
holds the CA and its keys, the folder holds what the hosts get from it - the root (``root.crt``), the intermediate
that signs (``intermediate.crt``), the CRL of each (``intermediate.crl``, ``root.crl``) and ``crl.pem`` with both
(a server's ``ssl_crl_file``) - named by the same Layout as the collection's own CA, so every role and playbook reads
them as it always does.

Everything is asked of the engine first and checked (the root self-signed, one intermediate issued by it, a CRL
signed by each), then the folder is written in one plan: an engine that is unreachable, sealed, refuses the token or
has no issuer changes nothing. The revocations (the task's ``revoked`` and the registry's, revoked.yml) are made in
the engine by serial before its CRLs are read; a serial the engine's CRL already holds is not sent again. The
engine is passed in (``engine``: authenticate(), root(), chain(), crls(), rotate_crl(), revoke()), so this file needs no HTTP."""

from __future__ import annotations

import datetime as dt
import os

try:
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError:  # deps.py keeps the error; the action fails with it through deps.require_cryptography()
    from ..core.deps import MISSING

    Encoding = MISSING

from ..core import compat, planner
from ..core.crls import crl_signed_by, entries, parse_serial
from ..core.errors import PkiError
from ..core.files import Attrs
from ..core.info import fingerprint, serial_hex
from ..core.issue import is_self_signed, signed_by
from ..core.layout import Layout
from . import revocation_registry as registry

# Options of pgtls.ssl.ca_folder that make or hold a CA of the collection's own: meaningless with an engine.
OWN_CA_OPTIONS = ("root_key_passphrase", "root_cert_content", "root_key_content", "intermediate_cert_content",
                  "intermediate_key_content")


def ensure_mirror(params: dict, check_mode: bool, engine) -> dict:
    folder = params["path"]
    planner.check_ca_folder(folder, "path")
    for option in OWN_CA_OPTIONS:
        if params.get(option):
            raise PkiError("the engine (openbao) holds the CA: give its material to the engine, not to the folder",
                           where=option)
    layout = Layout(folder)
    keys = layout.ca_keys()
    if keys:
        raise PkiError(f"{keys[0]} is there: {folder} holds a CA of the collection's own, and the engine's mirror would "
                       "replace its files; give openbao a folder of its own", where="path")
    engine.authenticate()
    root_pem = engine.root()
    root = compat.load_certificates(root_pem.encode(), "openbao.root_mount")[0]
    intermediate = _intermediate(engine.chain(), root)
    _same_root(layout, root)
    warnings = []
    revoked = _revocations(params, layout, intermediate)
    # The engine's CRLs: the files' content, and which serials it revokes already (also without CRL files).
    crls = _check_crls(engine.crls(), intermediate, root) if params["crl"] or revoked else []
    if params["crl"]:
        crls = _fresh(engine, crls, intermediate, root, params, check_mode, warnings)
    moving = _migrating(params, root, intermediate, layout) if params.get("migrate_from") else ""
    listed = entries(compat.load_crls(crls[0].encode(), "openbao.int_mount")[0]) if revoked else {}
    todo = {serial: reason for serial, reason in revoked.items() if serial not in listed}
    if any(reason != "unspecified" for reason in todo.values()):
        warnings.append("the engine records no revocation reason: its CRL lists "
                        f"{', '.join(serial_hex(s) for s in todo)} without one")

    def build(plan: planner.Plan) -> dict:
        changes = []
        if not os.path.isdir(folder):
            plan.mkdir(folder, Attrs(0o700), where="path")
            changes.append(f"{folder}: created")
        cert_pem = intermediate.public_bytes(Encoding.PEM).decode()
        crl_files = ((layout.intermediate_crl, crls[0]), (layout.root_crl, crls[1]),
                     (layout.crl_bundle, crls[0] + crls[1] + moving)) if params["crl"] else ()
        for path, data, kind in ((layout.root_cert, root_pem, "ca_certificate"),
                                 (layout.intermediate_cert, cert_pem, "ca_certificate"),
                                 *((p, d, "crl") for p, d in crl_files)):
            if plan.write(path, data.encode(), Attrs(0o644), kind=kind, where="openbao"):
                changes.append(f"{os.path.basename(path)}: from the engine")
        changes += [f"revoked in the engine: {serial_hex(s)}" for s in todo]
        return {"changed": bool(changes), "exists": os.path.exists(layout.intermediate_cert), "changes": changes,
                "generation": 1, "warnings": warnings, "backend": "openbao",
                "root_fingerprint_sha256": fingerprint(root), "intermediate_fingerprint_sha256": fingerprint(intermediate),
                # The trust anchor (public): the server role's trust check compares the fleet's root.crt with it.
                "root_certificate": root_pem}

    if todo and not check_mode:
        # The folder's plan is checked first (a file the mirror may not replace fails here, before the engine
        # revokes anything); then the revocations, and the plan again with the CRLs that list them.
        planner.run("ca_folder", build, True, lock=folder, lock_timeout=params["lock_timeout"], ca_folders=[folder])
        for serial in todo:
            engine.revoke(serial, f"revoked ({serial_hex(serial)})")
        crls = _check_crls(engine.crls(), intermediate, root)
    return planner.run("ca_folder", build, check_mode, lock=folder, lock_timeout=params["lock_timeout"],
                       ca_folders=[folder])


def _intermediate(chain_pems: list[str], root):
    """The engine's chain without its root: one intermediate, issued by the root mount's root."""
    certs = [c for pem in chain_pems for c in compat.load_certificates(pem.encode(), "openbao.int_mount")]
    found = [c for c in certs if not is_self_signed(c)]
    if len(found) != 1:
        raise PkiError(f"the intermediate mount's chain holds {len(found)} CA certificates below the root; the mirror "
                       "takes one intermediate issued by the root mount's root", where="openbao.int_mount")
    if not signed_by(found[0], root):
        raise PkiError(f"the intermediate {found[0].subject.rfc4514_string()} was issued by "
                       f"{found[0].issuer.rfc4514_string()}, not by the root mount's root {root.subject.rfc4514_string()}:"
                       " its chain does not end at the root the fleet would trust; name the mounts of one hierarchy",
                       where="openbao.int_mount")
    return found[0]


def _same_root(layout: Layout, root) -> None:
    """The root the folder (and so the fleet) trusts is the engine's: another one would make every server and client
    stop trusting the other side; that is a root rotation, refused here."""
    if not os.path.lexists(layout.root_cert):
        return
    data = planner.Plan("ca_folder").read(layout.root_cert, "path", nofollow=True)
    try:
        current = compat.load_certificates(data, layout.root_cert)[0]
    except PkiError:
        return  # a damaged certificate file: the engine's root replaces it (the write planner decides what it may)
    if fingerprint(current) != fingerprint(root):
        raise PkiError(f"the fleet trusts {current.subject.rfc4514_string()} ({layout.root_cert}, sha256 "
                       f"{fingerprint(current)[:23]}...), the root mount has {root.subject.rfc4514_string()} (sha256 "
                       f"{fingerprint(root)[:23]}...): another root; nothing changed (a new root is a root rotation)",
                       where="openbao.root_mount")


def _revocations(params: dict, layout: Layout, intermediate) -> dict[int, str]:
    """The serials to revoke in the engine, checked before any is sent: the task's ``revoked`` entries and the
    registry's published ones. A certificate given by file or content must be one the engine's intermediate issued."""
    found = {}
    for index, entry in enumerate(params["revoked"]):
        where = f"revoked[{index}]"
        reason = entry.get("reason") or "unspecified"
        if entry.get("serial_number"):
            found[parse_serial(entry["serial_number"], f"{where}.serial_number")] = reason
            continue
        option = "certificate_path" if entry.get("certificate_path") else "certificate_content"
        data = (planner.Plan("ca_folder").read(entry["certificate_path"], f"{where}.certificate_path")
                if option == "certificate_path" else str(entry["certificate_content"]).encode())
        cert = compat.load_certificates(data, f"{where}.{option}")[0]
        if not signed_by(cert, intermediate):
            raise PkiError(f"{cert.subject.rfc4514_string()} (serial {serial_hex(cert.serial_number)}) was not issued "
                           f"by the engine's intermediate {intermediate.subject.rfc4514_string()}", where=f"{where}.{option}")
        found[cert.serial_number] = reason
    if os.path.exists(layout.registry):
        for entry in registry.published(registry.load(layout.registry)):
            found.setdefault(parse_serial(str(entry["serial_number"]), "revoked.yml"), entry.get("reason") or "unspecified")
    return found


def _check_crls(crls: list[str], intermediate, root) -> list[str]:
    """The engine's CRLs (the intermediate's, the root's), each checked to be its CA's."""
    inter_crl, root_crl = (compat.load_crls(text.encode(), mount)[0]
                           for text, mount in zip(crls, ("openbao.int_mount", "openbao.root_mount")))
    for crl, ca, mount in ((inter_crl, intermediate, "int_mount"), (root_crl, root, "root_mount")):
        if not crl_signed_by(crl, ca):
            raise PkiError(f"the CRL of {mount} is not signed by {ca.subject.rfc4514_string()}", where=f"openbao.{mount}")
    return crls


def _fresh(engine, crls: list[str], intermediate, root, params: dict, check_mode: bool, warnings: list) -> list[str]:
    """The engine's CRLs, each signed again in the engine when a third of its lifetime or crl_renew_before_days
    (whichever is less) is left: a server holding an expired CRL refuses every client certificate. A CRL that lasts
    less than crl_renew_before_days is warned about (the mount's config/crl expiry): the hosts then depend on runs
    closer together than the renewal window says. An expired CRL the engine does not renew is an error."""
    now = compat.now()
    due = []
    for index, (text, mount) in enumerate(zip(crls, ("int_mount", "root_mount"))):
        crl = compat.load_crls(text.encode(), f"openbao.{mount}")[0]
        last, next_update = compat.crl_last_update(crl), compat.crl_next_update(crl)
        if next_update is None:
            continue
        lifetime = next_update - last
        if lifetime < dt.timedelta(days=params["crl_renew_before_days"]):
            warnings.append(f"the CRL of openbao.{mount} lasts {_days(lifetime)} (the mount's config/crl expiry), "
                            f"less than crl_renew_before_days={params['crl_renew_before_days']}: run at least that "
                            "often, or set a longer expiry")
        if next_update - now < min(dt.timedelta(days=params["crl_renew_before_days"]), lifetime / 3):
            due.append((index, mount, next_update))
    if not due:
        return crls
    if check_mode:
        warnings.append(f"check mode: the engine would sign the CRL of {', '.join(m for _i, m, _n in due)} again")
        return crls
    for _index, mount, _next in due:
        engine.rotate_crl(mount)
    crls = _check_crls(engine.crls(), intermediate, root)
    for index, mount, _next in due:
        renewed = compat.crl_next_update(compat.load_crls(crls[index].encode(), f"openbao.{mount}")[0])
        if renewed is not None and renewed <= now:
            raise PkiError(f"the CRL of openbao.{mount} expired on {renewed.isoformat()} and the engine did not sign a "
                           "new one (crl/rotate): servers would refuse every client certificate; fix the mount's CRL "
                           "configuration", where=f"openbao.{mount}")
    return crls


def _days(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


def _migrating(params: dict, root, intermediate, layout: Layout) -> str:
    """The CRL of the intermediate of the CA folder the fleet moves from (``migrate_from``), for crl.pem: the servers
    keep accepting the certificates it issued (clients not renewed yet) while the engine's intermediate issues the
    new ones. The folder must share the engine's root (imported into the root mount), hold its intermediate's CRL,
    signed by it and not expired; it is only read."""
    folder = params["migrate_from"]
    if not params["crl"]:
        raise PkiError("needs CRLs (crl): the moving fleet's servers check the CRL of both intermediates",
                       where="migrate_from")
    old = Layout(folder)
    if os.path.realpath(folder) == os.path.realpath(layout.folder):
        raise PkiError(f"{folder} is the mirror itself (path): give the CA folder the fleet moves from",
                       where="migrate_from")
    reader = planner.Plan("ca_folder")
    for path in (old.root_cert, old.intermediate_cert, old.intermediate_crl):
        if not os.path.isfile(path):
            raise PkiError(f"{path} is missing: migrate_from names the collection's CA folder the fleet moves from",
                           where="migrate_from")
    old_root = compat.load_certificates(reader.read(old.root_cert, "migrate_from", nofollow=True), old.root_cert)[0]
    if fingerprint(old_root) != fingerprint(root):
        raise PkiError(f"{old.root_cert} is {old_root.subject.rfc4514_string()}, not the root mount's root "
                       f"{root.subject.rfc4514_string()}: import the folder's root into the root mount "
                       "(pki/config/ca) and sign the engine's intermediate with it, so the fleet keeps its root",
                       where="migrate_from")
    old_int = compat.load_certificates(reader.read(old.intermediate_cert, "migrate_from", nofollow=True),
                                       old.intermediate_cert)[0]
    if fingerprint(old_int) == fingerprint(intermediate) or not signed_by(old_int, root):
        raise PkiError(f"{old.intermediate_cert} is not a previous intermediate of this root", where="migrate_from")
    text = reader.read(old.intermediate_crl, "migrate_from", nofollow=True)
    crl = compat.load_crls(text, old.intermediate_crl)[0]
    if not crl_signed_by(crl, old_int):
        raise PkiError(f"{old.intermediate_crl} is not signed by {old_int.subject.rfc4514_string()}",
                       where="migrate_from")
    next_update = compat.crl_next_update(crl)
    if next_update is not None and next_update <= compat.now():
        raise PkiError(f"{old.intermediate_crl} expired on {next_update.isoformat()}: servers would refuse every "
                       "certificate of that intermediate; renew the clients still using one and leave migrate_from out, "
                       "or have that folder sign a new CRL (pgtls.ssl.ca_folder on it)", where="migrate_from")
    return text.decode()
