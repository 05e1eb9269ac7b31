#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: host_material
short_description: The host half of certificate issuance - private keys, CSRs and installed chains
version_added: 0.1.0
description:
  - Internal to the collection's roles - its options may change in any release; use P(pgtls.ssl.server#role) or
    P(pgtls.ssl.client#role).
  - Runs on the host that owns the keys. The actions M(pgtls.ssl.server_cert) and M(pgtls.ssl.client_cert) call
    it; use it directly only to pair pgtls.ssl's key handling with a CA of your own.
  - O(stage=prepare) ensures each private key (generated on the host, written with its final owner and mode from
    the first byte, never returned) and returns a CSR for it together with the certificate files in place.
    A key that a certificate must follow is written beside the key as C(<key_path>.pgtls-new) and moved over the
    key only when its certificate is installed.
  - O(stage=install) first checks every certificate against the key that will be active, then writes the chains
    (and C(root.crt)) atomically and activates pending keys. Bad input changes no file.
  - O(stage=crl) writes only O(items[].crl) at O(items[].crl_path), for the items whose certificate file is in place
    (the others are left for their first issue); no key is made or read. The CRLs must hold a current CRL of each
    root in O(items[].root).
  - Refuses a key owner and mode that PostgreSQL or libpq would reject (owned by a non-root user with group or
    other access, or by root with more than group read).
  - Every item is checked before the first write of a run - no two options or items naming one file (after C(..)
    and symbolic links), every folder present (or creatable with O(items[].create_dir)), no existing file of
    another kind in the way (a key where a certificate goes, garbage) - so bad input changes no file.
  - A symbolic link at a key path (or at its C(.pgtls-new)) is refused, never followed.
  - A run stopped after a certificate was installed but before its key was activated is completed by the next
    O(stage=prepare); temporaries (C(.pgtls-tmp-*)) of killed runs are removed from the folders an item uses.
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - pgtls.ssl._host_item.items
  - ansible.builtin.action_common_attributes
  - pgtls.ssl.cryptography
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: In O(stage=prepare) a missing key is generated in memory only, for the CSR. Nothing is written.
  diff_mode:
    support: none
options:
  stage:
    description: V(prepare) ensures keys and returns CSRs; V(install) installs signed chains; V(crl) refreshes the CRL files only.
    type: str
    default: prepare
    choices: [prepare, install, crl]
"""

EXAMPLES = r"""
- name: Ensure the key and get a CSR to sign elsewhere
  pgtls.ssl.host_material:
    items:
      - name: server
        key_path: /etc/ssl/private/db1.key
        cert_path: /etc/ssl/certs/db1.crt
        common_name: db1.example.com
        subject_alt_names: [db1.example.com, 10.0.0.5]
        owner: root
        group: ssl-cert
        key_mode: '0640'
  register: prepared

- name: Install the chain signed by an external CA
  pgtls.ssl.host_material:
    stage: install
    items:
      - name: server
        key_path: /etc/ssl/private/db1.key
        cert_path: /etc/ssl/certs/db1.crt
        owner: root
        group: ssl-cert
        key_mode: '0640'
        certificate: "{{ signed_chain_pem }}"
"""

RETURN = r"""
item_results:
  description: One entry per entry of O(items), in order.
  returned: success
  type: list
  elements: dict
  contains:
    name: {description: "The item's name.", type: str, returned: success}
    changes: {description: "What changed (or would change) for this item.", type: list, elements: str, returned: success}
    key:
      description: Facts about the key that is (or will be) active; never the key itself.
      type: dict
      returned: O(stage=prepare)
      contains:
        path: {description: "Key path.", type: str, returned: success}
        state: {description: "V(present), V(created), V(replaced) or V(pending).", type: str, returned: success}
        type: {description: "Key type.", type: str, returned: success}
        public_key_fingerprint: {description: "SHA-256 of the public key.", type: str, returned: success}
    csr: {description: "CSR (PEM) for the active key.", type: str, returned: O(stage=prepare)}
    certificate: {description: "The certificate file in place (PEM), or null.", type: str, returned: O(stage=prepare)}
    root: {description: "The root file in place (PEM), or null.", type: str, returned: O(stage=prepare)}
    home: {description: "The home folder of O(items[].owner) on the host, or null.", type: str, returned: O(stage=prepare)}
    group: {description: "The group id the files get, or null (left as it is).", type: int, returned: O(stage=prepare)}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import HOST_MATERIAL

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.host_material import host_material
except ImportError:  # cryptography missing: run() reports it
    host_material = None


def main() -> None:
    module = AnsibleModule(argument_spec=HOST_MATERIAL, supports_check_mode=True)
    run(module, host_material)


if __name__ == "__main__":
    main()
