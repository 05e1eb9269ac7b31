# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Root rotation in the CA folder (module pgtls.ssl.root_rotation), under the CA folder's lock: a new root trusted
everywhere before it signs anything, and the old one trusted until everything carries certificates of the new one.

``start``: a new root (a new key of ``key_type``, else of the current root's type; named ``<root_common_name> R<n>``,
the current root's name without its generation by default) is made in ``next-root/``. From
then on every ``root.crt``, ``ssl_ca_file`` and client ``sslrootcert`` the collection writes holds both roots, and the
servers' CRL file the new root's CRL too; nothing it signs yet. ``switch``: the current root and its intermediate move
to ``previous-root/`` (still trusted, their CRLs still on the servers), the new root takes their place and the next
issuance makes its intermediate (a new generation, so a name of its own): every server, replication, pooler and
client certificate is re-issued under it by the next run. ``retire``: the previous root and its last intermediate are
archived in ``retired/root-<SERIAL>.pem`` (an existing file there is never replaced), their keys and CRLs destroyed,
``previous-root/`` removed: from the next run on nothing trusts the old root.

Each step is resumable: a run killed at any point is finished by the next run of the same step (the switch moves the
old files out before the new ones in, the certificate of each last, and knows by which ``root.crt`` is in place how
far it came); a step repeated once done changes nothing. Every move, write and deletion goes through the write
planner; ``next-root/``, ``previous-root/`` or ``retired/`` that is a link or a file, or that holds anything else than
a CA's files, is refused before anything moves. An intermediate rotation in progress (``previous/``) must be retired
before a switch, and none starts while a previous root is still trusted.
"""

from __future__ import annotations

import json
import os
import re
import stat

try:
    from cryptography.x509.oid import NameOID
except ImportError:  # deps.py keeps the error; the module fails with it through deps.require_cryptography()
    from ..core.deps import MISSING

    NameOID = MISSING

from ..core import compat, planner
from ..core.errors import PkiError
from ..core.files import TMP_PREFIX, Attrs
from ..core.info import cert_info, serial_hex
from ..core.issue import is_self_signed
from ..core.keys import key_type_of
from ..core.layout import ROOT_ROTATION, Layout
from ..core.specs import CA
from .ca import plan_ca
from .intermediate_rotation import real_folder

MARKER = "generation"  # {"root": n, "intermediate": n}: the generations this rotation makes
NEW = ("root.key", "root.crl", "root.crt")  # the key first, the certificate last
OLD = ("intermediate.key", "intermediate.crl", "intermediate.crt", "root.key", "root.crl", "root.crt")


def check_params(params: dict) -> None:
    if params.get("lock_timeout", 0) < 0:
        raise PkiError(f"must not be negative, got {params['lock_timeout']}", where="lock_timeout")
    if params.get("root_common_name") is not None and not params["root_common_name"].strip():
        raise PkiError("must name the root (or be left out: the current root's name is used)",
                       where="root_common_name")


def rotate_root(params: dict, check_mode: bool) -> dict:
    """Module entry (pgtls.ssl.root_rotation)."""
    check_params(params)
    layout = Layout(params["pki_dir"])
    if not os.path.isdir(layout.folder):
        raise PkiError(f"the CA folder {layout.folder} does not exist", where="pki_dir")
    planner.check_ca_folder(layout.folder, "pki_dir")
    common = {"lock": layout.folder, "lock_timeout": params["lock_timeout"], "ca_folders": [layout.folder]}
    if params["step"] == "start":
        return planner.run(ROOT_ROTATION, lambda plan: _start(plan, layout, params), check_mode, **common)
    if params["step"] == "retire":
        return planner.run(ROOT_ROTATION, lambda plan: _retire(plan, layout), check_mode, **common)
    down, *up = planner.run_in_turn(ROOT_ROTATION, [lambda plan: _down(plan, layout),
                                                    lambda plan: _up(plan, layout)], check_mode, **common)
    if check_mode and down["moving"]:
        names = [n for n in NEW if os.path.isfile(os.path.join(layout.next_root, n))]
        up = [{"changed": True, "actions": [f"next-root/{n} -> {n}" for n in names] + ["next-root/ removed"]}]
    result = {"changed": down["changed"] or any(u["changed"] for u in up), "step": "switch",
              "actions": down["actions"] + [a for u in up for a in u["actions"]]}
    for found in (down, *up):
        result.update({k: v for k, v in found.items() if k in ("root", "generation", "msg")})
    return result


def _entries(plan: planner.Plan, folder: str, allowed: tuple[str, ...]) -> list[str]:
    """The names in ``folder`` as the plan will leave them, each a regular file of a CA (or the marker)."""
    # A killed run's temporaries (the planner removes them before it applies anything) are not the folder's files.
    names = sorted(n for n in plan.listdir(folder) if not n.startswith(TMP_PREFIX))
    for name in names:
        path = os.path.join(folder, name)
        st = os.lstat(path) if os.path.lexists(path) else None
        if name not in (*allowed, MARKER) or (st is not None and not stat.S_ISREG(st.st_mode)):
            raise PkiError(f"{path} is not a file of a root rotation: {os.path.basename(folder)}/ holds "
                           f"{', '.join(allowed)} and {MARKER} only; move it out", where="pki_dir")
    return names


def _marker(plan: planner.Plan, folder: str) -> dict:
    data = plan.read(os.path.join(folder, MARKER), "pki_dir", missing_ok=True, nofollow=True)
    try:
        found = json.loads(data) if data else {}
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(isinstance(found.get(k, 1), int) for k in ("root", "intermediate")):
        raise PkiError(f"{os.path.join(folder, MARKER)} is not a root rotation's marker (JSON with the root and "
                       "intermediate generations): restore it or move it out", where="pki_dir")
    return found


def _encoded(marker: dict) -> bytes:
    return (json.dumps(marker, sort_keys=True) + "\n").encode()


def _root_of(plan: planner.Plan, path: str):
    data = plan.read(path, "pki_dir", nofollow=True)
    cert = compat.load_certificates(data, f"pki_dir ({path})")[0]
    if not is_self_signed(cert):
        raise PkiError(f"{path} holds {cert.subject.rfc4514_string()}, which is not a root (self-signed)",
                       where="pki_dir")
    return cert


def _start(plan: planner.Plan, layout: Layout, params: dict) -> dict:
    if real_folder(layout.previous_root, "previous-root/"):
        raise PkiError(f"a previous root ({layout.previous_root}) is still trusted: retire it first "
                       "(pgtls_rotate_root=retire, step=retire)", where="step")
    if not plan.exists(layout.root_cert):
        raise PkiError(f"no root CA in {layout.folder}: run the site playbook first (it makes the CA)",
                       where="pki_dir")
    current = _root_of(plan, layout.root_cert)
    actions = []
    if real_folder(layout.next_root, "next-root/"):
        _entries(plan, layout.next_root, NEW)
        marker = _marker(plan, layout.next_root)
    else:
        marker = {"root": layout.root_generation(plan.read) + 1}
        plan.mkdir(layout.next_root, Attrs(0o700), where="pki_dir", files={MARKER: _encoded(marker)})
        actions.append(f"next-root/ made (root generation {marker['root']})")
    key_data = plan.read(layout.root_key, "pki_dir", missing_ok=True, nofollow=True) or b""
    if b"ENCRYPTED" in key_data and not params.get("root_key_passphrase"):
        raise PkiError(f"the current root's key {layout.root_key} is encrypted: give its passphrase (the role's "
                       "pgtls_root_ca_key_passphrase), which encrypts the new root's key too",
                       where="root_key_passphrase")
    base = params.get("root_common_name") or _base_name(current)
    ca = {name: entry.get("default") for name, entry in CA.items()}
    ca.update(cert_path=os.path.join(layout.next_root, "root.crt"), key_path=os.path.join(layout.next_root, "root.key"),
              key_type=params.get("key_type") or key_type_of(current.public_key()),
              common_name=f"{base} R{marker['root']}", key_passphrase=params.get("root_key_passphrase"),
              lock_timeout=params["lock_timeout"])
    done = plan_ca(plan, ca)
    if done["changed"]:
        actions.append(f"next-root/root.crt: {done['certificate']['subject']} ({done['key']['type']}) made")
    if done["certificate"]["fingerprint_sha256"] == cert_info(current)["fingerprint_sha256"]:
        raise PkiError(f"next-root/root.crt is the current root {current.subject.rfc4514_string()}: move next-root/ "
                       "out and start again", where="pki_dir")
    return {"changed": bool(plan.changes), "step": "start", "actions": actions, "root": done["certificate"],
            "warnings": done.get("warnings", []),
            "msg": "the new root is published: run the site (or rotate) playbook and the clients playbook, so every "
                   "server and client trusts both roots, then switch (pgtls_rotate_root=switch)"}


def _base_name(root) -> str:
    """The CA's root name without its generation (``pgtls Root CA R2`` -> ``pgtls Root CA``)."""
    names = root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise PkiError(f"the current root {root.subject.rfc4514_string()} has no common name: give root_common_name",
                       where="root_common_name")
    return re.sub(r" R\d+$", "", str(names[0].value))


def _down(plan: planner.Plan, layout: Layout) -> dict:
    """The switch's first half: the current root and intermediate move to previous-root/ (the certificates last).
    Nothing to do once root.crt has left (the second half was reached) or when no switch is under way."""
    has_next = real_folder(layout.next_root, "next-root/")
    has_previous = real_folder(layout.previous_root, "previous-root/")
    if not has_next:
        if has_previous and plan.exists(layout.root_cert):
            return {"changed": False, "moving": False, "actions": [],
                    "msg": "switched already: the new root signs; retire the previous root (pgtls_rotate_root="
                           "retire) once every certificate is re-issued"}
        raise PkiError("no new root is published (next-root/): start the root rotation first "
                       "(pgtls_rotate_root=start, step=start)", where="step")
    names = _entries(plan, layout.next_root, NEW)
    if "root.crt" not in names:
        if has_previous and plan.exists(os.path.join(layout.previous_root, "root.crt")):
            return {"changed": False, "moving": True, "actions": []}  # the new root.crt moved in last: finish
        raise PkiError(f"{layout.next_root} holds no root.crt: run step=start again to finish the new root",
                       where="step")
    if real_folder(layout.previous, "previous/"):
        raise PkiError(f"an intermediate rotation is in progress ({layout.previous}): retire it first "
                       "(pgtls_rotate_intermediate=retire), then switch the root", where="step")
    if not plan.exists(layout.root_cert):
        return {"changed": False, "moving": True, "actions": []}  # the second half was reached already
    new_root = _root_of(plan, os.path.join(layout.next_root, "root.crt"))
    if "root.key" not in names:
        raise PkiError(f"{layout.next_root} holds no root.key for {new_root.subject.rfc4514_string()}: restore it, or "
                       "move next-root/ out and start again", where="pki_dir")
    actions = []
    if has_previous:
        left = _entries(plan, layout.previous_root, OLD)
        clash = [n for n in OLD if n in left and plan.exists(layout.path(n))]
        if clash:
            raise PkiError(f"previous-root/ already holds {', '.join(clash)} while the CA folder has its own: "
                           "move previous-root/ out of the way (a previous root rotation was not retired)",
                           where="pki_dir")
        marker = _marker(plan, layout.previous_root)
    else:
        marker = {"root": _marker(plan, layout.next_root).get("root", layout.root_generation(plan.read) + 1),
                  "intermediate": layout.generation(plan.read) + 1}
        plan.mkdir(layout.previous_root, Attrs(0o700), where="pki_dir", files={MARKER: _encoded(marker)})
        actions.append("previous-root/ made")
    for name in OLD:
        if plan.exists(layout.path(name)):
            plan.move(layout.path(name), os.path.join(layout.previous_root, name), kind=_kind(name), where="pki_dir")
            actions.append(f"{name} -> previous-root/{name}")
    return {"changed": True, "moving": True, "actions": actions}


def _up(plan: planner.Plan, layout: Layout) -> dict:
    """The switch's second half: the new root takes root.crt's place (its certificate last), next-root/ goes and the
    generations are counted once (from previous-root/'s marker; written also when a run was killed just before)."""
    if not real_folder(layout.previous_root, "previous-root/"):
        return {"changed": False, "actions": []}
    marker = _marker(plan, layout.previous_root)
    actions = []
    if real_folder(layout.next_root, "next-root/"):
        for name in NEW:
            source = os.path.join(layout.next_root, name)
            if plan.exists(source):
                plan.move(source, layout.path(name), kind=_kind(name), where="pki_dir")
                actions.append(f"next-root/{name} -> {name}")
        if plan.exists(os.path.join(layout.next_root, MARKER)):
            plan.delete(os.path.join(layout.next_root, MARKER), kind="file", where="pki_dir", because="rotation")
        plan.delete(layout.next_root, kind="folder", where="pki_dir", because="rotation")
        actions.append("next-root/ removed")
    for path, number in ((layout.root_generation_file, marker.get("root", 2)),
                         (layout.generation_file, marker.get("intermediate", 2))):
        if _read_number(plan, path) != number:
            plan.write(path, f"{number}\n".encode(), Attrs(0o600), kind="generation", where="pki_dir")
            actions.append(f"{os.path.basename(path)}: {number}")
    if not actions:
        return {"changed": False, "actions": []}
    root = _root_of(plan, layout.root_cert)
    return {"changed": True, "actions": actions, "root": cert_info(root), "generation": marker.get("intermediate"),
            "msg": "the new root signs: run the site (or rotate) playbook and the clients playbook, so every "
                   "certificate is re-issued under it, then retire the previous root (pgtls_rotate_root=retire)"}


def _read_number(plan: planner.Plan, path: str) -> int | None:
    data = plan.read(path, "pki_dir", missing_ok=True, nofollow=True)
    text = (data or b"").decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _kind(name: str) -> str:
    return "ca_key" if name.endswith(".key") else "crl" if name.endswith(".crl") else "ca_certificate"


def _retire(plan: planner.Plan, layout: Layout) -> dict:
    if not real_folder(layout.previous_root, "previous-root/"):
        return {"changed": False, "step": "retire", "actions": [],
                "msg": "no root rotation to retire (no previous-root/)"}
    if real_folder(layout.next_root, "next-root/"):
        raise PkiError(f"the switch did not finish ({layout.next_root} is still there): run step=switch again "
                       "first", where="step")
    left = _entries(plan, layout.previous_root, OLD)
    actions = []
    if "root.crt" in left:
        old = _root_of(plan, os.path.join(layout.previous_root, "root.crt"))
        data = plan.read(os.path.join(layout.previous_root, "root.crt"), "pki_dir", nofollow=True)
        if "intermediate.crt" in left:
            data += plan.read(os.path.join(layout.previous_root, "intermediate.crt"), "pki_dir", nofollow=True)
        archived = os.path.join(layout.retired, f"root-{serial_hex(old.serial_number).replace(':', '')}.pem")
        if not real_folder(layout.retired, "retired/"):
            plan.mkdir(layout.retired, Attrs(0o700), where="pki_dir")
        existing = plan.read(archived, "pki_dir", missing_ok=True, nofollow=True)
        if existing is None:
            plan.write(archived, data, Attrs(0o600), kind="ca_certificate", where="pki_dir")
        elif compat.load_certificates(existing, archived)[0] != old:
            raise PkiError(f"{archived} already exists and holds another root: refusing to replace a retired root; "
                           "move that file away", where="pki_dir")
        # else: a retire killed after the archive was written; the rest is finished below.
        actions.append(f"previous-root/root.crt -> retired/{os.path.basename(archived)}")
    # The keys first, the root's certificate last: a retire killed in between is known by previous-root/root.crt.
    for name in sorted(left, key=lambda n: (n == "root.crt", n.endswith(".crt"), not n.endswith(".key"))):
        plan.delete(os.path.join(layout.previous_root, name), kind=_kind(name) if name != MARKER else "file",
                    where="pki_dir", because="rotation")
        actions.append(f"previous-root/{name} destroyed" if name.endswith(".key") else f"previous-root/{name} removed")
    plan.delete(layout.previous_root, kind="folder", where="pki_dir", because="rotation")
    actions.append("previous-root/ removed")
    return {"changed": True, "step": "retire", "actions": actions,
            "msg": "the previous root is retired: run the site (or rotate) playbook and the clients playbook, so "
                   "nothing trusts it any more"}
