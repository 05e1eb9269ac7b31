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
  - Internal to the collection's roles - its options may change in any release; use the P(pgtls.ssl.server#role) role.
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
  - pgtls.ssl._host_item.material
  - pgtls.ssl._activate
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
  compare_only:
    description:
      - Compare every folder, file and line and report, writing none of them (the key of O(material) is still
        ensured), with each one's state in RV(states) (the cluster step's inspection, as M(pgtls.ssl.cluster_info)
        makes it with O(pgtls.ssl.cluster_info#module:inspect)); a snapshot an interrupted run left is removed when
        nothing differs. M(pgtls.ssl.cluster_tls) asks this when it has no inspection of the cluster.
    type: bool
    default: false
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
client_material:
  description: The same for O(client_material).
  returned: when O(client_material) is set
  type: dict
  version_added: 0.3.0
activation:
  description: What the activation did - C(steps) (each C(step) with its C(status) and C(ms)), C(precheck_ms),
    C(snapshot_removed).
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
states:
  description:
    - With O(compare_only), each folder's, file's and line file's state as the controller decides on it - C(kind)
      (missing, file, folder, link, other), C(owner), C(group), C(mode), a file's C(sha256) (never its content) and,
      for a file O(lines) names, C(sha256_with_lines).
  returned: O(compare_only=true)
  type: dict
  version_added: 0.3.0
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
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.activation import activation_for
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_files import cluster_files


def main() -> None:
    module = AnsibleModule(argument_spec=CLUSTER_FILES, supports_check_mode=True)
    activation = partial(activation_for, run_command=module.run_command)  # its programs run through run_command
    run(module, lambda params, check_mode: cluster_files(params, check_mode, activation))


if __name__ == "__main__":
    main()
