"""Issue 19's attack matrix, generated from specs.FILE_OPTIONS (the role and kind of every file option of every
module): for each working invocation of a module (a base) and each file or content option in it, the hostile inputs
of that option's role - the same path as each other file option, each CA folder file, a symbolic link at the file and
at a folder above it, a folder, an existing file of each other kind, another CA's material, truncated PEM, a folder
that cannot be written. Every case must fail with a message that names the option and the file, with no traceback,
and leave every byte, inode, mode, owner and mtime under its work folder as it was. A new option gets its cases from
its row in FILE_OPTIONS; an option without a row fails test_every_file_option_has_a_role.

Each case runs the module in this process (inprocess.py), in a copy of one work folder built once: a CA folder made
by pgtls.ssl.ca_folder, another CA, a cluster's configuration folder, and the files the bases read.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from inprocess import run
from pkitools import tree

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import specs
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.layout import Layout

W = "@W@"  # the case's work folder
CA_FILES = {"root.crt": "ca_certificate", "root.key": "ca_key", "root.crl": "crl", "intermediate.crt": "ca_certificate",
            "intermediate.key": "ca_key", "intermediate.crl": "crl", "crl.pem": "crl", "state.json": "state",
            "revoked.yml": "registry"}
# Who writes for each module (the planner's writer names) and, per option, when another part of it writes.
WRITERS = {"ca": "ca", "crl": "crl", "ca_folder": "ca_folder", "revocation_registry": "revocation_registry",
           "intermediate_rotation": "intermediate_rotation", "root_rotation": "root_rotation",
           "audit_report": "audit_report"}
OPTION_WRITERS = {"record_dir": "archive", "external.csr_path": "cluster_tls"}
SAME_KIND = {"ca_certificate": "certificate", "archive": "certificate", "ca_key": "key", "any_crl": "crl"}


def pem(*objects) -> str:
    out = b""
    for obj in objects:
        if isinstance(obj, x509.Certificate):
            out += obj.public_bytes(serialization.Encoding.PEM)
        elif isinstance(obj, x509.CertificateRevocationList):
            out += obj.public_bytes(serialization.Encoding.PEM)
        elif isinstance(obj, x509.CertificateSigningRequest):
            out += obj.public_bytes(serialization.Encoding.PEM)
        else:
            out += obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    return out.decode()


# Test material of our own, made with cryptography directly (not with the code under test) ---------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer: str, signer, ca: bool, sans=(), client=False, both=False) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=300 if ca else 90))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                            crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if not ca:
        usage = [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
        if both:
            usage = [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _crl(issuer: str, key) -> x509.CertificateRevocationList:
    now = dt.datetime.now(dt.timezone.utc)
    return (x509.CertificateRevocationListBuilder().issuer_name(_name(issuer)).last_update(now)
            .next_update(now + dt.timedelta(days=30))
            .add_extension(x509.CRLNumber(1), critical=False).sign(key, hashes.SHA256()))


def _key():
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class World:
    root: str
    pems: dict
    files: dict  # name -> bytes of each kind of content (for "an existing file holding ...")


def _write(path: str, data, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


def build_world(root: str) -> World:
    """The work folder every case copies (once per session)."""
    pki = os.path.join(root, "pki")
    done = run("ca_folder", {"path": pki, "root_common_name": "Matrix Root", "intermediate_common_name": "Matrix CA"})
    assert not done.get("failed"), done
    layout = Layout(pki)
    root_key = serialization.load_pem_private_key(open(layout.root_key, "rb").read(), None)
    int_key = serialization.load_pem_private_key(open(layout.intermediate_key, "rb").read(), None)
    root_crt = x509.load_pem_x509_certificate(open(layout.root_cert, "rb").read())
    int_crt = x509.load_pem_x509_certificate(open(layout.intermediate_cert, "rb").read())
    issuer = int_crt.subject.rfc4514_string().split("=", 1)[1]
    # Another CA, and leaves of each.
    other_root_key, other_int_key = _key(), _key()
    other_root = _cert("Other Root", other_root_key, "Other Root", other_root_key, True)
    other_int = _cert("Other CA", other_int_key, "Other Root", other_root_key, True)
    app_key, server_key, leaf_key, other_leaf_key = _key(), _key(), _key(), _key()
    app = _cert("app", app_key, issuer, int_key, False, client=True)
    revoke_me = _cert("gone", _key(), issuer, int_key, False, client=True)
    server = _cert("db1.example.com", server_key, issuer, int_key, False, sans=("db1.example.com",))
    leaf = _cert("db1.example.com", leaf_key, issuer, int_key, False, sans=("db1.example.com",))
    other_leaf = _cert("db1.example.com", other_leaf_key, "Other CA", other_int_key, False, sans=("db1.example.com",))
    csr = (x509.CertificateSigningRequestBuilder().subject_name(_name("csr"))
           .sign(other_leaf_key, hashes.SHA256()))
    # The CA folder's registry and archive, as the revoke playbook and the roles leave them.
    done = run("revocation_registry", {"pki_dir": pki, "serials": ["0x1F2E"], "reason": "superseded",
                                       "allow_unknown_serials": True})
    assert not done.get("failed"), done
    _write(os.path.join(pki, "issued", "app", f"{app.serial_number:X}.crt"), pem(app))
    # Another CA's folder.
    other = os.path.join(root, "other")
    for name, obj, mode in (("root.crt", other_root, 0o644), ("root.key", other_root_key, 0o600),
                            ("intermediate.crt", other_int, 0o644), ("intermediate.key", other_int_key, 0o600),
                            ("intermediate.crl", _crl("Other CA", other_int_key), 0o644),
                            ("leaf.crt", other_leaf, 0o644), ("leaf.key", other_leaf_key, 0o600)):
        _write(os.path.join(other, name), pem(obj), mode)
    # The outputs' folder, with what the bases read there.
    out = os.path.join(root, "out")
    _write(os.path.join(out, "leaf.crt"), pem(leaf, int_crt))
    _write(os.path.join(out, "leaf.key"), pem(leaf_key), 0o600)
    _write(os.path.join(out, "app.key"), pem(app_key), 0o600)
    _write(os.path.join(out, "revoke-me.crt"), pem(revoke_me))
    os.makedirs(os.path.join(out, "clients"))
    # A cluster's configuration folder.
    conf = os.path.join(root, "conf")
    _write(os.path.join(conf, "postgresql.conf"), "port = 5432\n")
    _write(os.path.join(conf, "pg_hba.conf"), "local all all peer\n", 0o640)
    _write(os.path.join(conf, "tls", "server.key"), pem(server_key), 0o600)
    _write(os.path.join(conf, "tls", "root.crt"), pem(root_crt))
    os.chmod(os.path.join(conf, "tls"), 0o750)
    os.makedirs(os.path.join(root, "data"))
    # Your own CA's files for the server's key (cluster_tls external).
    ext_server = _cert("db1.example.com", server_key, "Other CA", other_int_key, False, sans=("db1.example.com",))
    ext = os.path.join(root, "ext")
    _write(os.path.join(ext, "db1.crt"), pem(ext_server, other_int))
    _write(os.path.join(ext, "root.crt"), pem(other_root))
    _write(os.path.join(ext, "crl.pem"), pem(_crl("Other Root", other_root_key), _crl("Other CA", other_int_key)))
    # A Patroni member's configuration and material (patroni_config).
    member = os.path.join(root, "patroni")
    _write(os.path.join(member, "config.yml"), "scope: pg\nname: db1\nrestapi: {listen: 0.0.0.0:8008, connect_address: "
           "db1.example.com:8008}\netcd3: {hosts: 'etcd1:2379'}\npostgresql: {authentication: {replication: "
           "{username: replicator, password: secret}}}\n", 0o600)
    _write(os.path.join(member, "server.crt"), pem(server, int_crt))
    _write(os.path.join(member, "server.key"), pem(server_key), 0o600)
    _write(os.path.join(member, "root.crt"), pem(root_crt))
    _write(os.path.join(member, "crl.pem"), open(layout.crl_bundle).read())
    _write(os.path.join(member, "app.crt"), pem(app, int_crt))
    _write(os.path.join(member, "app.key"), pem(app_key), 0o600)
    # An etcd member's environment file and material (etcd_config): one certificate for clients and peers.
    etcd = os.path.join(root, "etcd")
    _write(os.path.join(etcd, "etcd.env"), 'ETCD_NAME="etcd1"\nETCD_ADVERTISE_CLIENT_URLS="https://etcd1.example.com:2379"\n'
           'ETCD_INITIAL_ADVERTISE_PEER_URLS="https://etcd1.example.com:2380"\n')
    _write(os.path.join(etcd, "server.crt"), pem(_cert("etcd1.example.com", server_key, issuer, int_key, False,
                                                       sans=("etcd1.example.com",), both=True), int_crt))
    _write(os.path.join(etcd, "server.key"), pem(server_key), 0o600)
    _write(os.path.join(etcd, "root.crt"), pem(root_crt))
    _write(os.path.join(etcd, "crl.pem"), open(layout.crl_bundle).read())
    # A place for decoys: what links point at.
    _write(os.path.join(root, "decoy", "empty"), b"")
    os.makedirs(os.path.join(root, "decoy", "dir"))
    pems = {
        "pki_root_crt": pem(root_crt), "pki_root_key": pem(root_key), "pki_int_crt": pem(int_crt),
        "pki_int_key": pem(int_key), "server_chain": pem(server, int_crt), "app_chain": pem(app, int_crt),
        "revoke_me": pem(revoke_me), "crl_pem": open(layout.crl_bundle).read(), "leaf_chain": pem(leaf, int_crt),
    }
    files = {
        "text": b"some notes, not what the option names\n",
        "key": pem(other_leaf_key).encode(),
        "certificate": pem(other_leaf).encode(),
        "crl": pem(_crl("Other CA", other_int_key)).encode(),
        "csr": pem(csr).encode(),
        # No NUL: Python 3.12 and later refuse one in the syslog message AnsibleModule writes, before the module runs.
        "binary": b"\x01\x02 binary garbage \xff\xfe",
        "json": b'{"something": "else"}\n',
    }
    other_pems = {"certificate": pem(other_leaf), "ca_certificate": pem(other_int), "key": pem(other_leaf_key),
                  "ca_key": pem(other_int_key), "crl": pem(_crl("Other CA", other_int_key)), "root": pem(other_root)}
    return World(root, dict(pems, **{f"other_{k}": v for k, v in other_pems.items()}), files)


# The bases: one working invocation of each module per way it is used ---------------------------------------------
@dataclass
class Base:
    module: str
    name: str
    args: dict
    # Options of the base that this invocation does not use (they get no cases here; another base attacks them).
    inert: tuple = ()


ISSUER = {"issuer_cert_path": f"{W}/pki/intermediate.crt", "issuer_key_path": f"{W}/pki/intermediate.key",
          "issuer_chain_path": f"{W}/pki/root.crt"}
ISSUER_CONTENT = {"issuer_cert_content": "@PEM:pki_int_crt@", "issuer_key_content": "@PEM:pki_int_key@",
                  "issuer_chain_content": "@PEM:pki_root_crt@"}
CONF = {
    "directories": [{"path": f"{W}/conf/tls", "mode": "0750"}],
    "files": [{"path": f"{W}/conf/pg_hba.conf", "content": "hostssl all all all cert\n", "mode": "0640"},
              {"path": f"{W}/conf/tls/crl.pem", "content": "@PEM:crl_pem@", "mode": "0644"}],
    "lines": [{"path": f"{W}/conf/postgresql.conf", "regexp": "^include_dir", "line": "include_dir = 'conf.d'"}],
    "snapshot_dir": f"{W}/conf/tls/.snap",
    "snapshot_paths": [f"{W}/conf/pg_hba.conf"],
}
MATERIAL = {"key_path": f"{W}/conf/tls/server.key", "cert_path": f"{W}/conf/tls/server.crt",
            "root_cert_path": f"{W}/conf/tls/root.crt", "subject_alt_names": ["db1.example.com"]}
AUDIT_SERVER = {"host": "db1", "cluster": "15/main", "port": 5432, "running": True,
                "result": {"findings": [{"check": "validity", "status": "ok", "message": "300 days left"}],
                           "certificate": {"subject": "CN=db1", "issuer": "CN=Matrix CA", "serial": "01",
                                           "not_after": "2030-01-01T00:00:00+00:00", "days_left": 300,
                                           "fingerprint_sha256": "AA"}, "chain": [], "crls": []}}
APP_PAIR = {"cert_path": f"{W}/patroni/app.crt", "key_path": f"{W}/patroni/app.key"}
BASES = [
    Base("ca", "intermediate", {"cert_path": f"{W}/out/ca.crt", "key_path": f"{W}/out/ca.key", "common_name": "Sub",
                                "issuer_cert_path": f"{W}/pki/root.crt", "issuer_key_path": f"{W}/pki/root.key"}),
    # Under another CA's intermediate (no path length limit), with its chain.
    Base("ca", "chain", {"cert_path": f"{W}/out/ca.crt", "key_path": f"{W}/out/ca.key", "common_name": "Sub",
                         "issuer_cert_path": f"{W}/other/intermediate.crt", "issuer_key_path": f"{W}/other/intermediate.key",
                         "issuer_chain_path": f"{W}/other/root.crt"}),
    Base("ca", "content", {"cert_path": f"{W}/out/ca.crt", "key_path": f"{W}/out/ca.key", "common_name": "Sub",
                           "issuer_cert_content": "@PEM:other_ca_certificate@", "issuer_key_content": "@PEM:other_ca_key@",
                           "issuer_chain_content": "@PEM:other_root@"}),
    Base("crl", "files", {"path": f"{W}/out/int.crl", "combined_path": f"{W}/out/crl.pem",
                          "combine_with": [f"{W}/pki/root.crl"], "revoked": [{"certificate_path": f"{W}/out/revoke-me.crt"}],
                          **ISSUER}),
    Base("crl", "content", {"path": f"{W}/out/int.crl", "revoked": [{"certificate_content": "@PEM:revoke_me@"}],
                            **ISSUER_CONTENT}),
    Base("server_cert", "files", {"key_path": f"{W}/out/server.key", "cert_path": f"{W}/out/server.crt",
                                  "csr_path": f"{W}/out/server.csr", "root_cert_path": f"{W}/out/root.crt",
                                  "subject_alt_names": ["db1.example.com"], "record_dir": f"{W}/pki/issued",
                                  **ISSUER}),
    Base("server_cert", "content", {"key_path": f"{W}/out/server.key", "cert_path": f"{W}/out/server.crt",
                                    "root_cert_path": f"{W}/out/root.crt", "subject_alt_names": ["db1.example.com"],
                                    **ISSUER_CONTENT}),
    Base("client_cert", "dest", {"clients": [{"name": "app2"}], "dest": f"{W}/out/clients", "key_location": "controller",
                                 "record_dir": f"{W}/pki/issued", **ISSUER}),
    Base("client_cert", "dir", {"clients": [{"name": "app2", "dir": f"{W}/out/app2"}], "key_location": "controller",
                                **ISSUER_CONTENT}),
    # The CA folder's layout names the issuer, its chain and the archive (issued/).
    Base("server_cert", "ca_folder", {"key_path": f"{W}/out/server.key", "cert_path": f"{W}/out/server.crt",
                                      "csr_path": f"{W}/out/server.csr", "root_cert_path": f"{W}/out/root.crt",
                                      "subject_alt_names": ["db1.example.com"], "ca_folder": f"{W}/pki"}),
    Base("client_cert", "ca_folder", {"clients": [{"name": "app2"}], "dest": f"{W}/out/clients",
                                      "key_location": "controller", "ca_folder": f"{W}/pki"}),
    Base("validate", "files", {"certificate_path": f"{W}/out/leaf.crt", "key_path": f"{W}/out/leaf.key",
                               "ca_path": f"{W}/pki/root.crt", "crl_path": f"{W}/pki/crl.pem",
                               "hostnames": ["db1.example.com"], "purpose": "server"}),
    Base("validate", "content", {"certificate_content": "@PEM:leaf_chain@", "ca_content": "@PEM:pki_root_crt@",
                                 "purpose": "server"}),
    Base("host_material", "install", {"stage": "install", "items": [{
        "name": "app", "key_path": f"{W}/out/app.key", "cert_path": f"{W}/out/app.crt", "root_path": f"{W}/out/root.crt",
        "pkcs8_path": f"{W}/out/app.pk8", "pkcs12_path": f"{W}/out/app.p12", "pkcs12_passphrase": "matrix",
        "certificate": "@PEM:app_chain@", "root": "@PEM:pki_root_crt@", "crl_path": f"{W}/out/root.crl",
        "crl": "@PEM:crl_pem@"}]}),
    # Only the CRL file, beside a certificate in place (the client role's crl entry point).
    Base("host_material", "crl", {"stage": "crl", "items": [{
        "name": "leaf", "key_path": f"{W}/out/leaf.key", "cert_path": f"{W}/out/leaf.crt",
        "crl_path": f"{W}/out/root.crl", "crl": "@PEM:crl_pem@", "root": "@PEM:pki_root_crt@"}]}),
    Base("host_material", "prepare", {"stage": "prepare", "items": [{
        "name": "new", "key_path": f"{W}/out/new.key", "cert_path": f"{W}/out/new.crt", "csr_path": f"{W}/out/new.csr",
        "common_name": "new"}]}),
    Base("revocation_registry", "pki_dir", {"pki_dir": f"{W}/pki", "names": ["app"], "reason": "key_compromise"}),
    Base("revocation_registry", "path", {"path": f"{W}/out/revoked.yml", "serials": ["0x1F"]}),
    Base("intermediate_rotation", "start", {"pki_dir": f"{W}/pki", "step": "start"}),
    Base("root_rotation", "start", {"pki_dir": f"{W}/pki", "step": "start"}),
    Base("cluster_info", "trust", {"clusters": [{"version": 15, "name": "main", "port": 5432,
                                                 "config_dir": f"{W}/conf", "data_dir": f"{W}/data"}],
                                   "trust_file": "tls/root.crt"}),
    # Discovery with the cluster step's first stage: the server role's files, relative to the configuration folder.
    Base("cluster_info", "inspect", {"clusters": [{"version": 15, "name": "main", "port": 5432,
                                                   "config_dir": f"{W}/conf", "data_dir": f"{W}/data"}],
                                     "inspect": {"files": ["pg_hba.conf", "tls/root.crl"], "directories": ["tls"],
                                                 "lines": [{"path": "postgresql.conf", "regexp": "^include_dir",
                                                            "line": "include_dir = 'conf.d'"}],
                                                 "snapshot_dir": "tls/.pgtls-snapshot",
                                                 "material": {"key_path": "tls/new.key", "cert_path": "tls/new.crt",
                                                              "root_path": "tls/root.crt",
                                                              "subject_alt_names": ["db1.example.com"]},
                                                 # A standby's replication certificate, beside the key.
                                                 "client_material": {"name": "replicator", "dir": "tls/replication"}}}),
    # A stopped cluster: its CRL file is read (and attacked) without a server to ask.
    Base("sessions", "stopped", {"clusters": [{"label": "15/main", "port": 5432, "running": False,
                                               "crl_path": f"{W}/pki/crl.pem"}]}),
    Base("audit_report", "outputs", {"servers": [AUDIT_SERVER], "pki_dir": f"{W}/pki", "json_path": f"{W}/out/a.json",
                                     "metrics_path": f"{W}/out/a.prom", "html_path": f"{W}/out/a.html"}),
    Base("cluster_files", "install", {**CONF, "material": {
        "name": "server", "key_path": f"{W}/conf/tls/server.key", "cert_path": f"{W}/conf/tls/server.crt",
        "root_path": f"{W}/conf/tls/root.crt", "pkcs8_path": f"{W}/conf/tls/server.pk8",
        "pkcs12_path": f"{W}/conf/tls/server.p12", "pkcs12_passphrase": "matrix",
        "certificate": "@PEM:server_chain@", "root": "@PEM:pki_root_crt@", "crl_path": f"{W}/conf/tls/root.crl",
        "crl": "@PEM:crl_pem@"}}),
    Base("cluster_files", "ask", {**CONF, "compare_only": True, "material": {
        "name": "server", "key_path": f"{W}/conf/tls/new.key", "cert_path": f"{W}/conf/tls/new.crt",
        "csr_path": f"{W}/conf/tls/new.csr", "common_name": "db1.example.com"}}),
    # A service's client certificate for PostgreSQL (PgBouncer's), beside the server's, in one plan.
    Base("cluster_files", "client", {**CONF, "material": {
        "name": "server", "key_path": f"{W}/conf/tls/new.key", "cert_path": f"{W}/conf/tls/new.crt",
        "common_name": "db1.example.com"}, "client_material": {
        "name": "app", "key_path": f"{W}/out/app.key", "cert_path": f"{W}/out/app.crt", "root_path": f"{W}/out/root.crt",
        "pkcs8_path": f"{W}/out/app.pk8", "pkcs12_path": f"{W}/out/app.p12", "pkcs12_passphrase": "matrix",
        "certificate": "@PEM:app_chain@", "root": "@PEM:pki_root_crt@", "crl_path": f"{W}/out/root.crl",
        "crl": "@PEM:crl_pem@"}}),
    Base("cluster_files", "client_ask", {**CONF, "compare_only": True, "client_material": {
        "name": "pgbouncer", "key_path": f"{W}/out/pgb/postgresql.key", "cert_path": f"{W}/out/pgb/postgresql.crt",
        "csr_path": f"{W}/out/pgb/postgresql.csr", "common_name": "pgbouncer", "create_dir": True}}),
    Base("cluster_tls", "ca_folder", {**CONF, "material": MATERIAL, "ca_folder": f"{W}/pki"}),
    Base("cluster_tls", "client", {**CONF, "material": MATERIAL, "ca_folder": f"{W}/pki",
                                   "client_material": {"name": "pgbouncer", "dir": f"{W}/out/pgb"}}),
    Base("cluster_tls", "issuer", {**CONF, "material": MATERIAL, "record_dir": f"{W}/pki/issued", **ISSUER}),
    Base("cluster_tls", "content", {**CONF, "material": MATERIAL, **ISSUER_CONTENT}),
    Base("cluster_tls", "external", {**CONF, "material": MATERIAL, "external": {
        "csr_path": f"{W}/ext/db1.csr", "cert_path": f"{W}/ext/db1.crt", "root_path": f"{W}/ext/root.crt",
        "crl_path": f"{W}/ext/crl.pem"}}),
    Base("patroni_config", "member", {"path": f"{W}/patroni/config.yml", "cert_path": f"{W}/patroni/server.crt",
                                      "key_path": f"{W}/patroni/server.key", "ca_path": f"{W}/patroni/root.crt",
                                      "crl_path": f"{W}/patroni/crl.pem", "ctl": dict(APP_PAIR),
                                      "etcd": dict(APP_PAIR), "replication": dict(APP_PAIR)}),
    Base("patroni_info", "member", {"path": f"{W}/patroni/config.yml"}),
    Base("etcd_config", "member", {"path": f"{W}/etcd/etcd.env", "cert_path": f"{W}/etcd/server.crt",
                                   "key_path": f"{W}/etcd/server.key", "ca_path": f"{W}/etcd/root.crt",
                                   "crl_path": f"{W}/etcd/etcd.crl", "crl_bundle": f"{W}/etcd/crl.pem"}),
    Base("etcd_info", "member", {"path": f"{W}/etcd/etcd.env"}),
    Base("ca_folder", "existing", {"path": f"{W}/pki", "root_common_name": "Matrix Root",
                                   "intermediate_common_name": "Matrix CA",
                                   "revoked": [{"certificate_path": f"{W}/out/revoke-me.crt"}]}),
    Base("ca_folder", "content", {"path": f"{W}/newca", "root_common_name": "Matrix Root",
                                  "intermediate_common_name": "Matrix CA", "root_cert_content": "@PEM:pki_root_crt@",
                                  "root_key_content": "@PEM:pki_root_key@", "intermediate_cert_content": "@PEM:pki_int_crt@",
                                  "intermediate_key_content": "@PEM:pki_int_key@",
                                  "revoked": [{"certificate_content": "@PEM:revoke_me@"}]}),
]


# Reading and changing a base's arguments ---------------------------------------------------------------------------
def _steps(option: str) -> list:
    """'files[].path' -> ['files', 0, 'path']; 'combine_with' (a list of paths) -> ['combine_with', 0] in args."""
    steps = []
    for part in option.split("."):
        if part.endswith("[]"):
            steps += [part[:-2], 0]
        else:
            steps.append(part)
    return steps


def get(args: dict, option: str):
    value = args
    for step in _steps(option):
        if isinstance(step, int):
            if not isinstance(value, list) or len(value) <= step:
                return None
        elif not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]  # a list of paths: its first
    return value


def put(args: dict, option: str, new) -> dict:
    out = copy.deepcopy(args)
    value = out
    steps = _steps(option)
    for step in steps[:-1]:
        value = value[step]
    if isinstance(value[steps[-1]], list):
        value[steps[-1]][0] = new
    else:
        value[steps[-1]] = new
    return out


def file_options(base: Base) -> dict:
    """The base's file options with their role, kind and value (the ones it uses)."""
    table = specs.FILE_OPTIONS[base.module]
    found = {}
    for option, (role, kind) in table.items():
        if role == "descriptor" or option in base.inert:
            continue
        value = get(base.args, option)
        if value is not None:
            found[option] = (role, kind, value)
    return found


def writer_of(module: str, option: str) -> str:
    return OPTION_WRITERS.get(option, WRITERS.get(module, "host"))


def owns(module: str, option: str, name: str, kind: str) -> bool:
    """Is writing the CA folder's ``name`` as ``kind`` part of what this option is for?"""
    if writer_of(module, option) not in Layout.owners(name):
        return False
    return SAME_KIND.get(kind, kind) == SAME_KIND.get(CA_FILES[name], CA_FILES[name])


# The cases --------------------------------------------------------------------------------------------------------
@dataclass
class Case:
    base: Base
    option: str
    attack: str
    target: str = ""
    value: object = None
    lay: list = field(default_factory=list)  # (what, path, detail)
    # fail: nothing may change. fail_or_pending: a key the host made before the controller found it cannot sign
    # (a CA key kept offline is read only when something must be signed) may wait as <key_path>.pgtls-new, with its
    # CSR, and the message says so.
    expect: str = "fail"

    @property
    def id(self) -> str:
        target = f":{self.target}" if self.target else ""
        return f"{self.base.module}:{self.base.name}:{self.option}:{self.attack}{target}"


CLASSES = ("text", "key", "certificate", "crl", "csr", "binary", "json")
ASKS_A_HOST = ("server_cert", "client_cert", "cluster_tls")


def _compatible(kind: str, found: str) -> bool:
    """Would an existing file holding ``found`` be taken as (or replaced by) ``kind``? Then it is no attack."""
    kind = SAME_KIND.get(kind, kind)
    accepted = {"key": ("key",), "certificate": ("certificate",), "crl": ("crl",), "csr": ("csr",),
                "file": ("text", "crl", "certificate", "json"), "any": CLASSES}
    return found in accepted.get(kind, ())


def _other_pem(kind: str) -> str:
    return kind if kind in ("ca_certificate", "ca_key") else SAME_KIND.get(kind, kind)


def _outputs(add, base, option, role, kind, value, others) -> None:
    for name in CA_FILES:
        if not (role == "out" and owns(base.module, option, name, kind)):
            add("ca-folder-file", name, f"{W}/pki/{name}")
    add("parent-link", "ca folder", f"{W}/via/{os.path.basename(value)}", [("link", f"{W}/via", f"{W}/pki")])
    if others:
        other, path = next(iter(others.items()))
        add("parent-link", other, f"{W}/via2/{os.path.basename(path)}", [("link", f"{W}/via2", os.path.dirname(path))])
    decoy = f"{W}/decoy/{'dir' if role == 'out_dir' else 'empty'}"
    add("link", "", value, [("remove", value, ""), ("link", value, decoy)])
    add("read-only folder", "", value, [("immutable", value if role == "out_dir" else os.path.dirname(value), "")])
    if role == "out":
        add("folder", "", value, [("remove", value, ""), ("dir", value, "")])
        for found in CLASSES:
            if not _compatible(kind, found):
                add("holds", found, value, [("remove", value, ""), ("file", value, found)])
    else:
        add("file", "", value, [("remove", value, ""), ("file", value, "text")])


def _inputs(add, base, option, role, kind, value) -> None:
    if role != "awaited":
        add("missing", "", f"{W}/nowhere/{os.path.basename(value)}",
            expect="fail_or_pending" if base.module in ASKS_A_HOST and option == "issuer_key_path" else "fail")
    add("folder", "", f"{W}/decoy/dir")
    for found in CLASSES:
        if not _compatible(kind, found):
            add("holds", found, f"{W}/decoy/{found}", [("file", f"{W}/decoy/{found}", found)])
    if SAME_KIND.get(kind, kind) == "key":
        add("link-to-other-key", "", f"{W}/decoy/link", [("link", f"{W}/decoy/link", f"{W}/other/leaf.key")])
    else:
        add("link-to-ca-key", "", f"{W}/decoy/link", [("link", f"{W}/decoy/link", f"{W}/pki/root.key")])
    if SAME_KIND.get(kind, kind) in ("certificate", "key", "crl") and kind != "any_crl":
        add("truncated", "", f"{W}/decoy/truncated", [("truncated", f"{W}/decoy/truncated", value)])
        add("other-ca", "", f"{W}/decoy/other", [("other", f"{W}/decoy/other", kind)])


def _content(add, base, option, kind, value) -> None:
    for found in ("text", "key", "certificate", "crl", "binary"):
        if (kind == "file" and found in ("text", "crl", "certificate")) or _compatible(kind, found):
            continue
        add("content", found, f"@FILE:{found}@")
    if kind == "file":
        add("content", "truncated crl", "@TRUNCATED:@PEM:crl_pem@")
        return
    add("truncated", "", f"@TRUNCATED:{value}")
    other = f"@PEM:other_{_other_pem(kind)}@"
    if other != value:
        add("other-ca", "", other)


def _ca_dir(add, value) -> None:
    add("file", "", f"{W}/decoy/empty")
    if value != f"{W}/pki":
        return  # a CA folder still to be made holds no link
    add("link inside", "issued", value, [("move", f"{W}/pki/issued", f"{W}/decoy/issued"),
                                         ("link", f"{W}/pki/issued", f"{W}/decoy/issued")])
    add("link inside", "retired", value, [("link", f"{W}/pki/retired", f"{W}/decoy/dir")])


def _relative(add, kind, value) -> None:
    add("absolute", "", f"{W}/conf/tls/root.crt")
    add("dotdot", "", "../conf/tls/root.crt")
    if kind != "key":
        add("holds", "key", value, [("remove", f"{W}/conf/{value}", ""), ("file", f"{W}/conf/{value}", "key")])
    add("link", "", value, [("remove", f"{W}/conf/{value}", ""), ("link", f"{W}/conf/{value}", f"{W}/pki/root.crt")])


def generate() -> list[Case]:
    cases = []
    for base in BASES:
        options = file_options(base)
        paths = {o: v for o, (role, _k, v) in options.items() if role in ("out", "out_dir", "in", "awaited", "ca_dir")
                 and isinstance(v, str)}
        for option, (role, kind, value) in options.items():
            def add(attack, target="", new=None, lay=(), expect="fail", base=base, option=option):
                cases.append(Case(base, option, attack, target, new, list(lay), expect))
            others = {o: v for o, v in paths.items() if o != option and not o.endswith("snapshot_paths")}
            if role in ("out", "out_dir", "in", "awaited") and not option.endswith("snapshot_paths"):
                for other, path in others.items():
                    if role in ("in", "awaited") and options[other][0] in ("in", "awaited"):
                        continue  # two inputs may well be one file
                    add("same-as", other, path)
            if option.endswith("snapshot_paths"):
                add("folder", "", f"{W}/decoy/dir")
                add("link", "", f"{W}/decoy/link", [("link", f"{W}/decoy/link", f"{W}/decoy/empty")])
            elif role in ("out", "out_dir"):
                _outputs(add, base, option, role, kind, value, others)
            elif role in ("in", "awaited"):
                _inputs(add, base, option, role, kind, value)
            elif role == "content":
                _content(add, base, option, kind, value)
            elif role == "ca_dir":
                _ca_dir(add, value)
            elif role == "relative":
                _relative(add, kind, value)
    return cases


CASES = generate()


# Running a case ------------------------------------------------------------------------------------------------------
def _cut(text: str) -> str:
    """PEM cut short inside its first block (what a damaged copy or a half-pasted credential holds)."""
    end = text.find("-----END")
    return text[: max(end // 2, 1)] if end > 0 else text[: len(text) // 2]


def resolve(value, world: World, root: str):
    if isinstance(value, dict):
        return {k: resolve(v, world, root) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, world, root) for v in value]
    if not isinstance(value, str):
        return value
    if value.startswith("@TRUNCATED:"):
        return _cut(resolve(value[len("@TRUNCATED:"):], world, root))
    if value.startswith("@FILE:"):
        return world.files[value[6:-1]].decode(errors="replace")
    for name, text in world.pems.items():
        value = value.replace(f"@PEM:{name}@", text)
    return value.replace(W, root)


def lay(case: Case, world: World, root: str) -> list[str]:
    """Make the case's changes to its work folder; returns what must be made writable again afterwards."""
    immutable = []
    for what, where, given in case.lay:
        path, detail = resolve(where, world, root), resolve(given, world, root)
        if what == "remove":
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
            elif os.path.isdir(path):
                shutil.rmtree(path)
        elif what == "link":
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(detail, path)
        elif what == "dir":
            os.makedirs(path)
        elif what == "file":
            _write(path, world.files[detail])
        elif what == "truncated":
            _write(path, _cut(open(detail).read() if os.path.isfile(detail) else ""))
        elif what == "other":
            _write(path, world.pems[f"other_{_other_pem(detail)}"])
        elif what == "move":
            shutil.move(path, detail)
        elif what == "immutable":
            target = path
            while not os.path.isdir(target):
                target = os.path.dirname(target)
            if subprocess.run(["chattr", "+i", target], capture_output=True, check=False).returncode != 0:
                pytest.skip("chattr +i is not available here (the sandbox lacks it)")
            immutable.append(target)
    return immutable


def option_pattern(option: str) -> str:
    """How a message may name an option: 'files[0].path', 'items[0] (app).key_path', 'clients[0] (app)'."""
    parts = []
    for part in option.split("."):
        parts.append(re.escape(part[:-2]) + r"\[0\](?: \([^)]*\))?" if part.endswith("[]") else re.escape(part))
    full = r"\.".join(parts)
    leaf = re.escape(option.rsplit(".", maxsplit=1)[-1].rstrip("[]"))
    return rf"(?:{full}|{leaf})"


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    return build_world(str(tmp_path_factory.mktemp("matrix-world")))


def _in(world: World, case_name: str, tmp_path) -> str:
    root = str(tmp_path / "w")
    shutil.copytree(world.root, root, symlinks=True)
    return root


# The tests ---------------------------------------------------------------------------------------------------------
def _spec_file_options(spec: dict, prefix: str = ""):
    for name, entry in spec.items():
        kind = entry.get("type")
        if kind == "path" or (kind == "list" and entry.get("elements") == "path") or name.endswith("content") or \
                name in ("certificate", "root", "trust_file"):
            yield prefix + name
        if entry.get("options"):
            yield from _spec_file_options(entry["options"], prefix + name + ("[]." if kind == "list" else "."))


@pytest.mark.parametrize("module", sorted(specs.MODULE_SPECS))
def test_every_file_option_has_a_role(module):
    """A path or content option without a row in specs.FILE_OPTIONS would get no cases: refused here."""
    missing = sorted(set(_spec_file_options(specs.MODULE_SPECS[module])) - set(specs.FILE_OPTIONS[module]))
    assert missing == [], f"{module}: give these options a role and kind in specs.FILE_OPTIONS: {missing}"


@pytest.mark.parametrize("module", sorted(specs.MODULE_SPECS))
def test_every_attackable_option_is_used_by_a_base(module):
    attacked = {option for base in BASES if base.module == module for option in file_options(base)}
    wanted = {o for o, (role, _kind) in specs.FILE_OPTIONS[module].items() if role != "descriptor"}
    assert sorted(wanted - attacked) == [], f"{module}: no base uses these options, so no case attacks them"


@pytest.mark.parametrize("base", BASES, ids=lambda b: f"{b.module}:{b.name}")
def test_each_base_works_and_a_second_run_changes_nothing(world, tmp_path, base):
    root = _in(world, base.name, tmp_path)
    args = resolve(base.args, world, root)
    first = run(base.module, args)
    assert not first.get("failed"), first.get("msg")
    if base.module in ("audit_report", "validate", "cluster_info"):
        return  # a report is written at each run (its time changes); the others write nothing
    second = run(base.module, args)
    assert not second.get("failed"), second.get("msg")
    assert not second.get("changed"), (second.get("reasons"), second.get("changes"), second.get("actions"))


def test_the_matrix_is_large_enough():
    """Every module is attacked, with cases of every kind (the count is printed for the closing note)."""
    modules = {case.base.module for case in CASES}
    attacks = {case.attack for case in CASES}
    print(f"\nattack matrix: {len(CASES)} cases over {len(modules)} modules and {len(attacks)} kinds of attack")
    assert modules == set(specs.MODULE_SPECS)
    assert {"same-as", "ca-folder-file", "link", "parent-link", "folder", "holds", "truncated", "other-ca",
            "read-only folder"} <= attacks


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_attack(world, tmp_path, case):
    root = _in(world, case.id, tmp_path)
    args = put(case.base.args, case.option, case.value)
    args = resolve(args, world, root)
    named = resolve(case.value, world, root) if isinstance(case.value, str) and not case.value.startswith("@") else None
    immutable = lay(case, world, root)
    before = tree(root)
    try:
        done = run(case.base.module, args)
    finally:
        for folder in immutable:
            subprocess.run(["chattr", "-i", folder], check=False)
    after = tree(root)
    msg = str(done.get("msg", ""))
    assert done.get("failed"), f"{case.id}: accepted ({done.get('changed')=})"
    assert "Traceback" not in msg and "unexpected error" not in msg, msg
    if case.attack == "read-only folder":
        # The first output in that folder stops the run: it names that output and the folder.
        assert "cannot write in" in msg or "not writable" in msg, f"{case.id}: {msg}"
    else:
        assert re.search(option_pattern(case.option), msg), f"{case.id}: the message does not name the option: {msg}"
    if named and case.attack not in ("dotdot", "read-only folder"):
        shown = {named, os.path.basename(named.rstrip("/")), os.path.realpath(named)}
        assert any(s and s in msg for s in shown), f"{case.id}: the message does not name the file: {msg}"
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if case.expect == "fail_or_pending":
        left = [k for k in changed if not (k.endswith((".pgtls-new", ".csr")) or k in ("out", "out/clients",
                                                                                       "out/clients/app2", "conf/tls"))]
        assert left == [], f"{case.id}: the work folder changed beyond a pending key: {changed}\n{msg}"
        assert not changed or ".pgtls-new" in msg, f"{case.id}: a pending key was kept but not said: {msg}"
        return
    assert changed == [], f"{case.id}: the work folder changed: {changed}\n{msg}"
