"""Test helpers: build PKI material with the core under test, and ask openssl (the oracle) about it."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ansible_collections.pgtls.ssl.plugins.module_utils._pki import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.issue import Issuer, issue_certificate
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.keys import generate_key, private_key_pem
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.names import build_name, parse_sans
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.profiles import CLIENT, INTERMEDIATE_CA, ROOT_CA, SERVER


def issuer_of(cert, key, chain=()):
    return Issuer(cert=cert, chain=list(chain), where="issuer", key_loader=lambda: key)


class Pki:
    """root -> intermediate -> leaves, all made by the code under test."""

    def __init__(self, key_type="ec-p256", root_days=3650, int_days=1825):
        self.root_key = generate_key(key_type)
        self.root = issue_certificate(subject=build_name("Test Root"), public_key=self.root_key.public_key(),
                                      profile=ROOT_CA, valid_days=root_days, self_signing_key=self.root_key)
        self.root_issuer = issuer_of(self.root, self.root_key)
        self.int_key = generate_key(key_type)
        self.int = issue_certificate(subject=build_name("Test Intermediate"), public_key=self.int_key.public_key(),
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


def key_pem(key, passphrase=None) -> bytes:
    return private_key_pem(key, passphrase)


def days_ago(days: int) -> dt.datetime:
    return compat.now() - dt.timedelta(days=days)


__all__ = ["Pki", "pem", "write", "openssl", "openssl_verify", "key_pem", "days_ago", "x509", "issuer_of", "tree"]
