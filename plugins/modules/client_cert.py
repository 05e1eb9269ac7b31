#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: client_cert
short_description: Ensure client certificates for PostgreSQL roles, many in one task
version_added: 0.1.0
description:
  - Ensures, for each entry of O(clients), a certificate with CN = the role name and extended key usage
    C(clientAuth), for PostgreSQL's C(cert) method and C(clientcert=verify-full).
  - Writes what libpq expects in the client's folder - C(postgresql.crt) (leaf, then intermediates, which the
    server needs because C(ssl_ca_file) holds only the root), C(postgresql.key) (mode 0600, as libpq demands), and
    C(root.crt) (the root that verifies the server).
  - With O(key_location=target), keys are generated on the host where the client lives, CSRs come back to the
    controller to be signed, and only certificates go back - the same split as M(pgtls.ssl.server_cert). With
    O(key_location=controller), everything is written on the controller, for systems Ansible does not manage.
  - All clients are handled in one call - two module executions for a first issue, one when nothing changed,
    whether the list has one entry or a thousand.
  - A client name is a PostgreSQL role name (at most 63 bytes, no NUL). Under O(dest), its folder is the name
    percent-encoded (C(/) becomes C(%2F), a leading C(.) becomes C(%2E)), so every folder stays inside O(dest) and
    no two names share one; the files are checked to resolve inside O(dest) on the host, symbolic links included.
  - The same guards as M(pgtls.ssl.server_cert) - a symbolic link at a key path is refused, no file of another kind
    is replaced, every folder is checked before the first write, nonsensical lifetimes are refused.
  - With O(ca_folder), a client whose name the CA folder's revocation registry (C(revoked.yml), written by the
    C(revoke) playbook and M(pgtls.ssl.revocation_registry)) lists is left out - never certified again, its files
    left as they are - and the task warns, naming it; RV(revoked_names_skipped) lists those names. To certify such a
    role again, remove its entries from the registry and its old key from its folder, so a new key is made.
  - With O(crl), the CRLs of O(ca_folder) (its C(crl.pem)) are written as C(root.crl) beside C(root.crt), so libpq
    (C(sslcrl), read from C(~/.postgresql/root.crl) when present) refuses a server whose certificate the CA revoked,
    a stolen key and certificate included.
  - This module is implemented by an action plugin; the host half is M(pgtls.ssl.host_material).
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - pgtls.ssl._controller_action
  - pgtls.ssl.cryptography
  - pgtls.ssl._openbao
  - pgtls.ssl.issuer
  - pgtls.ssl.renewal
  - pgtls.ssl.record
  - pgtls.ssl._ca_folder
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Nothing is written; signing happens in memory.
  diff_mode:
    support: full
    details: Certificate metadata of the clients that change.
options:
  clients:
    description: The database roles to certify.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The role name; it becomes the certificate's CN (PostgreSQL compares it case-sensitively).
        type: str
        required: true
      dir:
        description:
          - The folder for the three files. Defaults to O(dest)/<name>; without O(dest), with the keys on the host
            (O(key_location=target)), the home folder of O(clients[].owner) followed by C(.postgresql) - where libpq
            looks - as the host's passwd has it (a user without an entry there is refused, naming it).
          - A C(~user) path given here is expanded on the controller, as every path option is; leave O(clients[].dir)
            out for the owner's home on the host.
        type: path
      owner:
        description: Owner of the folder and files. Defaults to O(owner).
        type: str
      group:
        description:
          - Group of the folder and files. Defaults to O(group); when neither is given and the keys are on the host,
            the primary group of the owner there.
        type: str
      rekey_before:
        description:
          - This client's key is replaced when its certificate was issued before this time (ISO 8601, not in the
            future), as O(rekey_before) for all of them; the later of the two applies.
        type: str
  dest:
    description:
      - Base folder for clients without O(clients[].dir); each gets C(<dest>/<name>), the name percent-encoded
        where it holds characters other than letters, digits and C(@+=,-_.) (or starts with a dot).
      - With O(create_dirs), a missing O(dest) is made (mode 0755) when its parent is a real folder; a O(dest)
        whose parent is missing too, or reached through a symbolic link, is refused.
    type: path
  formats:
    description:
      - What to write besides the PEM files libpq reads (C(postgresql.crt), C(postgresql.key), C(root.crt)), which
        are always written.
      - V(pkcs8_der) - C(postgresql.pk8), the key as unencrypted PKCS#8 DER, for the PostgreSQL JDBC driver
        (C(sslkey=.../postgresql.pk8)); same owner and mode as the key.
      - V(pkcs12) - C(postgresql.p12), key, certificate and intermediates encrypted with O(pkcs12_passphrase), for
        Java keystores, the JDBC driver (C(sslkey=.../postgresql.p12), C(sslpassword)) and .NET; the key entry's
        alias is C(user), the only one the JDBC driver reads; same owner and mode as the key; rewritten only when
        it no longer opens with the passphrase or no longer holds the active key and chain.
    type: list
    elements: str
    default: [pem]
    choices: [pem, pkcs8_der, pkcs12]
    version_added: 0.2.0
  pkcs12_passphrase:
    description: Passphrase of C(postgresql.p12); required with V(pkcs12) in O(formats). Never logged.
    type: str
    version_added: 0.2.0
  crl:
    description:
      - Also write C(root.crl) in each client's folder - the CRLs of O(ca_folder) (its C(crl.pem), one per CA) - for
        libpq's C(sslcrl), rewritten whenever the CA folder signed new ones. Needs O(ca_folder).
      - With a CRL, libpq checks every CA of the server's chain (C(X509_V_FLAG_CRL_CHECK_ALL)) and refuses every
        server once a CRL has expired, so the CRLs are checked first - one current CRL signed by each CA the client
        trusts - and refused otherwise, naming the file; fewer than 7 days left gives a warning. Run this again
        whenever the CA folder signed new CRLs (the site playbook does, for the client role's
        C(pgtls_client_crl)); RV(crl_next_update) says when they expire.
      - Drivers that do not read C(root.crl) by themselves (JDBC, asyncpg, node-postgres) ignore it.
    type: bool
    default: false
    version_added: 0.4.0
  crl_only:
    description:
      - With O(crl), write only C(root.crl), in the folders where a client's certificate is in place - nothing is
        issued or renewed, no key is made or read, and a client without a certificate yet is left for its first
        issue. RV(clients) then holds C(name), C(dir), C(crl), C(owner), C(changed) and C(reasons).
      - The playbooks run it before the servers present a certificate of a new CA (an intermediate or root
        rotation), so a client that checks CRLs already holds that CA's CRL.
    type: bool
    default: false
    version_added: 0.4.0
  key_location:
    description: Where keys are generated and the files written - the task's host, or the controller.
    type: str
    default: target
    choices: [target, controller]
  key_type:
    description: Type of new keys.
    type: str
    default: ec-p256
    choices: [ec-p256, ec-p384, rsa2048, rsa3072, rsa4096, ed25519]
  subject:
    description: Other subject fields for every certificate (C(organization), ...).
    type: dict
    default: {}
  valid_days:
    description: Lifetime of new certificates, cut to the issuer's end date.
    type: int
    default: 365
  create_dirs:
    description: Create a missing client folder (mode 0700).
    type: bool
    default: true
  owner:
    description: Default owner of the client files.
    type: str
  group:
    description: Default group of the client files.
    type: str
"""

EXAMPLES = r"""
- name: Client certificate for the application's OS user, key made on the application host
  pgtls.ssl.client_cert:
    clients:
      # The files in ~app/.postgresql on the host, group app's primary group.
      - name: app
        owner: app
    issuer_cert_path: "{{ pki_dir }}/intermediate.crt"
    issuer_key_path: "{{ pki_dir }}/intermediate.key"
    issuer_chain_path: "{{ pki_dir }}/root.crt"

- name: Bundles for systems Ansible does not manage, written on the controller
  pgtls.ssl.client_cert:
    key_location: controller
    dest: "{{ pki_dir }}/clients"
    clients: "{{ reporting_roles | map('community.general.dict_kv', 'name') | list }}"
    issuer_cert_path: "{{ pki_dir }}/intermediate.crt"
    issuer_key_path: "{{ pki_dir }}/intermediate.key"
    issuer_chain_path: "{{ pki_dir }}/root.crt"
  run_once: true

- name: Signed by the CA folder the site playbook made; names revoked there are left out
  pgtls.ssl.client_cert:
    clients:
      - {name: app, dir: /home/app/.postgresql, owner: app, group: app}
      - {name: reporting, dir: /home/reporting/.postgresql, owner: reporting, group: reporting}
    ca_folder: "{{ pki_dir }}"
  register: client_certs

- name: Roles whose certificates were revoked by name
  ansible.builtin.debug:
    var: client_certs.revoked_names_skipped
"""

RETURN = r"""
issued:
  description: How many certificates were signed.
  returned: success
  type: int
module_executions:
  description: Module executions on the host (0 with O(key_location=controller)).
  returned: success
  type: int
revoked_names_skipped:
  description:
    - The names of O(clients) that the registry of O(ca_folder) revokes, left out (no key, certificate or file made
      or changed for them), in the order of O(clients); empty without O(ca_folder).
  returned: success
  type: list
  elements: str
  sample: [mallory]
  version_added: 0.2.0
crl_next_update:
  description: When the earliest of the CRLs written for O(crl) expires (ISO 8601); null without O(crl).
  returned: success
  type: str
  version_added: 0.4.0
clients:
  description: One entry per client, in order (the ones left out as revoked are not listed).
  returned: success
  type: list
  elements: dict
  contains:
    name: {description: "Role name.", type: str, returned: success}
    dir: {description: "Folder of the files (the owner's home expanded on the host).", type: str, returned: success}
    crl: {description: "The CRL file written with O(crl) (C(root.crl) in the folder), or null.", type: str,
          returned: success}
    owner: {description: "Owner of the files, or null.", type: str, returned: success}
    group: {description: "Group id the files get, or null (left as created).", type: int, returned: success}
    home: {description: "Home folder of the owner where the keys are made, or null without an owner.", type: str,
           returned: success}
    changed: {description: "Whether anything changed for this client.", type: bool, returned: success}
    issued: {description: "Whether a certificate was signed.", type: bool, returned: success}
    reasons: {description: "Why.", type: list, elements: str, returned: success}
    serial: {description: "Serial of the certificate in place, colon hex.", type: str, returned: success}
    not_after: {description: "End of validity (ISO 8601).", type: str, returned: success}
    fingerprint_sha256: {description: "SHA-256 fingerprint.", type: str, returned: success}
"""
