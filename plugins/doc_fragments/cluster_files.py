# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # A cluster's folders, files and lines, its snapshot, the served-certificate probe and the key group
    # (pgtls.ssl.cluster_files, and pgtls.ssl.cluster_tls which hands them to it).
    DOCUMENTATION = r"""
options:
  directories:
    description: Folders that must exist, created (parent first in the list) or given this owner, group and mode.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The folder.
        type: path
        required: true
      owner:
        description: Owner (name or uid); unset leaves it.
        type: str
      group:
        description: Group (name or gid); unset leaves it.
        type: str
      mode:
        description: Octal mode.
        type: str
        default: "0755"
  files:
    description: Files with their whole content.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file.
        type: path
        required: true
      content:
        description: What the file holds.
        type: str
        required: true
      owner:
        description: Owner (name or uid); unset leaves it.
        type: str
      group:
        description: Group (name or gid); unset leaves it.
        type: str
      mode:
        description: Octal mode.
        type: str
        default: "0644"
      diff:
        description: Show the content in diff mode (false for a large file such as a CRL).
        type: bool
        default: true
  lines:
    description:
      - A line in an existing file (for instance C(include_dir = 'conf.d') in C(postgresql.conf)), with
        M(ansible.builtin.lineinfile)'s rule - the last line matching O(lines[].regexp) is replaced by
        O(lines[].line), or the line is appended. The file keeps its owner and mode.
      - Several lines for one file are set in order, in one write.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file; it must exist.
        type: path
        required: true
      regexp:
        description: Python regular expression for the line to replace.
        type: str
        required: true
      line:
        description: The line.
        type: str
        required: true
  snapshot_dir:
    description:
      - Folder for the snapshot (created with mode 0750, owner root), taken only when the same execution activates
        (O(activate)) and removed by the activation. No snapshot when unset.
      - It must be missing or a snapshot pgtls.ssl made (its marker C(.pgtls-snapshot-of), or copies only); anything
        else there is refused, never deleted.
    type: path
  snapshot_paths:
    description: The files to copy into the snapshot (those that exist); usually every file the caller may change.
    type: list
    elements: path
    default: []
  snapshot_group:
    description: Group of the snapshot folder.
    type: str
  remove_legacy_snapshots:
    description:
      - Also remove the snapshots releases before 0.2 kept in C(/tmp/ansible.*.pgtls) (owned by root, older than an
        hour - never a run in progress) when a killed run left them behind; they may hold key copies.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for the host's lock on this cluster (a file in C(/run/lock), or the temporary folder where
        that is missing or not writable, named by a digest of O(snapshot_dir), else of the key's path) that another
        run on the same host holds - two jobs whose limits overlap take turns, each execution planning against the
        files as the other left them.
    type: int
    default: 300
    version_added: 0.3.0
  probe_port:
    description:
      - Also ask the server on C(127.0.0.1) at this port which certificate it serves (SSLRequest, then TLS) and
        compare its leaf with the certificate file (RV(served)). Not in check mode. M(pgtls.ssl.cluster_files) asks
        only with C(compare_only); M(pgtls.ssl.cluster_tls) in its first execution.
    type: int
  probe_cert_path:
    description: The certificate file the probe compares with (default the certificate of O(material)).
    type: path
  key_group:
    description:
      - The root_group layout's key group, ensured first (the folders and files are planned with its gid) - a system
        group created when missing, O(key_group.user) added to it. A running postmaster sees a new group only after
        a restart; the caller decides that (M(pgtls.ssl.cluster_info) reports C(key_group_member)).
    type: dict
    suboptions:
      name:
        description: The group.
        type: str
        required: true
      user:
        description: The server's OS user.
        type: str
        required: true
"""
