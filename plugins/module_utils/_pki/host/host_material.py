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
import pwd
from dataclasses import dataclass, field

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from ..core.deps import MISSING

    x509 = Encoding = MISSING

from ..core import compat, planner
from ..core.constants import DEFAULT_KEY_TYPE
from ..core.crls import chain_crl_problems
from ..core.errors import PkiError
from ..core.files import (
    Attrs,
    check_distinct,
    key_permission_problem,
    parse_mode,
    read_bytes,
    resolve_gid,
    resolve_uid,
)
from ..core.issue import make_csr
from ..core.keys import generate_key, key_type_of, load_private_key, private_key_pem, public_fingerprint, same_public_key
from ..core.names import build_name, parse_sans, san_strings
from ..core.profiles import extension
from . import formats

PENDING_SUFFIX = ".pgtls-new"
# Files items may share (one root, one CRL file for all): the first item's claim or write stands for all.
SHARED = ("root_path", "crl_path")


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
    create_parents: bool
    common_name: str
    sans: list
    where: str = "items[0]"
    subject: object = None
    pkcs8_path: str | None = None
    pkcs12_path: str | None = None
    pkcs12_passphrase: str | None = field(default=None, repr=False)
    base_dir: str | None = None
    home: str | None = None
    new_key: bool = False
    # The CRLs a client checks the server's chain with (libpq's sslcrl, ~/.postgresql/root.crl), written like root.
    crl_path: str | None = None

    @property
    def pending_path(self) -> str:
        return self.key_path + PENDING_SUFFIX

    @property
    def key_folder(self) -> str:
        return os.path.dirname(os.path.abspath(self.key_path))

    @property
    def in_dest(self) -> bool:
        """The key's folder sits directly under ``base_dir`` (a client's folder in client_cert's dest)."""
        return bool(self.base_dir) and os.path.normpath(os.path.abspath(self.base_dir)) == os.path.dirname(self.key_folder)


def parse_item(raw: dict, index: int) -> Item:
    name = raw.get("name") or raw.get("common_name") or str(index)
    where = f"items[{index}] ({name})"
    uid = resolve_uid(raw.get("owner"), f"{where}.owner")
    gid = resolve_gid(raw.get("group"), f"{where}.group")
    # The owner's passwd entry: its home (the client's ~/.postgresql and ~/.pg_service.conf) and, with owner_group
    # and no group, its primary group.
    account = _account(raw.get("owner"))
    if gid is None and raw.get("owner_group") and account is not None:
        gid = account.pw_gid
    for option in ("key_path", "cert_path", "root_path", "crl_path", "csr_path", "pkcs8_path", "pkcs12_path",
                   "base_dir"):
        # A ~user path the module's arguments could not expand: that user has no passwd entry here.
        if str(raw.get(option) or "").startswith("~"):
            raise PkiError(f"{raw[option]}: no such user on this host, so no home folder", where=f"{where}.{option}")
    key_mode = parse_mode(raw.get("key_mode") or "0600", f"{where}.key_mode")
    problem = key_permission_problem(os.geteuid() if uid is None else uid, key_mode, "the private key")
    if problem:
        raise PkiError(problem, where=f"{where}.key_mode")
    check_distinct({f"{where}.key_path": raw["key_path"], f"{where}.cert_path": raw["cert_path"],
                    f"{where}.root_path": raw.get("root_path"), f"{where}.crl_path": raw.get("crl_path"),
                    f"{where}.csr_path": raw.get("csr_path"),
                    f"{where}.pkcs8_path": raw.get("pkcs8_path"), f"{where}.pkcs12_path": raw.get("pkcs12_path"),
                    f"{where}.key_path (pending key)": raw["key_path"] + PENDING_SUFFIX})
    folder = os.path.dirname(os.path.abspath(raw["key_path"]))
    if os.path.islink(folder):
        raise PkiError(f"{folder} is a symbolic link (to {os.readlink(folder)}): the key is made in a real folder, "
                       "never through a link", where=f"{where}.key_path")
    if raw.get("base_dir"):
        _check_inside(raw, where)
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
        create_parents=bool(raw.get("create_dir") and raw.get("create_parents")),
        common_name=raw.get("common_name") or name,
        sans=parse_sans(raw.get("subject_alt_names") or [], f"{where}.subject_alt_names"),
        where=where,
        subject=build_name(raw.get("common_name") or name, cn_where=f"{where}.common_name"),
        pkcs8_path=raw.get("pkcs8_path"),
        pkcs12_path=raw.get("pkcs12_path"),
        pkcs12_passphrase=raw.get("pkcs12_passphrase"),
        base_dir=raw.get("base_dir"),
        home=account.pw_dir if account is not None else None,
        new_key=bool(raw.get("new_key")),
        crl_path=raw.get("crl_path"),
    )
    formats.check_options(item)
    return item


def _account(owner: str | None):
    """The passwd entry of ``owner`` (a name, or a uid), as ~owner finds it; None without one."""
    try:
        if owner in (None, ""):
            return None
        return pwd.getpwuid(int(owner)) if str(owner).isdigit() else pwd.getpwnam(str(owner))
    except KeyError:
        return None


def _check_inside(raw: dict, where: str) -> None:
    """Every file of a client bundle stays inside ``base_dir`` (O(dest)), which is a real folder, symbolic links
    resolved."""
    if os.path.islink(raw["base_dir"]):
        raise PkiError(f"{raw['base_dir']} is a symbolic link (to {os.readlink(raw['base_dir'])}): the bundles go in "
                       "a real folder", where=f"{where}.base_dir")
    base = os.path.realpath(raw["base_dir"])
    for option in ("key_path", "cert_path", "root_path", "crl_path", "csr_path", "pkcs8_path", "pkcs12_path"):
        path = raw.get(option)
        if path and not os.path.realpath(path).startswith(base.rstrip(os.sep) + os.sep):
            raise PkiError(f"{path} resolves to {os.path.realpath(path)}, outside {raw['base_dir']}",
                           where=f"{where}.{option}")


def check_plan(items: list[Item], stage: str, plan: planner.Plan | None = None) -> None:
    """Before the first write of a run: no two items share a file, and the key's folder exists (or may be made; in
    ``plan``: made by an earlier step of it too)."""
    isdir = plan.isdir if plan is not None else os.path.isdir
    owners: dict[str, str] = {}
    for item in items:
        for option, path in (("key_path", item.key_path), ("cert_path", item.cert_path),
                             ("root_path", item.root_path), ("crl_path", item.crl_path), ("csr_path", item.csr_path),
                             ("pkcs8_path", item.pkcs8_path), ("pkcs12_path", item.pkcs12_path)):
            if not path:
                continue
            real = os.path.realpath(path)
            if real in owners and not (option in SHARED and owners[real].endswith(f".{option}")):
                raise PkiError(f"{path} is also used by {owners[real]}", where=f"{item.where}.{option}")
            owners.setdefault(real, f"{item.where}.{option}")
        folder = item.key_folder
        if stage == "crl":
            continue  # a client not set up yet is left for its first issue
        if not isdir(folder):
            if stage == "install" or not item.create_dir:
                raise PkiError(f"folder {folder} does not exist", where=f"{item.where}.key_path")
            # A client's folder under the bundles' folder (client_cert's dest): that folder is made too when its own
            # parent exists (the patroni role's tls/clients); a dest further from anything existing is refused as a
            # typo. A key folder of its own: its parent must exist, unless create_parents (server_cert's create_dir:
            # etcd's /etc/etcd/tls on Debian, whose etcd-server makes no /etc/etcd).
            dest = os.path.dirname(folder)
            if not item.in_dest and not item.create_parents and not isdir(dest):
                raise PkiError(f"cannot create folder {folder}: its parent does not exist", where=f"{item.where}.key_path")
            if item.in_dest and not isdir(dest):
                parent = os.path.dirname(dest)
                if os.path.lexists(dest):
                    raise PkiError(f"{dest} is not a folder", where=f"{item.where}.base_dir")
                if not isdir(parent):
                    raise PkiError(f"cannot create folder {dest}: its parent does not exist", where=f"{item.where}.base_dir")
                if os.path.realpath(parent) != os.path.abspath(parent):
                    raise PkiError(f"cannot create folder {dest}: {parent} is reached through a symbolic link (to "
                                   f"{os.path.realpath(parent)})", where=f"{item.where}.base_dir")


def _ensure_dir(plan: planner.Plan, item: Item) -> list[str]:
    folder = item.key_folder
    if os.path.isdir(folder):
        return []
    parent = os.path.dirname(folder)
    made = []
    if (item.create_parents or item.in_dest) and not plan.isdir(parent):
        # Folders above the key's (mkdir -p; check_plan let only dest through, whose parent exists): the process's
        # owner, 0755, as install -d makes them.
        plan.folders(parent, Attrs(0o755), where=f"{item.where}.key_path")
        made = [f"folder {parent} created"]
    plan.mkdir(folder, Attrs(0o700, item.key_attrs.uid, item.key_attrs.gid), where=f"{item.where}.key_path")
    return made + [f"folder {folder} created"]


def prepare(plan: planner.Plan, item: Item) -> dict:
    """Ensure the key (and its owner/mode), make a CSR for it, and report the files in place (declared to ``plan``)."""
    changes = _ensure_dir(plan, item)
    key_where = f"{item.where}.key_path"
    pending_data = plan.read(item.pending_path, key_where, missing_ok=True, nofollow=True)
    current_data = plan.read(item.key_path, key_where, missing_ok=True, nofollow=True)
    if pending_data is not None and _installed_for(item, pending_data):
        # A run stopped between installing the certificate and activating its key: finish the activation.
        changes.append(f"{item.key_path}: pending key activated (an earlier run stopped before it)")
        plan.move(item.pending_path, item.key_path, kind="key", where=key_where, replace=True)
        pending_data, current_data = None, pending_data
    key = None
    state = "present"
    if pending_data is not None:
        key = load_private_key(pending_data, None, f"{key_where} ({item.pending_path})")
        state = "pending"
        if key_type_of(key) != item.key_type:
            key = None
        else:
            plan.keep(item.pending_path, item.key_attrs, kind="key", where=f"{key_where} (pending key)")
    if key is None and current_data is not None:
        current = load_private_key(current_data, None, f"{key_where} ({item.key_path})")
        if item.new_key and key_type_of(current) == item.key_type:
            # Asked for (the controller's key policy): the current key stays until its new certificate is installed.
            state = "replaced"
            changes.append("new private key, replacing the current one when its certificate is installed")
        elif key_type_of(current) == item.key_type:
            key, state = current, "present"
            if not plan.claimed(item.key_path):
                attr_changes = plan.keep(item.key_path, item.key_attrs, kind="key", where=key_where)
                if attr_changes:
                    changes.append(f"{item.key_path}: {', '.join(attr_changes)}")
        else:
            state = "replaced"
            changes.append(f"key type is {key_type_of(current)}, wanted {item.key_type}: new key")
    if key is None:
        key = generate_key(item.key_type)
        if state != "replaced":
            state = "created"
            changes.append("new private key")
        plan.write(item.pending_path, private_key_pem(key), item.key_attrs, kind="key",
                   where=f"{key_where} (pending key)")

    for option, path, kind in (("cert_path", item.cert_path, "certificate"), ("root_path", item.root_path, "certificate"),
                               ("crl_path", item.crl_path, "crl")):
        if path and plan.exists(path):
            attr_changes = plan.keep(path, item.file_attrs, kind=kind, where=f"{item.where}.{option}")
            if attr_changes:
                changes.append(f"{path}: {', '.join(attr_changes)}")

    csr = make_csr(key, item.subject, item.sans)
    csr_pem = csr.public_bytes(Encoding.PEM)
    if item.csr_path:
        if _csr_current(item, csr):
            plan.keep(item.csr_path, None, kind="csr", where=f"{item.where}.csr_path")
        else:
            changes.append(f"{item.csr_path}: written")
            plan.write(item.csr_path, csr_pem, item.file_attrs, kind="csr", where=f"{item.where}.csr_path")
    cert = plan.read(item.cert_path, f"{item.where}.cert_path", missing_ok=True)
    root = plan.read(item.root_path, f"{item.where}.root_path", missing_ok=True) if item.root_path else None
    crl = plan.read(item.crl_path, f"{item.where}.crl_path", missing_ok=True) if item.crl_path else None
    if state == "present" and cert and (item.pkcs8_path or item.pkcs12_path):
        chain = _chain_for(item, cert, key)
        if chain:
            changes += formats.ensure_formats(plan, item, key, chain)
    return {
        "name": item.name,
        "key": {"path": item.key_path, "state": state, "type": item.key_type,
                "public_key_fingerprint": public_fingerprint(key)},
        "csr": csr_pem.decode(),
        "certificate": cert.decode(errors="replace") if cert is not None else None,
        "root": root.decode(errors="replace") if root is not None else None,
        "crl": crl.decode(errors="replace") if crl is not None else None,
        "changes": changes,
        # Where the files went: the owner's home and the group the files get (a client's ~/.pg_service.conf).
        "home": item.home,
        "group": item.key_attrs.gid,
    }


def _chain_for(item: Item, cert: bytes, key) -> list:
    """The installed chain when its leaf belongs to ``key`` (else an install will follow: nothing to derive now)."""
    try:
        chain = compat.load_certificates(cert, f"{item.where}.cert_path")
    except PkiError:
        return []
    return chain if same_public_key(chain[0].public_key(), key) else []


def tidy(items: list[Item]) -> list[str]:
    """Remove temporaries a killed run left in the items' folders (never a pending key: it is reused)."""
    return planner.tidy_temporaries(os.path.dirname(os.path.abspath(p)) for item in items
                                    for p in (item.key_path, item.cert_path, item.root_path, item.crl_path,
                                              item.csr_path) if p)


def _installed_for(item: Item, pending_data: bytes) -> bool:
    """Does the installed certificate already belong to the pending key?"""
    cert_data = read_bytes(item.cert_path, f"{item.where}.cert_path", missing_ok=True)
    if not cert_data:
        return False
    try:
        leaf = compat.load_certificates(cert_data, f"{item.where}.cert_path")[0]
        pending = load_private_key(pending_data, None, f"{item.where}.key_path ({item.pending_path})")
    except PkiError:
        return False
    return same_public_key(leaf.public_key(), pending)


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


def _checked_install(item: Item, certificate: str | None, root: str | None, crl: str | None = None) -> tuple:
    """Everything install needs, checked before anything is written: the leaf matches the key to be active, the
    CRLs are CRLs (a file of them, PEM)."""
    if not certificate:
        raise PkiError("stage=install needs a certificate for every item", where=f"{item.where}.certificate")
    chain = compat.load_certificates(certificate.encode(), f"{item.where}.certificate")
    if root:
        _check_root(item, chain, root)
    pending = read_bytes(item.pending_path, f"{item.where}.key_path", missing_ok=True, nofollow=True)
    key_data = pending if pending is not None else read_bytes(item.key_path, f"{item.where}.key_path", nofollow=True)
    key = load_private_key(key_data, None, f"{item.where}.key_path ({item.key_path})")
    if not same_public_key(chain[0].public_key(), key):
        raise PkiError("refusing to install: the certificate does not match the private key",
                       where=f"{item.where}.certificate")
    if crl and not item.crl_path:
        raise PkiError("crl needs crl_path (where the CRLs are written)", where=f"{item.where}.crl")
    if crl:
        _check_crls(item, chain, root, crl)
    return pending is not None, key, chain, crl


def _check_root(item: Item, chain: list, root: str) -> None:
    """The root given for an item is its chain's own: a chain of a leaf alone cannot be followed up to the root here;
    one that holds its intermediates must end at a certificate this root issued (or at the root itself)."""
    from ..core.issue import signed_by

    anchor = compat.load_certificates(root.encode(), f"{item.where}.root")[0]
    top = chain[-1]
    constraints = extension(top, x509.BasicConstraints)
    leaf_only = not (constraints and constraints.ca) and top.issuer != anchor.subject
    if not leaf_only and not signed_by(top, anchor) and not (top.subject == anchor.subject and signed_by(anchor, anchor)):
        raise PkiError(f"{anchor.subject.rfc4514_string()} did not issue {chain[-1].subject.rfc4514_string()}, the "
                       "top of the certificate's chain: the root installed next to it must be its own",
                       where=f"{item.where}.root")


def _check_crls(item: Item, chain: list, root: str | None, crl: str) -> None:
    """CRLs a client can check a server with: libpq's sslcrl checks every CA of the chain (CRL_CHECK_ALL), so each CA
    of the certificate's chain and each root beside it needs a current CRL it signed, else every server is refused."""
    crls = compat.load_crls(crl.encode(), f"{item.where}.crl")
    anchors = compat.load_certificates(root.encode(), f"{item.where}.root") if root else []
    problems = chain_crl_problems([*chain[1:], *anchors], crls)
    if problems:
        raise PkiError(f"{'; '.join(problems)}: with these CRLs libpq would refuse every server", where=f"{item.where}.crl")


def install(plan: planner.Plan, item: Item, raw: dict, checked: tuple) -> list[str]:
    """Declare the certificate, the root and the CRLs, the pending key taking its place, and the other formats."""
    has_pending, key, chain, crls = checked
    changes = [f"{item.cert_path}: {c}" for c in
               plan.write(item.cert_path, raw["certificate"].encode(), item.file_attrs, kind="certificate",
                          where=f"{item.where}.cert_path")]
    # The key's rename right after the certificate's, microseconds apart (the plan stages every file first): a
    # client (libpq reads the certificate, then the key) pairs two generations only if its reads straddle them.
    if has_pending:
        changes.append(f"{item.key_path}: new key activated")
        plan.move(item.pending_path, item.key_path, kind="key", where=f"{item.where}.key_path", replace=True)
    for option, path, data, kind in (("root_path", item.root_path, raw.get("root"), "certificate"),
                                     ("crl_path", item.crl_path, crls, "crl")):
        if path and data and not (_shared(plan, path, option) and
                                  plan._claim_of(path).where != f"{item.where}.{option}"):
            changes += [f"{path}: {c}" for c in
                        plan.write(path, data.encode(), item.file_attrs, kind=kind, where=f"{item.where}.{option}")]
    return changes + formats.ensure_formats(plan, item, key, chain)


def _plan_crl_stage(plan: planner.Plan, items: list[Item], raws: list[dict]) -> dict:
    """stage=crl: only the CRL files, of the items whose certificate is in place, every one checked before the first
    write (no other file of an item is claimed, read or written)."""
    present = []
    for item, raw in zip(items, raws):
        if not item.crl_path or not raw.get("crl"):
            raise PkiError("stage=crl needs crl_path and crl for every item", where=f"{item.where}.crl")
        if plan.isdir(os.path.dirname(os.path.abspath(item.cert_path))):
            claim(plan, item)  # every file of the item, as the other stages: a link, a file of another kind, ...
            if plan.exists(item.cert_path):
                present.append(item.name)
    crls = [_checked_crl(plan, item, raw) if item.name in present else None for item, raw in zip(items, raws)]
    results = [{"name": item.name, "changes": refresh_crl(plan, item, crl) if crl else []}
               for item, crl in zip(items, crls)]
    return {"changed": any(r["changes"] for r in results), "item_results": results}


def _checked_crl(plan: planner.Plan, item: Item, raw: dict) -> str:
    """stage=crl, before anything is written: the installed certificate is one, and the CRLs hold a current CRL of
    each CA of its chain and of each root of ``root`` (as install checks them)."""
    chain = compat.load_certificates(plan.read(item.cert_path, f"{item.where}.cert_path"), f"{item.where}.cert_path")
    if raw.get("root"):
        _check_root(item, chain, raw["root"])
    _check_crls(item, chain, raw.get("root"), raw["crl"])
    return raw["crl"]


def refresh_crl(plan: planner.Plan, item: Item, crl: str) -> list[str]:
    """stage=crl: only the CRL file (items may share it)."""
    if _shared(plan, item.crl_path, "crl_path") and plan._claim_of(item.crl_path).where != f"{item.where}.crl_path":
        return []
    written = plan.write(item.crl_path, crl.encode(), item.file_attrs, kind="crl", where=f"{item.where}.crl_path")
    return [f"{item.crl_path}: {c}" for c in written]


def claim(plan: planner.Plan, item: Item) -> None:
    """Every file of an item, claimed before anything is read: a link, a folder, a file of another kind, or a CA
    folder's file at any of them stops the run here, naming the option (prepare claims what the install writes)."""
    files = (("key_path", item.key_path, "key"), ("key_path (pending key)", item.pending_path, "key"),
             ("cert_path", item.cert_path, "certificate"), ("root_path", item.root_path, "certificate"),
             ("crl_path", item.crl_path, "crl"), ("csr_path", item.csr_path, "csr"), ("pkcs8_path", item.pkcs8_path, "pkcs8"),
             ("pkcs12_path", item.pkcs12_path, "pkcs12"))
    for option, path, kind in files:
        if path and not (option in SHARED and _shared(plan, path, option)):
            plan.claim(path, kind=kind, where=f"{item.where}.{option}")


def _shared(plan: planner.Plan, path: str, option: str) -> bool:
    """Items may share one root file, or one CRL file (the same for all): the first one's claim or write stands for
    all."""
    step = plan._claim_of(path)
    return step is not None and step.where.endswith(f".{option}")


def plan_items(plan: planner.Plan, items: list[Item], raws: list[dict], stage: str) -> dict:
    """Declare every item's files to ``plan`` (prepare: key, CSR, owner and mode; install: certificate, root, key
    activation, other formats); return the module's result."""
    check_plan(items, stage, plan)
    if stage == "crl":
        return _plan_crl_stage(plan, items, raws)
    for item in items:
        claim(plan, item)
    if stage == "prepare":
        results = [prepare(plan, item) for item in items]
        return {"changed": any(r["changes"] for r in results), "item_results": results}
    checked = [_checked_install(item, raw.get("certificate"), raw.get("root"), raw.get("crl"))
               for item, raw in zip(items, raws)]
    results = []
    for item, raw, checks in zip(items, raws, checked):
        results.append({"name": item.name, "changes": install(plan, item, raw, checks)})
    return {"changed": any(r["changes"] for r in results), "item_results": results}


def host_material(params: dict, check_mode: bool) -> dict:
    """Module entry: parse and check every item first, then one plan for all of them, so bad input changes no file."""
    raws = params["items"]
    items = [parse_item(raw, index) for index, raw in enumerate(raws)]
    check_plan(items, params["stage"])
    tidied = [] if check_mode else tidy(items)
    result = planner.run("host", lambda plan: plan_items(plan, items, raws, params["stage"]), check_mode)
    if tidied and params["stage"] == "prepare":
        result["item_results"][0]["changes"][:0] = tidied
        result["changed"] = True
    return result
