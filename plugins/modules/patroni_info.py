#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: patroni_info
short_description: What a Patroni member's configuration says of its identity and the CA it trusts (read only)
version_added: 0.3.0
description:
  - Reads a member's Patroni YAML configuration file O(path) and returns its C(scope) and C(name), the hosts of
    C(restapi.connect_address) and C(postgresql.connect_address) (the names the member's certificate must carry),
    its etcd section, and every CA file it names (C(postgresql.parameters.ssl_ca_file), C(restapi.cafile),
    C(ctl.cacert), C(postgresql.authentication.replication.sslrootcert), C(etcd3.cacert) or C(etcd.cacert)) with
    the certificates in it.
  - With O(probe_etcd), each etcd address of the file is asked for its certificate (a TLS handshake, nothing
    more) and RV(etcd_endpoints) says whether it names the host Patroni dials - Patroni checks it, and a member that
    cannot reach etcd demotes its leader.
  - Nothing else of the file is returned - it holds passwords. Nothing is written.
  - The pgtls.ssl.patroni role reads every member with it before any member changes, so that members trusting
    another root than the CA folder's (or disagreeing with each other) stop the run on the controller.
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pgtls.ssl.cryptography
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reads only; the same in check mode.
  diff_mode:
    support: none
options:
  path:
    description: Patroni's YAML configuration file; a symbolic link there is refused.
    type: path
    required: true
  probe_etcd:
    description: Ask each etcd address of the file (C(hosts), C(host), C(url), C(proxy)) which certificate it serves.
    type: bool
    default: false
  probe_timeout:
    description: Seconds to wait for each etcd address's connection and handshake.
    type: float
    default: 5.0
seealso:
  - module: pgtls.ssl.patroni_config
"""

EXAMPLES = r"""
- name: Which CA does this member trust now?
  pgtls.ssl.patroni_info:
    path: /etc/patroni/patroni.yml
  register: member
  become: true
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: success
  type: str
scope:
  description: The cluster's scope ("" when the file names none).
  returned: success
  type: str
name:
  description: The member's name ("" when the file names none).
  returned: success
  type: str
dcs:
  description: The etcd section of the file (C(etcd3) or C(etcd)), or null.
  returned: success
  type: str
connect_hosts:
  description: The hosts of C(restapi.connect_address) and C(postgresql.connect_address), without duplicates.
  returned: success
  type: list
  elements: str
  sample: [db1.example.com]
addresses:
  description: The C(postgresql) and C(restapi) connect addresses, each as C(host) and C(port) (null without one).
  returned: success
  type: dict
  sample: {postgresql: {host: db1.example.com, port: 5432}, restapi: {host: db1.example.com, port: 8008}}
etcd_endpoints:
  description: With O(probe_etcd), each etcd address and what it serves.
  returned: success
  type: list
  elements: dict
  contains:
    host: {description: The host Patroni dials., type: str}
    port: {description: Its port (2379 when the file names none)., type: int}
    served: {description: Whether a TLS handshake succeeded., type: bool}
    names_host: {description: Whether the served certificate names the host., type: bool}
    subject: {description: "The served certificate's subject, or null.", type: str}
    names: {description: Its subject alternative names., type: list, elements: str}
    error: {description: "Why the handshake failed, or null.", type: str}
etcd_problems:
  description: With O(probe_etcd), one message per etcd address that does not answer TLS or whose certificate does not name it.
  returned: success
  type: list
  elements: str
ca_files:
  description: Each CA file the configuration names, once, with the keys naming it.
  returned: success
  type: list
  elements: dict
  contains:
    file: {description: The file., type: str}
    named_by: {description: "The keys naming it, dotted.", type: list, elements: str}
    exists: {description: Whether it was found (an absolute path that exists)., type: bool}
    trusted_root:
      description: Its text (the public certificates the member trusts through it), or null when missing.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import PATRONI_INFO

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.patroni import patroni_info
except ImportError:  # cryptography missing: run() reports it
    patroni_info = None


def main() -> None:
    module = AnsibleModule(argument_spec=PATRONI_INFO, supports_check_mode=True)
    run(module, lambda params, check_mode: patroni_info(params))


if __name__ == "__main__":
    main()
