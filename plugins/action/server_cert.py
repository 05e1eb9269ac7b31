# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.server_cert: key and CSR on the database host, signature on the controller."""

from __future__ import annotations

import re

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import cert_info
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import SERVER_CERT
from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import IssuingAction, diff_for, server_request


class ActionModule(IssuingAction):
    SPEC = SERVER_CERT
    HOST_OPTIONS = {"key_path": "key_path", "cert_path": "cert_path", "csr_path": "csr_path",
                    "root_path": "root_cert_path", "key_mode": "key_mode", "cert_mode": "cert_mode", "owner": "owner",
                    "group": "group", "common_name": "common_name", "subject_alt_names": "subject_alt_names"}

    def option_names(self, msg):
        # One item: "items[0] (server).key_path: ..." is this module's "key_path: ...".
        return re.sub(r"items\[0\] \(server\)\.(\w+)", lambda m: self.HOST_OPTIONS.get(m.group(1), m.group(1)), msg)

    def requests(self, params, issuer):
        return [server_request(params, issuer)]

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
        }
        if self._task.diff:
            result["diff"] = diff_for(requests)
        return result
