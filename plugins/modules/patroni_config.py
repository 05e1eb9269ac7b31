#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: patroni_config
short_description: A Patroni member's TLS in Patroni's own configuration - PostgreSQL, REST API, patronictl, etcd
version_added: 0.3.0
description:
  - Patroni writes C(postgresql.conf) (and C(pg_hba.conf), and a standby's C(primary_conninfo)) itself, so TLS lines
    put beside it last until Patroni writes the file again. This module sets a member's TLS where Patroni reads it,
    in its YAML configuration file O(path) - the local configuration, which wins over the dynamic configuration in
    the DCS for the keys below (Patroni merges the local file on top of it).
  - C(postgresql.parameters) - C(ssl), C(ssl_cert_file), C(ssl_key_file), C(ssl_ca_file), C(ssl_crl_file),
    C(ssl_min_protocol_version).
  - With O(replication) - C(postgresql.authentication.replication) gets C(sslmode=verify-full), the CA, the CRL and
    that client certificate (Patroni builds C(primary_conninfo) from it); C(postgresql.use_unix_socket_repl) is set
    when the server certificate does not name C(localhost), since Patroni's own replication check connects to it.
  - With O(restapi) - C(restapi.certfile), C(keyfile), C(cafile) and C(verify_client=required). Patroni's requests
    to a REST API (C(patronictl) and the members calling each other) present C(ctl.certfile) only, so O(ctl) is
    then required - a client certificate on every member.
  - With O(etcd) - the C(etcd3) (or C(etcd)) section gets C(protocol=https), C(cacert), C(cert) and C(key). An
    address written with C(http://) there is refused, since Patroni would keep using plain HTTP for it.
  - Every key and certificate is checked before the file is - each key matches its certificate, each certificate
    verifies against O(ca_path) for its purpose (server or client), the server certificate names the host of
    C(restapi.connect_address). Bad input fails naming the option and the file, and the file stays as it was.
  - Only these keys are read, compared and written; the rest of the file stays as it is (passwords included) and
    is never returned. When a key changes, the file is written again from its parsed YAML (atomically, with its
    owner and mode) - comments in it are lost, and the module warns. Nothing is written when nothing changes. Two
    runs on one member at once take turns (a lock on the file in C(/run/lock)).
  - Patroni reads the file on C(patronictl reload) (or SIGHUP). It then reloads PostgreSQL with the new
    parameters, and rebuilds its HTTPS server when the REST API certificate's serial changed. With O(reload) the
    module does that through the collection's activation engine, and proves it (see O(reload)). There is no CRL for
    the REST API in Patroni - a revoked client certificate is still accepted there.
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
    details: Checks the material and the file, and says which keys would change; writes nothing.
  diff_mode:
    support: full
    details: The keys it manages, before and after (no other key of the file).
options:
  path:
    description: Patroni's YAML configuration file (for example C(/etc/patroni/config.yml)); it must exist.
    type: path
    required: true
  cert_path:
    description:
      - The member's server certificate (leaf first, then intermediates) - PostgreSQL's C(ssl_cert_file) and the
        REST API's C(certfile). It must name C(restapi.connect_address)'s host, and the host standbys connect to.
    type: path
    required: true
  key_path:
    description: Its private key (read by the user Patroni runs as).
    type: path
    required: true
  ca_path:
    description: The root the fleet trusts (C(ssl_ca_file), C(restapi.cafile), C(ctl.cacert), etcd's C(cacert)).
    type: path
    required: true
  crl_path:
    description: The CRL file (C(ssl_crl_file), and the replication connection's C(sslcrl)); left alone when not given.
    type: path
  min_protocol_version:
    description: C(ssl_min_protocol_version).
    type: str
    default: TLSv1.2
    choices: [TLSv1.2, TLSv1.3]
  restapi:
    description: Serve the REST API over TLS with the server certificate, and require a client certificate.
    type: bool
    default: true
  ctl:
    description: The client certificate that C(patronictl) and the members present to a REST API (C(ctl) section).
    type: dict
    suboptions: &pair
      cert_path:
        description: The certificate (with the extended key usage clientAuth, from the CA of O(ca_path)).
        type: path
        required: true
      key_path:
        description: Its private key.
        type: path
        required: true
  etcd:
    description: The member's client certificate to etcd (the C(etcd3) or C(etcd) section).
    type: dict
    suboptions: *pair
  replication:
    description: The client certificate of the replication user (C(postgresql.authentication.replication)).
    type: dict
    suboptions: *pair
  reload:
    description:
      - Activate the member when the file changed, when its REST API or PostgreSQL serves another certificate than
        O(cert_path) holds (a renewal under the same paths), or when the file or O(crl_path) differs from what the
        member last loaded - C(patronictl reload) for this member, as O(server_user); then wait until both serve it,
        connect to PostgreSQL with C(sslmode=verify-full) (the host of C(postgresql.connect_address)) and call the
        REST API over mTLS with the O(ctl) certificate, its name checked.
      - What the member last loaded is recorded after each proven reload in C(.pgtls-loaded) beside O(cert_path)
        (root's, 0600; the SHA-256 digests of the file and of O(crl_path), never their content). So a run stopped after
        it wrote the file or the CRL and before its reload is finished by the next run, and a member set up by an
        earlier release (no record yet) is reloaded and proven once.
      - Patroni reloads PostgreSQL at its next cycle, not when C(patronictl reload) returns. A new certificate shows
        when it did; a reload that leaves the served certificate as it was (O(crl_changed), another TLS setting) waits
        one cycle first (the cluster's C(loop_wait), asked of C(GET /config) over mTLS; 10 when it cannot be read).
      - On a failure the previous file is put back and Patroni reloaded again; the task fails naming the step.
      - Needs O(ctl), C(scope), C(name) and both connect addresses in the file. A member whose REST API does not
        answer is not reloaded (a warning says so); its material is still checked.
    type: bool
    default: false
  crl_changed:
    description:
      - The CRL file (O(crl_path)) was written by this run (the patroni role passes what its C(client_cert) tasks
        reported). PostgreSQL reads C(ssl_crl_file) again on a reload only, so with O(reload) the member is reloaded
        and proven even when nothing else changed - a revoked client certificate is refused from then on.
    type: bool
    default: false
    version_added: 0.4.0
  server_user:
    description: The user Patroni runs as (C(patronictl) runs as it).
    type: str
    default: postgres
  patronictl:
    description: The C(patronictl) program (a name on the PATH or a path).
    type: str
    default: patronictl
  wait_seconds:
    description: How long the REST API and PostgreSQL may take to serve the new certificate after the reload.
    type: int
    default: 30
notes:
  - The member's server certificate is what the server role (or M(pgtls.ssl.server_cert)) makes; the client
    certificates are M(pgtls.ssl.client_cert)'s.
seealso:
  - module: pgtls.ssl.server_cert
  - module: pgtls.ssl.client_cert
  - module: pgtls.ssl.cluster_info
"""

EXAMPLES = r"""
- name: TLS for PostgreSQL, the REST API, patronictl and etcd, in Patroni's configuration
  pgtls.ssl.patroni_config:
    path: /etc/patroni/config.yml
    cert_path: /etc/patroni/tls/server.crt
    key_path: /etc/patroni/tls/server.key
    ca_path: /etc/patroni/tls/root.crt
    crl_path: /etc/patroni/tls/root.crl
    ctl: {cert_path: /etc/patroni/tls/patroni.crt, key_path: /etc/patroni/tls/patroni.key}
    etcd: {cert_path: /etc/patroni/tls/patroni.crt, key_path: /etc/patroni/tls/patroni.key}
    replication: {cert_path: /etc/patroni/tls/replicator.crt, key_path: /etc/patroni/tls/replicator.key}
  become: true
  register: patroni_tls

- name: The same, and Patroni reloaded and proven when the file or a certificate changed
  pgtls.ssl.patroni_config:
    path: /etc/patroni/config.yml
    cert_path: /etc/patroni/tls/server.crt
    key_path: /etc/patroni/tls/server.key
    ca_path: /etc/patroni/tls/root.crt
    ctl: {cert_path: /etc/patroni/tls/patroni.crt, key_path: /etc/patroni/tls/patroni.key}
    reload: true
    patronictl: /usr/bin/patronictl
  become: true
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: success
  type: str
changed_keys:
  description: The keys this run set (or would set, in check mode), dotted.
  returned: success
  type: list
  elements: str
  sample: [postgresql.parameters.ssl_cert_file, restapi.verify_client]
settings:
  description: Every key the module manages and its value now (file paths and flags; no other key of the file).
  returned: success
  type: dict
  sample: {postgresql.parameters.ssl: "on", restapi.verify_client: required, etcd3.protocol: https}
dcs:
  description: The section that got etcd's TLS (C(etcd3) or C(etcd)); null without O(etcd).
  returned: success
  type: str
reload_needed:
  description: Whether the member needed a reload (the file changed, it served another certificate, or the file or
    the CRL differs from what it last loaded).
  returned: with O(reload)
  type: bool
reloaded:
  description: Whether Patroni was reloaded (never in check mode).
  returned: with O(reload)
  type: bool
pending_restart:
  description:
    - Whether Patroni's REST API, asked after the reload, says the member has a restart pending (C(pending_restart)
      of C(GET /patroni)). The TLS settings take effect on a reload, so such a restart is another setting's; the
      module does not restart the member, it warns naming the parameters (Patroni 4 names them) and
      C(patronictl restart). False when the member was not reloaded.
  returned: with O(reload)
  type: bool
steps:
  description: The activation's steps, as the engine ran them (reload, wait, verify-full, the REST API over mTLS).
  returned: with O(reload)
  type: list
  elements: dict
  sample: [{step: "Reload Patroni (patronictl reload: PostgreSQL and the REST API)", status: changed, ms: 412}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import PATRONI_CONFIG

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.patroni import patroni_config
except ImportError:  # cryptography missing: run() reports it
    patroni_config = None


def main() -> None:
    module = AnsibleModule(argument_spec=PATRONI_CONFIG, supports_check_mode=True)
    run(module, lambda params, check_mode: patroni_config(params, check_mode, run_command=module.run_command))


if __name__ == "__main__":
    main()
