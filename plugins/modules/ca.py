#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ca
short_description: Ensure a root CA or an intermediate CA for PostgreSQL TLS
version_added: 0.1.0
description:
  - Ensures a self-signed root CA, or an intermediate CA signed by a given issuer, where the module runs
    (normally the controller, with C(delegate_to=localhost) and C(run_once=true)).
  - Profiles follow PostgreSQL's manual (C(v3_ca)) - C(basicConstraints CA:TRUE) (critical; path length 0 on an
    intermediate), C(keyUsage keyCertSign, cRLSign, digitalSignature) (critical), subject and authority key
    identifiers.
  - An existing CA is never regenerated implicitly. When its certificate and key are present, match and are valid,
    the module changes nothing (except owner and mode) and only warns if the options ask for a different subject,
    key type or issuer. An expired CA, or a certificate whose key is missing, is an error until O(force=true).
  - To make an intermediate, give the root with the O(issuer_cert_path) group of options. Once the intermediate
    exists, the root's key is not read, so it can be kept offline.
  - Refused before anything is written - O(cert_path) and O(key_path) naming one file (after C(..) and symbolic
    links), a symbolic link at O(key_path), a missing folder, an existing file of another kind in the way, an
    intermediate whose key is the issuer's own, an issuer whose path length forbids another CA, and a lifetime
    outside 1 to 36500 days.
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
    details: Computes the certificate (signing included) but writes nothing; reports the same C(changed).
  diff_mode:
    support: full
    details: Shows certificate metadata (subject, issuer, validity, fingerprints), never key material.
options:
  cert_path:
    description: Where the CA certificate is (or is to be written), PEM.
    type: path
    required: true
  key_path:
    description: Where the CA private key is (or is to be written), PEM PKCS#8.
    type: path
    required: true
  key_type:
    description:
      - Type of a new key. V(ec-p256) is accepted everywhere PostgreSQL runs.
      - V(ed25519) needs OpenSSL 1.1.1 or newer in the server and in every libpq client, and is not accepted by
        some other TLS stacks (JDBC, .NET, Go before 1.13); prefer EC or RSA for a CA unless all clients use libpq.
    type: str
    default: ec-p256
    choices: [ec-p256, ec-p384, rsa2048, rsa3072, rsa4096, ed25519]
  key_passphrase:
    description:
      - Encrypts a new key with this passphrase, and decrypts an existing one. Never logged.
    type: str
  common_name:
    description: The CA's common name (CN).
    type: str
    required: true
  subject:
    description:
      - Other subject fields. Keys are C(country), C(state), C(locality), C(organization), C(organizational_unit).
    type: dict
    default: {}
  valid_days:
    description:
      - Lifetime of a new CA certificate. Defaults to 3650 days for a root and 1825 for an intermediate.
      - An intermediate never outlives its issuer; the end date is cut to the issuer's.
    type: int
  path_length:
    description:
      - Path length constraint of an intermediate (how many CAs may follow it). Defaults to 0 (it issues leaves only).
      - Ignored for a root, which carries no constraint. Must be less than the issuer's own path length; an issuer
        with path length 0 (the default intermediate) cannot sign a CA at all, and the task says so.
    type: int
  key_mode:
    description: Mode of the key file, applied from its first byte.
    type: str
    default: '0600'
  cert_mode:
    description: Mode of the certificate file.
    type: str
    default: '0644'
  owner:
    description: Owner of both files (name or uid). Defaults to the user running the module.
    type: str
  group:
    description: Group of both files (name or gid).
    type: str
  force:
    description:
      - Create a new key and certificate even if a valid CA exists. Not idempotent; use once, deliberately.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for the lock on the certificate's folder (the CA folder, C(.pgtls.lock)) that another run
        holds; two runs never create or replace one CA at the same time.
    type: int
    default: 120
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Ensure the root CA on the controller
  pgtls.ssl.ca:
    cert_path: "{{ pki_dir }}/root.crt"
    key_path: "{{ pki_dir }}/root.key"
    key_passphrase: "{{ vault_root_passphrase }}"
    common_name: Example Root CA
    subject:
      organization: Example
  delegate_to: localhost
  run_once: true

- name: Ensure the intermediate CA, signed by the root
  pgtls.ssl.ca:
    cert_path: "{{ pki_dir }}/intermediate.crt"
    key_path: "{{ pki_dir }}/intermediate.key"
    common_name: Example PostgreSQL Intermediate CA
    issuer_cert_path: "{{ pki_dir }}/root.crt"
    issuer_key_path: "{{ pki_dir }}/root.key"
    issuer_key_passphrase: "{{ vault_root_passphrase }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
kind:
  description: V(root_ca) or V(intermediate_ca).
  returned: success
  type: str
reasons:
  description: Why something changed (empty when nothing did).
  returned: success
  type: list
  elements: str
  sample: ["no CA certificate yet"]
cert_path:
  description: The certificate's path.
  returned: success
  type: str
certificate:
  description: Facts about the CA certificate (after the change).
  returned: success
  type: dict
  contains:
    subject: {description: "Subject in RFC 4514 form.", type: str, returned: success}
    issuer: {description: "Issuer in RFC 4514 form.", type: str, returned: success}
    serial: {description: "Serial number, colon-separated hex.", type: str, returned: success}
    not_before: {description: "Start of validity (ISO 8601, UTC).", type: str, returned: success}
    not_after: {description: "End of validity (ISO 8601, UTC).", type: str, returned: success}
    days_left: {description: "Whole days until RV(certificate.not_after).", type: int, returned: success}
    subject_alt_names: {description: "SANs as C(DNS:name) or C(IP:address).", type: list, elements: str, returned: success}
    key_type: {description: "Type of the certified key.", type: str, returned: success}
    is_ca: {description: "Whether C(basicConstraints CA:TRUE) is set.", type: bool, returned: success}
    fingerprint_sha256: {description: "SHA-256 fingerprint of the certificate.", type: str, returned: success}
    public_key_fingerprint: {description: "SHA-256 of the public key (SubjectPublicKeyInfo).", type: str, returned: success}
key:
  description: Facts about the key; never the key itself.
  returned: success
  type: dict
  contains:
    path: {description: "Path of the key.", type: str, returned: success}
    type: {description: "Key type.", type: str, returned: success}
    public_key_fingerprint: {description: "SHA-256 of the public key.", type: str, returned: success}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CA, ISSUER_EXCLUSIVE

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca import ensure_ca
except ImportError:  # cryptography missing: run() reports it
    ensure_ca = None


def main() -> None:
    module = AnsibleModule(argument_spec=CA, mutually_exclusive=ISSUER_EXCLUSIVE, supports_check_mode=True)
    run(module, ensure_ca)


if __name__ == "__main__":
    main()
