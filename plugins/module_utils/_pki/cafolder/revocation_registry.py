# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The CA folder's revocation registry (``revoked.yml``), changed only under the CA folder's lock.

Two revoke runs at once each add their entries; neither loses the other's, since each reads the file after it
holds the lock. Entries are never removed here: a CRL entry is undone with the crl module's ``revoked_mode=exact``.
Every entry is checked where it enters (serial, reason, an ISO 8601 date not in the future), so a bad one can never
stop the CRLs from being signed again later. An entry may be recorded ``pending``: it counts everywhere a certificate
is issued (its certificate is re-issued where it is installed, a compromised key is never certified again) but is left
out of the CRLs until it is published - the revoke playbook replaces every certificate it names first, then publishes.
Revocation by name reads the ``issued/`` archive by content: each certificate's serial and issuer come from the
certificate, never from its file name.
"""

from __future__ import annotations

import datetime as _dt
import os
import stat

from ..core import compat, planner
from ..core.crls import parse_reason, parse_revocation_date, parse_serial
from ..core.errors import PkiError
from ..core.files import Attrs, read_bytes
from ..core.info import serial_hex
from ..core.keys import public_fingerprint
from ..core.layout import Layout

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core on the controller
    yaml = None


def load(path: str, read=read_bytes, where: str = "path") -> list[dict]:
    """The registry's entries, each checked (a bad one is named with the file, never skipped: it is a revocation).
    ``where``: the option that names the registry (or its CA folder) in messages."""
    data = read(path, where, missing_ok=True)
    if not data or not data.strip():
        return []
    if yaml is None:
        raise PkiError("PyYAML is needed to read the registry", where=where)
    try:
        entries = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise PkiError(f"{path} is not valid YAML ({type(exc).__name__}); it lists revocations, restore it from a "
                       "backup", where=where) from None
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "serial_number" in e for e in entries):
        raise PkiError(f"{path} is not a list of entries with a serial_number", where=where)
    for index, entry in enumerate(entries):
        at = f"{path} entry {index + 1}"
        parse_serial(entry["serial_number"], f"{at}.serial_number")
        parse_reason(entry.get("reason"), f"{at}.reason")
        if entry.get("revocation_date") not in (None, ""):
            parse_revocation_date(entry["revocation_date"], f"{at}.revocation_date")
        if not isinstance(entry.get("pending", False), bool):
            raise PkiError(f"{at}.pending must be true or false, got {entry['pending']!r}", where=where)
    return entries


def published(entries: list[dict]) -> list[dict]:
    """The entries the CRLs carry: every one that is not pending."""
    return [entry for entry in entries if not entry.get("pending")]


def _entries(folder: str, read) -> list[dict]:
    """The CA folder's registry entries (its revoked.yml, never through a link), for the readers below."""
    return load(Layout(folder).registry, lambda p, w, **kw: read(p, w, nofollow=True, **kw), "ca_folder")


def issuing_record(folder: str, read=read_bytes) -> tuple[dict[str, str], dict[int, str]]:
    """What issuing needs from the registry, from one read of it: compromised_keys and revoked_serials."""
    entries = _entries(folder, read)
    return compromised_keys(folder, read, entries), revoked_serials(folder, read, entries)


def revoked_serials(folder: str, read=read_bytes, entries: list[dict] | None = None) -> dict[int, str]:
    """Every serial the CA folder's registry revokes by serial (published or pending), with its reason: a certificate
    with one of them is issued again wherever it is installed (checks.reissue_reasons). An entry with a name revokes
    that name (the revoke playbook's names): its holder is refused from now on, not given a new certificate.
    ``entries``: the registry's, when already read."""
    found = {}
    for entry in _entries(folder, read) if entries is None else entries:
        if entry.get("name") not in (None, ""):
            continue
        serial = parse_serial(entry["serial_number"], "ca_folder")
        found.setdefault(serial, parse_reason(entry.get("reason"), "ca_folder")
                         + (" (pending: not yet in the CRLs)" if entry.get("pending") else ""))
    return found


def revocations(folder: str, read=read_bytes) -> dict:
    """What the CA folder's registry revokes, for the audit: ``serials`` (every entry, by name or serial, published or
    pending: colon hex -> reason) and ``keys`` (compromised_keys: public key fingerprint -> serial and name)."""
    serials = {}
    entries = _entries(folder, read)
    for entry in entries:
        serial = serial_hex(parse_serial(entry["serial_number"], "ca_folder"))
        serials.setdefault(serial, parse_reason(entry.get("reason"), "ca_folder")
                           + (" (pending)" if entry.get("pending") else ""))
    return {"serials": serials, "keys": compromised_keys(folder, read, entries)}


def revoked_names(folder: str, where: str = "ca_folder") -> list[str]:
    """The role names a CA folder's registry revokes (its entries recorded by name: the revoke playbook's names),
    sorted, each once; [] when the folder has no registry. The registry is read as the CA folder holds it (a
    symbolic link there is refused) and checked entry by entry, as every reader of it does; a name that is not a
    string is an error naming the entry, never skipped (a revoked role left out of the list would be certified
    again)."""
    path = Layout(folder).registry

    def read(name: str, what: str, **kwargs):
        return read_bytes(name, what, nofollow=True, **kwargs)

    try:
        entries = load(path, read, where)
    except PkiError as exc:  # an entry's problem is named by the file and entry: say which option led there
        raise exc if exc.where == where else PkiError(str(exc), where=where) from None
    names = set()
    for index, entry in enumerate(entries):
        name = entry.get("name")
        if name is None or name == "":
            continue  # revoked by serial
        if not isinstance(name, str):
            raise PkiError(f"{path} entry {index + 1}: name {name!r} is a {type(name).__name__}, not a role name "
                           "(quote it in the registry)", where=where)
        names.add(name)
    return sorted(names)


def issued_to(pki_dir: str, names: list[str], read=read_bytes,
              issuers: list | None = None) -> dict[str, list[tuple[str, object]]]:
    """The archived certificates of each role name (<pki_dir>/issued/<name>/<SERIAL>.crt), read by content: each
    must be a certificate this CA folder's intermediate (current, previous or retired) issued, in a file named for
    its serial. A name with none is an error naming it and the archive. ``issuers``: _issuers' answer, when read."""
    layout = Layout(pki_dir)
    issuers = [ca for ca, _retired in (issuers if issuers is not None else _issuers(layout, read))]
    found = {}
    for name in names:
        folder = layout.issued(name)
        st = _lstat(folder)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise PkiError(f"{folder} is {'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'not a folder'}: the "
                           "archive holds one real folder per name", where="names")
        certs = []
        for file in sorted(os.listdir(folder)) if st is not None else []:
            path = os.path.join(folder, file)
            certs.append((path, _archived(path, issuers)))
        found[name] = certs
    missing = [name for name, certs in found.items() if not certs]
    if missing:
        raise PkiError(f"no certificate issued to {', '.join(missing)} in {layout.archive} (the archive "
                       "revocation by name reads); check the name, or give serials", where="names")
    return found


def _lstat(path: str):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _issuers(layout: Layout, read) -> list[tuple[object, bool]]:
    """The CAs whose certificates the archive may hold, each with whether it is retired: the intermediate, the
    previous one, the previous root's (a root rotation's overlap), the retired ones, and the last intermediate of
    each retired root (retired/root-<SERIAL>.pem: the root, then that intermediate)."""
    paths = [(layout.intermediate_cert, False), (layout.previous_file("intermediate.crt"), False),
             (os.path.join(layout.previous_root, "intermediate.crt"), False)]
    if os.path.isdir(layout.retired) and not os.path.islink(layout.retired):
        paths += [(os.path.join(layout.retired, n), True) for n in sorted(os.listdir(layout.retired))
                  if n.endswith(".crt")]
    issuers = []
    for path, retired in paths:
        data = read(path, "pki_dir", missing_ok=True, nofollow=True)
        if data:
            issuers.append((compat.load_certificates(data, f"pki_dir ({path})")[0], retired))
    for path in layout.retired_roots():
        archived = compat.load_certificates(read(path, "pki_dir", nofollow=True), f"pki_dir ({path})")
        issuers += [(cert, True) for cert in archived[1:]]
    return issuers


def by_retired_intermediates(pki_dir: str, issued: dict[str, list[tuple[str, object]]], read=read_bytes,
                             issuers: list | None = None) -> dict:
    """Of the archived certificates of each name, the files a retired intermediate issued: the root's CRL revokes
    their issuer, and the servers no longer hold that intermediate's CRL. ``issuers``: _issuers' answer, when read."""
    from ..core.issue import signed_by

    retired = [ca for ca, is_retired in (issuers if issuers is not None else _issuers(Layout(pki_dir), read))
               if is_retired]
    return {name: [path for path, cert in certs if any(signed_by(cert, ca) for ca in retired)]
            for name, certs in issued.items()}


def _archived(path: str, issuers: list):
    """The certificate in an archive file, checked: a regular file, a certificate, issued by one of ``issuers``,
    named for its own serial."""
    from ..core.issue import signed_by

    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise PkiError(f"{path} is not a regular file: the archive holds certificate files only; move it out",
                       where="names")
    named = _serial_of(path)
    if not path.endswith(".crt") or not named or any(c not in "0123456789ABCDEFabcdef" for c in named):
        raise PkiError(f"{path} is not named <SERIAL>.crt (hex): the archive holds what the collection issued, one "
                       "file per serial; move that file out", where="names")
    try:
        cert = compat.load_certificates(read_bytes(path, "names", nofollow=True), path)[0]
    except PkiError as exc:
        raise PkiError(f"{exc} - the archive holds what the collection issued; move that file out",
                       where="names") from None
    if not any(signed_by(cert, issuer) for issuer in issuers):
        raise PkiError(f"{path} holds a certificate issued by {cert.issuer.rfc4514_string()}, not by this CA folder's "
                       "intermediate (current, previous or retired): it is not what the collection issued; move it "
                       "out", where="names")
    if int(named, 16) != cert.serial_number:
        raise PkiError(f"{path} holds serial {serial_hex(cert.serial_number)}, not the serial its name says: the "
                       "archive names each file for its certificate's serial; move that file out", where="names")
    return cert


def _serial_of(path: str) -> str:
    """The serial an archived certificate is named for (<SERIAL>.crt)."""
    return os.path.basename(path)[:-len(".crt")]


COMPROMISED = "key_compromise"


def _archive_by_serial(layout: Layout) -> dict[int, str]:
    """Every archived certificate file by the serial its name says (issued/<name>/<SERIAL>.crt)."""
    found = {}
    if not os.path.isdir(layout.archive) or os.path.islink(layout.archive):
        return found
    for name in sorted(os.listdir(layout.archive)):
        folder = os.path.join(layout.archive, name)
        if os.path.islink(folder) or not os.path.isdir(folder):
            continue
        for file in os.listdir(folder):
            serial = _serial_of(file)
            if file.endswith(".crt") and serial and all(c in "0123456789ABCDEFabcdef" for c in serial):
                found.setdefault(int(serial, 16), os.path.join(folder, file))
    return found


def _key_of(serial: int, archive: dict[int, str], issuers: list, where: str):
    """The public key (public_fingerprint) of the archived certificate with ``serial``; None when the archive does
    not hold it (a certificate the collection did not issue)."""
    path = archive.get(serial)
    if not path:
        return None
    try:
        return public_fingerprint(_archived(path, issuers).public_key())
    except PkiError as exc:
        raise PkiError(str(exc), where=where) from None


def compromised_keys(folder: str, read=read_bytes, entries: list[dict] | None = None) -> dict[str, str]:
    """The CA folder's record of compromised keys: the public key of every certificate its registry revokes for
    key_compromise (recorded with the entry when it was added, else found in the archive by serial), each with the
    serial (and name) that says so. A key in it is never certified again (checks.RenewPolicy). ``entries``: the
    registry's, when already read."""
    layout = Layout(folder)
    entries = [e for e in (_entries(folder, read) if entries is None else entries)
               if parse_reason(e.get("reason"), "ca_folder") == COMPROMISED]
    if not entries:
        return {}
    archive = issuers = None
    found = {}
    for entry in entries:
        serial = parse_serial(entry["serial_number"], "ca_folder")
        key = entry.get("public_key_sha256")
        if not key:
            if archive is None:
                archive, issuers = _archive_by_serial(layout), [ca for ca, _retired in _issuers(layout, read)]
            key = _key_of(serial, archive, issuers, "ca_folder")
        if key:
            found.setdefault(key, f"{serial_hex(serial)}" + (f" ({entry['name']})" if entry.get("name") else ""))
    return found


def _ca_serials(layout: Layout, issuers: list, read) -> dict[int, str]:
    """The serials of the CA folder's own CA certificates (roots and intermediates, current, overlapping or retired):
    never revoked through the registry."""
    found = {}
    for path in [layout.root_cert, *layout.overlap_roots()]:
        data = read(path, "pki_dir", missing_ok=True, nofollow=True)
        if data:
            cert = compat.load_certificates(data, f"pki_dir ({path})")[0]
            found.setdefault(cert.serial_number, f"root ({cert.subject.rfc4514_string()})")
    for path in layout.retired_roots():
        cert = compat.load_certificates(read(path, "pki_dir", nofollow=True), f"pki_dir ({path})")[0]
        found.setdefault(cert.serial_number, f"retired root ({cert.subject.rfc4514_string()})")
    for cert, _retired in issuers:
        found.setdefault(cert.serial_number, f"intermediate ({cert.subject.rfc4514_string()})")
    return found


INTERMEDIATE_COMPROMISE = ("key_compromise", "ca_compromise")


def _intermediate_state(layout: Layout, serial: int, read) -> str:
    """Where the CA folder's intermediate with ``serial`` is: current (signing), previous (a rotation started, still
    trusted) or retired (the root's CRL revokes it)."""
    for path, state in ((layout.intermediate_cert, "current"), (layout.previous_file("intermediate.crt"), "previous")):
        data = read(path, "pki_dir", missing_ok=True, nofollow=True)
        if data and compat.load_certificates(data, f"pki_dir ({path})")[0].serial_number == serial:
            return state
    return "retired"


CA_REVOCATION = {
    "root": "a root is not revoked by a CRL it signs itself: replace it with a root rotation (pgtls.ssl.rotate -e "
            "pgtls_rotate_root=start, then switch and retire)",
    "retired root": "that root is retired already: no trust file of the fleet holds it",
    "intermediate": "an intermediate is revoked by rotating it (the revoke playbook with reason key_compromise or "
                    "ca_compromise rotates it at once; else pgtls.ssl.rotate -e pgtls_rotate_intermediate=start, then "
                    "retire: the root's CRL then revokes it)",
}


def _check_issued_here(layout: Layout, params: dict, new: dict, read, compromised: list) -> None:
    """Every serial to revoke is a certificate this CA folder issued: never its own root or intermediate (named, with
    the rotation that replaces it), and each of ``serials`` in its issued/ archive unless allow_unknown_serials (a
    certificate issued before the archive existed) - a typo, or another CA's serial, would otherwise be recorded and
    published without revoking anything."""
    cas = _ca_serials(layout, _issuers(layout, read), read)
    for serial in list(new):
        if serial in cas and cas[serial].startswith("intermediate") and params.get("rotate_compromised_intermediate") \
                and new[serial]["reason"] in INTERMEDIATE_COMPROMISE:
            # Not recorded: the emergency rotation replaces it and the root's CRL revokes it at the retire.
            found = new.pop(serial)
            compromised.append({"serial_number": serial_hex(serial), "reason": found["reason"],
                                "state": _intermediate_state(layout, serial, read)})
            continue
        if serial in cas:
            what = cas[serial]
            raise PkiError(f"serial {serial_hex(serial)} is this CA folder's {what}, not a certificate it issued; "
                           + CA_REVOCATION[what.split(" (")[0]], where="serials")
    if params.get("allow_unknown_serials") or not params["serials"]:
        return
    archive = _archive_by_serial(layout)
    for given in params["serials"]:
        serial = parse_serial(given, "serials")
        if serial not in archive and serial not in cas:
            raise PkiError(f"serial {serial_hex(serial)} ({given}) is not in {layout.archive}: this CA folder issued no "
                           "certificate with it. Check the serial (a certificate of another CA is revoked by that CA), "
                           "or set allow_unknown_serials for a certificate issued before the archive existed",
                           where="serials")


def check_params(params: dict) -> None:
    if params.get("lock_timeout", 0) < 0:
        raise PkiError(f"must not be negative, got {params['lock_timeout']}", where="lock_timeout")
    if not params["pki_dir"] and params["names"]:
        raise PkiError("names need pki_dir (the CA folder whose issued/ archive lists them)", where="names")
    if params.get("revocation_date"):
        parse_revocation_date(params["revocation_date"], "revocation_date")


def by_name_and_serial(params: dict, read=read_bytes) -> tuple[list[dict], dict]:
    """The entries for ``names`` (each archived certificate's serial) and ``serials``, with ``reason`` and
    ``revocation_date`` (now, UTC, when not given), and the archived files per name."""
    date = params["revocation_date"] or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    common = {"reason": params["reason"], "revocation_date": date}
    issuers = _issuers(Layout(params["pki_dir"]), read) if params["names"] else []
    issued = issued_to(params["pki_dir"], params["names"], read, issuers) if params["names"] else {}
    entries = [dict(common, serial_number="0x" + f"{cert.serial_number:X}", name=name)
               for name, certs in issued.items() for _path, cert in certs]
    entries += [dict(common, serial_number=str(serial)) for serial in params["serials"]]
    files = {name: [path for path, _cert in certs] for name, certs in issued.items()}
    return entries, files, by_retired_intermediates(params["pki_dir"], issued, read, issuers) if issued else {}


def ensure_entries(params: dict, check_mode: bool) -> dict:
    """Module entry (pgtls.ssl.revocation_registry)."""
    check_params(params)
    planner.check_ca_folder(params["pki_dir"], "pki_dir")
    path = params["path"] or Layout(params["pki_dir"]).registry
    return planner.run("revocation_registry", lambda plan: plan_entries(plan, params, path), check_mode,
                       lock=os.path.dirname(os.path.abspath(path)), lock_timeout=params["lock_timeout"],
                       ca_folders=[params["pki_dir"]])


def plan_entries(plan: planner.Plan, params: dict, path: str) -> dict:
    extra, issued, retired = by_name_and_serial(params, plan.read)
    new: dict[int, dict] = {}
    for index, entry in enumerate(params["add"] + extra):
        where = f"add[{index}]" if index < len(params["add"]) else ("names" if entry.get("name") else "serials")
        serial = parse_serial(entry["serial_number"], f"{where}.serial_number" if where.startswith("add") else where)
        reason = parse_reason(entry.get("reason"), f"{where}.reason" if where.startswith("add") else "reason")
        if entry.get("revocation_date"):
            parse_revocation_date(entry["revocation_date"], f"{where}.revocation_date")
        if serial in new and new[serial]["reason"] != reason:
            raise PkiError(f"serial {serial:X} is given twice, with reasons {new[serial]['reason']} and {reason}",
                           where=where)
        new.setdefault(serial, dict({k: v for k, v in entry.items() if v not in (None, "")}, reason=reason))
    intermediate: list = []
    if params["pki_dir"] and (params["serials"] or params["add"]):
        # Serials given by hand (a name's come from the archive, which holds only the leaves this folder issued).
        _check_issued_here(Layout(params["pki_dir"]), params, new, plan.read, intermediate)
    entries = load(path, plan.read)
    published_now = [e for e in entries if e.get("pending")] if params.get("publish") else []
    if published_now:
        entries = [{k: v for k, v in e.items() if k != "pending"} for e in entries]
    known = {parse_serial(e["serial_number"], f"path ({path})"): e for e in entries}
    added = []
    for serial, entry in new.items():
        listed = known.get(serial)
        if listed is None:
            added.append(dict(entry, pending=True) if params.get("pending") else entry)
        elif parse_reason(listed.get("reason"), "path") != entry["reason"]:
            raise PkiError(f"serial {serial:X} is already revoked in {path} with reason "
                           f"{listed.get('reason') or 'unspecified'} (dated {listed.get('revocation_date', '-')}); "
                           f"refusing to record it again with reason {entry['reason']}", where="reason")
    compromised = [entry for entry in added if entry["reason"] == COMPROMISED and not entry.get("public_key_sha256")]
    if compromised and params["pki_dir"]:
        # The record of compromised keys: each entry's public key, from the archived certificate of its serial.
        layout = Layout(params["pki_dir"])
        archive, issuers = _archive_by_serial(layout), [ca for ca, _retired in _issuers(layout, plan.read)]
        for entry in compromised:
            key = _key_of(parse_serial(entry["serial_number"], "serials"), archive, issuers, "pki_dir")
            if key:
                entry["public_key_sha256"] = key
    if added or published_now:
        text = yaml.safe_dump(entries + added, default_flow_style=False, sort_keys=True, indent=2)
        plan.write(path, text.encode(), Attrs(0o600), kind="registry", where="pki_dir" if params["pki_dir"] else "path")
    return {"changed": bool(added or published_now), "added": added, "entries": entries + added, "path": path,
            "issued": issued, "issued_by_retired": retired,
            "published": [e["serial_number"] for e in published_now], "intermediate": intermediate,
            "pending": [e["serial_number"] for e in entries + added if e.get("pending")]}
