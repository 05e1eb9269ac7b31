# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.client_cert: many client certificates in one task, keys where the client lives."""

from __future__ import annotations

import os
import re

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.checks import Wanted
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.constants import folder_name
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import fingerprint, serial_hex
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import CLIENT
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CLIENT_CERT
from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import (
    IssuingAction,
    Request,
    diff_for,
    pem,
)

# The file names libpq looks for in ~/.postgresql/; the other formats sit beside them.
CERT_FILE, KEY_FILE, ROOT_FILE = "postgresql.crt", "postgresql.key", "root.crt"
PKCS8_FILE, PKCS12_FILE = "postgresql.pk8", "postgresql.p12"


def check_role_name(name: str, where: str) -> None:
    """A client name is a PostgreSQL role name and the certificate's CN: any string PostgreSQL allows."""
    if not name:
        raise PkiError("a role name is needed", where=where)
    if "\x00" in name:
        raise PkiError("a role name cannot contain a NUL character", where=where)
    if len(name.encode()) > 63:
        raise PkiError(f"{name[:20]}... is {len(name.encode())} bytes long; PostgreSQL role names are at most 63 "
                       "bytes (longer ones are cut, so the certificate's CN would never match)", where=where)


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
        root_pem = pem([issuer.root])
        if "pkcs12" in params["formats"] and not params["pkcs12_passphrase"]:
            raise PkiError("formats lists pkcs12, which needs a passphrase (Java and .NET refuse a PKCS#12 file "
                           "without one)", where="pkcs12_passphrase")
        requests, seen = [], set()
        for index, client in enumerate(params["clients"]):
            where = f"clients[{index}]"
            name = client["name"]
            check_role_name(name, f"{where}.name")
            if client["dir"]:
                folder, base = client["dir"], None
            elif params["dest"]:
                folder, base = os.path.join(params["dest"], folder_name(name)), params["dest"]
            else:
                raise PkiError("no folder: set clients[].dir or dest", where=f"{where}.dir")
            if os.path.normpath(folder) in seen:
                raise PkiError(f"folder {folder} is used twice", where=f"{where}.dir")
            seen.add(os.path.normpath(folder))
            item = {
                "name": name,
                "key_path": os.path.join(folder, KEY_FILE),
                "cert_path": os.path.join(folder, CERT_FILE),
                "root_path": os.path.join(folder, ROOT_FILE),
                "key_type": params["key_type"],
                "common_name": name,
                "owner": client["owner"] or params["owner"],
                "group": client["group"] or params["group"],
                "key_mode": "0600",
                "cert_mode": "0644",
                "create_dir": params["create_dirs"],
                "base_dir": base,
                "pkcs8_path": os.path.join(folder, PKCS8_FILE) if "pkcs8_der" in params["formats"] else None,
                "pkcs12_path": os.path.join(folder, PKCS12_FILE) if "pkcs12" in params["formats"] else None,
                "pkcs12_passphrase": params["pkcs12_passphrase"] if "pkcs12" in params["formats"] else None,
            }
            wanted = Wanted(build_name(name, params["subject"], where="subject", cn_where=f"{where}.name"), (), CLIENT)
            requests.append(Request(item=item, wanted=wanted, valid_days=params["valid_days"], root_pem=root_pem))
        return requests

    def summarize(self, params, requests):
        clients = []
        for request in requests:
            leaf = request.chain[0]
            clients.append({
                "name": request.item["name"],
                "dir": os.path.dirname(request.item["cert_path"]),
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
        }
        if self._task.diff:
            result["diff"] = diff_for(requests)
        return result
