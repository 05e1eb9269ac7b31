# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Intermediate rotation in the CA folder (module pgtls.ssl.intermediate_rotation), under the CA folder's lock.

``start``: the current intermediate moves to ``previous/`` (still trusted, its CRL stays on the servers) and the
generation number grows, so the next intermediate gets a name of its own (``... G<n>``). ``previous/`` appears at
once with ``previous/generation`` in it, the generation it starts; so a start killed at any point is finished by the
next start, and the generation is never counted twice. ``auto``: a start when no rotation is in progress and the
intermediate has fewer than ``min_days`` left (a leaf's lifetime and its renewal window), else nothing.
``retire``: the previous intermediate's certificate goes to ``retired/intermediate-<SERIAL>.crt`` (the root's CRL
revokes it; an existing file there is never replaced), its key and CRL are destroyed, ``previous/`` is removed. A
retire with no rotation in progress changes nothing.
Every move and deletion goes through the write planner: ``previous/`` or ``retired/`` that is a symbolic link, a
file, or holds anything else than an intermediate's files is refused before anything moves.
"""

from __future__ import annotations

import os
import stat

from ..core import compat, planner
from ..core.errors import PkiError
from ..core.files import Attrs
from ..core.info import days_left, serial_hex
from ..core.layout import Layout

MARKER = "generation"
MOVED = ("intermediate.key", "intermediate.crl", "intermediate.crt")  # the key first, the certificate last
# previous/state.json: the CRL numbers of the previous intermediate as releases before 0.3 kept them (now in the CA
# folder's own state.json); destroyed with the rest on retire.
LEGACY_STATE = "state.json"


def check_params(params: dict) -> None:
    if params.get("lock_timeout", 0) < 0:
        raise PkiError(f"must not be negative, got {params['lock_timeout']}", where="lock_timeout")
    if params.get("step") == "auto" and params.get("min_days", 0) < 1:
        raise PkiError(f"step=auto needs min_days of 1 or more (a leaf's lifetime and its renewal window), got "
                       f"{params.get('min_days', 0)}", where="min_days")


def rotate(params: dict, check_mode: bool) -> dict:
    """Module entry (pgtls.ssl.intermediate_rotation)."""
    check_params(params)
    layout = Layout(params["pki_dir"])
    if params["step"] == "auto" and not os.path.lexists(layout.folder):
        return _nothing_yet(layout)
    if not os.path.isdir(layout.folder):
        raise PkiError(f"the CA folder {layout.folder} does not exist", where="pki_dir")
    planner.check_ca_folder(layout.folder, "pki_dir")
    steps = {"start": _start, "retire": _retire, "auto": lambda plan, found: _auto(plan, found, params["min_days"])}
    step = steps[params["step"]]
    return planner.run("intermediate_rotation", lambda plan: step(plan, layout), check_mode, lock=layout.folder,
                       lock_timeout=params["lock_timeout"], ca_folders=[layout.folder])


def real_folder(path: str, what: str) -> bool:
    """Whether ``path`` is a real folder; a link, a file or anything else there is refused, naming it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise PkiError(f"{path} is a symbolic link (to {os.readlink(path)}): {what} must be a real folder inside the "
                       "CA folder; replace the link by the folder it points to", where="pki_dir")
    if not stat.S_ISDIR(st.st_mode):
        raise PkiError(f"{path} exists and is not a folder: {what} is a folder; move that file away", where="pki_dir")
    return True


def _previous_entries(layout: Layout) -> list[str]:
    """The names in previous/, each a regular file of an intermediate (or the start's marker)."""
    names = sorted(os.listdir(layout.previous))
    for name in names:
        st = os.lstat(layout.previous_file(name))
        if name not in (*MOVED, MARKER, LEGACY_STATE) or not stat.S_ISREG(st.st_mode):
            raise PkiError(f"{layout.previous_file(name)} is not an intermediate's file: previous/ holds "
                           f"{', '.join(MOVED)} and {MARKER} only; move it out", where="pki_dir")
    return names


def _start(plan: planner.Plan, layout: Layout) -> dict:
    if os.path.lexists(layout.previous_root):
        raise PkiError(f"a root rotation is switching ({layout.previous_root}: the previous root is still trusted): "
                       "retire it first (pgtls_rotate_root=retire), then rotate the intermediate", where="step")
    current = [n for n in MOVED if plan.exists(layout.path(n))]
    if real_folder(layout.previous, "previous/"):
        left = _previous_entries(layout)
        if "intermediate.crt" in left and "intermediate.crt" in current:
            raise PkiError(f"a previous intermediate ({layout.previous_file('intermediate.crt')}) is still trusted: "
                           "retire it first (pgtls_rotate_intermediate=retire, step=retire)", where="step")
        clash = [n for n in current if n in left]
        if clash:
            raise PkiError(f"previous/ already holds {', '.join(clash)} while the CA folder has its own: an earlier "
                           "retire did not finish; run step=retire again first", where="step")
        data = plan.read(layout.previous_file(MARKER), "pki_dir", missing_ok=True, nofollow=True)
        # No marker: previous/ of a release before 0.3, which counted the generation before making the folder.
        generation = int(data.strip()) if data and data.strip().isdigit() else layout.generation(plan.read)
        actions = [f"{n} -> previous/{n} (finishing an interrupted start)" for n in current]
    else:
        if "intermediate.crt" not in current:
            raise PkiError(f"no intermediate CA in {layout.folder}: run the site playbook first", where="pki_dir")
        generation = layout.generation(plan.read) + 1
        plan.mkdir(layout.previous, Attrs(0o700), where="pki_dir", files={MARKER: f"{generation}\n".encode()})
        actions = [f"generation {generation}", *[f"{n} -> previous/{n}" for n in current]]
    if layout.generation(plan.read) != generation:
        plan.write(layout.generation_file, f"{generation}\n".encode(), Attrs(0o600), kind="generation",
                   where="pki_dir")
    # The key first and the certificate last: a run killed in between leaves a certificate without its key (the ca
    # module refuses to go on), never a key that a new certificate could be issued for.
    for name in MOVED:
        if name in current:
            plan.move(layout.path(name), layout.previous_file(name), kind="ca_key" if name.endswith(".key") else
                      "crl" if name.endswith(".crl") else "ca_certificate", where="pki_dir")
    return {"changed": bool(plan.changes), "step": "start", "generation": generation, "actions": actions}


def _nothing_yet(layout: Layout) -> dict:
    """step=auto before the first rollout (no CA folder, or no intermediate in it): nothing to rotate; the CA is
    made by the first issuance (the site playbook, the server role)."""
    return {"changed": False, "step": "auto", "generation": 1, "actions": [], "started": False,
            "msg": f"no intermediate CA in {layout.folder} yet: nothing to rotate (the first issuance makes it)"}


def _auto(plan: planner.Plan, layout: Layout, min_days: int) -> dict:
    """Start a rotation when the intermediate has fewer than ``min_days`` left and none is in progress."""
    generation = layout.generation(plan.read)
    if real_folder(layout.previous, "previous/"):
        return {"changed": False, "step": "auto", "generation": generation, "actions": [], "started": False,
                "msg": "a rotation is in progress (previous/): retire it once every certificate is re-issued"}
    if os.path.lexists(layout.next_root) or os.path.lexists(layout.previous_root):
        return {"changed": False, "step": "auto", "generation": generation, "actions": [], "started": False,
                "msg": "a root rotation is in progress (next-root/ or previous-root/): its switch makes a new "
                       "intermediate; finish it first"}
    data = plan.read(layout.intermediate_cert, "pki_dir", missing_ok=True, nofollow=True)
    if not data:
        return dict(_nothing_yet(layout), generation=generation)
    left = days_left(compat.load_certificates(data, f"pki_dir ({layout.intermediate_cert})")[0])
    if left >= min_days:
        return {"changed": False, "step": "auto", "generation": generation, "actions": [], "started": False,
                "days_left": left, "msg": f"the intermediate has {left} days left, min_days={min_days}: no rotation"}
    result = _start(plan, layout)
    return dict(result, step="auto", started=True, days_left=left,
                msg=f"the intermediate has {left} days left, fewer than min_days={min_days}: rotation started")


def _retire(plan: planner.Plan, layout: Layout) -> dict:
    generation = layout.generation(plan.read)
    if not real_folder(layout.previous, "previous/"):
        return {"changed": False, "step": "retire", "generation": generation, "actions": [],
                "msg": "no rotation in progress (no previous/): nothing to retire"}
    left = _previous_entries(layout)
    actions = []
    if "intermediate.crt" in left:
        source = layout.previous_file("intermediate.crt")
        data = plan.read(source, "pki_dir", nofollow=True)
        cert = compat.load_certificates(data, f"pki_dir ({source})")[0]
        archived = os.path.join(layout.retired, f"intermediate-{serial_hex(cert.serial_number).replace(':', '')}.crt")
        if not real_folder(layout.retired, "retired/"):
            plan.mkdir(layout.retired, Attrs(0o700), where="pki_dir")
        existing = plan.read(archived, "pki_dir", missing_ok=True, nofollow=True)
        if existing is None:
            plan.move(source, archived, kind="ca_certificate", where="pki_dir")
        elif existing == data:
            # A retire killed after the copy: the certificate is archived already.
            plan.delete(source, kind="ca_certificate", where="pki_dir", because="rotation")
        else:
            raise PkiError(f"{archived} already exists and holds another certificate: refusing to replace a retired "
                           "intermediate (the root's CRL revokes it); move that file away", where="pki_dir")
        actions.append(f"previous/intermediate.crt -> retired/{os.path.basename(archived)}")
    for name in left:
        if name != "intermediate.crt":
            plan.delete(layout.previous_file(name), kind="ca_key" if name.endswith(".key") else "file",
                        where="pki_dir", because="rotation")
            actions.append(f"previous/{name} destroyed")
    plan.delete(layout.previous, kind="folder", where="pki_dir", because="rotation")
    actions.append("previous/ removed")
    return {"changed": True, "step": "retire", "generation": generation, "actions": actions}
