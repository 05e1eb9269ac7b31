#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_tls
short_description: One PostgreSQL cluster's key, certificate and configuration files, in one host execution when nothing changed
version_added: 0.2.0
description:
  - Internal to the collection's roles - its options may change in any release; use the P(pgtls.ssl.server#role) role.
  - What M(pgtls.ssl.server_cert) and M(pgtls.ssl.cluster_files) do for one cluster, in as few host executions as
    possible - the host is asked once (the key ensured there, its CSR, every folder, file and line compared, and
    what the server serves on 127.0.0.1 at O(probe_port)); the controller decides and signs; a second execution
    installs the certificate and writes the files, only when something differs.
  - An unchanged cluster costs one module execution, a change two (RV(module_executions)) - the second also
    validates, reloads and proves with O(activate), restoring the snapshot on any failure.
  - Every file is planned before the first write, as M(pgtls.ssl.cluster_files) does; the snapshot in
    O(snapshot_dir) is taken once, before the first file of the run is replaced, and holds every file the task
    writes - the keys, certificates and roots of O(material) and O(client_material), O(files) and the files of
    O(lines) - and any O(snapshot_paths) besides.
  - This module is implemented by an action plugin; the host half is M(pgtls.ssl.cluster_files).
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - pgtls.ssl._activate
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - pgtls.ssl._controller_action
  - pgtls.ssl.cryptography
  - pgtls.ssl._openbao
  - pgtls.ssl.issuer
  - pgtls.ssl.renewal
  - pgtls.ssl.record
  - pgtls.ssl.cluster_files
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: One execution - the host compares and writes nothing (a missing key is made in memory, a missing key
      group is only reported), the controller signs in memory; no probe.
  diff_mode:
    support: full
    details: The certificate's subject, SANs, issuer, expiry and fingerprints, and each changed file (a CRL's content
      hidden); never key material.
options:
  material:
    description:
      - The cluster's server key (made on the host, never sent anywhere) and certificate (signed here, with the
        issuer options), as M(pgtls.ssl.server_cert) takes them. Omit it when the certificate comes from elsewhere
        (your own CA) - then only the files are handled.
    type: dict
    suboptions:
      key_path:
        description: The server's private key on the host (C(ssl_key_file)).
        type: path
        required: true
      cert_path:
        description: The server's certificate file on the host (C(ssl_cert_file)), leaf then intermediates.
        type: path
        required: true
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
        description: CN of the certificate. Defaults to the first entry of O(material.subject_alt_names).
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
            gives it its final owner and mode). Its parent must exist. When false, a missing folder is an error.
        type: bool
        default: false
        version_added: 0.2.0
      owner:
        description: Owner of the files on the host.
        type: str
      group:
        description: Group of the files on the host.
        type: str
  client_material:
    description:
      - A client certificate the service presents to PostgreSQL (PgBouncer's own, for C(server_tls_*) with the cert
        method), handled with O(material) in the same executions, plan and snapshot - signed here with the
        C(clientAuth) profile, its CN the role name, its key made on the host. In O(client_material.dir), libpq's
        names - C(postgresql.crt) (leaf, then intermediates), C(postgresql.key) (0600), C(root.crt). Archived in
        the C(issued/) archive under its name, so the revoke playbook finds it by name.
      - Needs O(material) and the collection's CA (O(ca_folder) or the issuer options), not O(external).
    type: dict
    version_added: 0.3.0
    suboptions:
      name:
        description: The PostgreSQL role name (the certificate's CN).
        type: str
        required: true
      dir:
        description: The folder of its files (made when missing, with O(client_material.owner)).
        type: path
        required: true
      owner:
        description: Owner of its files.
        type: str
      group:
        description: Group of its files.
        type: str
  ca_folder:
    description:
      - The CA folder M(pgtls.ssl.ca_folder) keeps on the controller. Its intermediate signs (C(intermediate.crt),
        C(intermediate.key)), its root completes the chain (C(root.crt)) and every certificate issued is archived in
        its C(issued/) - instead of O(issuer_cert_path), O(issuer_key_path), O(issuer_chain_path) and O(record_dir),
        which it excludes (and their C(_content) forms).
    type: path
    version_added: 0.2.0
  external:
    description:
      - Your own CA signs instead of the issuer options - files on the controller. The host's CSR for O(material)'s
        key is written to O(external.csr_path) (for a new key or a missing file only); until O(external.cert_path)
        and O(external.root_path) (and O(external.crl_path) when set) are there, the task fails naming them (the key
        stays on the host, nothing else changes). The certificate is checked here as PostgreSQL and libpq will
        (chain to the root, names, purpose, CRLs), then installed with the root; the host refuses it when it is not
        for its key.
    type: dict
    suboptions:
      csr_path:
        description: Where the CSR goes, on the controller.
        type: path
        required: true
      cert_path:
        description: Your certificate for this cluster (leaf, then intermediates), on the controller.
        type: path
        required: true
      root_path:
        description: Your root, on the controller (installed as O(material.root_cert_path)).
        type: path
        required: true
      crl_path:
        description: Your CRLs (every CA's), on the controller; checked with the certificate.
        type: path
  inspection:
    description:
      - The host's inspection of this cluster (RV(pgtls.ssl.cluster_info#module:clusters[].inspection), made by
        discovery's own execution) - decided on here, so an unchanged cluster costs no execution of its own. Without
        it (or when it does not cover the task's key and files, or made a missing key in memory only), the host is
        asked (M(pgtls.ssl.cluster_files) with O(pgtls.ssl.cluster_files#module:compare_only)).
    type: dict
    version_added: 0.3.0
  allow_stopped:
    description:
      - A cluster that does not run (O(activate.cluster.running=false), what discovery's C(pg_isready) found) gets
        its files, checked without the server, but nothing proves them - the task fails naming it, after writing
        them. With V(true) it warns instead (not proven; the files take effect when the cluster starts).
    type: bool
    default: false
    version_added: 0.3.0
"""

EXAMPLES = r"""
- name: Key, certificate, SSL settings and pg_hba.conf of one cluster
  pgtls.ssl.cluster_tls:
    material:
      key_path: /etc/postgresql/15/main/tls/server.key
      cert_path: /etc/postgresql/15/main/tls/server.crt
      root_cert_path: /etc/postgresql/15/main/tls/root.crt
      subject_alt_names: ["{{ inventory_hostname }}"]
      owner: postgres
      group: postgres
      create_dir: true
    files:
      - path: /etc/postgresql/15/main/conf.d/pgtls.conf
        content: "{{ lookup('ansible.builtin.template', 'pgtls.conf.j2') }}"
        owner: postgres
        group: postgres
    snapshot_dir: /etc/postgresql/15/main/tls/.pgtls-snapshot
    probe_port: 5432
    activate:
      cluster: {version: 15, name: main, port: 5432, config_dir: /etc/postgresql/15/main,
                data_dir: /var/lib/postgresql/15/main, service: postgresql@15-main}
      settings_file: /etc/postgresql/15/main/conf.d/pgtls.conf
      cert_path: /etc/postgresql/15/main/tls/server.crt
      key_path: /etc/postgresql/15/main/tls/server.key
      ca_path: /etc/postgresql/15/main/tls/root.crt
      hostnames: ["{{ inventory_hostname }}"]
    ca_folder: "{{ pki_dir }}"
  register: tls

- name: What the activation did
  ansible.builtin.debug:
    var: tls.activation.steps
  when: tls.activation is defined
"""

RETURN = r"""
reasons:
  description: Why the key or certificate changed (key created, certificate issued, file modes); empty when not.
  returned: success
  type: list
  elements: str
changes:
  description: What changed (or would change) in the files, one C(path - what) entry per folder, file or line.
  returned: success
  type: list
  elements: str
issued:
  description: Whether a new certificate was signed.
  returned: success
  type: bool
served:
  description:
    - What the server served before this task changed anything - RV(served.matches_file) (is it the installed
      certificate), the served leaf's C(fingerprint_sha256), or C(error).
  returned: when O(probe_port) is set, not in check mode
  type: dict
  contains:
    matches_file:
      description: Whether the served leaf is the leaf of the installed certificate file.
      returned: success
      type: bool
certificate:
  description: Facts about the leaf now in place (or that would be, in check mode), as M(pgtls.ssl.ca) returns them.
  returned: when O(material) is set
  type: dict
summary:
  description:
    - One row per cluster for callers (the server role's C(pgtls_server_certificates)) - C(cluster) (version/name,
      or C(pgbouncer:<port>)),
      C(port), C(running), C(tls_dir), C(not_after), C(days_left), C(fingerprint_sha256), C(issuer) and C(reasons).
  returned: when O(material) and O(activate) are set
  type: dict
client_certificate:
  description: Facts about O(client_material)'s leaf now in place, as M(pgtls.ssl.ca) returns them.
  returned: when O(client_material) is set
  type: dict
  version_added: 0.3.0
client_issued:
  description: Whether a new client certificate was signed.
  returned: when O(client_material) is set
  type: bool
  version_added: 0.3.0
client_reasons:
  description: Why the client certificate's files changed (empty when they did not).
  returned: when O(client_material) is set
  type: list
  elements: str
  version_added: 0.3.0
chain_length:
  description: Certificates in the certificate file (leaf and intermediates).
  returned: when O(material) is set
  type: int
snapshot_taken:
  description: Whether a snapshot was taken in O(snapshot_dir) by this task.
  returned: success
  type: bool
stale_snapshot_removed:
  description: Whether a snapshot an interrupted run left was removed (nothing to change).
  returned: success
  type: bool
csr_written:
  description: Whether the CSR for your own CA was written (O(external)).
  returned: when O(external) is set
  type: bool
stale:
  description: Nothing differed, but the server served another certificate than the installed one (an earlier run
    stopped before its reload); it was activated all the same.
  returned: success
  type: bool
interrupted:
  description:
    - Nothing differed, but a run stopped before its end had left its snapshot in O(snapshot_dir) - it may have written
      files (a CRL, a C(pg_hba.conf) rule) that the server never loaded - so the server was validated, reloaded and
      proven all the same (only with O(activate)); the snapshot was removed. Check mode reports it as a change.
  returned: success
  type: bool
  version_added: 0.4.0
activation:
  description:
    - What the activation did - C(steps) (each C(step) with its C(status), V(ok) or V(changed), and C(ms), the
      milliseconds it took), C(precheck_ms) (the throw-away postmaster's time), C(snapshot_removed).
  returned: when O(activate) is set and something was activated
  type: dict
module_executions:
  description: Module executions on the host - 1 when nothing changed, 2 when something was written.
  returned: success
  type: int
"""
