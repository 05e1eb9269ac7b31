# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private to the collection: the activation (specs.ACTIVATE), documented once for pgtls.ssl.cluster_files and
pgtls.ssl.cluster_tls (the same option in both)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  activate:
    description:
      - After the writes, in the same execution, when anything was written (or O(activate.always); the
        M(pgtls.ssl.cluster_tls) action also when the server served another certificate than the installed one) -
        the files as PostgreSQL parses them (C(pg_hba_file_rules), C(pg_file_settings) with later files and C(ALTER SYSTEM)
        shadowing O(activate.settings_file), C(pg_ident_file_mappings) from 15 on), the key, certificate, root and
        CRLs as the server will read them, optionally a throw-away postmaster with the new settings, then reload
        (restart with O(activate.restart)), wait until the new certificate is served, and connect with libpq
        (C(sslmode=verify-full), by name, on 127.0.0.1).
      - On any failure the snapshot in O(snapshot_dir) is restored, the server reloaded, and the task fails naming
        the step and its output, with the server log's tail.
    type: dict
    suboptions:
      cluster:
        description:
          - The cluster (as M(pgtls.ssl.cluster_info) describes it; M(pgtls.ssl.cluster_tls) leaves out its other keys).
          - One of O(activate.cluster) (PostgreSQL) and O(activate.pgbouncer) (PgBouncer) names the service.
        type: dict
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
      pgbouncer:
        description:
          - PgBouncer instead of a PostgreSQL cluster - the same steps, its own in three places. The parse check reads
            C(pgbouncer.ini) (and its C(%include) files) and refuses a line PgBouncer would refuse or a file its TLS and
            auth settings name that does not exist (PgBouncer answers a reload with success and keeps its old TLS files
            when the new ones are bad). The reload is the unit's (then C(systemctl enable --now), which starts a stopped
            PgBouncer); the proof connects with libpq to its C(pgbouncer) console with its own client certificate.
        type: dict
        suboptions:
          port:
            description: The port PgBouncer listens on (C(listen_port)).
            type: int
            required: true
          service:
            description: Its systemd unit.
            type: str
            default: pgbouncer
          config_file:
            description: Its C(pgbouncer.ini), read as PgBouncer reads it, with every file its TLS and auth settings name.
            type: path
            required: true
          log_file:
            description: Its log (its tail explains a failure).
            type: path
          client_cert_path:
            description: PgBouncer's own client certificate for PostgreSQL (checked as PostgreSQL will, and presented by the
              proof); by default O(client_material)'s.
            type: path
          client_key_path:
            description: Its key; by default O(client_material)'s.
            type: path
          probe_user:
            description: The user the proof connects as (to the C(pgbouncer) console; a refusal after the name check proves
              it).
            type: str
            default: pgtls-probe
      server_user:
        description: The server's OS user (runs psql, initdb and pg_ctl).
        type: str
        default: postgres
      settings_file:
        description: The role's SSL settings file (checked for shadowing; the throw-away postmaster reads it). Required with
          O(activate.cluster).
        type: path
      cert_path:
        description: The certificate the server must serve; by default O(material)'s.
        type: path
      key_path:
        description: Its key; by default O(material)'s.
        type: path
      ca_path:
        description: The root clients trust (C(ssl_ca_file)); libpq's C(sslrootcert); by default O(material)'s.
        type: path
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
        description: How long to wait for the new certificate to be served (probes 0.05 s apart at first, doubling up to 1 s).
        type: int
        default: 5
      standby_cert_path:
        description:
          - The cluster is a standby whose C(primary_conninfo) uses this replication certificate - after the proof,
            wait (up to 30 s, its WAL receiver retrying) until C(pg_stat_wal_receiver) shows it streaming with
            C(sslmode=verify-full) and this C(sslcert); else the activation fails and the snapshot is restored.
        type: path
        version_added: 0.3.0
"""
