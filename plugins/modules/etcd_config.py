#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: etcd_config
short_description: An etcd member's TLS in its environment file - clients and peers with mTLS, CRLs, rolling restart
version_added: 0.3.0
description:
  - Sets an etcd member's TLS in its environment file O(path) (C(ETCD_*) variables, as C(/etc/default/etcd) on
    Debian and Ubuntu or C(/etc/etcd/etcd.conf) on RHEL - the systemd C(EnvironmentFile) of etcd's unit).
  - Clients - C(ETCD_CERT_FILE), C(ETCD_KEY_FILE), C(ETCD_TRUSTED_CA_FILE), C(ETCD_CLIENT_CERT_AUTH=true). Peers -
    C(ETCD_PEER_CERT_FILE), C(ETCD_PEER_KEY_FILE), C(ETCD_PEER_TRUSTED_CA_FILE), C(ETCD_PEER_CLIENT_CERT_AUTH=true),
    with the same certificate (a peer dials the others, so it needs the extended key usages serverAuth and
    clientAuth). With O(crl_path) - C(ETCD_CLIENT_CRL_FILE) and C(ETCD_PEER_CRL_FILE).
  - etcd uses only the first CRL of its CRL file. With O(crl_bundle) the module writes O(crl_path) from that bundle
    with the CRL of the certificate's issuer first, so revocations of the member's own CA are enforced.
  - Checked before the file is written - the key matches the certificate, which verifies against O(ca_path) as a
    server and as a client certificate and names every host of C(ETCD_ADVERTISE_CLIENT_URLS) and
    C(ETCD_INITIAL_ADVERTISE_PEER_URLS). A URL over plain C(http://) is refused - moving a running etcd cluster to
    https is a migration of its peers and clients. Bad input fails naming the option and the file, which stays as it
    was.
  - Only those lines change (each in its place; new ones at the end); every other line and comment stays. Nothing is
    written when nothing changes. Two runs on one member at once take turns (a lock on the file in C(/run/lock)).
  - etcd reads the file, and its trusted CA file, only when it starts; it reads its certificate and key again at each
    handshake. With O(activate) the collection's activation engine restarts the member when the file changed or
    O(ca_path) holds another text than O(trusted_before), else only waits until it serves the installed certificate;
    then it proves
    the member with C(GET /health) over mTLS (the member's own certificate as the client, its name checked). Run it
    one member at a time (C(serial 1)) so that the cluster keeps its quorum.
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
    details: Checks the material and the file, and says which variables would change; writes and restarts nothing.
  diff_mode:
    support: full
    details: The variables it manages, before and after (no other line of the file).
options:
  path:
    description: etcd's environment file; it must exist and set C(ETCD_ADVERTISE_CLIENT_URLS) (https).
    type: path
    required: true
  cert_path:
    description:
      - The member's certificate (leaf first, then intermediates), for clients and peers - serverAuth and clientAuth,
        naming the hosts of the advertised client and peer URLs.
    type: path
    required: true
  key_path:
    description: Its private key (readable by O(server_user)).
    type: path
    required: true
  ca_path:
    description: The root the fleet trusts (C(ETCD_TRUSTED_CA_FILE) and C(ETCD_PEER_TRUSTED_CA_FILE)).
    type: path
    required: true
  crl_path:
    description:
      - The CRL file etcd reads (C(ETCD_CLIENT_CRL_FILE), C(ETCD_PEER_CRL_FILE)); left out of the file when not given.
      - Written by the module when O(crl_bundle) is given; else it must exist and its first CRL is what etcd uses.
    type: path
  crl_bundle:
    description: CRLs (a bundle such as the CA folder's) to write O(crl_path) from, the issuer's CRL first.
    type: path
  activate:
    description:
      - Restart the member when the file changed or O(ca_path) changed since O(trusted_before); else, when it serves
        another certificate than O(cert_path) holds (a renewal under the same paths), wait until it serves the
        installed one; else nothing. Then prove it (C(/health) over mTLS says true) - an unhealthy member fails the
        task, so that a rolling run stops before the next member. On a failure the previous file is put back and
        the member restarted again; the task fails naming the step. A member that does not answer is not restarted (a
        warning says so).
    type: bool
    default: false
  trusted_before:
    description:
      - The text of the trusted CA file before this run (M(pgtls.ssl.etcd_info)'s C(trusted_root), read before the
        certificates were written). When O(ca_path) now holds another text (a new root, or a root rotation's
        overlap), the member is restarted - etcd reads that file only when it starts. Not given, the CA file alone
        never restarts the member.
    type: str
  restart_command:
    description: How the member is restarted (run as root); it must return once etcd was started again.
    type: list
    elements: str
    default: [systemctl, restart, etcd]
  server_user:
    description: The user etcd runs as (it must be able to read O(key_path)).
    type: str
    default: etcd
  wait_seconds:
    description:
      - How long the member may take to serve the certificate and say it is healthy (a restarted member first finds
        its leader).
    type: int
    default: 60
notes:
  - The member's certificate is what M(pgtls.ssl.server_cert) makes with O(pgtls.ssl.server_cert#module:client_auth=true);
    the pgtls.ssl.etcd role issues it and calls this module.
seealso:
  - module: pgtls.ssl.etcd_info
  - module: pgtls.ssl.patroni_config
"""

EXAMPLES = r"""
- name: etcd's TLS, the member restarted when its file changed and proven healthy over mTLS
  pgtls.ssl.etcd_config:
    path: /etc/default/etcd
    cert_path: /etc/etcd/tls/server.crt
    key_path: /etc/etcd/tls/server.key
    ca_path: /etc/etcd/tls/root.crt
    crl_path: /etc/etcd/tls/etcd.crl
    crl_bundle: /etc/etcd/tls/clients/etcd/root.crl
    activate: true
  become: true
"""

RETURN = r"""
path:
  description: The environment file.
  returned: success
  type: str
changed_keys:
  description: The variables this run set (or would set, in check mode).
  returned: success
  type: list
  elements: str
  sample: [ETCD_CERT_FILE, ETCD_CLIENT_CERT_AUTH]
settings:
  description: Every variable the module manages and its value now (file paths and flags).
  returned: success
  type: dict
  sample: {ETCD_CLIENT_CERT_AUTH: "true", ETCD_CERT_FILE: /etc/etcd/tls/server.crt}
name:
  description: The member's C(ETCD_NAME).
  returned: success
  type: str
hosts:
  description: The hosts of its advertised client and peer URLs (its certificate names each).
  returned: success
  type: list
  elements: str
crl_changed:
  description: Whether O(crl_path) was (or would be) written.
  returned: success
  type: bool
restart_needed:
  description: Whether the member needed a restart (its file changed, or O(ca_path) since O(trusted_before)).
  returned: with O(activate)
  type: bool
restarted:
  description: Whether the member was restarted (never in check mode).
  returned: with O(activate)
  type: bool
steps:
  description: The activation's steps, as the engine ran them (restart or none, wait, /health over mTLS).
  returned: with O(activate)
  type: list
  elements: dict
  sample:
    - {step: "Restart etcd (it reads its environment file and its trusted CA file only when it starts)", status: changed,
       ms: 812}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import ETCD_CONFIG

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.etcd import etcd_config
except ImportError:  # cryptography missing: run() reports it
    etcd_config = None


def main() -> None:
    module = AnsibleModule(argument_spec=ETCD_CONFIG, supports_check_mode=True)
    run(module, lambda params, check_mode: etcd_config(params, check_mode, run_command=module.run_command))


if __name__ == "__main__":
    main()
