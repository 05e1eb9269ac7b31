# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lookup pgtls.ssl.revoked_names: the role names a CA folder's revocation registry revokes."""

from __future__ import annotations

DOCUMENTATION = r"""
name: revoked_names
author:
  - pgtls.ssl maintainers (@pgtls)
short_description: The role names revoked in a pgtls.ssl CA folder
version_added: 0.2.0
description:
  - Returns the names the revocation registry of a CA folder (its C(revoked.yml), written by the C(revoke) playbook
    and M(pgtls.ssl.revocation_registry)) revokes - the database roles whose certificates were revoked by name -
    sorted, each once. Entries revoked by serial alone name no role and are not listed.
  - For what cannot read a CRL, for example PgBouncer, whose C(userlist.txt) or C(pg_hba.conf) must refuse those
    roles by name.
  - A CA folder without a registry gives an empty list. A path that is not a folder, a registry that is a symbolic
    link, not valid YAML, not a list of entries with a serial number, or an entry whose name is not a string fails
    the lookup, naming the file - a revoked name is never skipped.
  - Reads on the controller, writes nothing, takes no lock (the registry is replaced whole, never written in place).
options:
  _terms:
    description: CA folders (the roles' C(pgtls_pki_dir)); the names of all of them, together.
    type: list
    elements: path
    required: true
notes:
  - Use C(query()) (or C(lookup(..., wantlist=true))) to get a list; C(lookup()) joins the names with commas.
seealso:
  - module: pgtls.ssl.revocation_registry
  - module: pgtls.ssl.client_cert
  - ref: ansible_collections.pgtls.ssl.docsite.revocation
    description: Revocation by name and by serial.
"""

EXAMPLES = r"""
- name: The roles revoked in the fleet's CA folder
  ansible.builtin.debug:
    msg: "{{ query('pgtls.ssl.revoked_names', pgtls_pki_dir) }}"

- name: PgBouncer's userlist without the revoked roles (a template line)
  ansible.builtin.debug:
    msg: >-
      {{ pgbouncer_users | map(attribute='name')
         | reject('in', query('pgtls.ssl.revoked_names', pgtls_pki_dir)) | list }}
"""

RETURN = r"""
_raw:
  description: The revoked role names, sorted, each once; empty when the folder has no registry.
  type: list
  elements: str
"""

import os  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError  # noqa: E402

WHERE = "pgtls.ssl.revoked_names"


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        # Imported here: the registry reader needs PyYAML and the CA folder's layout (the controller has them).
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import revoked_names

        names = set()
        for term in terms:
            if not isinstance(term, str) or not term.strip():
                raise AnsibleLookupError(f"{WHERE}: each term is a CA folder's path, got {term!r}")
            folder = os.path.expanduser(term)
            if not os.path.isdir(folder):
                what = "does not exist" if not os.path.lexists(folder) else "is not a folder"
                raise AnsibleLookupError(f"{WHERE}: {folder} {what}: the term names a CA folder (pgtls_pki_dir)")
            try:
                names.update(revoked_names(folder, where=WHERE))
            except PkiError as exc:
                raise AnsibleLookupError(str(exc)) from None
        return sorted(names)
