"""Helpers for the fault suite (issue 8): bad input, interrupted runs and parallel runs change nothing they must not.

Every module is run the way users run it, through ``ansible-playbook`` on localhost, with the collection on
ANSIBLE_COLLECTIONS_PATH (tests/conftest.py makes the ``.cache/collections`` link). Test material (CAs, keys,
damaged files) is made here at test time with the venv's ``cryptography``, independently of the code under test;
openssl is the oracle wherever it fits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pgtls_harness import assert_no_deprecation, kill_tree, run_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Modules run on "targets" with this interpreter: Debian's python3 with python3-cryptography 38.0.4 when present.
TARGET_PYTHON = os.environ.get("PGTLS_TARGET_PYTHON", "/usr/bin/python3")
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
# The CA folder's lock (plugins/module_utils/_pki/core/layout.py): its bytes (the holder's pid) and mtime change on
# every run that takes it, failed runs included. It holds no data, so only its existence is compared.
LOCK_NAME = ".pgtls.lock"


# Test modules import these helpers as ``faults_conftest``: ``from conftest import ...`` would bind to whichever
# conftest.py pytest loaded last when tests/e2e and tests/faults are collected in one session.
sys.modules.setdefault("faults_conftest", sys.modules[__name__])


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running fault tests (the 2,000-client interruption test)")


# Running ansible ----------------------------------------------------------------------------------------------------
def collections_path() -> str:
    return os.environ["PGTLS_COLLECTIONS_PATH"]  # set by tests/conftest.py


def ansible_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path(),
        ANSIBLE_PYTHON_INTERPRETER=TARGET_PYTHON,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        **run_env(),
    )
    env.update(extra)
    return env


def playbook_cmd(playbook: Path, *args: str) -> list[str]:
    return [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", *args, str(playbook)]


def run_playbook(playbook: Path, *args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``playbook`` in its own process group; on timeout kill the whole group and raise TimeoutError."""
    cmd = playbook_cmd(playbook, *args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ansible_env(),
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        out, err = proc.communicate()
        raise TimeoutError(f"{' '.join(cmd)} did not finish within {timeout} s:\n{out[-3000:]}\n{err[-2000:]}") from None
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{out[-6000:]}\n{err[-3000:]}")
    assert_no_deprecation(cmd, out, err)
    return done


def write_playbook(path: Path, tasks: list[dict], name: str = "faults") -> Path:
    """A play on localhost, written as JSON (which YAML reads), so any string (NUL, newline) goes through as is."""
    play = [{"name": name, "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    path.write_text(json.dumps(play, indent=1))
    return path


def recording_playbook(path: Path, cases: list[tuple[str, dict]], results: Path) -> Path:
    """One task per case (``ignore_errors``, registered), then one task that writes every result as JSON."""
    tasks, names = [], {}
    for index, (case_id, task) in enumerate(cases):
        var = f"__r{index:04d}"
        names[case_id] = var
        tasks.append({"name": case_id, **task, "register": var, "ignore_errors": True})
    table = "{" + ", ".join(f"{json.dumps(cid)}: ({var} | default({{'skipped_by_harness': true}}))"
                            for cid, var in names.items()) + "}"
    tasks.append({"name": "record the results", "ansible.builtin.copy": {
        "content": "{{ " + table + " | to_json }}", "dest": str(results), "mode": "0600"}})
    return write_playbook(path, tasks)


# Snapshots -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    kind: str
    mode: int
    uid: int
    gid: int
    ino: int
    mtime_ns: int
    size: int
    digest: str  # sha256 of a file, the target of a link, "" for a folder


def snapshot(root: Path) -> dict[str, Entry]:
    """lstat every entry under ``root`` (root included), never following a link; hash file contents."""
    found: dict[str, Entry] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [None, *dirs, *files]:
            path = folder if name is None else os.path.join(folder, name)
            if name is None and folder != str(root):
                continue  # each folder is recorded by its parent
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                kind, digest = "link", os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                kind, digest = "dir", ""
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    kind, digest = "file", hashlib.sha256(handle.read()).hexdigest()
            else:
                kind, digest = "other", ""
            rel = os.path.relpath(path, root)
            found[rel] = Entry(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino, st.st_mtime_ns,
                               st.st_size, digest)
    return found


def snapshot_changes(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    """What differs, one line per entry (new, gone, or which attributes changed)."""
    changes = []
    for rel in sorted(set(before) | set(after)):
        old, new = before.get(rel), after.get(rel)
        if old is None:
            changes.append(f"new {new.kind} {rel}")
        elif new is None:
            changes.append(f"removed {old.kind} {rel}")
        elif old != new:
            fields = [f for f in ("kind", "mode", "uid", "gid", "ino", "mtime_ns", "size", "digest")
                      if getattr(old, f) != getattr(new, f)]
            if os.path.basename(rel) == LOCK_NAME and set(fields) <= {"mtime_ns", "size", "digest"}:
                continue
            changes.append(f"changed {rel} ({', '.join(fields)})")
    return changes


# Test material -------------------------------------------------------------------------------------------------------
def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(*certs) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(cn: str, key, issuer_cert=None, issuer_key=None, *, ca: bool, path_length: int | None = None,
              days: int = 3650, eku=None, sans=()) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    issuer_name = issuer_cert.subject if issuer_cert is not None else _name(cn)
    signer = issuer_key if issuer_key is not None else key
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                            crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_crl(issuer_cert, issuer_key, number: int = 1, serials=()) -> x509.CertificateRevocationList:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer_cert.subject).last_update(now)
               .next_update(now + dt.timedelta(days=30)).add_extension(x509.CRLNumber(number), critical=False))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build())
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Material:
    """A CA folder's worth of PEM/DER/garbage files, written by ``write_base``; the bytes are kept for cases."""

    files: dict[str, bytes] = field(default_factory=dict)

    def __getitem__(self, name: str) -> bytes:
        return self.files[name]


def build_material() -> Material:
    """root -> intermediate (path length 0) -> server leaf and client leaf, CRLs, and damaged variants."""
    m = Material()
    root_key, int_key, leaf_key, other_key, client_key = (new_key() for _index in range(5))
    root = make_cert("Faults Root", root_key, ca=True)
    inter = make_cert("Faults Intermediate", int_key, root, root_key, ca=True, path_length=0, days=1825)
    leaf = make_cert("db1.example.com", leaf_key, inter, int_key, ca=False, days=365,
                     eku=[ExtendedKeyUsageOID.SERVER_AUTH], sans=["db1.example.com"])
    client = make_cert("app", client_key, inter, int_key, ca=False, days=365, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    root_crl = make_crl(root, root_key)
    int_crl = make_crl(inter, int_key, serials=[4242])
    f = m.files
    f["root.crt"], f["root.key"] = cert_pem(root), key_pem(root_key)
    f["int.crt"], f["int.key"] = cert_pem(inter), key_pem(int_key)
    f["leaf.crt"], f["leaf.key"] = cert_pem(leaf), key_pem(leaf_key)
    f["client.crt"], f["client.key"] = cert_pem(client), key_pem(client_key)
    f["other.key"] = key_pem(other_key)
    f["chain.crt"] = cert_pem(leaf, inter)
    f["chain_with_root.crt"] = cert_pem(leaf, inter, root)
    f["root.crl"] = root_crl.public_bytes(serialization.Encoding.PEM)
    f["int.crl.in"] = int_crl.public_bytes(serialization.Encoding.PEM)
    f["int.crl.der"] = int_crl.public_bytes(serialization.Encoding.DER)
    f["leaf.der"] = leaf.public_bytes(serialization.Encoding.DER)
    f["root.der"] = root.public_bytes(serialization.Encoding.DER)
    f["garbage.bin"] = hashlib.sha256(b"faults").digest() * 16 + b"\x00\xff\xfe garbage \x01" * 8
    f["garbage.txt"] = b"this is not PEM at all\nhello\n"
    body = f["leaf.crt"].decode().splitlines()
    # A certificate cut in its base64 body but still closed: the DER parser sees too few bytes (ShortData).
    f["trunc_closed.crt"] = ("\n".join([body[0], *body[1:len(body) // 2], body[-1]]) + "\n").encode()
    # A certificate cut before its END line.
    f["trunc_open.crt"] = ("\n".join(body[: len(body) // 2]) + "\n").encode()
    f["bad_pem.crt"] = b"-----BEGIN CERTIFICATE-----\nTUlJQmFkRGF0YQ==\n-----END CERTIFICATE-----\n"
    kbody = f["other.key"].decode().splitlines()
    f["trunc_closed.key"] = ("\n".join([kbody[0], *kbody[1:len(kbody) // 2], kbody[-1]]) + "\n").encode()
    f["bad_pem.crl"] = b"-----BEGIN X509 CRL-----\nTUlJQmFkRGF0YQ==\n-----END X509 CRL-----\n"
    return m


BIG_BEGIN = 2 * 1024 * 1024  # 2 MB of BEGIN lines without an END (issue 8 item 14)


def big_begin(label: str = "CERTIFICATE") -> bytes:
    line = f"-----BEGIN {label}-----\n".encode()
    return line * (BIG_BEGIN // len(line) + 1)


BASE_FILES = ("root.crt", "root.key", "int.crt", "int.key", "root.crl", "leaf.crt", "leaf.key", "other.key")


def write_base(folder: Path, material: Material) -> None:
    """The CA folder every case starts from: root, intermediate and their CRLs, plus a leaf and a spare key."""
    folder.mkdir(mode=0o700, parents=True)
    for name in BASE_FILES:
        (folder / name).write_bytes(material[name])
        os.chmod(folder / name, 0o600 if name.endswith(".key") else 0o644)
    (folder / "int.crl").write_bytes(material["int.crl.in"])


# openssl, the oracle --------------------------------------------------------------------------------------------------
def openssl(*args: str, input_data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *map(str, args)], input=input_data, capture_output=True, check=False)


def pubkey_of_cert(path: Path) -> bytes:
    done = openssl("x509", "-noout", "-pubkey", "-in", str(path))
    assert done.returncode == 0, f"openssl x509 cannot read {path}: {done.stderr.decode()}"
    return done.stdout


def pubkey_of_key(path: Path) -> bytes:
    done = openssl("pkey", "-pubout", "-in", str(path))
    assert done.returncode == 0, f"openssl pkey cannot read {path}: {done.stderr.decode()}"
    return done.stdout


@pytest.fixture
def faultdir():
    base = Path(tempfile.mkdtemp(prefix="pgtls-faults-", dir="/tmp"))
    yield base
    shutil.rmtree(base, ignore_errors=True)
