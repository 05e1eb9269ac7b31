#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: server_cert
short_description: Ensure a PostgreSQL server's key and certificate - key made on the host, signed on the controller
version_added: 0.1.0
description:
  - On the database host, ensures the private key (generated there, created with its final owner and mode, never
    sent anywhere) and a CSR; on the controller, signs it with the issuing CA; on the host, installs C(server.crt)
    as PostgreSQL wants it - the leaf first, then the intermediates, never the root.
  - The CA key never goes to the host. It is read only when something must be signed.
  - A certificate is issued again only when the key, the subject, the SANs, the issuer or the profile changed, or
    inside the renewal window (O(renew_before_days), O(renew_before_percent)); the result says why in RV(reasons).
  - One task per host. A first issue costs two module executions on the host (prepare, install); an unchanged
    re-run costs one (RV(module_executions)).
  - A new key for an existing certificate is kept aside (C(<key_path>.pgtls-new)) until its certificate is
    installed, so key and certificate never disagree on disk, even if signing fails in between.
  - Refuses a key owner and mode PostgreSQL would reject (C(private key file has group or world access)) -
    V(postgres) with V(0600), or V(root) with V(0640) and a group the server's user belongs to.
  - O(key_path), O(cert_path), O(csr_path) and O(root_cert_path) must name four different files (after C(..) and
    symbolic links). A symbolic link at O(key_path) is refused, never followed - it could point at another
    service's key. An existing file of another kind where a certificate or key goes is never replaced.
  - Lifetimes that make no sense are refused before the host is contacted - O(valid_days) outside 1 to 36500,
    O(renew_before_days) not below O(valid_days), O(renew_before_percent) over 99.
  - A CA key given as content, or as an existing file, is loaded (and its passphrase checked) before the host makes
    any key. Keys made before a later failure wait as C(<key_path>.pgtls-new) and are reused by the next run; a run
    stopped between installing the certificate and activating its key is completed by the next run.
  - The signing CA is O(ca_folder) (the collection's CA folder), or the O(issuer_cert_path) /
    O(issuer_cert_content) options with their key and chain.
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
    details: The host writes nothing (a missing key is made in memory); the controller still signs in memory, so a
      wrong CA passphrase fails in check mode too. One module execution.
  diff_mode:
    support: full
    details: Subject, SANs, issuer, expiry and fingerprints before and after; never key material.
options:
  key_path:
    description: The server's private key on the host (C(ssl_key_file)).
    type: path
    required: true
  cert_path:
    description: The server's certificate file on the host (C(ssl_cert_file)), leaf then intermediates.
    type: path
    required: true
  csr_path:
    description: Also keep the CSR on the host at this path.
    type: path
  root_cert_path:
    description:
      - Also write the root certificate here (for C(ssl_ca_file)). The root must be the issuer or be in
        O(issuer_chain_path).
    type: path
  key_type:
    description:
      - Type of a new key. An existing key of another type is replaced.
      - V(ed25519) needs OpenSSL 1.1.1 or newer on the server and every client, and is not accepted by many
        non-libpq drivers (JDBC, .NET, older Go).
    type: str
    default: ec-p256
    choices: [ec-p256, ec-p384, rsa2048, rsa3072, rsa4096, ed25519]
  common_name:
    description: CN of the certificate. Defaults to the first entry of O(subject_alt_names).
    type: str
  subject:
    description: Other subject fields (C(country), C(state), C(locality), C(organization), C(organizational_unit)).
    type: dict
    default: {}
  subject_alt_names:
    description:
      - Names and addresses clients connect to, as C(DNS:name), C(IP:address) or bare. libpq's C(verify-full)
        ignores the CN once a DNS SAN exists, and honours IP SANs only from libpq 15.
    type: list
    elements: str
    required: true
  valid_days:
    description: Lifetime of a new certificate, cut to the issuer's end date.
    type: int
    default: 365
  client_auth:
    description:
      - Add the extended key usage clientAuth to serverAuth, for a server that presents its certificate as a client
        too - etcd with client certificates required (its gRPC gateway dials its own server with it, and its peers
        dial each other with it; a serverAuth-only certificate makes etcd refuse itself with "certificate specifies
        an incompatible key usage"). PostgreSQL and PgBouncer need no such thing.
      - Changing it issues the certificate again.
    type: bool
    default: false
    version_added: 0.3.0
  key_mode:
    description: Mode of the key file. V(0600) for owner V(postgres), V(0640) for owner V(root) and a group.
    type: str
    default: '0600'
  cert_mode:
    description: Mode of the certificate (and root) file.
    type: str
    default: '0644'
  create_dir:
    description:
      - Create the key's folder when it is missing (mode 0700, the key's owner and group; the server role then
        gives it its final owner and mode), and the folders above it that are missing (mode 0755, owned by the user
        the module runs as). When false, a missing folder is an error.
    type: bool
    default: false
    version_added: 0.2.0
  owner:
    description: Owner of the files on the host.
    type: str
  group:
    description: Group of the files on the host.
    type: str
"""

EXAMPLES = r"""
- name: Ensure the server certificate (Debian layout, key root:ssl-cert 0640)
  pgtls.ssl.server_cert:
    key_path: /etc/ssl/private/postgresql.key
    cert_path: /etc/ssl/certs/postgresql.crt
    root_cert_path: /etc/postgresql/15/main/root.crt
    subject_alt_names:
      - "{{ inventory_hostname }}"
      - "{{ ansible_facts['fqdn'] }}"
      - "IP:{{ ansible_facts['default_ipv4']['address'] }}"
    owner: root
    group: ssl-cert
    key_mode: '0640'
    issuer_cert_path: "{{ pki_dir }}/intermediate.crt"
    issuer_key_path: "{{ pki_dir }}/intermediate.key"
    issuer_chain_path: "{{ pki_dir }}/root.crt"
  register: server_cert

- name: Say why it was issued
  ansible.builtin.debug:
    var: server_cert.reasons

- name: The same, signed by the CA folder the site playbook made (issuer, chain and archive by its layout)
  pgtls.ssl.server_cert:
    key_path: /etc/postgresql/15/main/tls/server.key
    cert_path: /etc/postgresql/15/main/tls/server.crt
    root_cert_path: /etc/postgresql/15/main/tls/root.crt
    subject_alt_names: ["{{ inventory_hostname }}"]
    owner: postgres
    group: postgres
    ca_folder: "{{ pki_dir }}"
"""

RETURN = r"""
reasons:
  description: Why something changed (key created, certificate issued, file modes...); empty when nothing did.
  returned: success
  type: list
  elements: str
  sample: ["subject alternative names changed (+DNS:db1.example.com)"]
issued:
  description: Whether a new certificate was signed.
  returned: success
  type: bool
module_executions:
  description: How many module executions on the host the task took (2 for a first issue, 1 when unchanged).
  returned: success
  type: int
cert_path:
  description: The certificate file.
  returned: success
  type: str
key_path:
  description: The key file (the key itself is never returned).
  returned: success
  type: str
chain_length:
  description: Certificates in the file (leaf and intermediates).
  returned: success
  type: int
certificate:
  description: Facts about the leaf now in place (or that would be, in check mode) - subject, issuer, serial,
    validity, C(days_left), SANs, key type, fingerprints - as M(pgtls.ssl.ca) returns them.
  returned: success
  type: dict
"""
