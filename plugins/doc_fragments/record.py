# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The controller's archive of issued certificates.
    DOCUMENTATION = r"""
options:
  record_dir:
    description:
      - A folder on the controller where every certificate this task issued or found in place is archived, as
        C(<record_dir>/<common name>/<serial in hex>.crt) - the leaf only, public, never a key.
      - The archive is what revocation by name reads (the C(revoke) playbook), which lists every serial ever issued
        to a name, including certificates that were renewed since.
      - Written only when a file is missing; not counted as a change on the host; nothing is written in check mode.
    type: path
"""
