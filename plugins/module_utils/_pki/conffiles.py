# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""One pass over a cluster's configuration files: compare all, snapshot once, write only what differs.

The server role renders its templates on the controller and hands the results here, with the folders and the
``include_dir`` line it needs, so an unchanged cluster costs one module execution instead of one or two per file.
Everything is planned (owners, groups, modes, folders, symbolic links, one path per file) before the first write.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass

from . import accounts, host, probe, snapshot
from .activation import Activation
from .errors import PkiError
from .files import (
    MAX_CRL_BYTES,
    Attrs,
    apply_attributes,
    check_distinct,
    differences,
    parse_mode,
    read_bytes,
    resolve_gid,
    resolve_uid,
    write_atomic,
)
from .info import fingerprint, leaf_fingerprint

LEGACY_AGE = 3600


@dataclass
class _Entry:
    kind: str  # directory, file or line
    path: str
    where: str
    attrs: Attrs | None = None
    data: bytes | None = None
    before: bytes | None = None
    diff: bool = True
    changes: list | None = None


def _attrs(raw: dict, where: str, default_mode: str) -> Attrs:
    return Attrs(parse_mode(raw.get("mode") or default_mode, f"{where}.mode"),
                 resolve_uid(raw.get("owner"), f"{where}.owner"), resolve_gid(raw.get("group"), f"{where}.group"))


def _regular(path: str, where: str, want_dir: bool = False) -> os.stat_result | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise PkiError(f"{path} is a symbolic link (to {os.readlink(path)}): the role writes real files only; "
                       "point the role at the real path", where=where)
    if want_dir and not stat.S_ISDIR(st.st_mode):
        raise PkiError(f"{path} exists but is not a folder", where=where)
    if not want_dir and not stat.S_ISREG(st.st_mode):
        raise PkiError(f"{path} exists but is not a regular file", where=where)
    return st


def _with_line(text: str, regexp: str, line: str, where: str) -> str:
    """lineinfile's rule: replace the last line matching ``regexp`` by ``line``, or append ``line``."""
    try:
        pattern = re.compile(regexp)
    except re.error as exc:
        raise PkiError(f"regexp {regexp!r} is not a regular expression: {exc}", where=f"{where}.regexp") from None
    lines = text.splitlines(keepends=True)
    found = [i for i, current in enumerate(lines) if pattern.search(current.rstrip("\r\n"))]
    if found:
        lines[found[-1]] = line + "\n"
        return "".join(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines) + line + "\n"


def _plan(params: dict) -> list[_Entry]:
    entries: list[_Entry] = []
    folders = set()
    for index, raw in enumerate(params["directories"]):
        where = f"directories[{index}]"
        entry = _Entry("directory", raw["path"], where, _attrs(raw, where, "0755"))
        st = _regular(entry.path, where, want_dir=True)
        if st is None and not os.path.isdir(os.path.dirname(os.path.abspath(entry.path))):
            raise PkiError(f"cannot create {entry.path}: its parent folder does not exist", where=f"{where}.path")
        entry.changes = ["created"] if st is None else differences(entry.path, entry.attrs)
        folders.add(os.path.abspath(entry.path))
        entries.append(entry)
    check_distinct({f"files[{i}].path": raw["path"] for i, raw in enumerate(params["files"])})
    for index, raw in enumerate(params["files"]):
        where = f"files[{index}]"
        entry = _Entry("file", raw["path"], where, _attrs(raw, where, "0644"), raw["content"].encode(),
                       diff=raw.get("diff", True))
        folder = os.path.dirname(os.path.abspath(entry.path))
        if folder not in folders and not os.path.isdir(folder):
            raise PkiError(f"folder {folder} does not exist (for {entry.path})", where=f"{where}.path")
        st = _regular(entry.path, f"{where}.path")
        entry.before = read_bytes(entry.path, f"{where}.path", limit=MAX_CRL_BYTES, nofollow=True) if st else None
        if entry.before is None:
            entry.changes = ["created"]
        elif entry.before != entry.data:
            entry.changes = ["content changed"]
        else:
            entry.changes = differences(entry.path, entry.attrs)
        entries.append(entry)
    written = {os.path.realpath(e.path) for e in entries if e.kind == "file"}
    for index, raw in enumerate(params["lines"]):
        where = f"lines[{index}]"
        if os.path.realpath(raw["path"]) in written:
            raise PkiError(f"{raw['path']} is also written whole by files: give it one way", where=f"{where}.path")
        st = _regular(raw["path"], f"{where}.path")
        if st is None:
            raise PkiError(f"{raw['path']} does not exist: a line is added to an existing file only",
                           where=f"{where}.path")
        before = read_bytes(raw["path"], f"{where}.path", limit=MAX_CRL_BYTES, nofollow=True)
        try:
            text = before.decode()
        except UnicodeDecodeError:
            raise PkiError(f"{raw['path']} is not UTF-8 text", where=f"{where}.path") from None
        after = _with_line(text, raw["regexp"], raw["line"], where).encode()
        entry = _Entry("line", raw["path"], where, Attrs(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), after,
                       before)
        entry.changes = [] if after == before else [f"line {raw['line']!r} set"]
        entries.append(entry)
    return entries


def _diff(entry: _Entry) -> dict:
    if not entry.diff:
        return {"before_header": entry.path, "after_header": entry.path,
                "before": "(content not shown)\n" if entry.before is not None else "",
                "after": "(content not shown: changed)\n"}
    return {"before_header": entry.path, "after_header": entry.path,
            "before": (entry.before or b"").decode(errors="replace"), "after": entry.data.decode(errors="replace")}


def _apply(entry: _Entry) -> None:
    if entry.kind == "directory":
        if entry.changes == ["created"]:
            try:
                os.mkdir(entry.path, 0o700)
            except OSError as exc:
                raise PkiError(f"cannot create {entry.path}: {exc.strerror}", where=f"{entry.where}.path") from None
        apply_attributes(entry.path, entry.attrs)
    elif entry.before is not None and entry.before == entry.data:
        apply_attributes(entry.path, entry.attrs)
    else:
        write_atomic(entry.path, entry.data, entry.attrs, f"{entry.where}.path")


def remove_legacy_snapshots(tmp: str = "/tmp", age: int = LEGACY_AGE) -> list[str]:
    """Snapshots of releases before 0.2 (``/tmp/ansible.*.pgtls``, root's) that killed runs left behind, older than
    ``age`` seconds (not a run in progress): removed. Returns their paths."""
    removed = []
    for path in glob.glob(os.path.join(tmp, "ansible.*.pgtls")):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and time.time() - st.st_mtime > age:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def served(port: int, cert_path: str) -> dict:
    """What 127.0.0.1:``port`` serves, compared with the leaf of ``cert_path`` (a failure is an answer too)."""
    try:
        chain = probe.served_chain("127.0.0.1", port)["chain"]
    except PkiError as exc:
        return {"matches_file": False, "error": str(exc)}
    served_leaf = fingerprint(chain[0])
    return {"matches_file": served_leaf == leaf_fingerprint(cert_path, "probe_cert_path"),
            "fingerprint_sha256": served_leaf}


def _material(params: dict, check_mode: bool) -> dict | None:
    """The server key and certificate (pgtls.ssl.host_material's logic): without a certificate, ensure the key and
    return its CSR and the files in place; with one, install it, taking the run's snapshot first when it writes."""
    raw = params.get("material")
    if not raw:
        return None
    if not raw.get("certificate"):
        return host.host_material({"stage": "prepare", "items": [raw]}, check_mode)["item_results"][0]
    item = dict(raw, snapshot_dir=params.get("snapshot_dir"), snapshot_paths=params.get("snapshot_paths") or [],
                snapshot_group=params.get("snapshot_group"), snapshot_taken=bool(params.get("snapshot_taken")))
    return host.host_material({"stage": "install", "items": [item]}, check_mode)["item_results"][0]


def cluster_files(params: dict, check_mode: bool, run_command=None) -> dict:
    """Module entry for pgtls.ssl.cluster_files. Every file is planned before the first write (the material's own
    plan included); with ``compare_only`` nothing but the key is written (pgtls.ssl.cluster_tls asks first). The key
    group comes first: the folders and files are planned with its gid."""
    group_changes = []
    if params.get("key_group"):
        group_changes = accounts.ensure_member(params["key_group"]["name"], params["key_group"]["user"], check_mode)
    entries = _plan(params)
    changed = [e for e in entries if e.changes]
    result = {"changed": bool(changed or group_changes),
              "changes": [f"{e.path}: {', '.join(e.changes)}" for e in changed], "snapshot_taken": False,
              "stale_snapshot_removed": False}
    if params.get("key_group"):
        result["key_group_changes"] = group_changes
    folder = params.get("snapshot_dir")
    if params.get("compare_only"):
        material = _material(params, check_mode)
        result["changed"] = bool(material and material["changes"]) or bool(group_changes)
        if material is not None:
            result["material"] = material
        if not check_mode:
            if folder and not changed and not (material and material["changes"]) and not params.get("snapshot_taken"):
                result["stale_snapshot_removed"] = snapshot.remove(folder)
            if params.get("remove_legacy_snapshots"):
                result["legacy_snapshots_removed"] = remove_legacy_snapshots()
            if params.get("probe_port"):
                cert_path = params.get("probe_cert_path") or (params.get("material") or {}).get("cert_path")
                result["served"] = served(params["probe_port"], cert_path)
        result["diff"] = [_diff(e) for e in changed if e.kind != "directory" and (e.before != e.data)]
        return result
    material = _material(params, check_mode)
    taken = bool(params.get("snapshot_taken"))
    if material is not None:
        result["material"] = material
        result["snapshot_taken"] = taken = taken or bool(material.get("snapshot_taken"))
        result["changed"] = result["changed"] or bool(material["changes"])
    if not check_mode:
        # Folders first (the snapshot lives in one of them; a new folder has nothing to restore), then the
        # snapshot of every file the role may change, then the files.
        for entry in changed:
            if entry.kind == "directory":
                _apply(entry)
        if folder and taken:
            pass  # this run's snapshot, taken before the key or certificate was replaced
        elif folder and changed:
            gid = resolve_gid(params.get("snapshot_group"), "snapshot_group")
            snapshot.take(folder, params["snapshot_paths"], gid, "snapshot_dir")
            result["snapshot_taken"] = True
        elif folder:
            result["stale_snapshot_removed"] = snapshot.remove(folder)
        for entry in changed:
            if entry.kind != "directory":
                _apply(entry)
        if params.get("remove_legacy_snapshots"):
            result["legacy_snapshots_removed"] = remove_legacy_snapshots()
        activate = params.get("activate")
        if activate and (result["changed"] or activate.get("always")):
            # In the same execution: validate with PostgreSQL, reload (or restart), prove; restore on failure.
            activate = dict(activate, snapshot_dir=folder, snapshot_paths=params.get("snapshot_paths") or [])
            result["activation"] = Activation(activate, run_command=run_command).run()
            result["changed"] = True
    result["diff"] = [_diff(e) for e in changed if e.kind != "directory" and (e.before != e.data)]
    return result
