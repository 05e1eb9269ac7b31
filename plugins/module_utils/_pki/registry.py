# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The CA folder's revocation registry (``revoked.yml``), changed only under the CA folder's lock.

Two revoke runs at once each add their entries; neither loses the other's, since each reads the file after it
holds the lock. Entries are never removed here: a CRL entry is undone with the crl module's ``revoked_mode=exact``.
"""

from __future__ import annotations

import datetime as _dt
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


def issued_to(pki_dir: str, names: list[str]) -> dict[str, list[str]]:
    """The archived certificates of each role name (<pki_dir>/issued/<name>/<SERIAL>.crt), sorted; a name with
    none is an error naming it and the archive (revocation by name reads nothing else)."""
    layout = cafolder.Layout(pki_dir)
    found = {}
    for name in names:
        folder = layout.issued(name)
        try:
            found[name] = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                                 if f.endswith(".crt") and os.path.isfile(os.path.join(folder, f)))
        except OSError:
            found[name] = []
    for paths in found.values():
        for path in paths:
            stem = _serial_of(path)
            if not stem or any(c not in "0123456789ABCDEFabcdef" for c in stem):
                raise PkiError(f"{path} is not named <SERIAL>.crt (hex): the archive holds what the collection "
                               "issued, one file per serial; move that file out", where="names")
    missing = [name for name, paths in found.items() if not paths]
    if missing:
        raise PkiError(f"no certificate issued to {', '.join(missing)} in {layout.archive} (the archive "
                       "revocation by name reads); check the name, or give serials", where="names")
    return found


def _serial_of(path: str) -> str:
    """The serial an archived certificate is named for (<SERIAL>.crt)."""
    return os.path.basename(path)[:-len(".crt")]


def by_name_and_serial(params: dict) -> tuple[list[dict], dict]:
    """The entries for ``names`` (each archived certificate's serial) and ``serials``, with ``reason`` and
    ``revocation_date`` (now, UTC, when not given), and the archived files per name."""
    if not params["pki_dir"] and params["names"]:
        raise PkiError("names need pki_dir (the CA folder whose issued/ archive lists them)", where="names")
    date = params["revocation_date"] or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    common = {"reason": params["reason"], "revocation_date": date}
    issued = issued_to(params["pki_dir"], params["names"]) if params["names"] else {}
    entries = [dict(common, serial_number="0x" + _serial_of(path), name=name)
               for name, paths in issued.items() for path in paths]
    entries += [dict(common, serial_number=str(serial)) for serial in params["serials"]]
    return entries, issued


def ensure_entries(params: dict, check_mode: bool) -> dict:
    if yaml is None:
        raise PkiError("PyYAML is needed to read the registry", where="path")
    path = params["path"] or cafolder.Layout(params["pki_dir"]).registry
    check_folder(path, "pki_dir" if params["pki_dir"] else "path")
    extra, issued = by_name_and_serial(params)
    new = []
    for index, entry in enumerate(params["add"] + extra):
        serial = parse_serial(entry["serial_number"], f"add[{index}].serial_number")
        new.append((serial, {k: v for k, v in entry.items() if v not in (None, "")}))
    plan = dict(_apply(path, new, True), issued=issued)
    if check_mode or not plan["changed"]:
        return plan
    with cafolder.locked(os.path.dirname(os.path.abspath(path)), params["lock_timeout"]):
        return dict(_apply(path, new, False), issued=issued)


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
