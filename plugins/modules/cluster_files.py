#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_files
short_description: A PostgreSQL cluster's configuration files in one pass, with a snapshot before the first write
version_added: 0.2.0
description:
  - Compares every folder, file and line it is given with what the host has, and writes only what differs, each
    file atomically with its final owner and mode. One module execution for all of a cluster's files; the server
    role renders its templates on the controller and passes the results here.
  - Everything is checked before the first write (owners, groups and modes exist and parse, folders are there or
    listed in O(directories), no path is a symbolic link, no file is given twice), so bad input changes nothing.
  - When anything is to change and O(snapshot_dir) is set, copies of O(snapshot_paths) are first taken there
    (replacing an earlier snapshot); each copy keeps its original's owner and mode. When nothing is to change, a
    snapshot left by an interrupted run is removed.
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pgtls.ssl.cluster_files
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports what would change, writes nothing, takes no snapshot.
  diff_mode:
    support: full
    details: Before and after of each changed file and line (a file with O(files[].diff=false) shows no content).
options:
  material:
    description:
      - The server key and certificate of the cluster, handled in the same execution (set by the
        M(pgtls.ssl.cluster_tls) action, which signs on the controller). Without O(material.certificate) the key is
        ensured (made here when missing) and its CSR returned in RV(material); with it, the certificate is
        installed, the snapshot taken first when anything is replaced. As M(pgtls.ssl.host_material) does for one
        item.
    type: dict
    suboptions:
      name:
        description: A label for messages and results (for example the role name).
        type: str
        required: true
      key_path:
        description: The private key file.
        type: path
        required: true
      cert_path:
        description: The certificate file (leaf first, then intermediates).
        type: path
        required: true
      root_path:
        description: Where O(material.root) is written (a client's C(root.crt)).
        type: path
      csr_path:
        description: Also keep the CSR in this file (rewritten only when key, subject or SANs change).
        type: path
      key_type:
        description: Type of a new key; an existing key of another type is replaced (via a pending key).
        type: str
        default: ec-p256
        choices: [ec-p256, ec-p384, rsa2048, rsa3072, rsa4096, ed25519]
      common_name:
        description: CN of the CSR. Defaults to O(material.name).
        type: str
      subject_alt_names:
        description: SANs of the CSR, C(DNS:name), C(IP:address), or a bare name or address.
        type: list
        elements: str
        default: []
      owner:
        description: Owner of the files (name or uid).
        type: str
      group:
        description: Group of the files (name or gid).
        type: str
      key_mode:
        description: Mode of the key file.
        type: str
        default: '0600'
      cert_mode:
        description: Mode of the certificate, CSR and root files.
        type: str
        default: '0644'
      create_dir:
        description: Create the key's folder (mode 0700, same owner) if it is missing.
        type: bool
        default: false
      base_dir:
        description:
          - Every file of the item must resolve (symbolic links and C(..) followed) to a path inside this folder, or
            the task fails before anything is written. The client_cert action sets it to O(pgtls.ssl.client_cert#module:dest).
        type: path
        version_added: 0.2.0
      pkcs8_path:
        description: Also keep the key here as unencrypted PKCS#8 DER (owner and mode of the key).
        type: path
        version_added: 0.2.0
      pkcs12_path:
        description: Also keep key, certificate and intermediates here as PKCS#12 encrypted with
          O(material.pkcs12_passphrase) (owner and mode of the key).
        type: path
        version_added: 0.2.0
      pkcs12_passphrase:
        description: Passphrase of O(material.pkcs12_path). Never logged.
        type: str
        version_added: 0.2.0
      certificate:
        description: The chain to install, PEM, leaf first.
        type: str
      root:
        description: With O(material.certificate), the trust anchors for O(material.root_path), PEM.
        type: str
      snapshot_dir:
        description:
          - With O(material.certificate), copies of O(material.snapshot_paths) are taken in this folder before the first
            file is replaced (see M(pgtls.ssl.server_cert)), unless O(material.snapshot_taken).
        type: path
        version_added: 0.2.0
      snapshot_paths:
        description: The files to copy into the snapshot.
        type: list
        elements: path
        default: []
        version_added: 0.2.0
      snapshot_group:
        description: Group of the snapshot folder.
        type: str
        version_added: 0.2.0
      snapshot_taken:
        description: This run already took its snapshot; take none.
        type: bool
        default: false
        version_added: 0.2.0
  compare_only:
    description:
      - Compare every folder, file and line and report, writing none of them (the key of O(material) is still
        ensured); a snapshot an interrupted run left is removed when nothing differs. M(pgtls.ssl.cluster_tls) asks
        this first and writes only when something differs.
    type: bool
    default: false
  activate:
    description:
      - After the writes, in the same execution, when anything changed (or O(activate.always)) - the files as
        PostgreSQL parses them (C(pg_hba_file_rules), C(pg_file_settings) with later files and C(ALTER SYSTEM)
        shadowing O(activate.settings_file), C(pg_ident_file_mappings) from 15 on), the key, certificate, root and
        CRLs as the server will read them, optionally a throw-away postmaster with the new settings, then reload
        (restart with O(activate.restart)), wait until the new certificate is served, and connect with libpq
        (C(sslmode=verify-full), by name, on 127.0.0.1).
      - On any failure the snapshot in O(snapshot_dir) is restored, the server reloaded, and the task fails naming
        the step and its output, with the server log's tail.
    type: dict
    suboptions:
      cluster:
        description: The cluster (as M(pgtls.ssl.cluster_info) describes it).
        type: dict
        required: true
        suboptions:
          version: {description: PostgreSQL major version., type: int, required: true}
          name: {description: Cluster name (Debian) or a label., type: str, required: true}
          port: {description: Port., type: int, required: true}
          config_dir: {description: Folder of postgresql.conf., type: path, required: true}
          data_dir: {description: Data folder (pg_ctl restart)., type: path, required: true}
          service:
            description: The systemd unit; empty - no service manager (pg_reload_conf(), pg_ctl restart).
            type: str
            default: ""
          socket_dir: {description: Unix socket folder for psql., type: path}
          log_file: {description: The server log (its tail explains a failure)., type: path}
          running:
            description: Whether it runs (a stopped cluster gets the checks that need no server).
            type: bool
            default: true
          bin_dir: {description: Folder of initdb and pg_ctl., type: path}
      server_user:
        description: The server's OS user (runs psql, initdb and pg_ctl).
        type: str
        default: postgres
      settings_file:
        description: The role's SSL settings file (checked for shadowing; the throw-away postmaster reads it).
        type: path
        required: true
      cert_path:
        description: The certificate the server must serve.
        type: path
        required: true
      key_path:
        description: Its key.
        type: path
        required: true
      ca_path:
        description: The root clients trust (C(ssl_ca_file)); libpq's C(sslrootcert).
        type: path
        required: true
      crl_path:
        description: The CRLs (C(ssl_crl_file)); empty - none.
        type: path
      hostnames:
        description: Names the certificate must hold; libpq connects by the first.
        type: list
        elements: str
        required: true
      warn_days:
        description: Warn when fewer days are left.
        type: int
        default: 30
      precheck_postmaster:
        description: Start a throw-away postmaster (initdb in a scratch folder) with the new settings before the reload.
        type: bool
        default: false
      verify:
        description: Wait for the new certificate and connect with libpq after the reload.
        type: bool
        default: true
      restart:
        description: Restart instead of reload (the server's user joined the key group).
        type: bool
        default: false
      always:
        description: Activate even when nothing was written (the server serves another certificate than the installed one).
        type: bool
        default: false
      wait_seconds:
        description: How long to wait for the new certificate to be served.
        type: int
        default: 5
"""

EXAMPLES = r"""
- name: SSL settings, pg_hba.conf and the include line of one cluster
  pgtls.ssl.cluster_files:
    directories:
      - {path: /etc/postgresql/15/main/conf.d, owner: postgres, group: postgres, mode: "0755"}
    files:
      - path: /etc/postgresql/15/main/conf.d/pgtls.conf
        content: "{{ lookup('ansible.builtin.template', 'pgtls.conf.j2') }}"
        owner: postgres
        group: postgres
      - path: /etc/postgresql/15/main/pg_hba.conf
        content: "{{ lookup('ansible.builtin.template', 'pg_hba.conf.j2') }}"
        owner: postgres
        group: postgres
        mode: "0640"
    lines:
      - {path: /etc/postgresql/15/main/postgresql.conf, regexp: "^\\s*include_dir\\s*=\\s*'conf\\.d'",
         line: "include_dir = 'conf.d'"}
    snapshot_dir: /etc/postgresql/15/main/tls/.pgtls-snapshot
    snapshot_paths: [/etc/postgresql/15/main/pg_hba.conf, /etc/postgresql/15/main/conf.d/pgtls.conf]
  register: files
"""

RETURN = r"""
key_group_changes:
  description: What was done for O(key_group) (group created, user added), or would be in check mode.
  returned: when O(key_group) is set
  type: list
  elements: str
material:
  description:
    - What the host has for O(material) - the key's path, state and public key fingerprint, a CSR for it, the
      certificate and root files in place (public material, never the key) and the changes made; after an install,
      the changes and whether the snapshot was taken.
  returned: when O(material) is set
  type: dict
activation:
  description: What the activation did - C(steps) (each C(step) with its C(status)), C(precheck_ms), C(snapshot_removed).
  returned: when O(activate) is set and something was activated
  type: dict
failed_step:
  description: The activation step that failed (the files were restored).
  returned: failure of the activation
  type: str
log_tail:
  description: The end of the server log when the activation failed.
  returned: failure of the activation
  type: str
served:
  description:
    - What the server serves - RV(served.matches_file), the served leaf's C(fingerprint_sha256), or C(error) when
      the probe failed (a stopped server, SSL off).
  returned: when O(probe_port) is set with O(compare_only), not in check mode
  type: dict
  contains:
    matches_file:
      description: Whether the served leaf is the leaf of the certificate file.
      returned: success
      type: bool
changes:
  description: What changed (or would change), one C(path - what) entry per folder, file or line.
  returned: success
  type: list
  elements: str
snapshot_taken:
  description: Whether a snapshot was taken in O(snapshot_dir) by this run.
  returned: success
  type: bool
stale_snapshot_removed:
  description: Whether a snapshot left by an earlier run was removed (nothing to change in this run).
  returned: success
  type: bool
legacy_snapshots_removed:
  description: The C(/tmp/ansible.*.pgtls) folders removed.
  returned: O(remove_legacy_snapshots=true) and not in check mode
  type: list
  elements: str
"""

from functools import partial

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CLUSTER_FILES
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.activation import Activation
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_files import cluster_files


def main() -> None:
    module = AnsibleModule(argument_spec=CLUSTER_FILES, supports_check_mode=True)
    activation = partial(Activation, run_command=module.run_command)  # its programs run through run_command
    run(module, lambda params, check_mode: cluster_files(params, check_mode, activation))


if __name__ == "__main__":
    main()
