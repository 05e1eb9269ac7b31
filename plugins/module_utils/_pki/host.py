# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The host half of issuance: private keys (generated here, never sent anywhere), CSRs, and the installation of
signed chains. Used by the module ``pgtls.ssl.host_material`` that the server_cert/client_cert actions call.

A key that replaces or precedes a certificate is written to ``<key_path>.pgtls-new`` first and moved over the
key only when the matching certificate is installed, so a failure in between never leaves a key and a
certificate that do not match.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = Encoding = MISSING

from . import compat
from .constants import DEFAULT_KEY_TYPE
from .errors import PkiError
from .files import (
    Attrs,
    apply_attributes,
    differences,
    ensure_file,
    key_permission_problem,
    parse_mode,
    read_bytes,
    resolve_gid,
    resolve_uid,
    write_atomic,
)
from .issue import make_csr
from .keys import generate_key, key_type_of, load_private_key, private_key_pem, public_fingerprint, same_public_key
from .names import build_name, parse_sans, san_strings

PENDING_SUFFIX = ".pgtls-new"


@dataclass
class Item:
    name: str
    key_path: str
    cert_path: str
    root_path: str | None
    csr_path: str | None
    key_type: str
    key_attrs: Attrs
    file_attrs: Attrs
    create_dir: bool
    common_name: str
    sans: list

    @property
    def pending_path(self) -> str:
        return self.key_path + PENDING_SUFFIX

    @property
    def where(self) -> str:
        return f"items[{self.name}]"


def parse_item(raw: dict, index: int) -> Item:
    name = raw.get("name") or raw.get("common_name") or str(index)
    where = f"items[{index}] ({name})"
    uid = resolve_uid(raw.get("owner"), f"{where}.owner")
    gid = resolve_gid(raw.get("group"), f"{where}.group")
    key_mode = parse_mode(raw.get("key_mode") or "0600", f"{where}.key_mode")
    problem = key_permission_problem(os.geteuid() if uid is None else uid, key_mode, "the private key")
    if problem:
        raise PkiError(problem, where=f"{where}.key_mode")
    item = Item(
        name=name,
        key_path=raw["key_path"],
        cert_path=raw["cert_path"],
        root_path=raw.get("root_path"),
        csr_path=raw.get("csr_path"),
        key_type=raw.get("key_type") or DEFAULT_KEY_TYPE,
        key_attrs=Attrs(key_mode, uid, gid),
        file_attrs=Attrs(parse_mode(raw.get("cert_mode") or "0644", f"{where}.cert_mode"), uid, gid),
        create_dir=bool(raw.get("create_dir")),
        common_name=raw.get("common_name") or name,
        sans=parse_sans(raw.get("subject_alt_names") or [], f"{where}.subject_alt_names"),
    )
    return item


def _ensure_dir(item: Item, check_mode: bool) -> list[str]:
    folder = os.path.dirname(os.path.abspath(item.key_path))
    if os.path.isdir(folder):
        return []
    if not item.create_dir:
        raise PkiError(f"folder {folder} does not exist", where=f"{item.where}.key_path")
    if not os.path.isdir(os.path.dirname(folder)):
        raise PkiError(f"cannot create folder {folder}: its parent does not exist", where=f"{item.where}.key_path")
    if not check_mode:
        try:
            os.mkdir(folder, 0o700)
            apply_attributes(folder, Attrs(0o700, item.key_attrs.uid, item.key_attrs.gid))
        except OSError as exc:
            raise PkiError(f"cannot create folder {folder}: {exc.strerror}", where=f"{item.where}.key_path") from None
    return [f"folder {folder} created"]


def prepare(item: Item, check_mode: bool) -> dict:
    """Ensure the key (and its owner/mode), make a CSR for it, and report the files in place."""
    changes = _ensure_dir(item, check_mode)
    pending_data = read_bytes(item.pending_path, f"{item.where}.key_path", missing_ok=True)
    current_data = read_bytes(item.key_path, f"{item.where}.key_path", missing_ok=True)
    key = None
    state = "present"
    if pending_data is not None:
        key = load_private_key(pending_data, None, f"{item.where}: {item.pending_path}")
        state = "pending"
        if key_type_of(key) != item.key_type:
            key = None
    if key is None and current_data is not None:
        current = load_private_key(current_data, None, f"{item.where}: {item.key_path}")
        if key_type_of(current) == item.key_type:
            key, state = current, "present"
            attr_changes = differences(item.key_path, item.key_attrs)
            if attr_changes:
                changes.append(f"{item.key_path}: {', '.join(attr_changes)}")
                if not check_mode:
                    apply_attributes(item.key_path, item.key_attrs)
        else:
            state = "replaced"
            changes.append(f"key type is {key_type_of(current)}, wanted {item.key_type}: new key")
    if key is None:
        key = generate_key(item.key_type)
        if state != "replaced":
            state = "created"
            changes.append("new private key")
        if not check_mode:
            write_atomic(item.pending_path, private_key_pem(key), item.key_attrs, f"{item.where}.key_path")

    for path in (item.cert_path, item.root_path):
        if path:
            attr_changes = differences(path, item.file_attrs)
            if attr_changes:
                changes.append(f"{path}: {', '.join(attr_changes)}")
                if not check_mode:
                    apply_attributes(path, item.file_attrs)

    csr = make_csr(key, build_name(item.common_name, where=f"{item.where}.common_name"), item.sans)
    csr_pem = csr.public_bytes(Encoding.PEM)
    if item.csr_path and not _csr_current(item, csr):
        changes.append(f"{item.csr_path}: written")
        if not check_mode:
            write_atomic(item.csr_path, csr_pem, item.file_attrs, f"{item.where}.csr_path")
    cert = read_bytes(item.cert_path, f"{item.where}.cert_path", missing_ok=True)
    root = read_bytes(item.root_path, f"{item.where}.root_path", missing_ok=True) if item.root_path else None
    return {
        "name": item.name,
        "key": {"path": item.key_path, "state": state, "type": item.key_type,
                "public_key_fingerprint": public_fingerprint(key)},
        "csr": csr_pem.decode(),
        "certificate": cert.decode(errors="replace") if cert is not None else None,
        "root": root.decode(errors="replace") if root is not None else None,
        "changes": changes,
    }


def _csr_current(item: Item, csr) -> bool:
    """An existing CSR file is kept when it is for the same key, subject and SANs (ECDSA signatures differ on
    every signing, so comparing bytes would rewrite it on every run)."""
    data = read_bytes(item.csr_path, f"{item.where}.csr_path", missing_ok=True)
    if data is None:
        return False
    try:
        existing = compat.load_csr(data, f"{item.where}.csr_path")
    except PkiError:
        return False
    return (same_public_key(existing.public_key(), csr.public_key()) and existing.subject == csr.subject
            and san_strings(_csr_sans(existing)) == san_strings(_csr_sans(csr)))


def _csr_sans(csr) -> list:
    try:
        return list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _checked_install(item: Item, certificate: str | None, root: str | None) -> tuple:
    """Everything install needs, checked before anything is written: the leaf matches the key to be active."""
    if not certificate:
        raise PkiError("stage=install needs a certificate for every item", where=f"{item.where}.certificate")
    chain = compat.load_certificates(certificate.encode(), f"{item.where}.certificate")
    if root:
        compat.load_certificates(root.encode(), f"{item.where}.root")
    pending = read_bytes(item.pending_path, f"{item.where}.key_path", missing_ok=True)
    key_data = pending if pending is not None else read_bytes(item.key_path, f"{item.where}.key_path")
    key = load_private_key(key_data, None, f"{item.where}.key_path")
    if not same_public_key(chain[0].public_key(), key):
        raise PkiError("refusing to install: the certificate does not match the private key",
                       where=f"{item.where}.certificate")
    return pending is not None


def _install(item: Item, certificate: str, root: str | None, has_pending: bool, check_mode: bool) -> list[str]:
    changes = [f"{item.cert_path}: {c}" for c in
               ensure_file(item.cert_path, certificate.encode(), item.file_attrs, f"{item.where}.cert_path",
                           check_mode)]
    if item.root_path and root:
        changes += [f"{item.root_path}: {c}" for c in
                    ensure_file(item.root_path, root.encode(), item.file_attrs, f"{item.where}.root_path", check_mode)]
    if has_pending:
        changes.append(f"{item.key_path}: new key activated")
        if not check_mode:
            try:
                os.rename(item.pending_path, item.key_path)
            except OSError as exc:
                raise PkiError(f"cannot activate the new key: {exc.strerror}", where=f"{item.where}.key_path") from None
    return changes


def host_material(params: dict, check_mode: bool) -> dict:
    """Module entry: parse and check every item first, then act, so bad input changes no file."""
    raws = params["items"]
    items = [parse_item(raw, index) for index, raw in enumerate(raws)]
    if params["stage"] == "prepare":
        results = [prepare(item, check_mode) for item in items]
        return {"changed": any(r["changes"] for r in results), "items": results}
    checked = [_checked_install(item, raw.get("certificate"), raw.get("root")) for item, raw in zip(items, raws)]
    results = []
    for item, raw, has_pending in zip(items, raws, checked):
        changes = _install(item, raw["certificate"], raw.get("root"), has_pending, check_mode)
        results.append({"name": item.name, "changes": changes})
    return {"changed": any(r["changes"] for r in results), "items": results}
