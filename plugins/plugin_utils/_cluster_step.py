# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The cluster step's decision, on the controller, between its two host stages.

inspect (host)  - what is there: pgtls.ssl.cluster_info's inspection of every cluster it finds (one execution per
                  host, with the discovery), or pgtls.ssl.cluster_files with compare_only for the files it is given;
                  a record: the key's CSR and the certificate and root in place (``material``), each folder's and
                  file's state (``states``), what the server serves (``served``).
decide (here)   - ``compare`` the task's folders, files and lines with those states, and decide_material signs or
                  takes your own CA's certificate: a ``Decision``, without a host execution.
apply (host)    - only when the decision says so: pgtls.ssl.cluster_files installs, writes (after one snapshot),
                  validates, reloads and proves.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.files import parse_mode


@dataclass
class Decision:
    """What the apply stage has to do for the folders, files and lines (the material's part is in its Request)."""

    changes: list = field(default_factory=list)
    complete: bool = True  # False: a path the inspection did not look at (the host must be asked)


def _owner_changes(state: dict, wanted: dict, where: str) -> list[str]:
    """Worded as the host's write planner words them (files.differences)."""
    changes = []
    mode = parse_mode(wanted["mode"], f"{where}.mode")
    if mode != int(state["mode"], 8):
        changes.append(f"mode {state['mode']} -> {mode:04o}")
    for part, ident in (("owner", "uid"), ("group", "gid")):
        want = wanted.get(part)
        if want not in (None, "") and str(want) not in (state[part], str(state[ident])):
            changes.append(f"{part} {state[part]} -> {want}")
    return changes


def _state(states: dict, path: str) -> dict | None:
    return states.get(path) or states.get(os.path.normpath(path))


def compare(params: dict, states: dict) -> Decision:
    """The task's ``directories``, ``files`` and ``lines`` against the inspected ``states``, with the changes worded as
    the host words them. A file is compared by digest (the host never sends its content: postgresql.conf may hold a
    password); lines by the digest the host computed with them set - for the same lines only, else the host is
    asked. Anything that is not what it should be (a link, a folder where a file goes) is a change: the apply
    execution's write planner refuses it, naming it. The diff of a change comes from the host that makes it."""
    decision = Decision()
    for index, raw in enumerate(params["directories"]):
        state = _state(states, raw["path"])
        if state is None:
            decision.complete = False
        elif state["kind"] == "missing":
            decision.changes.append(f"{raw['path']}: created")
        elif state["kind"] != "folder":
            decision.changes.append(f"{raw['path']}: is a {state['kind']}, not a folder")
        else:
            found = _owner_changes(state, dict(raw, mode=raw.get("mode") or "0755"), f"directories[{index}]")
            if found:
                decision.changes.append(f"{raw['path']}: {', '.join(found)}")
    for index, raw in enumerate(params["files"]):
        state = _state(states, raw["path"])
        if state is None:
            decision.complete = False
            continue
        if state["kind"] == "missing":
            found = ["created"]
        elif state["kind"] != "file" or state.get("sha256") is None:
            found = [f"is a {state['kind']} that cannot be read"] if state["kind"] == "file" else [
                f"is a {state['kind']}"]
        elif state["sha256"] != _digest(raw["content"].encode()):
            found = ["content changed"]
        else:
            found = _owner_changes(state, dict(raw, mode=raw.get("mode") or "0644"), f"files[{index}]")
        if found:
            decision.changes.append(f"{raw['path']}: {', '.join(found)}")
    by_file: dict[str, list[dict]] = {}
    for raw in params["lines"]:
        by_file.setdefault(os.path.normpath(raw["path"]), []).append(raw)
    for group in by_file.values():
        path = group[0]["path"]
        state = _state(states, path)
        if state is None or (state["kind"] == "file" and state.get("lines") != [[r["regexp"], r["line"]]
                                                                                for r in group]):
            decision.complete = False  # not inspected, or for other lines
            continue
        if state["kind"] != "file" or state.get("sha256_with_lines") is None:
            decision.changes.append(f"{path}: is not a text file to set a line in")
        elif state["sha256_with_lines"] != state["sha256"]:
            decision.changes.append(f"{path}: " + ", ".join(f"line {raw['line']!r} set" for raw in group))
    return decision


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
