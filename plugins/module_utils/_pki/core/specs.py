# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Argument specs, in one place: the modules use them and the action plugins validate user input with them.
tests/unit checks each against the DOCUMENTATION of its module."""

from __future__ import annotations

from .constants import DEFAULT_KEY_TYPE, KEY_ROTATIONS, KEY_TYPES, REVOCATION_REASONS

# The signing CA, as files or as PEM content (vault, AWX credential).
ISSUER = {
    "issuer_cert_path": {"type": "path"},
    "issuer_cert_content": {"type": "str"},
    "issuer_key_path": {"type": "path"},
    "issuer_key_content": {"type": "str", "no_log": True},
    "issuer_key_passphrase": {"type": "str", "no_log": True},
    "issuer_chain_path": {"type": "path"},
    "issuer_chain_content": {"type": "str"},
}


ISSUER_EXCLUSIVE = [
    ("issuer_cert_path", "issuer_cert_content"),
    ("issuer_key_path", "issuer_key_content"),
    ("issuer_chain_path", "issuer_chain_content"),
]
ISSUER_REQUIRED_ONE = [("issuer_cert_path", "issuer_cert_content")]

# The collection's CA folder (ca_folder) names the issuer, its chain and the archive by its layout (core/layout.py):
# it stands for these options and excludes them (the issuer key's passphrase stays an option of its own).
CA_FOLDER_REPLACES = ("issuer_cert_path", "issuer_cert_content", "issuer_key_path", "issuer_key_content",
                      "issuer_chain_path", "issuer_chain_content", "record_dir")
CA_FOLDER_OPTION = {
    "ca_folder": {"type": "path"},
}
CA_FOLDER_EXCLUSIVE = [("ca_folder", name) for name in CA_FOLDER_REPLACES]

# The CA in an OpenBao (or Vault) PKI engine (plugin_utils/_openbao.BaoSettings): its intermediate mount's role signs
# the hosts' CSRs; the CA folder (ca_folder) mirrors the engine's root, intermediate and CRLs. Each setting left out
# is taken from the environment where the bao and vault CLIs read it (BAO_ADDR, VAULT_TOKEN, ...).
OPENBAO = {
    "address": {"type": "str"},
    "role": {"type": "str", "required": True},
    "int_mount": {"type": "str", "default": "pki_int"},
    "root_mount": {"type": "str", "default": "pki"},
    "token": {"type": "str", "no_log": True},
    "role_id": {"type": "str"},
    "secret_id": {"type": "str", "no_log": True},
    "approle_mount": {"type": "str", "default": "approle"},
    "namespace": {"type": "str"},
    "ca_path": {"type": "path"},
    "timeout": {"type": "float", "default": 30.0},
}
OPENBAO_OPTION = {"openbao": {"type": "dict", "options": OPENBAO}}
# The engine signs instead of an issuer's key: it excludes the issuer_* key options (ca_folder holds its mirror).
OPENBAO_EXCLUSIVE = [("openbao", name) for name in ("issuer_key_path", "issuer_key_content", "issuer_key_passphrase",
                                                    "issuer_cert_path", "issuer_cert_content")]
ISSUER_OR_CA_FOLDER = [("issuer_cert_path", "issuer_cert_content", "ca_folder")]

OWNERSHIP = {
    "owner": {"type": "str"},
    "group": {"type": "str"},
}

# Where the controller archives every certificate it issued or found (one PEM per serial), for revocation by name.
RECORD = {
    "record_dir": {"type": "path"},
}

# When a certificate is issued again, and whether its key is replaced then (checks.RenewPolicy).
RENEWAL = {
    "renew_before_days": {"type": "int", "default": 30},
    "renew_before_percent": {"type": "int", "default": 33},
    "run_interval_hours": {"type": "int", "default": 0},
    "key_rotation": {"type": "str", "default": "on_renewal", "choices": list(KEY_ROTATIONS)},
    "rekey_before": {"type": "str"},
}

CA = {
    "cert_path": {"type": "path", "required": True},
    "key_path": {"type": "path", "required": True},
    "key_type": {"type": "str", "default": DEFAULT_KEY_TYPE, "choices": list(KEY_TYPES)},
    "key_passphrase": {"type": "str", "no_log": True},
    "common_name": {"type": "str", "required": True},
    "subject": {"type": "dict", "default": {}},
    "valid_days": {"type": "int"},
    "path_length": {"type": "int"},
    "key_mode": {"type": "str", "default": "0600", "no_log": False},
    "cert_mode": {"type": "str", "default": "0644"},
    "force": {"type": "bool", "default": False},
    "lock_timeout": {"type": "int", "default": 120},
    **OWNERSHIP,
    **ISSUER,
}

# The snapshot pgtls.ssl.cluster_files takes before the first write of an execution that activates.
SNAPSHOT = {
    "snapshot_dir": {"type": "path"},
    "snapshot_paths": {"type": "list", "elements": "path", "default": []},
    "snapshot_group": {"type": "str"},
}

SERVER_CERT = {
    "key_path": {"type": "path", "required": True},
    "cert_path": {"type": "path", "required": True},
    "csr_path": {"type": "path"},
    "root_cert_path": {"type": "path"},
    "key_type": {"type": "str", "default": DEFAULT_KEY_TYPE, "choices": list(KEY_TYPES)},
    "common_name": {"type": "str"},
    "subject": {"type": "dict", "default": {}},
    "subject_alt_names": {"type": "list", "elements": "str", "required": True},
    "valid_days": {"type": "int", "default": 365},
    "client_auth": {"type": "bool", "default": False},
    "key_mode": {"type": "str", "default": "0600", "no_log": False},
    "cert_mode": {"type": "str", "default": "0644"},
    "create_dir": {"type": "bool", "default": False},
    **OWNERSHIP,
    **RENEWAL,
    **RECORD,
    **ISSUER,
    **CA_FOLDER_OPTION,
    **OPENBAO_OPTION,
}

CLIENT_ENTRY = {
    "name": {"type": "str", "required": True},
    "dir": {"type": "path"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "rekey_before": {"type": "str"},
}

CLIENT_CERT = {
    "clients": {"type": "list", "elements": "dict", "required": True, "options": CLIENT_ENTRY},
    "dest": {"type": "path"},
    "key_location": {"type": "str", "default": "target", "choices": ["target", "controller"]},
    "key_type": {"type": "str", "default": DEFAULT_KEY_TYPE, "choices": list(KEY_TYPES)},
    "subject": {"type": "dict", "default": {}},
    "valid_days": {"type": "int", "default": 365},
    "create_dirs": {"type": "bool", "default": True},
    "formats": {"type": "list", "elements": "str", "default": ["pem"], "choices": ["pem", "pkcs8_der", "pkcs12"]},
    "pkcs12_passphrase": {"type": "str", "no_log": True},
    "crl": {"type": "bool", "default": False},
    "crl_only": {"type": "bool", "default": False},
    **OWNERSHIP,
    **RENEWAL,
    **RECORD,
    **ISSUER,
    **CA_FOLDER_OPTION,
    **OPENBAO_OPTION,
}

REVOKED_ENTRY = {
    "serial_number": {"type": "str"},
    "certificate_path": {"type": "path"},
    "certificate_content": {"type": "str"},
    "reason": {"type": "str", "default": "unspecified", "choices": list(REVOCATION_REASONS)},
    "revocation_date": {"type": "str"},
}

CRL = {
    "path": {"type": "path", "required": True},
    "revoked": {"type": "list", "elements": "dict", "default": [], "options": REVOKED_ENTRY,
                "mutually_exclusive": [("serial_number", "certificate_path", "certificate_content")],
                "required_one_of": [("serial_number", "certificate_path", "certificate_content")]},
    "next_update_days": {"type": "int", "default": 30},
    "renew_before_days": {"type": "int", "default": 7},
    "revoked_mode": {"type": "str", "default": "add", "choices": ["add", "exact"]},
    "combined_path": {"type": "path"},
    "combine_with": {"type": "list", "elements": "path", "default": []},
    "mode": {"type": "str", "default": "0644"},
    "lock_timeout": {"type": "int", "default": 120},
    **OWNERSHIP,
    **ISSUER,
}

VALIDATE = {
    "certificate_path": {"type": "path"},
    "certificate_content": {"type": "str"},
    "key_path": {"type": "path"},
    "key_passphrase": {"type": "str", "no_log": True},
    "ca_path": {"type": "path"},
    "ca_content": {"type": "str"},
    "crl_path": {"type": "path"},
    "purpose": {"type": "str", "default": "server", "choices": ["server", "client", "any"]},
    "hostnames": {"type": "list", "elements": "str", "default": []},
    "min_days": {"type": "int", "default": 0},
    "warn_days": {"type": "int", "default": 30},
    "ca_min_days": {"type": "int", "default": 0},
    "server_user": {"type": "str"},
    "probe_host": {"type": "str"},
    "probe_port": {"type": "int", "default": 5432},
    "probe_server_name": {"type": "str"},
    "probe_timeout": {"type": "float", "default": 5.0},
    "probe_negotiation": {"type": "str", "default": "postgres", "choices": ["postgres", "direct", "tls"]},
    "probe_direct_tls": {"type": "bool", "default": False},
    "probe_client_auth": {"type": "bool", "default": False},
    "fail_on_findings": {"type": "bool", "default": True},
}

HOST_ITEM = {
    "name": {"type": "str", "required": True},
    "key_path": {"type": "path", "required": True},
    "cert_path": {"type": "path", "required": True},
    "root_path": {"type": "path"},
    "csr_path": {"type": "path"},
    "key_type": {"type": "str", "default": DEFAULT_KEY_TYPE, "choices": list(KEY_TYPES)},
    "common_name": {"type": "str"},
    "subject_alt_names": {"type": "list", "elements": "str", "default": []},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "owner_group": {"type": "bool", "default": False},
    "key_mode": {"type": "str", "default": "0600", "no_log": False},
    "cert_mode": {"type": "str", "default": "0644"},
    "create_dir": {"type": "bool", "default": False},
    "create_parents": {"type": "bool", "default": False},
    "base_dir": {"type": "path"},
    "pkcs8_path": {"type": "path"},
    "pkcs12_path": {"type": "path"},
    "pkcs12_passphrase": {"type": "str", "no_log": True},
    "certificate": {"type": "str"},
    "root": {"type": "str"},
    # The CRLs a client checks the server's chain with (libpq's sslcrl), written at crl_path like root at root_path.
    "crl_path": {"type": "path"},
    "crl": {"type": "str"},
    # prepare: replace the key in place by a new one (a pending key until its certificate is installed).
    "new_key": {"type": "bool", "default": False},
}

HOST_MATERIAL = {
    "stage": {"type": "str", "default": "prepare", "choices": ["prepare", "install", "crl"]},
    "items": {"type": "list", "elements": "dict", "required": True, "options": HOST_ITEM},
}

REVOCATION_REGISTRY = {
    "path": {"type": "path"},
    "pki_dir": {"type": "path"},
    "names": {"type": "list", "elements": "str", "default": []},
    "serials": {"type": "list", "elements": "str", "default": []},
    "reason": {"type": "str", "default": "unspecified", "choices": list(REVOCATION_REASONS)},
    "revocation_date": {"type": "str"},
    "add": {"type": "list", "elements": "dict", "default": [], "options": {
        "serial_number": {"type": "str", "required": True},
        "name": {"type": "str"},
        "reason": {"type": "str", "default": "unspecified", "choices": list(REVOCATION_REASONS)},
        "revocation_date": {"type": "str"},
    }},
    "pending": {"type": "bool", "default": False},
    "publish": {"type": "bool", "default": False},
    "allow_unknown_serials": {"type": "bool", "default": False},
    "rotate_compromised_intermediate": {"type": "bool", "default": False},
    "lock_timeout": {"type": "int", "default": 120},
}

INTERMEDIATE_ROTATION = {
    "pki_dir": {"type": "path", "required": True},
    "step": {"type": "str", "required": True, "choices": ["start", "retire", "auto"]},
    "min_days": {"type": "int", "default": 0},
    "lock_timeout": {"type": "int", "default": 120},
}

ROOT_ROTATION = {
    "pki_dir": {"type": "path", "required": True},
    "step": {"type": "str", "required": True, "choices": ["start", "switch", "retire"]},
    "key_type": {"type": "str", "choices": list(KEY_TYPES)},
    "root_common_name": {"type": "str"},
    "root_key_passphrase": {"type": "str", "no_log": True},
    "lock_timeout": {"type": "int", "default": 120},
}

# One cluster as pgtls_clusters lists it (the server role's variable); the module completes it.
CLUSTER = {
    "version": {"type": "int", "required": True},
    "name": {"type": "str", "required": True},
    "port": {"type": "int", "required": True},
    "config_dir": {"type": "path", "required": True},
    "data_dir": {"type": "path", "required": True},
    "service": {"type": "str", "default": ""},
    "socket_dir": {"type": "path"},
    "log_file": {"type": "path"},
    "running": {"type": "bool", "default": True},
    "bin_dir": {"type": "path"},
}

# The cluster step's first stage in pgtls.ssl.cluster_info: what to inspect in each cluster found, every path relative
# to its configuration folder (the server role's layout).
INSPECT = {
    "files": {"type": "list", "elements": "str", "default": []},
    "directories": {"type": "list", "elements": "str", "default": []},
    # Lines the cluster step sets in a file (lineinfile's rule): the state says whether they are in place.
    "lines": {"type": "list", "elements": "dict", "default": [], "options": {
        "path": {"type": "str", "required": True},
        "regexp": {"type": "str", "required": True},
        "line": {"type": "str", "required": True},
    }},
    "snapshot_dir": {"type": "str"},
    "material": {"type": "dict", "options": {
        "key_path": {"type": "str", "required": True, "no_log": False},
        "cert_path": {"type": "str", "required": True},
        "root_path": {"type": "str"},
        "key_type": {"type": "str", "default": DEFAULT_KEY_TYPE, "choices": list(KEY_TYPES)},
        "subject_alt_names": {"type": "list", "elements": "str", "default": []},
        "add_host_names": {"type": "bool", "default": False},
        "key_group": {"type": "bool", "default": False},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "key_mode": {"type": "str", "default": "0600", "no_log": False},
        "cert_mode": {"type": "str", "default": "0644"},
        "create_dir": {"type": "bool", "default": False},
    }},
    # A client certificate the cluster step handles with the key (cluster_tls's client_material: a standby's
    # replication certificate), its folder inside the configuration folder; its key is of material's key_type.
    "client_material": {"type": "dict", "options": {
        "name": {"type": "str", "required": True},
        "dir": {"type": "str", "required": True},
        "owner": {"type": "str"},
        "group": {"type": "str"},
    }},
    "probe": {"type": "bool", "default": True},
    "write": {"type": "bool", "default": True},
    "key_group": {"type": "dict", "no_log": False, "options": {
        "name": {"type": "str", "required": True},
        "user": {"type": "str", "required": True},
    }},
}

CLUSTER_INFO = {
    "clusters": {"type": "list", "elements": "dict", "default": [], "options": CLUSTER},
    "layout": {"type": "str", "choices": ["debian", "datadir"]},
    "bin_dir_default": {"type": "str"},
    "datadir_globs": {"type": "list", "elements": "str"},
    "probe_ready": {"type": "bool", "default": False},
    "trust_file": {"type": "str"},
    "key_group": {"type": "str", "no_log": False},
    "probe_key_group": {"type": "bool", "default": False},
    "os_defaults": {"type": "dict"},
    "inspect": {"type": "dict", "options": INSPECT},
    "require_clusters": {"type": "bool", "default": False},
}

AUDIT_REPORT = {
    "servers": {"type": "list", "elements": "dict", "required": True},
    "pki_dir": {"type": "path"},
    "window_days": {"type": "int", "default": 30},
    "client_renew_before_days": {"type": "int", "default": 30},
    "client_renew_before_percent": {"type": "int", "default": 33},
    "min_days": {"type": "int", "default": 14},
    "allow_stopped": {"type": "bool", "default": False},
    "json_path": {"type": "path"},
    "metrics_path": {"type": "path"},
    "html_path": {"type": "path"},
}

# Validate, activate and prove after the writes (the server role's last step for a cluster; activation.py).
# PgBouncer as the activation's service (instead of a cluster).
PGBOUNCER = {
    "port": {"type": "int", "required": True},
    "service": {"type": "str", "default": "pgbouncer"},
    "config_file": {"type": "path", "required": True},
    "log_file": {"type": "path"},
    "client_cert_path": {"type": "path"},
    "client_key_path": {"type": "path"},
    "probe_user": {"type": "str", "default": "pgtls-probe"},
}

ACTIVATE = {
    "cluster": {"type": "dict", "options": CLUSTER},
    "pgbouncer": {"type": "dict", "options": PGBOUNCER},
    "server_user": {"type": "str", "default": "postgres"},
    "settings_file": {"type": "path"},
    # The material's files unless given (pgtls.ssl.cluster_files and pgtls.ssl.cluster_tls derive them).
    "cert_path": {"type": "path"},
    "key_path": {"type": "path"},
    "ca_path": {"type": "path"},
    "crl_path": {"type": "path"},
    "hostnames": {"type": "list", "elements": "str", "required": True},
    "warn_days": {"type": "int", "default": 30},
    "precheck_postmaster": {"type": "bool", "default": False},
    "verify": {"type": "bool", "default": True},
    "restart": {"type": "bool", "default": False},
    "always": {"type": "bool", "default": False},
    "wait_seconds": {"type": "int", "default": 5},
    # A standby: after the proof, wait until its WAL receiver streams with this replication certificate.
    "standby_cert_path": {"type": "path"},
}

CLUSTER_FILES = {
    "directories": {"type": "list", "elements": "dict", "default": [], "options": {
        "path": {"type": "path", "required": True},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "mode": {"type": "str", "default": "0755"},
    }},
    "files": {"type": "list", "elements": "dict", "default": [], "options": {
        "path": {"type": "path", "required": True},
        "content": {"type": "str", "required": True},
        "owner": {"type": "str"},
        "group": {"type": "str"},
        "mode": {"type": "str", "default": "0644"},
        "diff": {"type": "bool", "default": True},
    }},
    "lines": {"type": "list", "elements": "dict", "default": [], "options": {
        "path": {"type": "path", "required": True},
        "regexp": {"type": "str", "required": True},
        "line": {"type": "str", "required": True},
    }},
    **SNAPSHOT,
    "remove_legacy_snapshots": {"type": "bool", "default": False},
    # The server key and certificate, in the same execution (the pgtls.ssl.cluster_tls action sets these), and a
    # client certificate the service presents to PostgreSQL (PgBouncer's).
    "material": {"type": "dict", "options": HOST_ITEM},
    "client_material": {"type": "dict", "options": HOST_ITEM},
    "compare_only": {"type": "bool", "default": False},
    "lock_timeout": {"type": "int", "default": 300},
    "probe_port": {"type": "int"},
    "probe_cert_path": {"type": "path"},
    "activate": {"type": "dict", "options": ACTIVATE},
    "key_group": {"type": "dict", "no_log": False, "options": {
        "name": {"type": "str", "required": True},
        "user": {"type": "str", "required": True},
    }},
}

# What the server role hands pgtls.ssl.cluster_tls for one cluster: the key and certificate (as server_cert takes
# them), the files (as cluster_files takes them), the probe, and the CA that signs.
SERVER_MATERIAL = {name: SERVER_CERT[name] for name in (
    "key_path", "cert_path", "root_cert_path", "key_type", "common_name", "subject", "subject_alt_names", "valid_days",
    "key_mode", "cert_mode", "create_dir", "owner", "group")}

# The client certificate a service presents to PostgreSQL (PgBouncer's), in libpq's file names inside ``dir``.
CLIENT_MATERIAL = {
    "name": {"type": "str", "required": True},
    "dir": {"type": "path", "required": True},
    "owner": {"type": "str"},
    "group": {"type": "str"},
}

CLUSTER_TLS = {
    "material": {"type": "dict", "options": SERVER_MATERIAL},
    "client_material": {"type": "dict", "options": CLIENT_MATERIAL},
    # The folders, files, lines, snapshot, probe and activation as cluster_files takes them (activate.cluster as
    # pgtls.ssl.cluster_info describes it: the action leaves out the keys the activation does not use).
    **{name: entry for name, entry in CLUSTER_FILES.items() if name not in ("material", "client_material", "compare_only")},
    # The host's inspection of this cluster (pgtls.ssl.cluster_info's, with inspect): decided on without asking.
    "inspection": {"type": "dict"},
    # A stopped cluster (activate.cluster.running false): its files are written, but nothing proves them.
    "allow_stopped": {"type": "bool", "default": False},
    # Your own CA signs (the server role's pgtls_server_cert_source=external): files on the controller.
    "external": {"type": "dict", "options": {
        "csr_path": {"type": "path", "required": True},
        "cert_path": {"type": "path", "required": True},
        "root_path": {"type": "path", "required": True},
        "crl_path": {"type": "path"},
    }},
    # The collection's CA folder: issuer, chain and archive by its layout (instead of the issuer_* paths).
    **CA_FOLDER_OPTION,
    **OPENBAO_OPTION,
    **RENEWAL,
    **RECORD,
    **ISSUER,
}

# The controller's CA folder as a whole (pgtls.ssl.ca_folder, the server role's pki step).
CA_FOLDER = {
    "path": {"type": "path", "required": True},
    "key_type": {"type": "str", "default": DEFAULT_KEY_TYPE, "choices": list(KEY_TYPES)},
    "root_common_name": {"type": "str", "required": True},
    "intermediate_common_name": {"type": "str", "required": True},
    "root_key_passphrase": {"type": "str", "no_log": True},
    "root_cert_content": {"type": "str"},
    "root_key_content": {"type": "str", "no_log": True},
    "intermediate_cert_content": {"type": "str"},
    "intermediate_key_content": {"type": "str", "no_log": True},
    "crl": {"type": "bool", "default": True},
    "revoked": {"type": "list", "elements": "dict", "default": [], "options": REVOKED_ENTRY,
                "mutually_exclusive": [("serial_number", "certificate_path", "certificate_content")],
                "required_one_of": [("serial_number", "certificate_path", "certificate_content")]},
    "crl_next_update_days": {"type": "int", "default": 30},
    "crl_renew_before_days": {"type": "int", "default": 7},
    "lock_timeout": {"type": "int", "default": 120},
    # The engine holds the CA: the folder mirrors its root, intermediate and CRLs (no key is made or kept).
    **OPENBAO_OPTION,
    # With openbao, while a fleet moves from the collection's CA folder to the engine (same root): that folder, whose
    # intermediate's CRL crl.pem keeps carrying so the certificates it issued work until they are replaced.
    "migrate_from": {"type": "path"},
}

# A host's clusters' TLS sessions (sessions.py): walsenders, and the sessions of the certificates each cluster's CRL
# file (as the server reads it) revokes.
SESSIONS = {
    "clusters": {"type": "list", "elements": "dict", "default": [], "options": {
        "label": {"type": "str"},
        "port": {"type": "int", "required": True},
        "socket_dir": {"type": "path"},
        "running": {"type": "bool", "default": True},
        "crl_path": {"type": "path"},
    }},
    "poolers": {"type": "list", "elements": "dict", "default": [], "options": {
        "label": {"type": "str"},
        "port": {"type": "int", "required": True},
        "socket_dir": {"type": "path"},
        "running": {"type": "bool", "default": True},
        "revoked_names": {"type": "list", "elements": "str", "default": []},
    }},
    "server_user": {"type": "str", "default": "postgres"},
    "end_revoked": {"type": "bool", "default": False},
    "wait_seconds": {"type": "int", "default": 10},
}

# A Patroni member's TLS through Patroni's YAML (host/patroni.py): the member's server pair (PostgreSQL and the REST
# API), the CA and CRL files, and the client pairs for patronictl and the members (ctl), etcd and replication.
_PAIR = {"cert_path": {"type": "path", "required": True}, "key_path": {"type": "path", "required": True}}
PATRONI_CONFIG = {
    "path": {"type": "path", "required": True},
    "cert_path": {"type": "path", "required": True},
    "key_path": {"type": "path", "required": True},
    "ca_path": {"type": "path", "required": True},
    "crl_path": {"type": "path"},
    "min_protocol_version": {"type": "str", "default": "TLSv1.2", "choices": ["TLSv1.2", "TLSv1.3"]},
    "restapi": {"type": "bool", "default": True},
    "ctl": {"type": "dict", "options": _PAIR},
    "etcd": {"type": "dict", "options": _PAIR},
    "replication": {"type": "dict", "options": _PAIR},
    "reload": {"type": "bool", "default": False},
    "crl_changed": {"type": "bool", "default": False},
    "server_user": {"type": "str", "default": "postgres"},
    "patronictl": {"type": "str", "default": "patronictl"},
    "wait_seconds": {"type": "int", "default": 30},
}

# A Patroni member's YAML read (host/patroni.py patroni_info): identity, connect addresses, the CA files it names.
PATRONI_INFO = {
    "path": {"type": "path", "required": True},
    "probe_etcd": {"type": "bool", "default": False},
    "probe_timeout": {"type": "float", "default": 5.0},
}

# An etcd member's environment file (host/etcd.py etcd_config): its TLS variables, its restart, its proof.
ETCD_CONFIG = {
    "path": {"type": "path", "required": True},
    "cert_path": {"type": "path", "required": True},
    "key_path": {"type": "path", "required": True},
    "ca_path": {"type": "path", "required": True},
    "crl_path": {"type": "path"},
    "crl_bundle": {"type": "path"},
    "activate": {"type": "bool", "default": False},
    "trusted_before": {"type": "str"},
    "restart_command": {"type": "list", "elements": "str", "default": ["systemctl", "restart", "etcd"]},
    "server_user": {"type": "str", "default": "etcd"},
    "wait_seconds": {"type": "int", "default": 60},
}

# An etcd member's environment file read (host/etcd.py etcd_info): name, URLs, the CA files it names.
ETCD_INFO = {
    "path": {"type": "path", "required": True},
}

# Every module of the collection and the argument spec that validates its input (the modules and the action plugins
# use these; tests/unit checks each against the DOCUMENTATION of its module).
MODULE_SPECS = {
    "ca": CA,
    "server_cert": SERVER_CERT,
    "client_cert": CLIENT_CERT,
    "crl": CRL,
    "validate": VALIDATE,
    "host_material": HOST_MATERIAL,
    "revocation_registry": REVOCATION_REGISTRY,
    "intermediate_rotation": INTERMEDIATE_ROTATION,
    "root_rotation": ROOT_ROTATION,
    "audit_report": AUDIT_REPORT,
    "cluster_info": CLUSTER_INFO,
    "cluster_files": CLUSTER_FILES,
    "cluster_tls": CLUSTER_TLS,
    "ca_folder": CA_FOLDER,
    "sessions": SESSIONS,
    "patroni_config": PATRONI_CONFIG,
    "patroni_info": PATRONI_INFO,
    "etcd_config": ETCD_CONFIG,
    "etcd_info": ETCD_INFO,
}

# What each file option of each module names: (role, kind). The attack matrix (tests/unit/plugins/modules/
# test_attack_matrix.py) generates its hostile cases from this table, and fails when a path or content option of a
# spec is missing here, so a new option is attacked from the day it is added. Roles:
#   out      a file the module writes            out_dir    a folder the module makes or writes in
#   in       a file the module reads             content    material given as PEM text
#   ca_dir   a CA folder                         relative   a path inside another folder (cluster_info's trust_file)
#   awaited  a file the module waits for: missing, it asks for it (your own CA's certificate); present, it is read
#   descriptor  names a file the module neither reads nor writes before its activation step (no cases)
# Kinds are the write planner's (planner.NOUNS): ca_certificate, ca_key, certificate, key, crl, csr, pkcs8, pkcs12,
# registry, report_json, report_metrics, report_html, file, folder, snapshot, archive; "any" for a file copied as it is,
# "any_crl" for the CRL of any CA (crl's combine_with: a bundle holds the CRL of every CA the servers trust).
ISSUER_FILES = {
    "issuer_cert_path": ("in", "certificate"), "issuer_cert_content": ("content", "certificate"),
    "issuer_key_path": ("in", "key"), "issuer_key_content": ("content", "key"),
    "issuer_chain_path": ("in", "certificate"), "issuer_chain_content": ("content", "certificate"),
}
_SNAPSHOT_FILES = {"snapshot_dir": ("out_dir", "snapshot"), "snapshot_paths": ("in", "any")}
_CLUSTER_DESCRIPTORS = {f"{prefix}cluster.{name}": ("descriptor", "folder") for prefix in ("activate.", "")
                        for name in ("config_dir", "data_dir", "socket_dir", "log_file", "bin_dir")}
_ACTIVATE_DESCRIPTORS = {f"activate.{name}": ("descriptor", "file")
                         for name in ("settings_file", "cert_path", "key_path", "ca_path", "crl_path",
                                      "standby_cert_path")}
_PGBOUNCER_DESCRIPTORS = {f"activate.pgbouncer.{name}": ("descriptor", "file")
                          for name in ("config_file", "log_file", "client_cert_path", "client_key_path")}
_CONF_FILES = {
    "directories[].path": ("out_dir", "folder"), "files[].path": ("out", "file"), "files[].content": ("content", "file"),
    "lines[].path": ("out", "file"), **_SNAPSHOT_FILES, "probe_cert_path": ("descriptor", "certificate"),
    **_ACTIVATE_DESCRIPTORS, **_PGBOUNCER_DESCRIPTORS,
    **{f"activate.cluster.{name}": ("descriptor", "folder") for name in
       ("config_dir", "data_dir", "socket_dir", "log_file", "bin_dir")},
}
_ITEM_FILES = {
    "key_path": ("out", "key"), "cert_path": ("out", "certificate"), "root_path": ("out", "certificate"),
    "csr_path": ("out", "csr"), "base_dir": ("descriptor", "folder"), "pkcs8_path": ("out", "pkcs8"),
    "pkcs12_path": ("out", "pkcs12"), "certificate": ("content", "certificate"), "root": ("content", "certificate"),
    "crl_path": ("out", "crl"), "crl": ("content", "crl"),
}
# The CA bundle that verifies the engine's TLS certificate: handed to the TLS layer, read only (BaoSettings.check).
_OPENBAO_FILES = {"openbao.ca_path": ("descriptor", "certificate")}
FILE_OPTIONS = {
    "ca": {"cert_path": ("out", "ca_certificate"), "key_path": ("out", "ca_key"), **ISSUER_FILES},
    "crl": {"path": ("out", "crl"), "combined_path": ("out", "crl"), "combine_with": ("in", "any_crl"),
            "revoked[].certificate_path": ("in", "certificate"),
            "revoked[].certificate_content": ("content", "certificate"), **ISSUER_FILES},
    "server_cert": {**_OPENBAO_FILES, "key_path": ("out", "key"), "cert_path": ("out", "certificate"),
                    "csr_path": ("out", "csr"),
                    "root_cert_path": ("out", "certificate"), "record_dir": ("out_dir", "archive"),
                    "ca_folder": ("ca_dir", "folder"), **ISSUER_FILES},
    "client_cert": {**_OPENBAO_FILES, "clients[].dir": ("out_dir", "folder"), "dest": ("out_dir", "folder"),
                    "record_dir": ("out_dir", "archive"), "ca_folder": ("ca_dir", "folder"), **ISSUER_FILES},
    "validate": {"certificate_path": ("in", "certificate"), "certificate_content": ("content", "certificate"),
                 "key_path": ("in", "key"), "ca_path": ("in", "certificate"), "ca_content": ("content", "certificate"),
                 "crl_path": ("in", "crl")},
    "host_material": {f"items[].{name}": role for name, role in _ITEM_FILES.items()},
    "revocation_registry": {"path": ("out", "registry"), "pki_dir": ("ca_dir", "folder")},
    "intermediate_rotation": {"pki_dir": ("ca_dir", "folder")},
    "root_rotation": {"pki_dir": ("ca_dir", "folder")},
    # The CRL file a server reads holds one CRL per CA it trusts: any CA's CRL is what it is.
    "sessions": {"clusters[].crl_path": ("in", "any_crl"), "clusters[].socket_dir": ("descriptor", "folder"),
                 "poolers[].socket_dir": ("descriptor", "folder")},
    "cluster_info": {**{f"clusters[].{name}": ("descriptor", "folder") for name in
                        ("config_dir", "data_dir", "socket_dir", "log_file", "bin_dir")},
                     "trust_file": ("relative", "certificate"),
                     "inspect.files": ("relative", "file"), "inspect.directories": ("relative", "folder"),
                     "inspect.lines[].path": ("relative", "file"),
                     "inspect.snapshot_dir": ("relative", "snapshot"), "inspect.material.key_path": ("relative", "key"),
                     "inspect.material.cert_path": ("relative", "certificate"),
                     "inspect.material.root_path": ("relative", "certificate"),
                     "inspect.client_material.dir": ("relative", "folder")},
    "audit_report": {"pki_dir": ("ca_dir", "folder"), "json_path": ("out", "report_json"),
                     "metrics_path": ("out", "report_metrics"), "html_path": ("out", "report_html")},
    "cluster_files": {**_CONF_FILES, **{f"{option}.{name}": role for name, role in _ITEM_FILES.items()
                                        for option in ("material", "client_material")}},
    "cluster_tls": {**_CONF_FILES, **_OPENBAO_FILES,
                    "material.key_path": ("out", "key"), "material.cert_path": ("out", "certificate"),
                    "material.root_cert_path": ("out", "certificate"), "external.csr_path": ("out", "csr"),
                    "client_material.dir": ("out_dir", "folder"),
                    "activate.cert_path": ("descriptor", "certificate"), "activate.key_path": ("descriptor", "key"),
                    "activate.ca_path": ("descriptor", "certificate"),
                    "external.cert_path": ("awaited", "certificate"), "external.root_path": ("awaited", "certificate"),
                    "external.crl_path": ("awaited", "crl"), "ca_folder": ("ca_dir", "folder"),
                    "record_dir": ("out_dir", "archive"), **ISSUER_FILES},
    "ca_folder": {**_OPENBAO_FILES, "migrate_from": ("descriptor", "folder"),
                  "path": ("ca_dir", "folder"), "root_cert_content": ("content", "ca_certificate"),
                  "root_key_content": ("content", "ca_key"),
                  "intermediate_cert_content": ("content", "ca_certificate"),
                  "intermediate_key_content": ("content", "ca_key"),
                  "revoked[].certificate_path": ("in", "certificate"),
                  "revoked[].certificate_content": ("content", "certificate")},
    "patroni_config": {"path": ("out", "file"), "cert_path": ("in", "certificate"), "key_path": ("in", "key"),
                       "ca_path": ("in", "certificate"), "crl_path": ("in", "any_crl"),
                       **{f"{pair}.{name}": ("in", kind) for pair in ("ctl", "etcd", "replication")
                          for name, kind in (("cert_path", "certificate"), ("key_path", "key"))}},
    "patroni_info": {"path": ("in", "file")},
    # crl_path: what etcd reads, written from crl_bundle (the issuer's CRL first).
    "etcd_config": {"path": ("out", "file"), "cert_path": ("in", "certificate"), "key_path": ("in", "key"),
                    "ca_path": ("in", "certificate"), "crl_path": ("out", "crl"), "crl_bundle": ("in", "any_crl")},
    "etcd_info": {"path": ("in", "file")},
}
