# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.ca_folder: the controller's CA folder (root, intermediate, CRLs, crl.pem) ensured in this
process - the CA keys stay on the controller and no module is started for them."""

from __future__ import annotations

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CA_FOLDER
from ansible_collections.pgtls.ssl.plugins.plugin_utils._action import PkiAction


class ActionModule(PkiAction):
    SPEC = CA_FOLDER
    _requires_connection = False

    def operate(self, params: dict) -> dict:
        self.path = params["path"]
        # cryptography is imported here: the controller has it; the sanity import test loads this file without.
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca_folder import ensure_folder

        if params["openbao"]:
            # The engine holds the CA: the folder mirrors its root, intermediate and CRLs.
            from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.mirror import ensure_mirror
            from ansible_collections.pgtls.ssl.plugins.plugin_utils._openbao import BaoClient, BaoSettings

            engine = BaoClient(BaoSettings.from_params(params["openbao"], "openbao."))
            return ensure_mirror(params, self._task.check_mode, engine)
        return ensure_folder(params, self._task.check_mode)

    def failure(self, msg: str) -> str:
        return f"CA folder {self.path}: {msg}"
