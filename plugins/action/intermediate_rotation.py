# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for pgtls.ssl.intermediate_rotation: the CA folder's intermediate rotation step in this process - the CA
folder is on the controller, so no module is built and started for it (site runs its auto step on every run)."""

from __future__ import annotations

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import INTERMEDIATE_ROTATION
from ansible_collections.pgtls.ssl.plugins.plugin_utils._action import PkiAction


class ActionModule(PkiAction):
    SPEC = INTERMEDIATE_ROTATION
    _requires_connection = False

    def operate(self, params: dict) -> dict:
        # cryptography is imported here: the controller has it; the sanity import test loads this file without.
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.intermediate_rotation import rotate

        return rotate(params, self._task.check_mode)
