# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Argument specs, in one place: the modules use them and the action plugins validate user input with them.
tests/unit checks each against the DOCUMENTATION of its module."""

from __future__ import annotations

from .constants import DEFAULT_KEY_TYPE, KEY_TYPES, REVOCATION_REASONS

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

OWNERSHIP = {
    "owner": {"type": "str"},
    "group": {"type": "str"},
}

# Where the controller archives every certificate it issued or found (one PEM per serial), for revocation by name.
RECORD = {
    "record_dir": {"type": "path"},
}

RENEWAL = {
    "renew_before_days": {"type": "int", "default": 30},
    "renew_before_percent": {"type": "int", "default": 0},
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

# The server role's snapshot, taken before the first write of a run (pgtls.ssl.server_cert, cluster_files).
SNAPSHOT = {
    "snapshot_dir": {"type": "path"},
    "snapshot_paths": {"type": "list", "elements": "path", "default": []},
    "snapshot_group": {"type": "str"},
    "snapshot_taken": {"type": "bool", "default": False},
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
    "key_mode": {"type": "str", "default": "0600", "no_log": False},
    "cert_mode": {"type": "str", "default": "0644"},
    "create_dir": {"type": "bool", "default": False},
    **SNAPSHOT,
    **OWNERSHIP,
    **RENEWAL,
    **RECORD,
    **ISSUER,
}

CLIENT_ENTRY = {
    "name": {"type": "str", "required": True},
    "dir": {"type": "path"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
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
    **OWNERSHIP,
    **RENEWAL,
    **RECORD,
    **ISSUER,
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
    "server_user": {"type": "str"},
    "probe_host": {"type": "str"},
    "probe_port": {"type": "int", "default": 5432},
    "probe_server_name": {"type": "str"},
    "probe_timeout": {"type": "float", "default": 5.0},
    "probe_negotiation": {"type": "str", "default": "postgres", "choices": ["postgres", "direct"]},
    "probe_direct_tls": {"type": "bool", "default": False},
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
    "key_mode": {"type": "str", "default": "0600", "no_log": False},
    "cert_mode": {"type": "str", "default": "0644"},
    "create_dir": {"type": "bool", "default": False},
    "base_dir": {"type": "path"},
    "pkcs8_path": {"type": "path"},
    "pkcs12_path": {"type": "path"},
    "pkcs12_passphrase": {"type": "str", "no_log": True},
    "certificate": {"type": "str"},
    "root": {"type": "str"},
    **SNAPSHOT,
}

HOST_MATERIAL = {
    "stage": {"type": "str", "default": "prepare", "choices": ["prepare", "install"]},
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
    "lock_timeout": {"type": "int", "default": 120},
}

INTERMEDIATE_ROTATION = {
    "pki_dir": {"type": "path", "required": True},
    "step": {"type": "str", "required": True, "choices": ["start", "retire"]},
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
}

AUDIT_REPORT = {
    "servers": {"type": "list", "elements": "dict", "required": True},
    "pki_dir": {"type": "path"},
    "window_days": {"type": "int", "default": 30},
    "min_days": {"type": "int", "default": 14},
    "allow_stopped": {"type": "bool", "default": False},
    "json_path": {"type": "path"},
    "metrics_path": {"type": "path"},
    "html_path": {"type": "path"},
}

# Validate, activate and prove after the writes (the server role's last step for a cluster; activation.py).
ACTIVATE = {
    "cluster": {"type": "dict", "required": True, "options": CLUSTER},
    "server_user": {"type": "str", "default": "postgres"},
    "settings_file": {"type": "path", "required": True},
    "cert_path": {"type": "path", "required": True},
    "key_path": {"type": "path", "required": True},
    "ca_path": {"type": "path", "required": True},
    "crl_path": {"type": "path"},
    "hostnames": {"type": "list", "elements": "str", "required": True},
    "warn_days": {"type": "int", "default": 30},
    "precheck_postmaster": {"type": "bool", "default": False},
    "verify": {"type": "bool", "default": True},
    "restart": {"type": "bool", "default": False},
    "always": {"type": "bool", "default": False},
    "wait_seconds": {"type": "int", "default": 5},
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
    # The server key and certificate, in the same execution (the pgtls.ssl.cluster_tls action sets these).
    "material": {"type": "dict", "options": HOST_ITEM},
    "compare_only": {"type": "bool", "default": False},
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

CLUSTER_TLS = {
    "material": {"type": "dict", "options": SERVER_MATERIAL},
    **{name: entry for name, entry in CLUSTER_FILES.items() if name not in ("material", "compare_only", "activate")},
    # The cluster as pgtls.ssl.cluster_info describes it (its other keys are left out for the host).
    "activate": {"type": "dict", "options": dict(ACTIVATE, cluster={"type": "dict", "required": True})},
    # Your own CA signs (the server role's pgtls_server_cert_source=external): files on the controller.
    "external": {"type": "dict", "options": {
        "csr_path": {"type": "path", "required": True},
        "cert_path": {"type": "path", "required": True},
        "root_path": {"type": "path", "required": True},
        "crl_path": {"type": "path"},
    }},
    # The collection's CA folder: issuer, chain and archive by its layout (instead of the issuer_* paths).
    "ca_folder": {"type": "path"},
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
}
