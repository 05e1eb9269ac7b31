# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.client_cert: many client certificates in one task, keys where the client lives."""

from __future__ import annotations

import os

from ansible_collections.pgtls.ssl.plugins.module_utils._pki import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.checks import Wanted
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.info import fingerprint, serial_hex
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.names import build_name
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.profiles import CLIENT
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.specs import CLIENT_CERT
from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import IssuingAction, Request, diff_for, pem

# The file names libpq looks for in ~/.postgresql/.
CERT_FILE, KEY_FILE, ROOT_FILE = "postgresql.crt", "postgresql.key", "root.crt"


class ActionModule(IssuingAction):
    SPEC = CLIENT_CERT

    def on_controller(self, params):
        return params["key_location"] == "controller"

    def requests(self, params, issuer):
        if issuer.root is None:
            raise PkiError("root.crt needs the root certificate: give it in issuer_chain_path or issuer_chain_content"
                           " (or use the root as issuer)", where="issuer_chain_path")
        root_pem = pem([issuer.root])
        requests, seen = [], set()
        for index, client in enumerate(params["clients"]):
            where = f"clients[{index}]"
            name = client["name"]
            if not name:
                raise PkiError("a role name is needed", where=f"{where}.name")
            folder = client["dir"] or (os.path.join(params["dest"], name) if params["dest"] else None)
            if folder is None:
                raise PkiError("no folder: set clients[].dir or dest", where=f"{where}.dir")
            if folder in seen:
                raise PkiError(f"folder {folder} is used twice", where=f"{where}.dir")
            seen.add(folder)
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
            }
            wanted = Wanted(build_name(name, params["subject"], where="subject"), (), CLIENT)
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
