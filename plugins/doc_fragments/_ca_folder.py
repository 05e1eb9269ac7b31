# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private to the collection: the ca_folder option of the issuing modules (specs.CA_FOLDER_OPTION), documented once
for server_cert and client_cert."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  ca_folder:
    description:
      - The CA folder M(pgtls.ssl.ca_folder) keeps on the controller (the roles' C(pgtls_pki_dir)). Its intermediate
        signs (C(intermediate.crt), C(intermediate.key)), its root completes the chain (C(root.crt)) and every
        certificate issued is archived in its C(issued/) - instead of O(issuer_cert_path), O(issuer_key_path),
        O(issuer_chain_path) and O(record_dir), which it excludes (and their C(_content) forms).
      - A folder without its CA (no C(intermediate.crt) or no C(root.crt)) fails the task before the host is asked for
        anything, with a message naming this option; so does a path that is not a folder, or a folder that holds a
        symbolic link. The intermediate's key may be kept offline - it is read only when something must be signed.
    type: path
    version_added: 0.2.0
"""
