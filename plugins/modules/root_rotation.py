#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: root_rotation
short_description: Start, switch or retire a root CA rotation in the CA folder, under the CA folder's lock
version_added: 0.4.0
description:
  - A new root with an overlap, so no verify-full client fails at any step. O(step=start) makes a new root (a new key
    of O(key_type), named O(root_common_name) C(R<n>)) in C(next-root/). From then on every C(root.crt),
    C(ssl_ca_file) and client C(sslrootcert) the collection writes holds both roots, and the servers' CRL file the
    new root's CRL too; the new root signs nothing yet. Run the site (or rotate) and clients playbooks next.
  - O(step=switch) moves the current root and its intermediate (C(root.*), C(intermediate.*)) to C(previous-root/),
    where they stay trusted and their CRLs stay on the servers, and puts the new root in their place; the next
    issuance makes its intermediate (a new generation, so a name of its own) and every server, replication, pooler
    and client certificate is re-issued under it. Refused while an intermediate rotation is in progress
    (C(previous/)).
  - O(step=retire) archives the previous root and its last intermediate in C(retired/root-<SERIAL>.pem) (a file
    already there is never replaced), destroys their keys and CRLs, and removes C(previous-root/) - from the next run
    on nothing trusts the old root.
  - Every step is resumable (a run killed at any point is finished by the next run of the same step) and a step
    repeated once done changes nothing. C(next-root/), C(previous-root/) and C(retired/) must be real folders inside
    the CA folder holding a CA's files only; anything else is refused before anything moves. Every move, write and
    deletion goes through the write planner, under the CA folder's lock (C(.pgtls.lock)).
  - The playbook C(pgtls.ssl.rotate) calls it with C(pgtls_rotate_root=start|switch|retire).
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports what it would make, move or destroy (for O(step=switch), the moves out and then the moves in).
  diff_mode:
    support: none
options:
  pki_dir:
    description: The CA folder.
    type: path
    required: true
  step:
    description: V(start) (publish a new root), V(switch) (the new root signs) or V(retire) (the old root goes).
    type: str
    required: true
    choices: [start, switch, retire]
  key_type:
    description: The new root's key type (O(step=start)); another type than the current root's migrates the CA
      (RSA to EC, say). Without it, the current root's type.
    type: str
    choices: [ec-p256, ec-p384, rsa2048, rsa3072, rsa4096, ed25519]
  root_common_name:
    description: The common name of the CA's root (the role's C(pgtls_root_ca_common_name)); the new root is named
      after it with C( R<n>). Without it, the current root's name without its C( R<n>).
    type: str
  root_key_passphrase:
    description: Encrypts the new root's key (O(step=start)), as the current root's; required when the current root's
      key is encrypted.
    type: str
  lock_timeout:
    description: Seconds to wait for the CA folder's lock.
    type: int
    default: 120
seealso:
  - module: pgtls.ssl.intermediate_rotation
  - ref: ansible_collections.pgtls.ssl.docsite.ca_folder
    description: The CA folder and its life cycle.
"""

EXAMPLES = r"""
- name: Publish a new root (then run the site and clients playbooks)
  pgtls.ssl.root_rotation:
    pki_dir: "{{ pki_dir }}"
    step: start
    root_common_name: pgtls Root CA
    key_type: ec-p384
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
step:
  description: The step run.
  returned: success
  type: str
actions:
  description: What was made, moved or destroyed (or would be, in check mode).
  returned: success
  type: list
  elements: str
root:
  description: The new root (subject, serial, fingerprints, not_after).
  returned: O(step=start), and O(step=switch) when it moved the root
  type: dict
generation:
  description: The generation of the intermediate the new root signs.
  returned: O(step=switch) when it moved the root
  type: int
msg:
  description: What to run next, or why nothing was done.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import ROOT_ROTATION

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.root_rotation import rotate_root
except ImportError:  # cryptography missing: run() reports it
    rotate_root = None


def main() -> None:
    module = AnsibleModule(argument_spec=ROOT_ROTATION, supports_check_mode=True)
    run(module, rotate_root)


if __name__ == "__main__":
    main()
