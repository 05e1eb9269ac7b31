# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lookup pgtls.ssl.revocations: what a CA folder's revocation registry revokes, by serial and by key."""

from __future__ import annotations

DOCUMENTATION = r"""
name: revocations
author:
  - pgtls.ssl maintainers (@pgtls)
short_description: The serials and compromised keys a pgtls.ssl CA folder revokes
version_added: 0.4.0
description:
  - Returns one dictionary for the CA folders given - C(serials), every serial their revocation registries
    (C(revoked.yml)) revoke (by name or by serial, published or pending) with its reason; and C(keys), the public key
    (SHA-256 of its DER, as M(pgtls.ssl.validate) reports it in C(public_key_fingerprint)) of every certificate
    revoked for C(key_compromise), with the serial that says so.
  - The audit uses it to fail a cluster that serves or holds a revoked certificate or a compromised key, even when
    that host's CRL is older than the registry.
  - A folder that does not exist gives nothing (an audit run where the CA folder is not). A registry that cannot be
    trusted (a symbolic link, not valid YAML, a bad entry) fails the lookup, naming the file.
  - Reads on the controller, writes nothing, takes no lock.
options:
  _terms:
    description: CA folders (the roles' C(pgtls_pki_dir)).
    type: list
    elements: path
    required: true
notes:
  - Use C(query(...) | first) or C(lookup(...)) to get the dictionary.
seealso:
  - plugin: pgtls.ssl.revoked_names
    plugin_type: lookup
  - module: pgtls.ssl.revocation_registry
  - ref: ansible_collections.pgtls.ssl.docsite.revocation
    description: Revocation, and a certificate in use replaced before it is revoked.
"""

EXAMPLES = r"""
- name: What the CA folder revokes
  ansible.builtin.debug:
    msg: "{{ query('pgtls.ssl.revocations', pgtls_pki_dir) | first }}"
    # {"serials": {"5F:93:FE": "key_compromise"}, "keys": {"9c1f...": "5F:93:FE (db1)"}}
"""

RETURN = r"""
_raw:
  description:
    - One dictionary - C(serials) (colon-separated hex serial to reason, with C( (pending)) for a revocation not yet
      in the CRLs) and C(keys) (public key fingerprint to the revoked serial and name).
  type: list
  elements: dict
"""

import os  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError  # noqa: E402

WHERE = "pgtls.ssl.revocations"


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import revocations

        found = {"serials": {}, "keys": {}}
        for term in terms:
            if not isinstance(term, str) or not term.strip():
                raise AnsibleLookupError(f"{WHERE}: each term is a CA folder's path, got {term!r}")
            folder = os.path.expanduser(term)
            if not os.path.lexists(folder):
                continue
            if not os.path.isdir(folder) or os.path.islink(folder):
                raise AnsibleLookupError(f"{WHERE}: {folder} is not a folder: the term names a CA folder (pgtls_pki_dir)")
            try:
                each = revocations(folder)
            except PkiError as exc:
                raise AnsibleLookupError(f"{WHERE}: {exc}") from None
            for key, values in found.items():
                values.update(each[key])
        return [found]
