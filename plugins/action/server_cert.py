# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.server_cert: key and CSR on the database host, signature on the controller."""

from __future__ import annotations

import os
import re

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.checks import Wanted
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.info import cert_info
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.names import build_name, parse_sans
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.profiles import SERVER
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.specs import SERVER_CERT
from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import IssuingAction, Request, diff_for, pem


class ActionModule(IssuingAction):
    SPEC = SERVER_CERT
    HOST_OPTIONS = {"key_path": "key_path", "cert_path": "cert_path", "csr_path": "csr_path",
                    "root_path": "root_cert_path", "key_mode": "key_mode", "cert_mode": "cert_mode", "owner": "owner",
                    "group": "group", "common_name": "common_name", "subject_alt_names": "subject_alt_names"}

    def option_names(self, msg):
        # One item: "items[0] (server).key_path: ..." is this module's "key_path: ...".
        return re.sub(r"items\[0\] \(server\)\.(\w+)", lambda m: self.HOST_OPTIONS.get(m.group(1), m.group(1)), msg)

    def requests(self, params, issuer):
        sans = parse_sans(params["subject_alt_names"], "subject_alt_names")
        if not sans:
            raise PkiError("at least one DNS name or IP address is needed", where="subject_alt_names")
        common_name = params["common_name"] or str(sans[0].value)
        paths = {"key_path": params["key_path"], "cert_path": params["cert_path"], "csr_path": params["csr_path"],
                 "root_cert_path": params["root_cert_path"]}
        seen = {}
        for option, path in paths.items():
            if path and os.path.normpath(path) in seen:
                raise PkiError(f"{path} is also given as {seen[os.path.normpath(path)]}: each file needs its own path",
                               where=option)
            if path:
                seen[os.path.normpath(path)] = option
        if params["root_cert_path"] and issuer.root is None:
            raise PkiError("root_cert_path needs the root: give it in issuer_chain_path or issuer_chain_content",
                           where="root_cert_path")
        item = {
            "name": "server",
            "key_path": params["key_path"],
            "cert_path": params["cert_path"],
            "csr_path": params["csr_path"],
            "root_path": params["root_cert_path"],
            "key_type": params["key_type"],
            "common_name": common_name,
            "subject_alt_names": params["subject_alt_names"],
            "owner": params["owner"],
            "group": params["group"],
            "key_mode": params["key_mode"],
            "cert_mode": params["cert_mode"],
            "create_dir": params["create_dir"],
            "snapshot_dir": params["snapshot_dir"],
            "snapshot_paths": params["snapshot_paths"],
            "snapshot_group": params["snapshot_group"],
            "snapshot_taken": params["snapshot_taken"],
        }
        wanted = Wanted(build_name(common_name, params["subject"]), tuple(sans), SERVER)
        root_pem = pem([issuer.root]) if params["root_cert_path"] else None
        return [Request(item=item, wanted=wanted, valid_days=params["valid_days"], root_pem=root_pem)]

    def summarize(self, params, requests):
        request = requests[0]
        result = {
            "changed": bool(request.reasons),
            "reasons": request.reasons,
            "issued": request.issued,
            "cert_path": params["cert_path"],
            "key_path": params["key_path"],
            "certificate": cert_info(request.chain[0]),
            "chain_length": len(request.chain),
            "snapshot_taken": request.snapshot_taken,
        }
        if self._task.diff:
            result["diff"] = diff_for(requests)
        return result
