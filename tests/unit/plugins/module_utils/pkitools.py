"""Test helpers: build PKI material with the core under test, and ask openssl (the oracle) about it."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import Issuer, issue_certificate
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key, private_key_pem
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name, parse_sans
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.probe import SSL_REQUEST
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import CLIENT, INTERMEDIATE_CA, ROOT_CA, SERVER


def issuer_of(cert, key, chain=()):
    return Issuer(cert=cert, chain=list(chain), where="issuer", key_loader=lambda: key)


class Pki:
    """root -> intermediate -> leaves, all made by the code under test."""

    def __init__(self, key_type="ec-p256", root_days=3650, int_days=1825, int_name="Test Intermediate"):
        self.root_key = generate_key(key_type)
        self.root = issue_certificate(subject=build_name("Test Root"), public_key=self.root_key.public_key(),
                                      profile=ROOT_CA, valid_days=root_days, self_signing_key=self.root_key)
        self.root_issuer = issuer_of(self.root, self.root_key)
        self.int_key = generate_key(key_type)
        self.int = issue_certificate(subject=build_name(int_name), public_key=self.int_key.public_key(),
                                     profile=INTERMEDIATE_CA, valid_days=int_days, issuer=self.root_issuer)
        self.issuer = issuer_of(self.int, self.int_key, [self.root])

    def leaf(self, name="db1.example.com", sans=("db1.example.com",), profile=SERVER, key_type="ec-p256",
             days=365, issuer=None, at=None):
        key = generate_key(key_type)
        cert = issue_certificate(subject=build_name(name), public_key=key.public_key(), profile=profile,
                                 valid_days=days, issuer=issuer or self.issuer, sans=parse_sans(list(sans)), at=at)
        return key, cert

    def client(self, name="app", **kwargs):
        return self.leaf(name=name, sans=(), profile=CLIENT, **kwargs)


def pem(*certs) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def openssl(*args, input_data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *map(str, args)], input=input_data, capture_output=True, check=False)


def openssl_verify(tmp: Path, leaf, untrusted=(), roots=(), crls=(), purpose=None, extra=()) -> tuple[bool, str]:
    args = ["verify"]
    if roots:
        args += ["-CAfile", write(tmp / "oracle-roots.pem", pem(*roots))]
    else:
        args += ["-no-CAfile", "-no-CApath"]
    if untrusted:
        args += ["-untrusted", write(tmp / "oracle-untrusted.pem", pem(*untrusted))]
    if crls:
        args += ["-crl_check_all", "-CRLfile", write(tmp / "oracle-crls.pem",
                                                     b"".join(c.public_bytes(Encoding.PEM) for c in crls))]
    if purpose:
        args += ["-purpose", purpose]
    args += [*extra, write(tmp / "oracle-leaf.pem", pem(leaf))]
    done = openssl(*args)
    return done.returncode == 0, (done.stdout + done.stderr).decode()


def tree(root) -> dict:
    """Every entry under ``root``: bytes (a link's target), mode, owner, inode and mtime - what a refused run must
    leave as it was."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if stat.S_ISREG(st.st_mode) else (
                os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
            found[os.path.relpath(path, root)] = (data, st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_mtime_ns)
    return found


def openssl_server_cert(folder) -> tuple[str, str]:
    """A self-signed server certificate and key made by openssl (the oracle), for a stand-in TLS server."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(folder / "k.pem"), "-out", str(folder / "c.pem"), "-days", "2", "-subj", "/CN=db1"],
                   check=True, capture_output=True)
    return str(folder / "c.pem"), str(folder / "k.pem")


def stand_in_server(cert, accept_direct: bool, alpn: list[str] | None):
    """One connection: like PostgreSQL 17, a first byte 0x16 (TLS record) is direct TLS, else an SSLRequest."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    if alpn:
        context.set_alpn_protocols(alpn)

    def serve():
        conn = listener.accept()[0]
        with conn:
            first = conn.recv(1, socket.MSG_PEEK)
            if first == b"\x16":
                if not accept_direct:
                    return  # PostgreSQL 16 and older: not a startup packet, connection closed
            else:
                assert conn.recv(8) == SSL_REQUEST
                conn.sendall(b"S")
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def https_stand_in(cert, require_client: bool, tls12: bool = False, connections: int = 1):
    """An HTTPS-like service (as Patroni's REST API, etcd): plain TLS, then an answer to any request. With
    ``require_client`` it verifies client certificates against its own certificate (required); ``tls12`` caps the
    protocol so the refusal happens in the handshake instead of after it."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    if tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cert[0])

    def serve():
        for _connection in range(connections):
            conn = listener.accept()[0]
            with conn:
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        if tls.recv(64):
                            tls.sendall(b"HTTP/1.0 200 OK\r\n\r\n{}")
                except (ssl.SSLError, OSError):
                    pass
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def host_item(folder, **extra) -> dict:
    """One item of pgtls.ssl.host_material: a server key and certificate in ``folder`` (a Path)."""
    item = {"name": "server", "key_path": str(folder / "server.key"), "cert_path": str(folder / "server.crt"),
            "common_name": "db1", "subject_alt_names": ["db1"], "key_mode": "0600"}
    item.update(extra)
    return item


def sign_csr(pki: Pki, csr_pem: str):
    """A server certificate for the key of a CSR, signed by ``pki``'s intermediate."""
    csr = compat.load_csr(csr_pem.encode(), "csr")
    return issue_certificate(subject=build_name("db1"), public_key=csr.public_key(), profile=SERVER, valid_days=30,
                             issuer=pki.issuer)


def key_pem(key, passphrase=None) -> bytes:
    return private_key_pem(key, passphrase)


def days_ago(days: int) -> dt.datetime:
    return compat.now() - dt.timedelta(days=days)


__all__ = ["Pki", "pem", "write", "openssl", "openssl_verify", "key_pem", "days_ago", "x509", "issuer_of", "tree",
           "openssl_server_cert", "stand_in_server", "host_item", "sign_csr"]
