# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Intermediate rotation in the CA folder (module pgtls.ssl.intermediate_rotation), under the CA folder's lock.

``start``: the current intermediate moves to ``previous/`` (still trusted, its CRL stays on the servers) and the
generation number grows, so the next intermediate gets a name of its own (``... G<n>``). ``retire``: the previous
intermediate's certificate goes to ``retired/`` (the root's CRL revokes it), its key and CRL are destroyed.
Each step is resumable: a run killed halfway is finished by the next run of the same step.
"""

from __future__ import annotations

import datetime as dt
import os

from . import cafolder
from .errors import PkiError
from .files import Attrs, write_atomic


def rotate(params: dict, check_mode: bool) -> dict:
    layout = cafolder.Layout(params["pki_dir"])
    if not os.path.isdir(layout.folder):
        raise PkiError(f"the CA folder {layout.folder} does not exist", where="pki_dir")
    step = _start if params["step"] == "start" else _retire
    plan = step(layout, True)
    if check_mode or not plan["changed"]:
        return plan
    with cafolder.locked(layout.folder, params["lock_timeout"]):
        return step(layout, False)


def _start(layout: cafolder.Layout, check_mode: bool) -> dict:
    current = [n for n in layout.intermediate_files if os.path.exists(layout.path(n))]
    previous_crt = os.path.join(layout.previous, "intermediate.crt")
    if os.path.isdir(layout.previous):
        if os.path.exists(previous_crt) and "intermediate.crt" in current:
            raise PkiError(f"a previous intermediate ({previous_crt}) is still trusted: retire it first "
                           "(pgtls_rotate_intermediate=retire, step=retire)", where="step")
        # A start killed halfway (or already done): move what is left, never count the generation twice.
        generation = layout.generation()
        actions = [f"{n} -> previous/{n} (finishing an interrupted start)" for n in current]
    else:
        if "intermediate.crt" not in current:
            raise PkiError(f"no intermediate CA in {layout.folder}: run the site playbook first", where="pki_dir")
        generation = layout.generation() + 1
        actions = [f"generation {generation}", *[f"{n} -> previous/{n}" for n in current]]
    if not check_mode and actions:
        if not os.path.isdir(layout.previous):
            # The generation first: whatever happens next, the next intermediate never reuses the old one's name.
            write_atomic(layout.generation_file, f"{generation}\n".encode(), Attrs(0o600), "pki_dir")
            os.mkdir(layout.previous, 0o700)
        # The key first and the certificate last: a run killed in between leaves a certificate without its key
        # (the ca module refuses to go on), never a key that a new certificate could be issued for.
        for name in ("intermediate.key", "intermediate.crl", "intermediate.crt"):
            if name in current:
                os.rename(layout.path(name), os.path.join(layout.previous, name))
    return {"changed": bool(actions), "step": "start", "generation": generation, "actions": actions}


def _retire(layout: cafolder.Layout, check_mode: bool) -> dict:
    if not os.path.isdir(layout.previous):
        raise PkiError(f"no rotation in progress: {layout.previous}/intermediate.crt does not exist", where="step")
    left = sorted(os.listdir(layout.previous))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    archived = os.path.join(layout.retired, f"intermediate-{stamp}.crt")
    actions = []
    if "intermediate.crt" in left:
        actions.append(f"previous/intermediate.crt -> retired/{os.path.basename(archived)}")
    actions += [f"previous/{n} destroyed" for n in left if n != "intermediate.crt"]
    actions.append("previous/ removed")
    if not check_mode:
        if "intermediate.crt" in left:
            os.makedirs(layout.retired, mode=0o700, exist_ok=True)
            os.rename(os.path.join(layout.previous, "intermediate.crt"), archived)
        for name in left:
            if name != "intermediate.crt":
                os.unlink(os.path.join(layout.previous, name))
        os.rmdir(layout.previous)
    return {"changed": True, "step": "retire", "generation": layout.generation(), "actions": actions}
