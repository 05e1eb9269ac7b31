#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: etcd_info
short_description: What an etcd member's environment file says of its name, its URLs and the CA it trusts (read only)
version_added: 0.3.0
description:
  - Reads a member's environment file O(path) (C(ETCD_*) variables, as C(/etc/default/etcd)) and returns its
    C(ETCD_NAME), its advertised client and peer URLs and their hosts (the names the member's certificate must carry),
    the URLs still over plain http, its TLS variables, and each trusted CA file it names with the certificates in it.
  - Nothing is written. The pgtls.ssl.etcd role reads every member with it before any member changes, so that
    members trusting another root than the CA folder's stop the run on the controller.
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
    description: etcd's environment file; a symbolic link there is refused.
    type: path
    required: true
seealso:
  - module: pgtls.ssl.etcd_config
"""

EXAMPLES = r"""
- name: Which names and which CA does this etcd member use?
  pgtls.ssl.etcd_info:
    path: /etc/default/etcd
  register: member
  become: true
"""

RETURN = r"""
path:
  description: The file read.
  returned: success
  type: str
name:
  description: C(ETCD_NAME).
  returned: success
  type: str
client_urls:
  description: C(ETCD_ADVERTISE_CLIENT_URLS).
  returned: success
  type: list
  elements: str
peer_urls:
  description: C(ETCD_INITIAL_ADVERTISE_PEER_URLS).
  returned: success
  type: list
  elements: str
hosts:
  description: The hosts of those URLs, once each.
  returned: success
  type: list
  elements: str
client_address:
  description: The first advertised client URL's host and port (null without one).
  returned: success
  type: dict
  contains:
    host: {description: The host., type: str}
    port: {description: The port., type: int}
peer_address:
  description: The first advertised peer URL's host and port (null without one).
  returned: success
  type: dict
  contains:
    host: {description: The host., type: str}
    port: {description: The port., type: int}
plain_urls:
  description: URLs of the file that are not https, with their variable.
  returned: success
  type: list
  elements: str
tls:
  description: The TLS variables the pgtls.ssl.etcd_config module manages and their values now (null when not set).
  returned: success
  type: dict
ca_files:
  description: Each trusted CA file of the file, once.
  returned: success
  type: list
  elements: dict
  contains:
    file: {description: The file., type: str}
    named_by: {description: The variables naming it., type: list, elements: str}
    exists: {description: Whether it was found (an absolute path that exists)., type: bool}
    trusted_root:
      description: Its text (the public certificates the member trusts through it), or null when missing.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import ETCD_INFO

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.etcd import etcd_info
except ImportError:  # cryptography missing: run() reports it
    etcd_info = None


def main() -> None:
    module = AnsibleModule(argument_spec=ETCD_INFO, supports_check_mode=True)
    run(module, lambda params, check_mode: etcd_info(params))


if __name__ == "__main__":
    main()
