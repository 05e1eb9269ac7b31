#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: revocation_registry
short_description: Add revocations to the CA folder's registry (revoked.yml) under the CA folder's lock
version_added: 0.2.0
description:
  - Adds entries to the registry of revocations that the revoke playbook keeps in the CA folder, and returns the
    whole registry. The server role turns it into the intermediate's CRL with M(pgtls.ssl.crl).
  - The file is read and written under the CA folder's lock (C(.pgtls.lock), shared with M(pgtls.ssl.crl) and
    M(pgtls.ssl.ca)), so two runs at once both keep their entries. An entry whose serial is already listed with the
    same reason is left as it is; with another reason it is refused, naming the recorded entry. Entries are never
    removed.
  - Every entry is checked where it enters - the serial, the reason, an ISO 8601 date not in the future - and one
    serial given twice with different reasons is refused, so a bad entry never reaches C(revoked.yml) (where it would
    stop the CRLs from being signed again). Entries already in C(revoked.yml) are checked as they are read.
  - O(names) are looked up in the C(issued/) archive by content - each file must be a certificate that the CA
    folder's intermediate (current, previous or retired) issued, named for the serial it holds; anything else there
    is refused, naming it. A CA folder that holds a symbolic link is refused.
  - With O(pki_dir), a serial of the CA folder's own root or intermediate is refused, naming it and the way to replace
    that CA (a root or intermediate rotation).
  - Runs where the CA folder is (normally the controller).
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports the entries that would be added, writes nothing.
  diff_mode:
    support: none
options:
  path:
    description:
      - The registry file, YAML (a list of entries), written with mode 0600.
      - Exactly one of O(path) and O(pki_dir).
    type: path
  pki_dir:
    description:
      - The CA folder; the registry is its C(revoked.yml), and O(names) are looked up in its C(issued/) archive.
      - Exactly one of O(path) and O(pki_dir).
    type: path
    version_added: 0.2.0
  names:
    description:
      - Role (certificate) names whose every certificate in the C(issued/) archive of O(pki_dir) is revoked. A name
        with no archived certificate is refused, naming it.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  serials:
    description:
      - Serials to revoke (decimal, C(0x) hex, or colon-separated hex).
      - With O(pki_dir), each must be a certificate in its C(issued/) archive (else refused, naming the serial) unless
        O(allow_unknown_serials).
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  reason:
    description: RFC 5280 reason code of the entries for O(names) and O(serials).
    type: str
    default: unspecified
    choices: [unspecified, key_compromise, ca_compromise, affiliation_changed, superseded,
              cessation_of_operation, certificate_hold, privilege_withdrawn, aa_compromise]
    version_added: 0.2.0
  revocation_date:
    description:
      - ISO 8601 date of the entries for O(names) and O(serials) (C(2024-12-31), C(2024-12-31T10:00:00Z), with an
        offset; no zone means UTC); now (UTC) when not given. A date that does not parse, or lies in the future, is
        refused before anything is written.
    type: str
    version_added: 0.2.0
  add:
    description: Entries to add. Other keys than those below are kept as given.
    type: list
    elements: dict
    default: []
    suboptions:
      serial_number:
        description: Serial as a decimal number, C(0x) hex, or colon-separated hex.
        type: str
        required: true
      name:
        description: The certificate name (role name) the serial was issued to, if known.
        type: str
      reason:
        description: RFC 5280 reason code, as M(pgtls.ssl.crl) names them.
        type: str
        default: unspecified
        choices: [unspecified, key_compromise, ca_compromise, affiliation_changed, superseded,
                  cessation_of_operation, certificate_hold, privilege_withdrawn, aa_compromise]
      revocation_date:
        description: ISO 8601 date of the revocation (not in the future).
        type: str
  pending:
    description:
      - Record the new entries as pending - everywhere a certificate is issued they count at once (a certificate
        with a pending serial is issued again where it is installed, and a key revoked for C(key_compromise) is never
        certified again), but the CRLs leave them out until O(publish). The C(revoke) playbook records pending,
        replaces every certificate it revokes on its host, and publishes only then, so no host is left serving a
        certificate its peers' CRLs already refuse.
      - An entry already in the registry keeps its state.
    type: bool
    default: false
    version_added: 0.4.0
  allow_unknown_serials:
    description:
      - Accept O(serials) that are not in the C(issued/) archive of O(pki_dir) (certificates issued before the archive
        existed). Without it such a serial is refused - a typo or another CA's serial would be published in the CRL
        without revoking anything.
    type: bool
    default: false
    version_added: 0.4.0
  rotate_compromised_intermediate:
    description:
      - A serial of the CA folder's intermediate given with reason C(key_compromise) or C(ca_compromise) is not
        refused but returned in RV(intermediate) (not recorded) - the revoke playbook then rotates that intermediate
        at once (a new one, every leaf re-issued under it with new keys, the old one revoked by the root's CRL).
    type: bool
    default: false
    version_added: 0.4.0
  publish:
    description: Publish every pending entry of the registry (the next CRLs carry them). Returns them in RV(published).
    type: bool
    default: false
    version_added: 0.4.0
  lock_timeout:
    description: Seconds to wait for the CA folder's lock.
    type: int
    default: 120
"""

EXAMPLES = r"""
- name: Revoke every certificate issued to mallory, and one serial
  pgtls.ssl.revocation_registry:
    pki_dir: "{{ pki_dir }}"
    names: [mallory]
    serials: ["0x3AF1079C"]
    reason: key_compromise
  delegate_to: localhost
  run_once: true

- name: Record two revocations
  pgtls.ssl.revocation_registry:
    path: "{{ pki_dir }}/revoked.yml"
    add:
      - {serial_number: "0x3AF1079C", name: mallory, reason: key_compromise}
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
issued:
  description: For each of O(names), its archived certificate files (what was revoked).
  returned: success
  type: dict
  sample: {mallory: [/srv/pki/issued/mallory/3AF1079C.crt]}
issued_by_retired:
  description:
    - Of RV(issued), the files a retired intermediate issued (the root's CRL revokes their issuer; the servers no
      longer hold that intermediate's CRL, so the C(revoke) playbook does not look for them in it).
  returned: success
  type: dict
  sample: {mallory: [/srv/pki/issued/mallory/1F2E.crt]}
added:
  description: The entries this run added.
  returned: success
  type: list
  elements: dict
entries:
  description: The whole registry after the change.
  returned: success
  type: list
  elements: dict
pending:
  description: The serials of the registry's pending entries after the change (recorded, not yet in the CRLs).
  returned: success
  type: list
  elements: str
intermediate:
  description:
    - With O(rotate_compromised_intermediate), the CA folder's intermediates among O(serials), each with its state
      (C(current) - to rotate, C(previous) - a rotation started and not retired, C(retired) - the root's CRL revokes
      it already).
  returned: success
  type: list
  elements: dict
  sample: [{serial_number: "5F:93:FE", reason: key_compromise, state: current}]
published:
  description: The serials O(publish) published in this run.
  returned: success
  type: list
  elements: str
path:
  description: The registry's path.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import REVOCATION_REGISTRY

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries
except ImportError:  # cryptography missing: run() reports it
    ensure_entries = None


def main() -> None:
    module = AnsibleModule(argument_spec=REVOCATION_REGISTRY, supports_check_mode=True,
                           required_one_of=[("path", "pki_dir")], mutually_exclusive=[("path", "pki_dir")])
    run(module, ensure_entries)


if __name__ == "__main__":
    main()
