#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: crl
short_description: Ensure a CRL for one CA from a declarative list of revoked certificates
version_added: 0.1.0
description:
  - Ensures the certificate revocation list of one CA, with C(CRLNumber), C(authorityKeyIdentifier), C(lastUpdate) and
    C(nextUpdate). Runs where the CA key is (normally the controller).
  - The CRL is signed again only when the list of revoked serials (or their reasons) changes, when the existing
    CRL was not signed by this CA, or when C(nextUpdate) is less than O(renew_before_days) away. Revocation dates
    of entries already on the CRL are kept; the CRL number grows on every signature and never goes back.
  - PostgreSQL checks a CRL for B(every CA in the chain, the root included), and refuses client certificates with
    C(unable to get certificate CRL) when one is missing or expired. Run the module once per CA (root too, with an
    empty O(revoked)), then build the file for C(ssl_crl_file) with O(combined_path) and O(combine_with).
  - A root whose key is kept offline needs a long O(next_update_days), since signing its CRL again needs that key.
  - Every input is read and checked before anything is written. An existing O(path) or O(combined_path) that
    holds something other than a CRL (a certificate, a key, garbage) is never replaced; the task fails saying
    what the file holds.
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pgtls.ssl.cryptography
  - pgtls.ssl.issuer
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Computes and signs the CRL in memory but writes nothing.
  diff_mode:
    support: full
    details: Shows issuer, CRL number, nextUpdate and the revoked serials.
options:
  path:
    description: Where the CA's CRL is written, PEM.
    type: path
    required: true
  revoked:
    description: The certificates this CA revokes. Each needs exactly one of O(revoked[].serial_number),
      O(revoked[].certificate_path) and O(revoked[].certificate_content).
    type: list
    elements: dict
    default: []
    suboptions:
      serial_number:
        description: Serial as a decimal number, C(0x) hex, or colon-separated hex (as the modules return it).
        type: str
      certificate_path:
        description: A certificate file whose serial is revoked; it must have been issued by this CA.
        type: path
      certificate_content:
        description: The same as PEM text.
        type: str
      reason:
        description: RFC 5280 reason code.
        type: str
        default: unspecified
        choices: [unspecified, key_compromise, ca_compromise, affiliation_changed, superseded,
                  cessation_of_operation, certificate_hold, privilege_withdrawn, aa_compromise]
      revocation_date:
        description: ISO 8601 date of the revocation. Defaults to the time it is first listed.
        type: str
  next_update_days:
    description: Days from signing to C(nextUpdate). PostgreSQL rejects client certificates once it has passed.
    type: int
    default: 30
  renew_before_days:
    description: Sign again when C(nextUpdate) is fewer than this many days away. Must be below O(next_update_days).
    type: int
    default: 7
  revoked_mode:
    description:
      - V(add) keeps every entry already on this CA's CRL and adds those of O(revoked); a revocation is never
        undone by a shorter list, and two runs at once that each add their own revocations both count.
      - V(exact) makes the CRL list exactly O(revoked), so an entry can be removed (for example a released
        C(certificate_hold)).
    type: str
    default: add
    choices: [add, exact]
    version_added: 0.2.0
  lock_timeout:
    description:
      - Seconds to wait for the lock on the CRL's folder (the CA folder, C(.pgtls.lock)) that another run holds.
        Every read-modify-write of the CRL happens under it; the last CRL number each CA signed is kept in
        C(state.json) in that folder, so numbers grow strictly even when the CRL file is lost.
    type: int
    default: 120
    version_added: 0.2.0
  combined_path:
    description:
      - Also write this file, the CRLs of O(combine_with) followed by this CA's, for C(ssl_crl_file).
    type: path
  combine_with:
    description: CRL files of the other CAs of the chain (for example the root's), checked to be CRLs.
    type: list
    elements: path
    default: []
  mode:
    description: Mode of the CRL files.
    type: str
    default: '0644'
  owner:
    description: Owner of the CRL files.
    type: str
  group:
    description: Group of the CRL files.
    type: str
"""

EXAMPLES = r"""
- name: Keep an empty CRL for the root (PostgreSQL needs one for every CA)
  pgtls.ssl.crl:
    path: "{{ pki_dir }}/root.crl"
    issuer_cert_path: "{{ pki_dir }}/root.crt"
    issuer_key_path: "{{ pki_dir }}/root.key"
    next_update_days: 365
    renew_before_days: 60
  delegate_to: localhost
  run_once: true

- name: Revoke a client certificate and write the combined file for ssl_crl_file
  pgtls.ssl.crl:
    path: "{{ pki_dir }}/intermediate.crl"
    issuer_cert_path: "{{ pki_dir }}/intermediate.crt"
    issuer_key_path: "{{ pki_dir }}/intermediate.key"
    revoked:
      - serial_number: "3A:F1:07:9C"
        reason: key_compromise
      - certificate_path: "{{ pki_dir }}/clients/batch/postgresql.crt"
        reason: cessation_of_operation
    combined_path: "{{ pki_dir }}/root.crl.pem"
    combine_with:
      - "{{ pki_dir }}/root.crl"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
reasons:
  description: Why the CRL (or the combined file) was written; empty when nothing changed.
  returned: success
  type: list
  elements: str
  sample: ["revocation list changed (+1 -0 ~0)"]
path:
  description: The CRL's path.
  returned: success
  type: str
combined_path:
  description: The combined file's path, if any.
  returned: success
  type: str
crl:
  description: Facts about the CRL after the change.
  returned: success
  type: dict
  contains:
    issuer: {description: "Issuer in RFC 4514 form.", type: str, returned: success}
    crl_number: {description: "The CRLNumber extension.", type: int, returned: success}
    last_update: {description: "lastUpdate (ISO 8601).", type: str, returned: success}
    next_update: {description: "nextUpdate (ISO 8601).", type: str, returned: success}
    revoked_serials: {description: "Revoked serials, colon-separated hex.", type: list, elements: str, returned: success}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CRL, ISSUER_EXCLUSIVE, ISSUER_REQUIRED_ONE

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.crl import ensure_crl
except ImportError:  # cryptography missing: run() reports it
    ensure_crl = None


def main() -> None:
    module = AnsibleModule(argument_spec=CRL, mutually_exclusive=ISSUER_EXCLUSIVE, required_one_of=ISSUER_REQUIRED_ONE,
                           supports_check_mode=True)
    run(module, ensure_crl)


if __name__ == "__main__":
    main()
