#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sessions
short_description: The replication connections and the sessions of refused certificates, on PostgreSQL and PgBouncer
version_added: 0.3.0
description:
  - For each of O(clusters), in one query, lists the walsenders (standbys and other replication clients, with their
    TLS version and client certificate - RV(clusters[].walsenders)) and the sessions whose client certificate the
    cluster's CRL file revokes (RV(clusters[].revoked)), walsenders included - serial and issuer matched against
    the CRL of that issuer; a certificate whose issuer has no CRL in the file (a retired intermediate's) is refused
    at a handshake too, and counts as revoked.
  - For each of O(poolers) (PgBouncer), the TCP clients logged in under one of its O(poolers[].revoked_names)
    (RV(poolers[].revoked)), read from its admin console (C(SHOW CLIENTS)). PgBouncer shows no client certificate;
    with certificate logins a client's name is its certificate's CN, and the pgbouncer role rejects revoked names,
    so these are the clients PgBouncer now refuses.
  - PostgreSQL checks its CRL only during the TLS handshake - a reload with a new CRL refuses new connections, but a
    session opened before keeps working, a standby's replication connection included. With O(end_revoked=true),
    the sessions of revoked certificates are ended (C(pg_terminate_backend)) and the module waits until none of them
    is left - else it fails, naming the cluster and the sessions. Sessions of other certificates stay, and so does
    a session whose certificate has a revoked serial from another CA.
  - A PgBouncer client is ended by destroying its TCP socket in the kernel (C(ss -K), matched by both ends of the
    connection) - PgBouncer 1.18 has no command that ends one client. This needs C(CAP_NET_ADMIN) (root) and a
    kernel built with C(CONFIG_INET_DIAG_DESTROY); where a client survives, the module fails naming it (restart
    PgBouncer to end it).
  - Runs C(psql) as O(server_user) on each cluster's (and PgBouncer's) socket folder (PostgreSQL 12 and later).
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
    default: []
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
  poolers:
    description: The PgBouncers of the host, each through its admin console (O(server_user) must be one of its
      C(admin_users) or C(stats_users), by peer on the socket).
    type: list
    elements: dict
    default: []
    suboptions:
      label:
        description: How results and messages name it (for example C(pgbouncer:6432)); the port when not given.
        type: str
      port:
        description: Its port (1-65535).
        type: int
        required: true
      socket_dir:
        description: Its Unix socket folder (C(unix_socket_dir), absolute); libpq's default when not given.
        type: path
      running:
        description: Whether it runs. A stopped PgBouncer has no client.
        type: bool
        default: true
      revoked_names:
        description: The names it refuses (the CA folder's revocation registry, C(pgtls.ssl.revoked_names)).
        type: list
        elements: str
        default: []
  server_user:
    description: The operating system user that runs PostgreSQL and PgBouncer (C(psql) runs as it, on the socket).
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
  - A serial revoked without its name is not refused by PgBouncer (it reads no CRL), so no PgBouncer client is
    ended for it - revoke by name.
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

- name: End the clients PgBouncer still holds under a revoked name (it refuses them from now on)
  pgtls.ssl.sessions:
    poolers:
      - {label: "pgbouncer:6432", port: 6432, socket_dir: /var/run/postgresql, revoked_names: [mallory]}
    end_revoked: true
  become: true

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
poolers:
  description: Each PgBouncer, as looked at.
  returned: success
  type: list
  elements: dict
  contains:
    pooler: {description: Its label (or port)., type: str}
    port: {description: Its port., type: int}
    running: {description: Whether it was looked at., type: bool}
    revoked_names: {description: The names looked for., type: list, elements: str}
    revoked:
      description: Its TCP clients logged in under a revoked name (ended with O(end_revoked), unless in check mode).
      type: list
      elements: dict
      sample: [{user: mallory, database: appdb, state: active, client_addr: "10.0.0.20:51712",
                tls: TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519}]
    ended: {description: How many were ended., type: int}
    remaining: {description: How many are left (0 after a run that ends them)., type: int}
ended:
  description: How many sessions (and PgBouncer clients) were ended on the host.
  returned: success
  type: int
remaining:
  description:
    - How many sessions of revoked certificates (and PgBouncer clients of revoked names) are left on the host (found
      in check mode or without O(end_revoked)).
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
