# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.ca_folder: the controller's CA folder (root, intermediate, CRLs, crl.pem) ensured in this
process - the CA keys stay on the controller and no module is started for them."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CA_FOLDER


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        try:
            _validation, params = self.validate_argument_spec(argument_spec=CA_FOLDER)
        except AnsibleActionFail as exc:
            result.update(failed=True, msg=str(exc))
            return result
        try:
            # cryptography is imported here: the controller has it; the sanity import test loads this file without.
            from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca_folder import ensure_folder

            done = ensure_folder(params, self._task.check_mode)
        except PkiError as exc:
            result.update(failed=True, msg=f"CA folder {params['path']}: {exc}")
            return result
        except Exception as exc:  # the module boundary: never a raw traceback for the user
            result.update(failed=True, msg=f"CA folder {params['path']}: unexpected error ({type(exc).__name__}): "
                          f"{exc}")
            return result
        for warning in done.pop("warnings", []):
            self._display.warning(warning)
        result.update(done)
        return result
