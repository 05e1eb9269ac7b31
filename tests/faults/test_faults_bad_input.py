"""Issue 8, "Done means" 1: a table of bad inputs over all six modules. Each case must fail, name the option (and the
file), show no traceback or raw library text, and leave its work folder exactly as it was (bytes, mode, owner,
inode and mtime of every entry, found with lstat, new entries included).

All cases of one module run in one ``ansible-playbook`` (one task per case, ``ignore_errors``, registered, the
results written as JSON at the end); the 2 MB cases run one playbook each with a 20 s limit. Each case has its
own folder ``<tmp>/<case>/`` holding a copy of a CA folder (``pki/``: root, intermediate with path length 0, their
CRLs, a server leaf, a spare key) that a first run of ``crl`` has used, so its lock and state files exist.

Where issue 8 leaves the mechanism open (client names: mapped to safe folder names, or refused), the case checks
the safety property instead: nothing outside ``dest`` changes, no two clients share a folder, and a failure
changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from faults_conftest import (
    Material,
    big_begin,
    build_material,
    pubkey_of_cert,
    pubkey_of_key,
    recording_playbook,
    run_playbook,
    snapshot,
    snapshot_changes,
    write_base,
)

SIZE_TIMEOUT = 20  # seconds for one 2 MB case, ansible-playbook start included
BATCH_TIMEOUT = 400


class M(str):
    """An argument (or a file to lay out) that is the text of a material file."""


class Big(str):
    """2 MB of ``-----BEGIN <label>-----`` lines without an END line."""


@dataclass
class Case:
    id: str
    module: str
    cls: str
    args: dict
    # What the case folder holds besides pki/: relative path -> M(material) | bytes | ("link", target) | ("dir",)
    lay: dict = field(default_factory=dict)
    # Substrings the message must contain; a tuple lists alternatives (one of them is enough).
    opts: tuple = ()
    paths: tuple = ()
    expect: str = "fail"  # fail | fail_or_pending | client_safe | finding | succeed_changed | succeed_unchanged
    big: bool = False


P = "{W}/pki"
ISS = {"issuer_cert_path": f"{P}/int.crt", "issuer_key_path": f"{P}/int.key", "issuer_chain_path": f"{P}/root.crt"}
ROOT_ISS = {"issuer_cert_path": f"{P}/root.crt", "issuer_key_path": f"{P}/root.key"}
CASES: list[Case] = []


def case(id_, module, cls, args, lay=None, opts=(), paths=(), expect="fail"):
    big = any(isinstance(v, Big) for v in _values(args)) or any(isinstance(v, Big) for v in (lay or {}).values())
    CASES.append(Case(id_, module, cls, args, dict(lay or {}), tuple(opts), tuple(paths), expect, big))


def _values(obj):
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _values(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _values(value)
    else:
        yield obj


# Classes (issue 8 items): same_file (1), wrong_kind (2), client_name (3), key_symlink (4), issuer_ca (6),
# late_discovery (10), signing_failure (11, module part), values (12), messages (13), size (14), control.

# ca -------------------------------------------------------------------------------------------------------------------
CA = {"cert_path": f"{P}/new.crt", "key_path": f"{P}/new.key", "common_name": "Faults Second CA"}


def ca(id_, cls, over=None, **kw):
    case(f"ca-{id_}", "ca", cls, {**CA, **(over or {})}, **kw)


ca("same-path", "same_file", {"cert_path": f"{P}/ca.pem", "key_path": f"{P}/ca.pem"},
   opts=("cert_path", "key_path"), paths=(f"{P}/ca.pem",))
ca("same-dotdot", "same_file", {"cert_path": f"{P}/sub/../ca.pem", "key_path": f"{P}/ca.pem"}, lay={"pki/sub": ("dir",)},
   opts=("cert_path", "key_path"), paths=(f"{P}/ca.pem",))
ca("same-symlinked-folder", "same_file", {"cert_path": "{W}/pkilink/ca.pem", "key_path": f"{P}/ca.pem"},
   lay={"pkilink": ("link", "pki")}, opts=("cert_path", "key_path"), paths=(f"{P}/ca.pem",))
ca("same-existing-cert", "same_file", {"cert_path": f"{P}/root.crt", "key_path": f"{P}/root.crt"},
   opts=("cert_path", "key_path"), paths=(f"{P}/root.crt",))
ca("int-cert-is-issuer-cert", "same_file", {"cert_path": f"{P}/root.crt", "key_path": f"{P}/new.key", **ROOT_ISS},
   opts=("cert_path", "issuer_cert_path"), paths=(f"{P}/root.crt",))
ca("key-holds-cert", "wrong_kind", {"key_path": f"{P}/k.pem"}, lay={"pki/k.pem": M("leaf.crt")},
   opts=("key_path",), paths=(f"{P}/k.pem",))
ca("key-holds-garbage", "wrong_kind", {"key_path": f"{P}/k.pem"}, lay={"pki/k.pem": M("garbage.bin")},
   opts=("key_path",), paths=(f"{P}/k.pem",))
ca("key-holds-crl", "wrong_kind", {"key_path": f"{P}/k.pem"}, lay={"pki/k.pem": M("root.crl")},
   opts=("key_path",), paths=(f"{P}/k.pem",))
ca("cert-holds-key", "wrong_kind", {"cert_path": f"{P}/c.pem"}, lay={"pki/c.pem": M("other.key")},
   opts=("cert_path",), paths=(f"{P}/c.pem",))
ca("cert-holds-crl", "wrong_kind", {"cert_path": f"{P}/c.pem"}, lay={"pki/c.pem": M("root.crl")},
   opts=("cert_path",), paths=(f"{P}/c.pem",))
ca("cert-holds-der", "wrong_kind", {"cert_path": f"{P}/c.pem"}, lay={"pki/c.pem": M("root.der")},
   opts=("cert_path",), paths=(f"{P}/c.pem",))
ca("cert-holds-garbage", "wrong_kind", {"cert_path": f"{P}/c.pem"}, lay={"pki/c.pem": M("garbage.txt")},
   opts=("cert_path",), paths=(f"{P}/c.pem",))
ca("key-symlink-to-key", "key_symlink", {"key_path": f"{P}/link.key"}, lay={"pki/link.key": ("link", "other.key")},
   opts=("key_path",), paths=(f"{P}/link.key",))
ca("key-symlink-to-issuer-key", "key_symlink", {"key_path": f"{P}/link.key", **ROOT_ISS},
   lay={"pki/link.key": ("link", "int.key")}, opts=("key_path",), paths=(f"{P}/link.key",))
ca("key-symlink-outside", "key_symlink", {"key_path": f"{P}/link.key"},
   lay={"spare.key": M("other.key"), "pki/link.key": ("link", "../spare.key")}, opts=("key_path",),
   paths=(f"{P}/link.key",))
ca("issuer-pathlen0", "issuer_ca", {**ISS}, opts=("issuer_cert_path",), paths=(f"{P}/int.crt",))
ca("issuer-pathlen0-explicit", "issuer_ca", {**ISS, "path_length": 0}, opts=("issuer_cert_path",),
   paths=(f"{P}/int.crt",))
ca("key-is-issuer-key", "issuer_ca", {"key_path": f"{P}/root.key", **ROOT_ISS}, opts=("key_path",),
   paths=(f"{P}/root.key",))
ca("key-copy-of-issuer-key", "issuer_ca", {"key_path": f"{P}/copy.key", **ROOT_ISS},
   lay={"pki/copy.key": M("root.key")}, opts=("key_path",), paths=(f"{P}/copy.key",))
ca("key-issuer-key-via-symlinked-folder", "issuer_ca", {"key_path": "{W}/pkilink/root.key", **ROOT_ISS},
   lay={"pkilink": ("link", "pki")}, opts=("key_path",), paths=(("{W}/pkilink/root.key", f"{P}/root.key"),))
ca("cert-folder-missing", "late_discovery", {"cert_path": f"{P}/missing/ca.crt", "key_path": f"{P}/ca.key"},
   opts=("cert_path",), paths=(f"{P}/missing",))
ca("key-folder-missing", "late_discovery", {"cert_path": f"{P}/ca.crt", "key_path": f"{P}/missing/ca.key"},
   opts=("key_path",), paths=(f"{P}/missing",))
ca("int-cert-folder-missing", "late_discovery", {"cert_path": f"{P}/missing/i.crt", "key_path": f"{P}/i.key",
                                                 **ROOT_ISS}, opts=("cert_path",), paths=(f"{P}/missing",))
ca("valid-days-0", "values", {"valid_days": 0}, opts=("valid_days",))
ca("valid-days-negative", "values", {"valid_days": -1}, opts=("valid_days",))
ca("valid-days-huge", "values", {"valid_days": 10_000_000}, opts=("valid_days",))
ca("int-valid-days-0", "values", {"valid_days": 0, **ROOT_ISS}, opts=("valid_days",))
ca("path-length-negative", "values", {"path_length": -1, **ROOT_ISS}, opts=("path_length",))
ca("cn-65", "messages", {"common_name": "C" * 65}, opts=("common_name",))
ca("cn-empty", "messages", {"common_name": ""}, opts=("common_name",))
ca("organization-65", "messages", {"subject": {"organization": "O" * 65}}, opts=("organization",))
ca("issuer-cert-bad-pem", "messages", {**ROOT_ISS, "issuer_cert_path": f"{P}/bad.crt"},
   lay={"pki/bad.crt": M("bad_pem.crt")}, opts=("issuer_cert_path",), paths=(f"{P}/bad.crt",))
ca("issuer-cert-truncated", "messages", {**ROOT_ISS, "issuer_cert_path": f"{P}/t.crt"},
   lay={"pki/t.crt": M("trunc_closed.crt")}, opts=("issuer_cert_path",), paths=(f"{P}/t.crt",))
ca("issuer-cert-truncated-open", "messages", {**ROOT_ISS, "issuer_cert_path": f"{P}/t.crt"},
   lay={"pki/t.crt": M("trunc_open.crt")}, opts=("issuer_cert_path",), paths=(f"{P}/t.crt",))
ca("issuer-cert-der", "messages", {**ROOT_ISS, "issuer_cert_path": f"{P}/root.der"},
   lay={"pki/root.der": M("root.der")}, opts=("issuer_cert_path",), paths=(f"{P}/root.der",))
ca("issuer-key-truncated", "messages", {**ROOT_ISS, "issuer_key_path": f"{P}/t.key"},
   lay={"pki/t.key": M("trunc_closed.key")}, opts=("issuer_key_path",), paths=(f"{P}/t.key",))
ca("issuer-key-garbage", "messages", {**ROOT_ISS, "issuer_key_path": f"{P}/g.key"},
   lay={"pki/g.key": M("garbage.bin")}, opts=("issuer_key_path",), paths=(f"{P}/g.key",))
ca("issuer-key-mismatch", "messages", {**ROOT_ISS, "issuer_key_path": f"{P}/other.key"},
   opts=("issuer_key_path",), paths=(f"{P}/other.key",))
ca("existing-key-truncated", "messages", {"key_path": f"{P}/t.key"}, lay={"pki/t.key": M("trunc_closed.key")},
   opts=("key_path",), paths=(f"{P}/t.key",))
ca("issuer-cert-2mb", "size", {**ROOT_ISS, "issuer_cert_path": f"{P}/big.crt"}, lay={"pki/big.crt": Big("CERTIFICATE")},
   opts=("issuer_cert_path",), paths=(f"{P}/big.crt",))

# server_cert -------------------------------------------------------------------------------------------------------
SC = {"key_path": "{W}/srv/server.key", "cert_path": "{W}/srv/server.crt", "subject_alt_names": ["db1.example.com"],
      **ISS}
SRV = {"srv": ("dir",)}


def sc(id_, cls, over=None, lay=None, **kw):
    case(f"server_cert-{id_}", "server_cert", cls, {**SC, **(over or {})}, lay={**SRV, **(lay or {})}, **kw)


sc("same-path", "same_file", {"cert_path": "{W}/srv/server.pem", "key_path": "{W}/srv/server.pem"},
   opts=("cert_path", "key_path"), paths=("{W}/srv/server.pem",))
sc("same-dotdot", "same_file", {"cert_path": "{W}/srv/sub/../server.key"}, lay={"srv/sub": ("dir",)},
   opts=("cert_path", "key_path"), paths=(("{W}/srv/server.key", "{W}/srv/sub/../server.key"),))
sc("same-symlinked-folder", "same_file", {"cert_path": "{W}/srvlink/server.key"}, lay={"srvlink": ("link", "srv")},
   opts=("cert_path", "key_path"), paths=(("{W}/srv/server.key", "{W}/srvlink/server.key"),))
sc("csr-is-key", "same_file", {"csr_path": "{W}/srv/server.key"}, opts=("csr_path", "key_path"),
   paths=("{W}/srv/server.key",))
sc("root-is-cert", "same_file", {"root_cert_path": "{W}/srv/server.crt"}, opts=("root_cert_path", "cert_path"),
   paths=("{W}/srv/server.crt",))
sc("root-is-key-dotdot", "same_file", {"root_cert_path": "{W}/srv/sub/../server.key"}, lay={"srv/sub": ("dir",)},
   opts=("root_cert_path", "key_path"), paths=(("{W}/srv/server.key", "{W}/srv/sub/../server.key"),))
sc("cert-is-issuer-key", "same_file", {"cert_path": f"{P}/int.key"}, opts=("cert_path",), paths=(f"{P}/int.key",))
sc("cert-holds-key", "wrong_kind", lay={"srv/server.crt": M("other.key")}, opts=("cert_path",),
   paths=("{W}/srv/server.crt",))
sc("cert-holds-crl", "wrong_kind", lay={"srv/server.crt": M("root.crl")}, opts=("cert_path",),
   paths=("{W}/srv/server.crt",))
sc("cert-holds-garbage", "wrong_kind", lay={"srv/server.crt": M("garbage.bin")}, opts=("cert_path",),
   paths=("{W}/srv/server.crt",))
sc("cert-holds-der", "wrong_kind", lay={"srv/server.crt": M("leaf.der")}, opts=("cert_path",),
   paths=("{W}/srv/server.crt",))
sc("key-holds-cert", "wrong_kind", lay={"srv/server.key": M("leaf.crt")}, opts=("key_path",),
   paths=("{W}/srv/server.key",))
sc("key-holds-garbage", "wrong_kind", lay={"srv/server.key": M("garbage.txt")}, opts=("key_path",),
   paths=("{W}/srv/server.key",))
sc("key-holds-crl", "wrong_kind", lay={"srv/server.key": M("root.crl")}, opts=("key_path",),
   paths=("{W}/srv/server.key",))
sc("root-holds-key", "wrong_kind", {"root_cert_path": "{W}/srv/root.crt"}, lay={"srv/root.crt": M("other.key")},
   opts=("root_cert_path",), paths=("{W}/srv/root.crt",))
sc("csr-holds-key", "wrong_kind", {"csr_path": "{W}/srv/server.csr"}, lay={"srv/server.csr": M("other.key")},
   opts=("csr_path",), paths=("{W}/srv/server.csr",))
sc("key-symlink-to-key", "key_symlink", lay={"other.key": M("other.key"), "srv/server.key": ("link", "../other.key")},
   opts=("key_path",), paths=("{W}/srv/server.key",))
sc("key-symlink-to-ca-key", "key_symlink", lay={"srv/server.key": ("link", "../pki/int.key")}, opts=("key_path",),
   paths=("{W}/srv/server.key",))
sc("key-symlink-existing-pair", "key_symlink", {"key_mode": "0600"},
   lay={"real": ("dir",), "real/server.key": M("leaf.key"), "srv/server.key": ("link", "../real/server.key"),
        "srv/server.crt": M("chain.crt")}, opts=("key_path",), paths=("{W}/srv/server.key",))
sc("valid-days-0", "values", {"valid_days": 0}, opts=("valid_days",))
sc("valid-days-negative", "values", {"valid_days": -5}, opts=("valid_days",))
sc("valid-days-huge", "values", {"valid_days": 10_000_000}, opts=("valid_days",))
sc("valid-days-equals-renew", "values", {"valid_days": 30, "renew_before_days": 30},
   opts=(("valid_days", "renew_before_days"),))
sc("valid-days-below-renew", "values", {"valid_days": 10}, opts=(("valid_days", "renew_before_days"),))
sc("renew-percent-101", "values", {"renew_before_percent": 101}, opts=("renew_before_percent",))
sc("renew-percent-negative", "values", {"renew_before_percent": -1}, opts=("renew_before_percent",))
sc("renew-days-negative", "values", {"renew_before_days": -1}, opts=("renew_before_days",))
sc("san-10.0.0.256", "values", {"subject_alt_names": ["10.0.0.256"]}, opts=("subject_alt_names",))
sc("san-300.1.2.3-second", "values", {"subject_alt_names": ["db1.example.com", "300.1.2.3"]},
   opts=("subject_alt_names[1]",))
sc("cn-65", "messages", {"common_name": "c" * 65}, opts=("common_name",))
sc("issuer-cert-bad-pem", "messages", {"issuer_cert_path": f"{P}/bad.crt"}, lay={"pki/bad.crt": M("bad_pem.crt")},
   opts=("issuer_cert_path",), paths=(f"{P}/bad.crt",))
sc("issuer-cert-truncated", "messages", {"issuer_cert_path": f"{P}/t.crt"}, lay={"pki/t.crt": M("trunc_closed.crt")},
   opts=("issuer_cert_path",), paths=(f"{P}/t.crt",))
sc("issuer-cert-der", "messages", {"issuer_cert_path": f"{P}/root.der"}, lay={"pki/root.der": M("root.der")},
   opts=("issuer_cert_path",), paths=(f"{P}/root.der",))
sc("issuer-chain-garbage", "messages", {"issuer_chain_path": f"{P}/g.crt"}, lay={"pki/g.crt": M("garbage.txt")},
   opts=("issuer_chain_path",), paths=(f"{P}/g.crt",))
sc("issuer-chain-truncated", "messages", {"issuer_chain_path": f"{P}/t.crt"},
   lay={"pki/t.crt": M("trunc_closed.crt")}, opts=("issuer_chain_path",), paths=(f"{P}/t.crt",))
sc("cert-folder-missing", "late_discovery", {"cert_path": "{W}/missing/server.crt"}, opts=("cert_path",),
   paths=("{W}/missing",))
sc("root-folder-missing", "late_discovery", {"root_cert_path": "{W}/missing/root.crt"}, opts=("root_cert_path",),
   paths=("{W}/missing",))
sc("csr-folder-missing", "late_discovery", {"csr_path": "{W}/missing/server.csr"}, opts=("csr_path",),
   paths=("{W}/missing",))
sc("issuer-key-mismatch", "signing_failure", {"issuer_key_path": f"{P}/other.key"}, opts=("issuer_key_path",),
   paths=(f"{P}/other.key",), expect="fail_or_pending")
sc("issuer-key-garbage", "signing_failure", {"issuer_key_path": f"{P}/g.key"}, lay={"pki/g.key": M("garbage.txt")},
   opts=("issuer_key_path",), paths=(f"{P}/g.key",), expect="fail_or_pending")
sc("issuer-cert-2mb", "size", {"issuer_cert_path": f"{P}/big.crt"}, lay={"pki/big.crt": Big("CERTIFICATE")},
   opts=("issuer_cert_path",), paths=(f"{P}/big.crt",))

# client_cert -------------------------------------------------------------------------------------------------------
CC = {"dest": "{W}/x/dest", "clients": [{"name": "app"}], **ISS}
DEST = {"x": ("dir",), "x/dest": ("dir",)}


def cc(id_, cls, over=None, lay=None, **kw):
    case(f"client_cert-{id_}", "client_cert", cls, {**CC, **(over or {})}, lay={**DEST, **(lay or {})}, **kw)


def names(*values):
    return {"clients": [{"name": v} for v in values]}


cc("name-dotdot", "client_name", names(".."), opts=("clients[0]",), expect="client_safe")
cc("name-dotdot-escape", "client_name", names("../escape"), opts=("clients[0]",), expect="client_safe")
cc("name-dotdot-dotdot-escape", "client_name", names("../../escape"), opts=("clients[0]",), expect="client_safe")
cc("name-slash-next-to-app", "client_name", names("app", "app/x"), opts=("clients[1]",), expect="client_safe")
cc("name-a-dotdot-b", "client_name", names("a/../b", "b"), opts=(("clients[0]", "clients[1]"),), expect="client_safe")
cc("name-dot", "client_name", names("."), opts=("clients[0]",), expect="client_safe")
cc("name-dot-slash-app", "client_name", names("./app", "app"), opts=(("clients[0]", "clients[1]"),),
   expect="client_safe")
cc("name-trailing-slash", "client_name", names("app/", "app"), opts=(("clients[0]", "clients[1]"),),
   expect="client_safe")
# An absolute name inside the case folder (short enough to be a role name: the table lives in /tmp/pf-*).
cc("name-absolute", "client_name", names("{W}/o"), opts=("clients[0]",), expect="client_safe")
cc("name-nul", "client_name", names("a\x00b"), opts=("clients[0]",), expect="client_safe")
cc("name-newline", "client_name", names("a\nb"), opts=("clients[0]",), expect="client_safe")
cc("name-newline-dotdot", "client_name", names("..\n..", "../.."), opts=(("clients[0]", "clients[1]"),),
   expect="client_safe")
cc("dir-dotdot-collision", "same_file", {"clients": [{"name": "a", "dir": "{W}/x/c"}, {"name": "b", "dir": "{W}/x/d/../c"}]},
   lay={"x/c": ("dir",), "x/d": ("dir",)}, opts=("clients[1]",), paths=(("{W}/x/c", "{W}/x/d/../c"),))
cc("dir-symlink-collision", "same_file", {"clients": [{"name": "a", "dir": "{W}/x/c"}, {"name": "b", "dir": "{W}/x/clink"}]},
   lay={"x/c": ("dir",), "x/clink": ("link", "c")}, opts=("clients[1]",), paths=(("{W}/x/c", "{W}/x/clink"),))
cc("dir-is-other-clients-default", "same_file", {"clients": [{"name": "a"}, {"name": "b", "dir": "{W}/x/dest/a"}]},
   opts=("clients[1]",), paths=("{W}/x/dest/a",))
cc("key-symlink", "key_symlink", lay={"other.key": M("other.key"), "x/dest/app": ("dir",),
                                      "x/dest/app/postgresql.key": ("link", "../../../other.key")},
   opts=("clients[0]",), paths=("{W}/x/dest/app/postgresql.key",))
cc("key-symlink-with-dir", "key_symlink", {"clients": [{"name": "app", "dir": "{W}/home"}]},
   lay={"home": ("dir",), "home/postgresql.key": ("link", "../pki/int.key")}, opts=("clients[0]",),
   paths=("{W}/home/postgresql.key",))
cc("crt-holds-key", "wrong_kind", {"clients": [{"name": "app", "dir": "{W}/home"}]},
   lay={"home": ("dir",), "home/postgresql.crt": M("other.key")}, opts=("clients[0]",),
   paths=("{W}/home/postgresql.crt",))
cc("key-holds-cert", "wrong_kind", {"clients": [{"name": "app", "dir": "{W}/home"}]},
   lay={"home": ("dir",), "home/postgresql.key": M("leaf.crt")}, opts=("clients[0]",),
   paths=("{W}/home/postgresql.key",))
cc("root-holds-garbage", "wrong_kind", {"clients": [{"name": "app", "dir": "{W}/home"}]},
   lay={"home": ("dir",), "home/root.crt": M("garbage.bin")}, opts=("clients[0]",), paths=("{W}/home/root.crt",))
cc("root-holds-key", "wrong_kind", {"clients": [{"name": "app", "dir": "{W}/home"}]},
   lay={"home": ("dir",), "home/root.crt": M("other.key")}, opts=("clients[0]",), paths=("{W}/home/root.crt",))
cc("valid-days-0", "values", {"valid_days": 0}, opts=("valid_days",))
cc("valid-days-negative", "values", {"valid_days": -1}, opts=("valid_days",))
cc("valid-days-huge", "values", {"valid_days": 10_000_000}, opts=("valid_days",))
cc("valid-days-equals-renew", "values", {"valid_days": 30, "renew_before_days": 30},
   opts=(("valid_days", "renew_before_days"),))
cc("renew-percent-101", "values", {"renew_before_percent": 101}, opts=("renew_before_percent",))
cc("renew-percent-negative", "values", {"renew_before_percent": -5}, opts=("renew_before_percent",))
cc("name-65", "messages", names("n" * 65), opts=("clients[0]",))
cc("name-65-second", "messages", names("app", "n" * 65), opts=("clients[1]",))
cc("organization-65", "messages", {"subject": {"organization": "O" * 65}}, opts=("organization",))
cc("issuer-cert-bad-pem", "messages", {"issuer_cert_path": f"{P}/bad.crt"}, lay={"pki/bad.crt": M("bad_pem.crt")},
   opts=("issuer_cert_path",), paths=(f"{P}/bad.crt",))
cc("issuer-cert-truncated", "messages", {"issuer_cert_path": f"{P}/t.crt"}, lay={"pki/t.crt": M("trunc_closed.crt")},
   opts=("issuer_cert_path",), paths=(f"{P}/t.crt",))
cc("issuer-cert-der", "messages", {"issuer_cert_path": f"{P}/root.der"}, lay={"pki/root.der": M("root.der")},
   opts=("issuer_cert_path",), paths=(f"{P}/root.der",))
cc("issuer-chain-garbage", "messages", {"issuer_chain_path": f"{P}/g.crt"}, lay={"pki/g.crt": M("garbage.bin")},
   opts=("issuer_chain_path",), paths=(f"{P}/g.crt",))
cc("second-folder-missing", "late_discovery",
   {"create_dirs": False, "clients": [{"name": "a", "dir": "{W}/x/a"}, {"name": "b", "dir": "{W}/x/missing/b"}]},
   lay={"x/a": ("dir",)}, opts=("clients[1]",), paths=("{W}/x/missing/b",))
cc("second-parent-missing", "late_discovery", {"clients": [{"name": "a"}, {"name": "b", "dir": "{W}/x/nope/deeper/b"}]},
   opts=("clients[1]",), paths=("{W}/x/nope/deeper/b",))
cc("dest-missing-no-create", "late_discovery", {"create_dirs": False, "dest": "{W}/x/nodest"},
   opts=(("clients[0]", "dest"),), paths=("{W}/x/nodest",))
cc("issuer-key-mismatch", "signing_failure", {"issuer_key_path": f"{P}/other.key"}, opts=("issuer_key_path",),
   paths=(f"{P}/other.key",), expect="fail_or_pending")
cc("issuer-key-garbage", "signing_failure", {"issuer_key_path": f"{P}/g.key"}, lay={"pki/g.key": M("garbage.bin")},
   opts=("issuer_key_path",), paths=(f"{P}/g.key",), expect="fail_or_pending")
cc("issuer-cert-2mb", "size", {"issuer_cert_path": f"{P}/big.crt"}, lay={"pki/big.crt": Big("CERTIFICATE")},
   opts=("issuer_cert_path",), paths=(f"{P}/big.crt",))

# crl ---------------------------------------------------------------------------------------------------------------
CRL = {"path": f"{P}/new.crl", "issuer_cert_path": f"{P}/int.crt", "issuer_key_path": f"{P}/int.key",
       "revoked": [{"serial_number": "0x1234"}]}


def crl(id_, cls, over=None, **kw):
    case(f"crl-{id_}", "crl", cls, {**CRL, **(over or {})}, **kw)


def serial(value):
    return {"revoked": [{"serial_number": value}]}


crl("combined-is-path", "same_file", {"combined_path": f"{P}/new.crl", "combine_with": [f"{P}/root.crl"]},
    opts=("path", "combined_path"), paths=(f"{P}/new.crl",))
crl("combined-dotdot", "same_file", {"combined_path": f"{P}/sub/../new.crl", "combine_with": [f"{P}/root.crl"]},
    lay={"pki/sub": ("dir",)}, opts=("combined_path",), paths=((f"{P}/new.crl", f"{P}/sub/../new.crl"),))
crl("combined-symlinked-folder", "same_file", {"combined_path": "{W}/plink/new.crl", "combine_with": [f"{P}/root.crl"]},
    lay={"plink": ("link", "pki")}, opts=("combined_path",), paths=((f"{P}/new.crl", "{W}/plink/new.crl"),))
crl("combined-is-combine-with", "same_file", {"combined_path": f"{P}/root.crl", "combine_with": [f"{P}/root.crl"]},
    opts=("combined_path",), paths=(f"{P}/root.crl",))
crl("path-is-issuer-key", "same_file", {"path": f"{P}/int.key"}, opts=("path",), paths=(f"{P}/int.key",))
crl("path-is-issuer-cert", "same_file", {"path": f"{P}/int.crt"}, opts=("path",), paths=(f"{P}/int.crt",))
crl("path-holds-cert", "wrong_kind", lay={"pki/new.crl": M("int.crt")}, opts=("path",), paths=(f"{P}/new.crl",))
crl("path-holds-key", "wrong_kind", lay={"pki/new.crl": M("other.key")}, opts=("path",), paths=(f"{P}/new.crl",))
crl("path-holds-garbage", "wrong_kind", lay={"pki/new.crl": M("garbage.bin")}, opts=("path",), paths=(f"{P}/new.crl",))
crl("path-holds-der-crl", "wrong_kind", lay={"pki/new.crl": M("int.crl.der")}, opts=("path",),
    paths=(f"{P}/new.crl",))
crl("combined-holds-cert", "wrong_kind", {"combined_path": f"{P}/all.crl", "combine_with": [f"{P}/root.crl"]},
    lay={"pki/all.crl": M("leaf.crt")}, opts=("combined_path",), paths=(f"{P}/all.crl",))
crl("combined-holds-key", "wrong_kind", {"combined_path": f"{P}/all.crl", "combine_with": [f"{P}/root.crl"]},
    lay={"pki/all.crl": M("other.key")}, opts=("combined_path",), paths=(f"{P}/all.crl",))
crl("combine-with-garbage", "late_discovery", {"combined_path": f"{P}/all.crl", "combine_with": [f"{P}/g.crl"]},
    lay={"pki/g.crl": M("garbage.txt")}, opts=("combine_with[0]",), paths=(f"{P}/g.crl",))
crl("combine-with-der", "late_discovery", {"combined_path": f"{P}/all.crl", "combine_with": [f"{P}/d.crl"]},
    lay={"pki/d.crl": M("int.crl.der")}, opts=("combine_with[0]",), paths=(f"{P}/d.crl",))
crl("combine-with-missing", "late_discovery", {"combined_path": f"{P}/all.crl", "combine_with": [f"{P}/none.crl"]},
    opts=("combine_with[0]",), paths=(f"{P}/none.crl",))
crl("combine-with-cert", "late_discovery", {"combined_path": f"{P}/all.crl", "combine_with": [f"{P}/root.crt"]},
    opts=("combine_with[0]",), paths=(f"{P}/root.crt",))
crl("combine-with-second-garbage", "late_discovery",
    {"combined_path": f"{P}/all.crl", "combine_with": [f"{P}/root.crl", f"{P}/g.crl"]},
    lay={"pki/g.crl": M("garbage.bin")}, opts=("combine_with[1]",), paths=(f"{P}/g.crl",))
crl("combine-with-bad-pem", "late_discovery", {"combined_path": f"{P}/all.crl", "combine_with": [f"{P}/b.crl"]},
    lay={"pki/b.crl": M("bad_pem.crl")}, opts=("combine_with[0]",), paths=(f"{P}/b.crl",))
crl("combined-folder-missing", "late_discovery",
    {"combined_path": f"{P}/missing/all.crl", "combine_with": [f"{P}/root.crl"]},
    opts=("combined_path",), paths=(f"{P}/missing",))
crl("path-folder-missing", "late_discovery", {"path": f"{P}/missing/new.crl"}, opts=("path",), paths=(f"{P}/missing",))
crl("serial-0", "messages", serial("0"), opts=("revoked[0].serial_number",))
crl("serial-colon-zero", "messages", serial("00:00"), opts=("revoked[0].serial_number",))
crl("serial-negative", "messages", serial("-5"), opts=("revoked[0].serial_number",))
crl("serial-160-bits", "messages", serial(str(2**159)), opts=("revoked[0].serial_number",))
crl("serial-hex-huge", "messages", serial("0x" + "F" * 42), opts=("revoked[0].serial_number",))
crl("serial-second-negative", "messages", {"revoked": [{"serial_number": "7"}, {"serial_number": "-7"}]},
    opts=("revoked[1].serial_number",))
crl("revoked-cert-garbage", "messages", {"revoked": [{"certificate_path": f"{P}/g.crt"}]},
    lay={"pki/g.crt": M("garbage.txt")}, opts=("revoked[0].certificate_path",), paths=(f"{P}/g.crt",))
crl("revoked-cert-truncated", "messages", {"revoked": [{"certificate_path": f"{P}/t.crt"}]},
    lay={"pki/t.crt": M("trunc_closed.crt")}, opts=("revoked[0].certificate_path",), paths=(f"{P}/t.crt",))
crl("revoked-date-garbage", "messages", {"revoked": [{"serial_number": "9", "revocation_date": "yesterday"}]},
    opts=("revoked[0].revocation_date",))
crl("issuer-cert-bad-pem", "messages", {"issuer_cert_path": f"{P}/bad.crt"}, lay={"pki/bad.crt": M("bad_pem.crt")},
    opts=("issuer_cert_path",), paths=(f"{P}/bad.crt",))
crl("issuer-cert-truncated", "messages", {"issuer_cert_path": f"{P}/t.crt"}, lay={"pki/t.crt": M("trunc_closed.crt")},
    opts=("issuer_cert_path",), paths=(f"{P}/t.crt",))
crl("issuer-cert-der", "messages", {"issuer_cert_path": f"{P}/root.der"}, lay={"pki/root.der": M("root.der")},
    opts=("issuer_cert_path",), paths=(f"{P}/root.der",))
crl("issuer-key-garbage", "messages", {"issuer_key_path": f"{P}/g.key"}, lay={"pki/g.key": M("garbage.bin")},
    opts=("issuer_key_path",), paths=(f"{P}/g.key",))
crl("issuer-key-truncated", "messages", {"issuer_key_path": f"{P}/t.key"}, lay={"pki/t.key": M("trunc_closed.key")},
    opts=("issuer_key_path",), paths=(f"{P}/t.key",))
crl("issuer-key-mismatch", "messages", {"issuer_key_path": f"{P}/other.key"}, opts=("issuer_key_path",),
    paths=(f"{P}/other.key",))
crl("next-update-0", "values", {"next_update_days": 0}, opts=("next_update_days",))
crl("next-update-huge", "values", {"next_update_days": 10_000_000, "renew_before_days": 7}, opts=("next_update_days",))
crl("renew-equals-next-update", "values", {"next_update_days": 30, "renew_before_days": 30},
    opts=("renew_before_days",))
crl("issuer-cert-2mb", "size", {"issuer_cert_path": f"{P}/big.crt"}, lay={"pki/big.crt": Big("CERTIFICATE")},
    opts=("issuer_cert_path",), paths=(f"{P}/big.crt",))
crl("combine-with-2mb", "size", {"combined_path": f"{P}/all.crl", "combine_with": [f"{P}/big.crl"]},
    lay={"pki/big.crl": Big("X509 CRL")}, opts=("combine_with[0]",), paths=(f"{P}/big.crl",))

# validate ----------------------------------------------------------------------------------------------------------
VAL = {"certificate_path": "{W}/v/server.crt", "key_path": "{W}/v/server.key", "ca_path": "{W}/v/root.crt"}
VAL_LAY = {"v": ("dir",), "v/server.crt": M("chain.crt"), "v/server.key": M("leaf.key"), "v/root.crt": M("root.crt"),
           "v/root.crl": M("root.crl")}


def val(id_, cls, over=None, lay=None, **kw):
    case(f"validate-{id_}", "validate", cls, {**VAL, **(over or {})}, lay={**VAL_LAY, **(lay or {})}, **kw)


val("cert-garbage", "messages", lay={"v/server.crt": M("garbage.txt")}, opts=("certificate_path",),
    paths=("{W}/v/server.crt",))
val("cert-bad-pem", "messages", lay={"v/server.crt": M("bad_pem.crt")}, opts=("certificate_path",),
    paths=("{W}/v/server.crt",))
val("cert-truncated", "messages", lay={"v/server.crt": M("trunc_closed.crt")}, opts=("certificate_path",),
    paths=("{W}/v/server.crt",))
val("cert-truncated-open", "messages", lay={"v/server.crt": M("trunc_open.crt")}, opts=("certificate_path",),
    paths=("{W}/v/server.crt",))
val("cert-der", "messages", lay={"v/server.crt": M("leaf.der")}, opts=("certificate_path",),
    paths=("{W}/v/server.crt",))
val("cert-missing", "messages", {"certificate_path": "{W}/v/none.crt"}, opts=("certificate_path",),
    paths=("{W}/v/none.crt",))
val("cert-is-folder", "messages", {"certificate_path": "{W}/v"}, opts=("certificate_path",), paths=("{W}/v",))
val("ca-garbage", "messages", lay={"v/root.crt": M("garbage.bin")}, opts=("ca_path",), paths=("{W}/v/root.crt",))
val("ca-truncated", "messages", lay={"v/root.crt": M("trunc_closed.crt")}, opts=("ca_path",),
    paths=("{W}/v/root.crt",))
val("ca-der", "messages", lay={"v/root.crt": M("root.der")}, opts=("ca_path",), paths=("{W}/v/root.crt",))
val("crl-garbage", "messages", {"crl_path": "{W}/v/g.crl"}, lay={"v/g.crl": M("garbage.txt")}, opts=("crl_path",),
    paths=("{W}/v/g.crl",))
val("crl-der", "messages", {"crl_path": "{W}/v/d.crl"}, lay={"v/d.crl": M("int.crl.der")}, opts=("crl_path",),
    paths=("{W}/v/d.crl",))
val("crl-bad-pem", "messages", {"crl_path": "{W}/v/b.crl"}, lay={"v/b.crl": M("bad_pem.crl")}, opts=("crl_path",),
    paths=("{W}/v/b.crl",))
val("key-garbage", "messages", lay={"v/server.key": M("garbage.bin")}, opts=("key_path",), paths=("{W}/v/server.key",))
val("key-truncated", "messages", lay={"v/server.key": M("trunc_closed.key")}, opts=("key_path",),
    paths=("{W}/v/server.key",))
val("cert-content-garbage", "messages", {"certificate_path": None, "certificate_content": "hello, not PEM"},
    opts=("certificate_content",))
val("ca-content-bad-pem", "messages", {"ca_path": None, "ca_content": M("bad_pem.crt")}, opts=("ca_content",))
# Issue 8 item 12: PostgreSQL works with the root inside server.crt, so this is a finding (warn or fail), not an error.
val("root-in-server-crt", "values", lay={"v/server.crt": M("chain_with_root.crt")}, expect="finding")
val("cert-2mb", "size", lay={"v/server.crt": Big("CERTIFICATE")}, opts=("certificate_path",),
    paths=("{W}/v/server.crt",))
val("ca-2mb", "size", lay={"v/root.crt": Big("CERTIFICATE")}, opts=("ca_path",), paths=("{W}/v/root.crt",))
val("crl-2mb", "size", {"crl_path": "{W}/v/big.crl"}, lay={"v/big.crl": Big("X509 CRL")}, opts=("crl_path",),
    paths=("{W}/v/big.crl",))

# host_material -----------------------------------------------------------------------------------------------------
HM = {"stage": "prepare", "items": [{"name": "s0", "key_path": "{W}/h/s0.key", "cert_path": "{W}/h/s0.crt"}]}
HM_LAY = {"h": ("dir",)}


def hm(id_, cls, over=None, lay=None, opts=(), **kw):
    args = {**HM, **(over or {})}
    # An item may be named by its index or by its name (items[0] or items[s0]).
    labels = {f"items[{i}]": (f"items[{i}]", f"items[{item['name']}]") for i, item in enumerate(args["items"])}
    opts = tuple(labels.get(o, o) if isinstance(o, str) else o for o in opts)
    case(f"host_material-{id_}", "host_material", cls, args, lay={**HM_LAY, **(lay or {})}, opts=opts, **kw)


def items(*entries, stage="prepare"):
    return {"stage": stage, "items": list(entries)}


INSTALL0 = {"name": "s0", "key_path": "{W}/h/k0.key", "cert_path": "{W}/h/c0.crt", "certificate": M("chain.crt")}
INSTALL1 = {"name": "s1", "key_path": "{W}/h/k1.key", "cert_path": "{W}/h/c1.crt", "certificate": M("client.crt")}
INSTALL_LAY = {"h/k0.key": M("leaf.key"), "h/k1.key": M("client.key")}

hm("install-second-folder-missing", "late_discovery",
   items(INSTALL0, {**INSTALL1, "cert_path": "{W}/missing/c1.crt"}, stage="install"), lay=INSTALL_LAY,
   opts=("items[1]", "cert_path"), paths=("{W}/missing",))
hm("install-second-root-folder-missing", "late_discovery",
   items({**INSTALL0, "root_path": "{W}/h/r0.crt", "root": M("root.crt")},
         {**INSTALL1, "root_path": "{W}/missing/r1.crt", "root": M("root.crt")}, stage="install"),
   lay=INSTALL_LAY, opts=("items[1]", "root_path"), paths=("{W}/missing",))
hm("prepare-second-folder-missing", "late_discovery",
   items(HM["items"][0], {"name": "s1", "key_path": "{W}/missing/s1.key", "cert_path": "{W}/missing/s1.crt"}),
   opts=("items[1]",), paths=("{W}/missing",))
hm("prepare-second-parent-missing", "late_discovery",
   items(HM["items"][0], {"name": "s1", "key_path": "{W}/nope/deeper/s1.key", "cert_path": "{W}/nope/deeper/s1.crt",
                          "create_dir": True}), opts=("items[1]",), paths=("{W}/nope/deeper",))
hm("install-second-cert-mismatch", "late_discovery",
   items(INSTALL0, {**INSTALL1, "certificate": M("chain.crt")}, stage="install"), lay=INSTALL_LAY,
   opts=("items[1]",))
hm("prepare-key-symlink", "key_symlink", lay={"other.key": M("other.key"), "h/s0.key": ("link", "../other.key")},
   opts=("items[0]", "key_path"), paths=("{W}/h/s0.key",))
hm("install-key-symlink", "key_symlink", items({**INSTALL0, "key_path": "{W}/h/link.key"}, stage="install"),
   lay={"real": ("dir",), "real/leaf.key": M("leaf.key"), "h/link.key": ("link", "../real/leaf.key")},
   opts=("items[0]", "key_path"), paths=("{W}/h/link.key",))
hm("pending-key-symlink", "key_symlink", lay={"other.key": M("other.key"), "h/s0.key.pgtls-new": ("link", "../other.key")},
   opts=("items[0]", "key_path"), paths=(("{W}/h/s0.key.pgtls-new", "{W}/h/s0.key"),))
hm("same-cert-key", "same_file", items({**HM["items"][0], "cert_path": "{W}/h/s0.key"}), opts=("cert_path", "key_path"),
   paths=("{W}/h/s0.key",))
hm("two-items-same-cert", "same_file",
   items(HM["items"][0], {"name": "s1", "key_path": "{W}/h/s1.key", "cert_path": "{W}/h/s0.crt"}),
   opts=("items[1]", "cert_path"), paths=("{W}/h/s0.crt",))
hm("two-items-same-key-dotdot", "same_file",
   items(HM["items"][0], {"name": "s1", "key_path": "{W}/h/sub/../s0.key", "cert_path": "{W}/h/s1.crt"}),
   lay={"h/sub": ("dir",)}, opts=("items[1]", "key_path"), paths=(("{W}/h/s0.key", "{W}/h/sub/../s0.key"),))
hm("root-is-cert-dotdot", "same_file", items({**HM["items"][0], "root_path": "{W}/h/sub/../s0.crt"}),
   lay={"h/sub": ("dir",)}, opts=("root_path", "cert_path"), paths=(("{W}/h/s0.crt", "{W}/h/sub/../s0.crt"),))
hm("csr-is-key-symlinked-folder", "same_file", items({**HM["items"][0], "csr_path": "{W}/hlink/s0.key"}),
   lay={"hlink": ("link", "h")}, opts=("csr_path", "key_path"), paths=(("{W}/h/s0.key", "{W}/hlink/s0.key"),))
hm("install-cert-holds-key", "wrong_kind", items(INSTALL0, stage="install"),
   lay={**INSTALL_LAY, "h/c0.crt": M("other.key")}, opts=("items[0]", "cert_path"), paths=("{W}/h/c0.crt",))
hm("install-root-holds-garbage", "wrong_kind",
   items({**INSTALL0, "root_path": "{W}/h/r0.crt", "root": M("root.crt")}, stage="install"),
   lay={**INSTALL_LAY, "h/r0.crt": M("garbage.bin")}, opts=("items[0]", "root_path"), paths=("{W}/h/r0.crt",))
hm("prepare-key-holds-cert", "wrong_kind", lay={"h/s0.key": M("leaf.crt")}, opts=("items[0]", "key_path"),
   paths=("{W}/h/s0.key",))
hm("prepare-csr-holds-key", "wrong_kind", items({**HM["items"][0], "csr_path": "{W}/h/s0.csr"}),
   lay={"h/s0.csr": M("other.key")}, opts=("items[0]", "csr_path"), paths=("{W}/h/s0.csr",))
hm("cn-65", "messages", items({**HM["items"][0], "common_name": "c" * 65}), opts=("items[0]", "common_name"))
hm("install-cert-bad-pem", "messages", items({**INSTALL0, "certificate": M("bad_pem.crt")}, stage="install"),
   lay=INSTALL_LAY, opts=("items[0]", "certificate"))
hm("install-cert-truncated", "messages", items({**INSTALL0, "certificate": M("trunc_closed.crt")}, stage="install"),
   lay=INSTALL_LAY, opts=("items[0]", "certificate"))
hm("install-root-not-pem", "messages",
   items({**INSTALL0, "root_path": "{W}/h/r0.crt", "root": "hello, not PEM"}, stage="install"), lay=INSTALL_LAY,
   opts=("items[0]", "root"))
hm("prepare-key-truncated", "messages", lay={"h/s0.key": M("trunc_closed.key")}, opts=("items[0]", "key_path"),
   paths=("{W}/h/s0.key",))
hm("san-10.0.0.256", "values", items({**HM["items"][0], "subject_alt_names": ["10.0.0.256"]}),
   opts=("items[0]", "subject_alt_names"))
hm("install-cert-2mb", "size", items({**INSTALL0, "certificate": Big("CERTIFICATE")}, stage="install"),
   lay=INSTALL_LAY, opts=("items[0]", "certificate"))

# Controls: the harness can pass (good calls succeed and change the folder as they should) ---------------------------
case("ca-control-root", "ca", "control", {**CA}, expect="succeed_changed")
case("ca-control-intermediate", "ca", "control", {**CA, **ROOT_ISS}, expect="succeed_changed")
case("server_cert-control", "server_cert", "control", {**SC, "root_cert_path": "{W}/srv/root.crt"}, lay=SRV,
     expect="succeed_changed")
case("client_cert-control", "client_cert", "control", {**CC, **names("app", "report user")}, lay=DEST,
     expect="succeed_changed")
case("client_cert-control-odd-name", "client_cert", "control", {**CC, **names("App.Ro-1")}, lay=DEST,
     expect="client_safe")
case("crl-control", "crl", "control", {**CRL, "combined_path": f"{P}/all.crl", "combine_with": [f"{P}/root.crl"]},
     expect="succeed_changed")
case("validate-control", "validate", "control", {**VAL, "crl_path": None}, lay=VAL_LAY, expect="succeed_unchanged")
case("host_material-control", "host_material", "control", {**HM}, lay=HM_LAY, expect="succeed_changed")

MODULES = ("ca", "server_cert", "client_cert", "crl", "validate", "host_material")
BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "duplicate case id"

# Raw text that must never reach the user: tracebacks, ansible's wrappers of unhandled exceptions, and the messages
# of cryptography and the standard library that issue 8 quotes.
FORBIDDEN = (
    "Traceback", 'File "/', "ParseError", "ShortData", "InvalidData", "Module failed:", "Action failed:",
    "MODULE FAILURE", "Attribute's length must be", "The not valid after date must be after",
    "path_length must be a non-negative integer", "The serial number should be", "159 bits, got",
    "embedded null byte", "OverflowError", "date value out of range", "is out of range for",
    "unexpected exception", "object has no attribute", "NoneType", "KeyError", "TypeError", "ValueError",
)
_YEAR = re.compile(r"year -?\d+ is out of range")


# Materialising and running --------------------------------------------------------------------------------------------
def fill(obj, work: Path, material: Material):
    if isinstance(obj, Big):
        return big_begin(str(obj)).decode()
    if isinstance(obj, M):
        return material[str(obj)].decode()
    if isinstance(obj, str):
        return obj.replace("{W}", str(work))
    if isinstance(obj, dict):
        return {k: fill(v, work, material) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [fill(v, work, material) for v in obj]
    return obj


def lay_out(work: Path, spec: dict, material: Material) -> None:
    for rel, what in spec.items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, tuple) and what[0] == "dir":
            path.mkdir(exist_ok=True)
        elif isinstance(what, tuple) and what[0] == "link":
            path.symlink_to(what[1])
        elif isinstance(what, Big):
            path.write_bytes(big_begin(str(what)))
        elif isinstance(what, M):
            path.write_bytes(material[str(what)])
            os.chmod(path, 0o600 if str(what).endswith(".key") else 0o644)
        else:
            path.write_bytes(what)


@dataclass
class Outcome:
    case: Case
    work: Path
    result: dict | None
    before: dict
    after: dict
    error: str | None = None


def _prime(base: Path) -> str:
    """A first crl run in the base CA folder (so its lock and state.json exist, as in any CA folder in use)."""
    tasks = [
        (f"prime-{name}", {"pgtls.ssl.crl": {"path": str(base / f"{name}.crl"),
                                             "issuer_cert_path": str(base / f"{name}.crt"),
                                             "issuer_key_path": str(base / f"{name}.key"),
                                             **({"revoked": [{"serial_number": "4242"}]} if name == "int" else {})}})
        for name in ("root", "int")
    ]
    results = base.parent / "prime.json"
    book = recording_playbook(base.parent / "prime.yml", tasks, results)
    done = run_playbook(book, timeout=120)
    if done.returncode != 0 or not results.exists():
        return f"priming failed: {done.stdout[-1500:]}"
    failed = [k for k, v in json.loads(results.read_text()).items() if v.get("failed")]
    results.unlink()
    (base.parent / "prime.yml").unlink()
    return f"priming failed for {failed}" if failed else ""


def _task(c: Case, work: Path, material: Material) -> dict:
    return {f"pgtls.ssl.{c.module}": fill(c.args, work, material)}


def _run_batch(batch: list[Case], top: Path, material: Material, label: str, timeout: float) -> dict[str, dict]:
    results = top / f"results-{label}.json"
    book = recording_playbook(top / f"play-{label}.yml", [(c.id, _task(c, top / c.id, material)) for c in batch],
                              results)
    start = time.monotonic()
    try:
        done = run_playbook(book, timeout=timeout)
    except TimeoutError as exc:
        return {c.id: {"__harness_error": f"timed out after {timeout} s ({str(exc)[:300]})"} for c in batch}
    seconds = time.monotonic() - start
    if not results.exists():
        return {c.id: {"__harness_error": f"no results (rc {done.returncode}): {done.stdout[-2500:]} {done.stderr[-800:]}"}
                for c in batch}
    table = json.loads(results.read_text())
    for value in table.values():
        value["__seconds"] = seconds / len(batch)
    return table


@pytest.fixture(scope="module")
def outcomes():
    material = build_material()
    top = Path(tempfile.mkdtemp(prefix="pf-", dir="/tmp"))  # short: client_cert-name-absolute needs it
    base = top / "base" / "pki"
    write_base(base, material)
    priming = _prime(base)
    for c in CASES:
        work = top / c.id
        work.mkdir()
        shutil.copytree(base, work / "pki", symlinks=True)
        lay_out(work, c.lay, material)
    before = {c.id: snapshot(top / c.id) for c in CASES}
    jobs = []
    for module in MODULES:
        batch = [c for c in CASES if c.module == module and not c.big]
        jobs.append((batch, module, BATCH_TIMEOUT))
    jobs += [([c], c.id, SIZE_TIMEOUT) for c in CASES if c.big]
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(_run_batch, batch, top, material, label, timeout) for batch, label, timeout in jobs]
        table = {}
        for future in futures:
            table.update(future.result())
    print(f"\nbad-input table: {len(CASES)} cases in {time.monotonic() - start:.1f} s{'; ' + priming if priming else ''}")
    print("2 MB cases (seconds, ansible-playbook start included): "
          + ", ".join(f"{c.id} {table.get(c.id, {}).get('__seconds', -1):.1f}" for c in CASES if c.big))
    found = {}
    for c in CASES:
        raw = table.get(c.id)
        error = raw.get("__harness_error") if raw else "no result recorded"
        found[c.id] = Outcome(c, top / c.id, raw, before[c.id], snapshot(top / c.id), error)
    yield found
    if os.environ.get("PGTLS_FAULTS_KEEP"):
        print(f"\ncase folders and results kept in {top}")
    else:
        shutil.rmtree(top, ignore_errors=True)


# Judging -----------------------------------------------------------------------------------------------------------
def _text(result: dict) -> str:
    parts = [str(result.get(k, "")) for k in ("msg", "module_stderr", "module_stdout", "stderr", "stdout")]
    return "\n".join(p for p in parts if p)


def _wanted(work: Path, wanted: tuple) -> list[str]:
    """Which of ``wanted`` (each a string or a tuple of alternatives) the message lacks."""
    return [" or ".join(alts) for alts in wanted if not any(a in work for a in alts)]


def _alternatives(items: tuple, work: Path) -> list[tuple]:
    out = []
    for item in items:
        alts = item if isinstance(item, tuple) else (item,)
        filled = [a.replace("{W}", str(work)) for a in alts]
        more = [os.path.normpath(a) for a in filled if a.startswith("/")] + [os.path.realpath(a) for a in filled
                                                                             if a.startswith("/")]
        out.append(tuple(dict.fromkeys(filled + more)))
    return out


def _problems_failed(o: Outcome) -> list[str]:
    r = o.result
    msg = _text(r)
    problems = []
    if not r.get("failed"):
        problems.append(f"the task did not fail (changed={r.get('changed')})")
    missing = _wanted(msg, _alternatives(o.case.opts, o.work)) + _wanted(msg, _alternatives(o.case.paths, o.work))
    if missing:
        problems.append(f"message does not name {missing}")
    raw = [f for f in FORBIDDEN if f in msg] + _YEAR.findall(msg)
    if raw:
        problems.append(f"raw/traceback text {raw}")
    return problems


def _pending_only(changes: list[str], o: Outcome) -> bool:
    """Only new pending keys (``*.pgtls-new``) and the folders holding them (created, or their mtime)."""
    new_files = [c.split(" ", 2)[2] for c in changes if c.startswith("new file ")]
    if not new_files or not all(f.endswith(".pgtls-new") for f in new_files):
        return False
    holders = {os.path.dirname(f) for f in new_files}
    ancestors = {a for f in new_files for a in _parents(f)}
    for c in changes:
        if c.startswith("new file "):
            continue
        if c.startswith("new dir ") and c.split(" ", 2)[2] in ancestors:
            continue
        if c.startswith("changed ") and c.split(" ")[1] in holders | ancestors | {"."} and "(mtime_ns)" in c:
            continue
        return False
    return True


def _parents(rel: str) -> list[str]:
    out, cur = [], os.path.dirname(rel)
    while cur:
        out.append(cur)
        cur = os.path.dirname(cur)
    return out or ["."]


def judge(o: Outcome) -> list[str]:
    if o.error:
        return [o.error]
    if o.result.get("skipped_by_harness"):
        return ["the case did not run (the play stopped before it)"]
    r, c = o.result, o.case
    changes = snapshot_changes(o.before, o.after)
    if c.expect in ("succeed_changed", "succeed_unchanged"):
        problems = [] if not r.get("failed") else [f"control failed: {_text(r)[:600]}"]
        if c.expect == "succeed_changed" and not changes:
            problems.append("control changed nothing in its folder")
        if c.expect == "succeed_unchanged" and changes:
            problems.append(f"control changed its folder: {changes[:8]}")
        return problems
    if c.expect == "client_safe" and not r.get("failed"):
        return _client_safety(o, changes)
    if c.expect == "finding":
        found = [f for f in r.get("findings") or [] if f.get("status") in ("warn", "fail")
                 and "root" in str(f.get("message", "")).lower()]
        problems = [] if found else [f"no warn/fail finding about the root: {r.get('findings') or _text(r)[:400]}"]
        return problems + ([f"the work folder changed: {changes[:10]}"] if changes else [])
    problems = _problems_failed(o)
    if changes:
        if c.expect == "fail_or_pending" and _pending_only(changes, o):
            if ".pgtls-new" not in _text(r):
                problems.append(f"a pending key was kept but the message does not say so: {changes[:6]}")
        else:
            problems.append(f"the work folder changed: {changes[:10]}")
    return problems


def _client_safety(o: Outcome, changes: list[str]) -> list[str]:
    """A client run that succeeded: everything it wrote is inside dest, one distinct folder per client, and each
    folder's certificate names its client."""
    problems = []
    dest_rel = "x/dest"
    outside = [ch for ch in changes
               if not (ch.split(" ")[2 if ch.startswith(("new", "removed")) else 1] + "/").startswith(dest_rel + "/")]
    if outside:
        problems.append(f"changes outside dest: {outside[:8]}")
    dest = os.path.realpath(o.work / dest_rel)
    clients = o.result.get("clients") or []
    folders = [os.path.realpath(cl.get("dir", "")) for cl in clients]
    if len(set(folders)) != len(o.case.args["clients"]):
        problems.append(f"clients share a folder or are missing: {folders}")
    for cl, folder in zip(clients, folders):
        if not folder.startswith(dest + os.sep):
            problems.append(f"client {cl.get('name')!r} is in {folder}, outside dest {dest}")
            continue
        crt = Path(folder) / "postgresql.crt"
        if not crt.exists():
            problems.append(f"client {cl.get('name')!r}: no postgresql.crt in {folder}")
            continue
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        if cn != cl.get("name"):
            problems.append(f"folder {folder} holds the certificate of {cn!r}, not of {cl.get('name')!r}")
        if pubkey_of_cert(crt) != pubkey_of_key(Path(folder) / "postgresql.key"):
            problems.append(f"{folder}: key and certificate do not match")
    return problems


@pytest.mark.parametrize("case_id", list(BY_ID), ids=list(BY_ID))
def test_bad_input(outcomes, case_id):
    outcome = outcomes[case_id]
    problems = judge(outcome)
    msg = _text(outcome.result or {})[:700] if outcome.result else ""
    assert not problems, f"{case_id} [{outcome.case.cls}]: " + "; ".join(problems) + f"\n  message: {msg!r}"


def test_table_size_and_coverage():
    """At least 100 bad inputs over the six modules, several per class of issue 8 items 1-6, 10, 12-14."""
    bad = [c for c in CASES if c.cls != "control"]
    assert len(bad) >= 100
    assert {c.module for c in bad} == set(MODULES)
    per_class = {}
    for c in bad:
        per_class.setdefault(c.cls, []).append(c.id)
    for cls in ("same_file", "wrong_kind", "client_name", "key_symlink", "issuer_ca", "late_discovery", "values",
                "messages", "size"):
        assert len(per_class.get(cls, [])) >= 3, cls
    table = {m: {} for m in MODULES}
    for c in bad:
        table[c.module][c.cls] = table[c.module].get(c.cls, 0) + 1
    print("\n" + json.dumps(table, indent=1))
