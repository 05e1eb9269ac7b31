# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter pgtls.ssl.folder_name: the folder a role name gets under client_cert's dest and the issued/ archive."""

from __future__ import annotations

DOCUMENTATION = r"""
name: folder_name
short_description: The folder name pgtls.ssl uses for a PostgreSQL role name
version_added: 0.2.0
description:
  - Returns the name percent-encoded as M(pgtls.ssl.client_cert) does under its O(pgtls.ssl.client_cert#module:dest)
    and in the C(issued/) archive - C(/) becomes C(%2F), a leading C(.) becomes C(%2E) - so it never leaves the
    parent folder and two role names never share a folder. Letters, digits and C(@+=,-_.~) stay as they are.
options:
  _input:
    description: A role name (any string).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The archive folder of a role name
  ansible.builtin.debug:
    msg: "{{ pki_dir }}/issued/{{ 'app/x' | pgtls.ssl.folder_name }}"  # .../issued/app%2Fx
"""

RETURN = r"""
_value:
  description: The folder name.
  type: str
"""

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.constants import folder_name  # noqa: E402


class FilterModule:
    def filters(self):
        return {"folder_name": folder_name}
