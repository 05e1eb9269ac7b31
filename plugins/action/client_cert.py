# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.client_cert: many client certificates in one task, keys where the client lives. With
ca_folder, a name its revocation registry revokes is left out (returned and warned about), never certified again."""

from __future__ import annotations

import datetime as dt
import os
import re

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import revoked_names
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.checks import Wanted
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.constants import (
    LIBPQ_CERT_FILE,
    LIBPQ_CRL_FILE,
    LIBPQ_FOLDER,
    LIBPQ_KEY_FILE,
    LIBPQ_ROOT_FILE,
    folder_name,
)
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import chain_crl_problems
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.files import read_bytes
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import fingerprint, serial_hex
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.layout import Layout
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name, check_role_name
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import CLIENT
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CLIENT_CERT
from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import (
    IssuingAction,
    Request,
    check_controller_paths,
    diff_for,
    issuer_inputs,
    item_paths,
    pem,
)

# The other formats sit beside libpq's files (constants.LIBPQ_*).
PKCS8_FILE, PKCS12_FILE = "postgresql.pk8", "postgresql.p12"
# A client's CRLs with fewer days left than this are installed with a warning: libpq refuses every server once one
# has expired (a site run signs new ones when due and gives them to these clients: crls_first.yml).
CRL_WARN_DAYS = 7


def client_crls(params: dict, issuer) -> tuple[str, dt.datetime]:
    """The CRLs a client checks the server's chain with (libpq's sslcrl sets CRL_CHECK_ALL: every CA of the chain
    needs a current CRL, else every server is refused): the CA folder's crl.pem, checked first. Returns its text and
    the earliest nextUpdate of the CRLs the chain needs."""
    if not params["ca_folder"]:
        raise PkiError("crl needs ca_folder: the CRLs come from its crl.pem", where="crl")
    path = Layout(params["ca_folder"]).crl_bundle
    where = f"ca_folder ({path})"
    data = read_bytes(path, where, missing_ok=True, nofollow=True)
    if data is None:
        raise PkiError(f"{where}: no CRLs, so libpq would refuse every server: run the site playbook "
                       "(pgtls.ssl.server) with CRLs on (pgtls_crl_enabled), or set crl to false", where="crl")
    crls = compat.load_crls(data, where)
    cas = [*issuer.intermediates, *issuer.trusted]
    problems = chain_crl_problems(cas, crls)
    if problems:
        raise PkiError(f"{where}: {'; '.join(problems)}; libpq would refuse every server with these CRLs: run the "
                       "site playbook (pgtls.ssl.server) to sign new ones, then this again", where="crl")
    subjects = {ca.subject for ca in cas}
    due = min(compat.crl_next_update(c) or compat.now() for c in crls if c.issuer in subjects)
    return data.decode(), due


def check_bundles_folder(dest: str, ca_folder: str) -> None:
    """Bundles made on the controller go outside the CA folder or in its clients/ folder (Layout: the one part of the
    folder the host half writes), never in the folder itself or another of its parts."""
    folder, real = os.path.realpath(ca_folder), os.path.realpath(dest)
    if real != folder and not real.startswith(folder.rstrip(os.sep) + os.sep):
        return
    relative = os.path.relpath(real, folder)
    if relative != "." and "host" in Layout.owners(relative):
        return
    what = "the CA folder" if relative == "." else f"{Layout.describe(relative)} of the CA folder"
    raise PkiError(f"{dest} is {what} {ca_folder} (ca_folder): bundles go in its "
                   f"{os.path.basename(Layout(ca_folder).clients)}/ folder or outside it", where="dest")


class ActionModule(IssuingAction):
    SPEC = CLIENT_CERT

    def option_names(self, msg):
        # "items[3] (app).key_path: ..." is about clients[3] (app)'s key file; its base_dir is dest.
        msg = re.sub(r"items\[\d+\] \([^)]*\)\.base_dir", "dest", msg)
        return re.sub(r"items\[(\d+)\] \(", r"clients[\1] (", msg)

    def on_controller(self, params):
        return params["key_location"] == "controller"

    def requests(self, params, issuer):
        if issuer.root is None:
            raise PkiError("root.crt needs the root certificate: give it in issuer_chain_path or issuer_chain_content"
                           " (or use the root as issuer)", where="issuer_chain_path")
        root_pem = pem(issuer.trusted)
        if "pkcs12" in params["formats"] and not params["pkcs12_passphrase"]:
            raise PkiError("formats lists pkcs12, which needs a passphrase (Java and .NET refuse a PKCS#12 file "
                           "without one)", where="pkcs12_passphrase")
        if params["ca_folder"] and params["dest"] and self.on_controller(params):
            check_bundles_folder(params["dest"], params["ca_folder"])
        revoked = set(revoked_names(params["ca_folder"])) if params["ca_folder"] else set()
        if params["crl_only"] and not params["crl"]:
            raise PkiError("crl_only needs crl (the CRL files are all it writes)", where="crl_only")
        crls, self.crl_due = client_crls(params, issuer) if params["crl"] else (None, None)
        self.skipped = []
        requests, seen = [], set()
        for index, client in enumerate(params["clients"]):
            where = f"clients[{index}]"
            name = client["name"]
            if name in revoked:
                if name not in self.skipped:
                    self.skipped.append(name)
                continue
            check_role_name(name, f"{where}.name")
            owner = client["owner"] or params["owner"]
            if client["dir"]:
                folder, base = client["dir"], None
            elif params["dest"]:
                folder, base = os.path.join(params["dest"], folder_name(name)), params["dest"]
            elif owner and not self.on_controller(params):
                # Where libpq looks: the owner's ~/.postgresql, expanded on the host (its passwd entry).
                folder, base = f"~{owner}/{LIBPQ_FOLDER}", None
            elif self.on_controller(params):
                raise PkiError("no folder: set clients[].dir or dest", where=f"{where}.dir")
            else:
                raise PkiError("no folder: set clients[].dir, dest or owner (then ~owner/.postgresql)",
                               where=f"{where}.dir")
            if os.path.normpath(folder) in seen:
                raise PkiError(f"folder {folder} is used twice", where=f"{where}.dir")
            seen.add(os.path.normpath(folder))
            item = {
                "name": name,
                "key_path": os.path.join(folder, LIBPQ_KEY_FILE),
                "cert_path": os.path.join(folder, LIBPQ_CERT_FILE),
                "root_path": os.path.join(folder, LIBPQ_ROOT_FILE),
                "crl_path": os.path.join(folder, LIBPQ_CRL_FILE) if crls else None,
                "key_type": params["key_type"],
                "common_name": name,
                "owner": owner,
                "group": client["group"] or params["group"],
                # No group given: the owner's primary group, as the host's passwd has it.
                "owner_group": bool(owner) and not self.on_controller(params),
                "key_mode": "0600",
                "cert_mode": "0644",
                "create_dir": params["create_dirs"],
                "base_dir": base,
                "pkcs8_path": os.path.join(folder, PKCS8_FILE) if "pkcs8_der" in params["formats"] else None,
                "pkcs12_path": os.path.join(folder, PKCS12_FILE) if "pkcs12" in params["formats"] else None,
                "pkcs12_passphrase": params["pkcs12_passphrase"] if "pkcs12" in params["formats"] else None,
            }
            wanted = Wanted(build_name(name, params["subject"], where="subject", cn_where=f"{where}.name"), (), CLIENT)
            policy = self.renew.with_rekey_before(client["rekey_before"], f"{where}.rekey_before")
            requests.append(Request(item=item, wanted=wanted, valid_days=params["valid_days"], root_pem=root_pem,
                                    crl_pem=crls, policy=policy))
        return requests

    def process(self, params, issuer, requests, renew):
        if not params["crl_only"]:
            super().process(params, issuer, requests, renew)
            return
        # Only root.crl, where the client's certificate is in place: nothing issued, no key made or read (the
        # playbooks give the clients a new CA's CRL before any server presents a certificate of that CA).
        if not requests:
            return
        check_controller_paths(None, params.get("ca_folder"), item_paths(requests, self.option_names),
                               issuer_inputs(params))
        items = [dict(r.item, root=r.root_pem, crl=r.crl_pem) for r in requests]
        for request, answer in zip(requests, self.host(params, "crl", items)):
            request.reasons.extend(answer["changes"])

    def prepared_item(self, request, answer):
        # A folder in the owner's home (~owner/...): its paths as the host expanded them, from here on.
        item, home = request.item, answer.get("home")
        prefix = f"~{item['owner']}/"
        if home and item["key_path"].startswith(prefix):
            for option in ("key_path", "cert_path", "root_path", "crl_path", "pkcs8_path", "pkcs12_path"):
                if item.get(option):
                    item[option] = os.path.join(home, item[option][len(prefix):])
        request.home, request.group = home, answer.get("group")

    def summarize(self, params, requests):
        if params["crl_only"]:
            clients = [{"name": r.item["name"], "dir": os.path.dirname(r.item["cert_path"]), "crl": r.item["crl_path"],
                        "owner": r.item["owner"], "changed": bool(r.reasons), "reasons": r.reasons} for r in requests]
            return {"changed": any(c["changed"] for c in clients), "clients": clients, "issued": 0,
                    "revoked_names_skipped": self.skipped, "crl_next_update": self.crl_due.isoformat()}
        clients = []
        for request in requests:
            leaf = request.chain[0]
            clients.append({
                "name": request.item["name"],
                "dir": os.path.dirname(request.item["cert_path"]),
                "crl": request.item["crl_path"],
                "owner": request.item["owner"],
                "group": request.group,
                "home": request.home,
                "changed": bool(request.reasons),
                "issued": request.issued,
                "reasons": request.reasons,
                "serial": serial_hex(leaf.serial_number),
                "not_after": compat.not_after(leaf).isoformat(),
                "fingerprint_sha256": fingerprint(leaf),
            })
        result = {
            "changed": any(c["changed"] for c in clients),
            "clients": clients,
            "issued": sum(1 for c in clients if c["issued"]),
            "revoked_names_skipped": self.skipped,
            "crl_next_update": self.crl_due.isoformat() if self.crl_due else None,
        }
        result["warnings"] = []
        if self.crl_due and self.crl_due - compat.now() < dt.timedelta(days=CRL_WARN_DAYS):
            result["warnings"].append(
                f"the CRLs installed for the clients expire on {self.crl_due.isoformat()} (nextUpdate), after which "
                "libpq refuses every server: run the site playbook (it signs new ones when due and installs them on "
                "these clients)")
        if self.skipped:
            where = "the controller" if self.on_controller(params) else "the host"
            result["warnings"] += [
                f"not certified again, revoked in {Layout(params['ca_folder']).registry}: {', '.join(self.skipped)}. "
                "To give such a role a new certificate, remove its entries from the registry and its old key "
                f"({LIBPQ_KEY_FILE}) from {where}, so a new key is made."]
        if self._task.diff:
            result["diff"] = diff_for(requests)
        return result
