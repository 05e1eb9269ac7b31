# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The cluster step on the host for the files it is given: inspect (compare all, write only the key), or apply
(snapshot once, write only what differs, activate).

The server role renders its templates on the controller and hands the results here, with the folders and the
``include_dir`` line it needs, so an unchanged cluster costs one module execution instead of one or two per file.
The key and certificate (``material``), the folders, files and lines, the snapshot and its removal are one write plan
(planner.Plan): everything is checked together (one path per file, kinds, links, folders) before the first write.
"""

from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass

from ..core import crls, planner
from ..core.errors import PkiError
from ..core.files import MAX_CRL_BYTES, Attrs, parse_mode, read_bytes, resolve_gid, resolve_uid
from . import accounts, inspection, snapshot
from . import host_material as host
from .activation import activation_for


@dataclass
class _Entry:
    kind: str  # directory, file or line
    path: str
    where: str
    data: bytes | None = None
    before: bytes | None = None
    diff: bool = True
    changes: list | None = None


def _attrs(raw: dict, where: str, default_mode: str) -> Attrs:
    return Attrs(parse_mode(raw.get("mode") or default_mode, f"{where}.mode"),
                 resolve_uid(raw.get("owner"), f"{where}.owner"), resolve_gid(raw.get("group"), f"{where}.group"))


def _regular_before(path: str, where: str) -> bytes | None:
    """What a file holds now (None when missing, or when it is not a regular file: the plan refuses that)."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return read_bytes(path, where, limit=MAX_CRL_BYTES, nofollow=True)


def plan_entries(plan: planner.Plan, params: dict) -> list[_Entry]:
    """Declare the folders, files and lines to ``plan``; return them with what each changes."""
    entries: list[_Entry] = []
    for index, raw in enumerate(params["directories"]):
        where = f"directories[{index}]"
        changes = plan.mkdir(raw["path"], _attrs(raw, where, "0755"), where=f"{where}.path")
        entries.append(_Entry("directory", raw["path"], where, changes=changes))
    for index, raw in enumerate(params["files"]):
        where = f"files[{index}]"
        entry = _Entry("file", raw["path"], where, raw["content"].encode(), diff=raw.get("diff", True))
        entry.before = _regular_before(entry.path, f"{where}.path")
        if entry.before is not None:
            # A CRL file never goes back to an older CRL of the same CA (two runs at once: crls.never_older).
            entry.data, _kept = crls.never_older(entry.before, entry.data)
        entry.changes = plan.write(entry.path, entry.data, _attrs(raw, where, "0644"), kind="file",
                                   where=f"{where}.path", source=f"{where}.content")
        entries.append(entry)
    # Lines: every line given for one file is set in order on that file's text (lineinfile run once per line), and
    # the file is written once: two lines on one file never undo each other from one run to the next.
    by_file: dict[str, list[tuple[int, dict]]] = {}
    for index, raw in enumerate(params["lines"]):
        by_file.setdefault(planner.resolve(raw["path"]), []).append((index, raw))
    for group in by_file.values():
        index, first = group[0]
        where = f"lines[{index}]"
        path = first["path"]
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise PkiError(f"{path} does not exist: a line is added to an existing file only",
                           where=f"{where}.path") from None
        before = _regular_before(path, f"{where}.path")
        if before is None:
            plan.keep(path, None, kind="file", where=f"{where}.path")  # refused by the check: a link or a folder
            continue
        try:
            text = before.decode()
        except UnicodeDecodeError:
            raise PkiError(f"{path} is not UTF-8 text", where=f"{where}.path") from None
        for line_index, raw in group:
            text = inspection.with_line(text, raw["regexp"], raw["line"], f"lines[{line_index}]")
        after = text.encode()
        entry = _Entry("line", path, where, after, before)
        plan.write(path, after, Attrs(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), kind="file",
                   where=f"{where}.path")
        entry.changes = [] if after == before else [f"line {raw['line']!r} set" for _i, raw in group]
        entries.append(entry)
    return entries


def _diff(entry: _Entry) -> dict:
    if not entry.diff:
        return {"before_header": entry.path, "after_header": entry.path,
                "before": "(content not shown)\n" if entry.before is not None else "",
                "after": "(content not shown: changed)\n"}
    return {"before_header": entry.path, "after_header": entry.path,
            "before": (entry.before or b"").decode(errors="replace"), "after": entry.data.decode(errors="replace")}


def legacy_snapshots(tmp: str = "/tmp") -> list[str]:
    """Snapshots of releases before 0.2 (``/tmp/ansible.*.pgtls``, root's) that killed runs left behind, untouched for
    an hour (planner.not_a_legacy_snapshot)."""
    return [path for path in sorted(glob.glob(os.path.join(tmp, "ansible.*.pgtls")))
            if planner.not_a_legacy_snapshot(path) is None]


MATERIALS = ("material", "client_material")  # the server's key and certificate, a client certificate it presents


def _materials(plan: planner.Plan, params: dict) -> dict:
    """The service's key and certificate and its client certificate (pgtls.ssl.host_material's logic, in this plan):
    without a certificate, ensure the key and return its CSR and the files in place; with one, install it."""
    answers = {}
    for index, option in enumerate(MATERIALS):
        raw = params.get(option)
        if raw:
            raw = {k: v for k, v in raw.items() if not k.startswith("snapshot_")}  # this plan takes the one snapshot
            stage = "install" if raw.get("certificate") else "prepare"
            item = host.parse_item(raw, index)
            answers[option] = host.plan_items(plan, [item], [raw], stage)["item_results"][0]
    return answers


def _with_material_paths(activate: dict, material: dict | None) -> dict:
    """The activation's certificate, key and root: as given, else the material's."""
    found = dict(activate)
    for option, name in (("cert_path", "cert_path"), ("key_path", "key_path"), ("ca_path", "root_path")):
        found[option] = activate.get(option) or (material or {}).get(name)
        if not found[option]:
            raise PkiError("the activation needs the file: give it, or material with it", where=f"activate.{option}")
    return found


def cluster_files(params: dict, check_mode: bool, activation=activation_for) -> dict:
    """Module entry for pgtls.ssl.cluster_files: the cluster step's inspect stage (``compare_only``: what is there,
    only the key written) or its apply stage (write what differs, then activate) - each under the host's lock on
    this cluster (planner.host_locked), so two runs on one host take turns: the inspect of one never sees, keeps or
    removes the snapshot the other's apply is using, and the apply plans against the files as they are."""
    protects = params.get("snapshot_dir") or next(
        (params[option]["key_path"] for option in MATERIALS if params.get(option)), None)
    with planner.host_locked(protects, params.get("lock_timeout", 300)):
        if params.get("compare_only"):
            return inspect_files(params, check_mode)
        return apply_files(params, check_mode, activation)


def _group_changes(params: dict, check_mode: bool) -> list:
    """The key group comes first: the folders and files are planned with its gid."""
    if not params.get("key_group"):
        return []
    return accounts.ensure_member(params["key_group"]["name"], params["key_group"]["user"], check_mode)


def _planned(plan: planner.Plan, params: dict, entries: list[_Entry], group_changes: list,
             check_mode: bool) -> tuple[dict, bool]:
    """The parts both stages plan after the entries: the protected paths, the snapshot folder, the material, the
    removal of a snapshot left behind when nothing differs; the result's common keys and whether anything differs."""
    plan.protect(params.get("snapshot_paths") or [], "snapshot_paths")
    if params.get("snapshot_dir"):
        plan.claim(params["snapshot_dir"], kind="snapshot", where="snapshot_dir")
    materials = _materials(plan, params)
    changed = [e for e in entries if e.changes]
    material_changes = any(answer["changes"] for answer in materials.values())
    result = {"changed": bool(changed or group_changes or material_changes),
              "changes": [f"{e.path}: {', '.join(e.changes)}" for e in changed], "snapshot_taken": False,
              "stale_snapshot_removed": False, **materials,
              "diff": [_diff(e) for e in changed if e.kind != "directory" and (e.before != e.data)]}
    if params.get("key_group"):
        result["key_group_changes"] = group_changes
    differs = bool(changed) or material_changes
    if params.get("snapshot_dir") and not differs:
        # Nothing to change: a snapshot an interrupted run left behind goes (in either stage).
        result["stale_snapshot_removed"] = snapshot.declare_remove(plan, params["snapshot_dir"]) and not check_mode
    return result, differs


def inspect_files(params: dict, check_mode: bool) -> dict:
    """The inspect stage for the files it is given (pgtls.ssl.cluster_tls asks first): every file planned, nothing
    but the key written; each folder's, file's and line file's state as the controller decides on it (the record
    pgtls.ssl.cluster_info's inspection gives), and what the server serves."""
    group_changes = _group_changes(params, check_mode)

    def build(plan: planner.Plan) -> dict:
        with plan.compare_only():
            entries = plan_entries(plan, params)
        result, _differs = _planned(plan, params, entries, group_changes, check_mode)
        # Only the key (made when missing) and the key group change here.
        result["changed"] = any(result[option]["changes"] for option in MATERIALS if option in result) or bool(
            group_changes)
        return result

    result = planner.run("host", build, check_mode)
    if check_mode:
        return result
    snapshot.tidy(params.get("snapshot_dir"))
    result["states"] = inspection.states_of(
        [(entry["path"], f"files[{i}]") for i, entry in enumerate(params["files"])],
        [(entry["path"], f"directories[{i}]") for i, entry in enumerate(params["directories"])], params["lines"])
    if params.get("probe_port"):
        cert_path = params.get("probe_cert_path") or (params.get("material") or {}).get("cert_path")
        result["served"] = inspection.served(params["probe_port"], cert_path)
    return result


def apply_files(params: dict, check_mode: bool, activation=activation_for) -> dict:
    """The apply stage: every file planned before the first write (the material's own included), a snapshot taken
    only when this execution also activates (nothing else would ever restore it), then validate, reload (or restart)
    and prove in the same execution; the activation removes the snapshot, or restores it on failure."""
    activate = params.get("activate")
    if activate:
        activate = _with_material_paths(activate, params.get("material"))
    group_changes = _group_changes(params, check_mode)
    folder = params.get("snapshot_dir")
    if not check_mode:
        host.tidy([host.parse_item(params[option], index) for index, option in enumerate(MATERIALS)
                   if params.get(option)])

    def build(plan: planner.Plan) -> dict:
        # The folders, files and lines first (a folder they name is made with their owner and mode when the key
        # goes there too), then the key and certificate.
        entries = plan_entries(plan, params)
        result, differs = _planned(plan, params, entries, group_changes, check_mode)
        if folder and differs and activate:
            snapshot.take(plan, folder, params["snapshot_paths"], resolve_gid(params.get("snapshot_group"),
                                                                              "snapshot_group"))
            result["snapshot_taken"] = not check_mode
        if params.get("remove_legacy_snapshots"):
            legacy = legacy_snapshots()
            for path in legacy:
                plan.delete(path, kind="snapshot", where="remove_legacy_snapshots", because="legacy-snapshot")
            if not check_mode:
                result["legacy_snapshots_removed"] = legacy
        return result

    result = planner.run("host", build, check_mode)
    if check_mode:
        return result
    snapshot.tidy(folder)
    if activate and (result["changed"] or activate.get("always")):
        # In the same execution: validate as the service will, reload (or restart), prove; restore on failure.
        activate = dict(activate, snapshot_dir=folder, snapshot_paths=params.get("snapshot_paths") or [])
        result["activation"] = activation(activate).run()
        result["changed"] = True
    return result
