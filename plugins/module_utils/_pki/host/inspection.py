# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The cluster step's first stage, on the host: what is there now, as plain records the controller decides on.

``inspect`` ensures the server key (made here when missing, a pending key: host_material's prepare), and reports
its CSR and the certificate and root in place, each folder's and file's state (what it is, its owner, group and
mode, a digest of its bytes - never its content: postgresql.conf may hold a password, a userlist its secrets - and
for a file lines are set in, the digest with those lines set), what the server serves, and removes a snapshot an
interrupted run left behind. pgtls.ssl.cluster_info runs it for every cluster it finds, in the discovery's own execution, so an
unchanged host costs one execution; pgtls.ssl.cluster_files runs it for the files it is given (its inspect_files,
``compare_only``). The controller then compares (plugin_utils/_cluster_step.decide) and asks for the apply
execution only when something differs.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat

from ..core import planner, probe
from ..core.constants import LIBPQ_CERT_FILE, LIBPQ_KEY_FILE, LIBPQ_ROOT_FILE
from ..core.errors import PkiError
from ..core.files import MAX_CRL_BYTES, group_name, read_bytes, user_name
from ..core.info import fingerprint, leaf_fingerprint
from . import host_material as host
from . import snapshot

FILE = "file"
FOLDER = "folder"


def with_line(text: str, regexp: str, line: str, where: str) -> str:
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


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_of(path: str, lines: list[dict] | None = None, where: str = "lines") -> dict:
    """What ``path`` is now: ``kind`` (missing, file, folder, link or other), and for a file or folder its owner,
    group and mode; a file's ``sha256`` (None when it is larger than a CRL may be or unreadable). ``lines``
    (``regexp``, ``line``): set in order on its text, the ``sha256_with_lines`` (None when it is not UTF-8) - equal
    to ``sha256`` when they are all in place; ``lines`` echoes them, so the controller knows what was checked."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return {"kind": "missing"}
    if stat.S_ISLNK(st.st_mode):
        return {"kind": "link"}
    kind = FILE if stat.S_ISREG(st.st_mode) else FOLDER if stat.S_ISDIR(st.st_mode) else "other"
    found = {"kind": kind, "mode": f"{stat.S_IMODE(st.st_mode):04o}", "owner": user_name(st.st_uid),
             "group": group_name(st.st_gid), "uid": st.st_uid, "gid": st.st_gid}
    if kind == FILE:
        try:
            data = read_bytes(path, path, limit=MAX_CRL_BYTES, nofollow=True)
        except PkiError:  # too large or unreadable: not a file to compare
            data = None
        found["sha256"] = digest(data) if data is not None else None
        if lines:
            found["lines"] = [[entry["regexp"], entry["line"]] for entry in lines]
            try:
                text = data.decode("utf-8") if data is not None else None
            except UnicodeDecodeError:
                text = None
            if text is not None:
                for index, entry in enumerate(lines):
                    text = with_line(text, entry["regexp"], entry["line"], f"{where}[{index}]")
            found["sha256_with_lines"] = digest(text.encode()) if text is not None else None
    return found


def inspect(files: list[tuple[str, str]], directories: list[tuple[str, str]], material: dict | None,
            snapshot_dir: tuple[str, str] | None, check_mode: bool, lines: list[dict] | None = None,
            client: dict | None = None) -> dict:
    """The inspection record of one cluster (see the module's docstring). Every path (with the option that names
    it) is claimed in one write plan first, so a link, a folder where a file goes, a file of another kind (a key
    among the configuration files) or a CA folder's file stops the run here; the key and the stale snapshot are that
    plan's only writes."""
    def build(plan: planner.Plan) -> dict:
        for path, where in directories:
            plan.claim(path, kind="folder", where=where)
        for path, where in files:
            plan.claim(path, kind="file", where=where)
        named = {os.path.normpath(path) for path, _where in files}
        for index, entry in enumerate(lines or []):
            if os.path.normpath(entry["path"]) not in named:
                named.add(os.path.normpath(entry["path"]))
                plan.claim(entry["path"], kind="file", where=f"inspect.lines[{index}].path")
        if snapshot_dir:
            plan.claim(snapshot_dir[0], kind="snapshot", where=snapshot_dir[1])
        raws = [{k: v for k, v in material.items() if not k.startswith("snapshot_")}] if material else []
        raws += [client] if client else []
        items = [host.parse_item(raw, index) for index, raw in enumerate(raws)]
        answers = host.plan_items(plan, items, raws, "prepare")["item_results"] if items else []
        # A snapshot left by an interrupted run protects nothing now: the apply execution takes its own.
        removed = bool(snapshot_dir) and snapshot.declare_remove(plan, snapshot_dir[0], snapshot_dir[1]) \
            and not check_mode
        return {"material": answers[0] if material else None,
                "client_material": answers[-1] if client else None, "stale_snapshot_removed": removed}

    result = planner.run("host", build, check_mode)
    result["states"] = states_of(files, directories + ([snapshot_dir] if snapshot_dir else []), lines or [])
    return result


def states_of(files: list[tuple[str, str]], directories: list[tuple[str, str]], lines: list[dict]) -> dict:
    """The state of each file (with the ``lines`` set in it, by their ``path``) and folder, by path."""
    by_file: dict[str, list[dict]] = {}
    for entry in lines:
        by_file.setdefault(os.path.normpath(entry["path"]), []).append(entry)
    states = {path: state_of(path) for path, _where in directories}
    for path, where in files:
        states[path] = state_of(path, by_file.pop(os.path.normpath(path), None), where)
    for group in by_file.values():
        states[group[0]["path"]] = state_of(group[0]["path"], group)
    return states


def served(port: int, cert_path: str) -> dict:
    """What 127.0.0.1:``port`` serves, compared with the leaf of ``cert_path`` (a failure is an answer too)."""
    try:
        chain = probe.served_chain("127.0.0.1", port)["chain"]
    except PkiError as exc:
        return {"matches_file": False, "error": str(exc)}
    served_leaf = fingerprint(chain[0])
    return {"matches_file": served_leaf == leaf_fingerprint(cert_path, "probe_cert_path"),
            "fingerprint_sha256": served_leaf}


def inside(config_dir: str, relative: str, where: str) -> str:
    """A path of the role's layout inside a cluster's configuration folder (never outside it)."""
    if not relative or os.path.isabs(relative) or ".." in relative.split("/"):
        raise PkiError(f"{relative!r} must be a path inside the configuration folder", where=where)
    return os.path.join(config_dir, relative)


def with_host_names(names: list[str], found: dict) -> list[str]:
    """The certificate's names as the server role orders them: the first given, the host's fqdn and hostname (as
    setup reports them), then the others given; blanks and repeats left out."""
    ordered = names[:1] + [found.get("fqdn", ""), found.get("hostname", "")] + names[1:]
    out = []
    for name in ordered:
        if name and name not in out:
            out.append(name)
    return out


def _in_spec_words(msg: str) -> str:
    """The host half's item words in this module's: items[0] is inspect.material, items[1] (a client certificate's
    files, libpq's names in its folder) inspect.client_material.dir."""
    msg = msg.replace("items[0] (server).", "inspect.material.")
    return re.sub(r"items\[1\] \([^)]*\)\.(\w+)",
                  lambda m: "inspect.client_material." + ("dir" if m.group(1).endswith("_path") else m.group(1)), msg)


def inspect_clusters(clusters: list[dict], spec: dict, names: dict, key_group: str | None, check_mode: bool) -> list[dict]:
    """Each cluster with its ``inspection`` (the paths of ``spec`` inside its configuration folder). Without
    ``spec.write`` nothing is written (a missing key is made in memory only, a stale snapshot stays) and the record
    says so (``dry``): the preflight of site, rotate and revoke changes nothing."""
    dry = check_mode or not spec.get("write", True)
    out = []
    for cluster in clusters:
        base = cluster["config_dir"]
        material = None
        if spec.get("material"):
            given = spec["material"]
            material = dict(given, name="server")
            for option in ("key_path", "cert_path", "root_path"):
                if given.get(option):
                    material[option] = inside(base, given[option], f"inspect.material.{option}")
            sans = list(given.get("subject_alt_names") or [])
            if given.get("add_host_names"):
                sans = with_host_names(sans, names)
            material.pop("add_host_names", None)
            if material.pop("key_group", False):
                material["group"] = key_group
            material["subject_alt_names"] = sans
            material["common_name"] = sans[0] if sans else None
        client = None
        if spec.get("client_material") and material:
            # As pgtls.ssl.cluster_tls asks for it (plugin_utils/_issuance.client_request): libpq's names.
            given = spec["client_material"]
            folder = inside(base, given["dir"], "inspect.client_material.dir")
            client = {"name": given["name"], "key_path": os.path.join(folder, LIBPQ_KEY_FILE),
                      "cert_path": os.path.join(folder, LIBPQ_CERT_FILE),
                      "root_path": os.path.join(folder, LIBPQ_ROOT_FILE), "key_type": material.get("key_type"),
                      "common_name": given["name"], "owner": given.get("owner"), "group": given.get("group"),
                      "key_mode": "0600", "cert_mode": "0644", "create_dir": True}
        files = [(inside(base, path, f"inspect.files[{i}]"), f"inspect.files[{i}]")
                 for i, path in enumerate(spec.get("files") or [])]
        folders = [(inside(base, path, f"inspect.directories[{i}]"), f"inspect.directories[{i}]")
                   for i, path in enumerate(spec.get("directories") or [])]
        snap = (inside(base, spec["snapshot_dir"], "inspect.snapshot_dir"), "inspect.snapshot_dir") \
            if spec.get("snapshot_dir") else None
        lines = [dict(entry, path=inside(base, entry["path"], f"inspect.lines[{i}].path"))
                 for i, entry in enumerate(spec.get("lines") or [])]
        try:
            found = inspect(files, folders, material, snap, dry, lines, client)
        except PkiError as exc:  # the key's options in this module's words
            if not dry:
                raise PkiError(_in_spec_words(str(exc))) from None
            # Nothing is written now: pgtls.ssl.cluster_tls asks the host again, and says it.
            found = {"material": None, "client_material": None, "states": {}, "stale_snapshot_removed": False,
                     "error": str(exc)}
        found["dry"] = dry
        if spec.get("probe", True) and cluster.get("running") and material and not check_mode:
            found["served"] = served(cluster["port"], material["cert_path"])
        out.append(dict(cluster, inspection=found))
    return out
