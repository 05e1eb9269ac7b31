#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sessions
short_description: A cluster's replication connections and the sessions of revoked certificates, which it can end
version_added: 0.3.0
description:
  - For each of O(clusters), in one query, lists the walsenders (standbys and other replication clients, with their
    TLS version and client certificate - RV(clusters[].walsenders)) and the sessions whose client certificate the
    cluster's CRL file revokes (RV(clusters[].revoked)), walsenders included - serial and issuer matched against
    the CRL of that issuer.
  - PostgreSQL checks its CRL only during the TLS handshake - a reload with a new CRL refuses new connections, but a
    session opened before keeps working, a standby's replication connection included. With O(end_revoked=true),
    the sessions of revoked certificates are ended (C(pg_terminate_backend)) and the module waits until none of them
    is left - else it fails, naming the cluster and the sessions. Sessions of other certificates stay, and so does
    a session whose certificate has a revoked serial from another CA.
  - Runs C(psql) as O(server_user) on each cluster's socket folder (PostgreSQL 12 and later).
  - The C(pgtls.ssl.revoke) playbook ends the sessions of revoked certificates with it on every database server
    (C(pgtls_revoke_end_sessions=false) leaves them alone); the server role's audit reports the walsenders and any
    such session with it (a walsender without TLS or without a client certificate is a finding).
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
    details: Lists the sessions it would end and ends none.
  diff_mode:
    support: none
options:
  clusters:
    description: The clusters of the host (the server role's C(pgtls_server_certificates) has each one's socket and CRL).
    type: list
    elements: dict
    required: true
    suboptions:
      label:
        description: How results and messages name the cluster (for example C(15/main)); the port when not given.
        type: str
      port:
        description: The cluster's port (1-65535).
        type: int
        required: true
      socket_dir:
        description:
          - The cluster's Unix socket folder (absolute - libpq would take anything else for a host name); libpq's
            default when not given.
        type: path
      running:
        description: Whether the cluster runs. A stopped cluster has no session; its CRL file is still checked.
        type: bool
        default: true
      crl_path:
        description:
          - The CRL file the server reads (C(ssl_crl_file)) - a CRL of any CA, one after the other. A file that holds
            no CRL, or a damaged one, is refused naming it.
          - Without it, no session is taken for revoked.
        type: path
  server_user:
    description: The operating system user that runs PostgreSQL (C(psql) runs as it, on the socket).
    type: str
    default: postgres
  end_revoked:
    description:
      - End the sessions of revoked certificates found. With V(false) they are only reported (RV(remaining)).
    type: bool
    default: false
  wait_seconds:
    description: How long the ended sessions may take to be gone before the module fails.
    type: int
    default: 10
notes:
  - PgBouncer 1.18 shows no client certificate in C(SHOW CLIENTS) and has no command to end one client - its clients
    are not looked at here.
seealso:
  - module: pgtls.ssl.revocation_registry
  - module: pgtls.ssl.crl
"""

EXAMPLES = r"""
- name: End the sessions whose certificate the installed CRL revokes
  pgtls.ssl.sessions:
    clusters:
      - {label: 15/main, port: 5432, socket_dir: /var/run/postgresql, crl_path: /etc/postgresql/15/main/tls/root.crl}
    end_revoked: true
  become: true
  register: ended

- name: The replication connections of a primary, with their TLS and certificate
  pgtls.ssl.sessions:
    clusters:
      - {port: 5432}
  become: true
  register: found
"""

RETURN = r"""
clusters:
  description: Each cluster, as looked at.
  returned: success
  type: list
  elements: dict
  contains:
    cluster: {description: Its label (or port)., type: str}
    port: {description: Its port., type: int}
    running: {description: Whether it was looked at (a stopped cluster has no session)., type: bool}
    in_recovery: {description: "Whether it is in recovery (a standby); null when not looked at.", type: bool}
    revoked_serials: {description: How many serials its CRL file revokes (of every CA)., type: int}
    walsenders:
      description: Its replication connections (C(pg_stat_replication)) with their TLS (C(pg_stat_ssl)).
      type: list
      elements: dict
      sample: [{pid: 4242, user: replicator, application_name: db2, client_addr: 10.0.0.12, state: streaming,
                ssl: true, version: TLSv1.3, serial: 3AF1079C, issuer: /CN=Example Intermediate CA,
                subject: /CN=replicator, backend_type: walsender}]
    revoked:
      description: The sessions of revoked certificates found (ended with O(end_revoked), unless in check mode).
      type: list
      elements: dict
      sample: [{pid: 4343, user: app, backend_type: client backend, client_addr: 10.0.0.20, serial: 5B0C,
                issuer: /CN=Example Intermediate CA, subject: /CN=mallory, application_name: psql}]
    ended: {description: How many were ended., type: int}
    remaining: {description: How many are left (0 after a run that ends them)., type: int}
ended:
  description: How many sessions were ended on the host.
  returned: success
  type: int
remaining:
  description: How many sessions of revoked certificates are left on the host (found in check mode or without O(end_revoked)).
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import SESSIONS

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.sessions import sessions
except ImportError:  # cryptography missing: run() reports it
    sessions = None


def main() -> None:
    module = AnsibleModule(argument_spec=SESSIONS, supports_check_mode=True)
    run(module, lambda params, check_mode: sessions(params, check_mode, run_command=module.run_command))


if __name__ == "__main__":
    main()
