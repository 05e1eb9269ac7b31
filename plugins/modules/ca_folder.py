#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ca_folder
short_description: The controller's CA folder in one step - root, intermediate, the CRL of every CA and crl.pem
version_added: 0.2.0
description:
  - Ensures what the server role needs in a CA folder on the controller, as M(pgtls.ssl.ca) and M(pgtls.ssl.crl)
    would one by one - the root CA, the intermediate CA (named O(intermediate_common_name), with C( G<n>) from its
    second generation on, as the rotate playbook counts them in C(intermediate.generation)), the root's CRL (the
    intermediates retired by the rotate playbook, C(retired/*.crt), revoked), the CRL of the previous intermediate
    during a rotation, the intermediate's CRL (O(revoked) and the revoke playbook's C(revoked.yml)), and C(crl.pem),
    every CRL in one file for C(ssl_crl_file).
  - Runs in the controller's own process (an action plugin with no module), so an unchanged CA folder costs no
    module execution. The whole folder is one write plan under the CA folder's lock - the root, the intermediate it
    signs and every CRL are computed in memory first (check mode reports the whole run, on a new folder too), every
    rule is checked, and only then is anything written. CRL numbers never go back.
  - CA material given as content (a vault, an AWX credential) is parsed and checked before anything is written -
    each certificate a valid CA, the root self-signed, the intermediate issued by the root, each key matching its
    certificate (given, or in the folder). It is written (mode 0600) only where the folder has no such file, or a
    damaged one; a folder file that holds other valid material is never replaced (the task fails naming the option),
    and the same material in other bytes is kept as it is.
  - A CA folder that holds a symbolic link, or numbers out of range, are refused before anything is made.
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - pgtls.ssl._controller_action
  - pgtls.ssl.cryptography
  - pgtls.ssl._openbao
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Writes nothing; RV(exists) says whether there is a CA to compare against.
  diff_mode:
    support: none
options:
  path:
    description: The CA folder (created mode 0700 when missing).
    type: path
    required: true
  key_type:
    description: Type of a new CA key.
    type: str
    default: ec-p256
    choices: [ec-p256, ec-p384, rsa2048, rsa3072, rsa4096, ed25519]
  root_common_name:
    description: CN of a new root CA.
    type: str
    required: true
  intermediate_common_name:
    description: CN of a new intermediate CA (C( G<n>) appended from generation 2 on).
    type: str
    required: true
  root_key_passphrase:
    description: Passphrase of the root key (a new root key is encrypted with it). Never logged.
    type: str
  root_cert_content:
    description: The root certificate as PEM text, for C(root.crt) (checked first; see the description).
    type: str
  root_key_content:
    description: The root key as PEM text, for C(root.key) (mode 0600; checked first). Never logged.
    type: str
  intermediate_cert_content:
    description: The intermediate certificate as PEM text, for C(intermediate.crt) (checked first).
    type: str
  intermediate_key_content:
    description: The intermediate key as PEM text, for C(intermediate.key) (mode 0600; checked first). Never logged.
    type: str
  crl:
    description: Ensure the CRLs and C(crl.pem) (false - the CAs only).
    type: bool
    default: true
  revoked:
    description: Revocations for the intermediate's CRL, besides those the revoke playbook recorded in C(revoked.yml).
    type: list
    elements: dict
    default: []
    suboptions:
      serial_number:
        description: Serial number (decimal, C(0x) hex, or colon-separated hex).
        type: str
      certificate_path:
        description: A certificate file whose serial is revoked.
        type: path
      certificate_content:
        description: A certificate as PEM text whose serial is revoked.
        type: str
      reason:
        description: The revocation reason.
        type: str
        default: unspecified
        choices: [unspecified, key_compromise, ca_compromise, affiliation_changed, superseded, cessation_of_operation,
                  certificate_hold, privilege_withdrawn, aa_compromise]
      revocation_date:
        description: ISO 8601 date of the revocation (default now).
        type: str
  crl_next_update_days:
    description: nextUpdate of the intermediates' CRLs, in days (the root's CRL - 365).
    type: int
    default: 30
  crl_renew_before_days:
    description: Sign the intermediates' CRLs again when fewer days are left (the root's CRL - 60).
    type: int
    default: 7
  lock_timeout:
    description: Seconds to wait for the CA folder's lock (another run working on it).
    type: int
    default: 120
  migrate_from:
    description:
      - With O(openbao) only - the collection's CA folder a fleet moves from to the engine. The engine's root mount holds
        that folder's root (imported), so every host keeps trusting the same root; while this is given, C(crl.pem) also
        carries the CRL of that folder's intermediate, and the certificates it issued keep working until the fleet's
        runs replace them. Leave it out once every client has its certificate from the engine.
      - That folder is only read. Refused when its root is not the root mount's, when its intermediate's CRL is missing,
        not signed by it, or expired, or without O(crl).
    type: path
    version_added: 0.3.0
"""

EXAMPLES = r"""
- name: The CA folder (here, on the controller)
  pgtls.ssl.ca_folder:
    path: "{{ playbook_dir }}/pki"
    root_common_name: Example Root CA
    intermediate_common_name: Example PostgreSQL CA
    revoked:
      - serial_number: "0x1F2E3D"
        reason: key_compromise
  delegate_to: localhost
  run_once: true
  register: ca
"""

RETURN = r"""
changes:
  description: What was created or signed (or would be, in check mode); empty when nothing changed.
  returned: success
  type: list
  elements: str
exists:
  description: Whether the intermediate CA existed before this task.
  returned: success
  type: bool
generation:
  description: The intermediate's generation (C(intermediate.generation), 1 when absent).
  returned: success
  type: int
"""
