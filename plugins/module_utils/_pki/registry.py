# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The CA folder's revocation registry (``revoked.yml``), changed only under the CA folder's lock.

Two revoke runs at once each add their entries; neither loses the other's, since each reads the file after it
holds the lock. Entries are never removed here: a CRL entry is undone with the crl module's ``revoked_mode=exact``.
"""

from __future__ import annotations

import os

from . import cafolder
from .crl import parse_serial
from .errors import PkiError
from .files import Attrs, check_folder, read_bytes, write_atomic

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core on the controller
    yaml = None


def _load(path: str) -> list[dict]:
    data = read_bytes(path, "path", missing_ok=True)
    if not data or not data.strip():
        return []
    try:
        entries = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise PkiError(f"{path} is not valid YAML ({type(exc).__name__}); it lists revocations, restore it from a "
                       "backup", where="path") from None
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "serial_number" in e for e in entries):
        raise PkiError(f"{path} is not a list of entries with a serial_number", where="path")
    return entries


def ensure_entries(params: dict, check_mode: bool) -> dict:
    if yaml is None:
        raise PkiError("PyYAML is needed to read the registry", where="path")
    path = params["path"]
    check_folder(path, "path")
    new = []
    for index, entry in enumerate(params["add"]):
        serial = parse_serial(entry["serial_number"], f"add[{index}].serial_number")
        new.append((serial, {k: v for k, v in entry.items() if v not in (None, "")}))
    plan = _apply(path, new, True)
    if check_mode or not plan["changed"]:
        return plan
    with cafolder.locked(os.path.dirname(os.path.abspath(path)), params["lock_timeout"]):
        return _apply(path, new, False)


def _apply(path: str, new: list, check_mode: bool) -> dict:
    entries = _load(path)
    known = {parse_serial(e["serial_number"], f"path ({path})") for e in entries}
    added = []
    for serial, entry in new:
        if serial not in known:
            known.add(serial)
            added.append(entry)
    if added and not check_mode:
        text = yaml.safe_dump(entries + added, default_flow_style=False, sort_keys=True, indent=2)
        write_atomic(path, text.encode(), Attrs(0o600), "path")
    return {"changed": bool(added), "added": added, "entries": entries + added, "path": path}
