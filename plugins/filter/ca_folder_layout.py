# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter pgtls.ssl.ca_folder_layout: the paths of a CA folder, as its layout (module_utils/_pki/core/layout.py) names
them, for roles and playbooks that must name one (the client role's bundle folder)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ca_folder_layout
short_description: The paths of a pgtls.ssl CA folder by its layout
version_added: 0.2.0
description:
  - Returns where each thing lives in a CA folder, as the collection's modules name it - so a role or playbook that
    must name a path in the folder takes it from the one layout the modules use instead of typing the file name.
  - Reads nothing; the paths are returned whether or not the files exist. An empty input fails.
options:
  _input:
    description: A CA folder (the roles' C(pgtls_pki_dir)).
    type: path
    required: true
seealso:
  - module: pgtls.ssl.ca_folder
  - ref: ansible_collections.pgtls.ssl.docsite.ca_folder
    description: The CA folder and its life cycle.
"""

EXAMPLES = r"""
- name: Where the client bundles go
  ansible.builtin.debug:
    msg: "{{ (pgtls_pki_dir | pgtls.ssl.ca_folder_layout).clients }}"
"""

RETURN = r"""
_value:
  description: The paths of the folder.
  type: dict
  contains:
    root_cert: {description: The root CA's certificate., type: str}
    root_crl: {description: The root CA's CRL., type: str}
    intermediate_cert: {description: The intermediate CA's certificate (the one that signs)., type: str}
    intermediate_crl: {description: The intermediate CA's CRL., type: str}
    crl_bundle: {description: The CRL of every CA in one file (a server's C(ssl_crl_file))., type: str}
    registry: {description: The revocation registry., type: str}
    archive: {description: The archive of issued certificates (one folder per role name)., type: str}
    clients: {description: The client bundles made on the controller., type: str}
    previous: {description: The previous intermediate during a rotation., type: str}
    retired: {description: The certificates of retired intermediates., type: str}
"""

from ansible.errors import AnsibleFilterError  # noqa: E402

# The paths a role or playbook may name (the CA keys and the folder's state are the modules' alone).
PATHS = ("root_cert", "root_crl", "intermediate_cert", "intermediate_crl", "crl_bundle", "registry", "archive",
         "clients", "previous", "retired")


def ca_folder_layout(folder: str) -> dict:
    if not isinstance(folder, str) or not folder.strip():
        raise AnsibleFilterError(f"ca_folder_layout: the input is a CA folder's path, got {folder!r}")
    # Imported when called: Layout loads cryptography, and Ansible imports every filter file of the collection in
    # each forked worker that uses any one of them.
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.layout import Layout

    layout = Layout(folder)
    return {name: getattr(layout, name) for name in PATHS}


class FilterModule:
    def filters(self):
        return {"ca_folder_layout": ca_folder_layout}
