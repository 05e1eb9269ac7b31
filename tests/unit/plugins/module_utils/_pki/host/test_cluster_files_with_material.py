"""The host half of pgtls.ssl.cluster_tls (cluster_files with material, compare_only and the probe): asked once, it
writes nothing but the pending key; the install writes the certificate and the files after one snapshot; an
unchanged cluster then answers with no change at all; bad input stops before the key is made."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess

import pytest
from pkitools import Pki, openssl_server_cert, pem, stand_in_server

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import issue_certificate
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import SERVER
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_files import cluster_files
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.host_material import PENDING_SUFFIX
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.inspection import served


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return openssl_server_cert(tmp_path_factory.mktemp("served"))


@pytest.fixture
def conf(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "pg_hba.conf").write_text("local all all peer\n")
    return conf


def params(conf, **extra):
    tls = conf / "tls"
    base = {
        "directories": [{"path": str(tls), "mode": "0750"}],
        "files": [{"path": str(conf / "pg_hba.conf"), "content": "hostssl all all all cert\n", "mode": "0640"}],
        "lines": [],
        "snapshot_dir": str(tls / ".pgtls-snapshot"),
        "snapshot_paths": [str(tls / "server.key"), str(tls / "server.crt"), str(conf / "pg_hba.conf")],
        "snapshot_group": None,
        "material": {"name": "server", "key_path": str(tls / "server.key"), "cert_path": str(tls / "server.crt"),
                     "common_name": "db1", "subject_alt_names": ["db1"], "key_mode": "0600", "create_dir": True},
    }
    base.update(extra)
    return base


def sign(pki, csr_pem):
    csr = compat.load_csr(csr_pem.encode(), "csr")
    leaf = issue_certificate(subject=build_name("db1"), public_key=csr.public_key(), profile=SERVER, valid_days=30,
                             issuer=pki.issuer)
    return pem(leaf, pki.int).decode()


def test_ask_install_then_one_unchanged_answer(conf):
    pki = Pki()
    tls = conf / "tls"
    asked = cluster_files(dict(params(conf), compare_only=True), False)
    # Only the key was made (pending, final mode); the configuration is compared, not written.
    assert (tls / ("server.key" + PENDING_SUFFIX)).exists() and not (tls / "server.crt").exists()
    assert stat.S_IMODE(os.stat(tls / ("server.key" + PENDING_SUFFIX)).st_mode) == 0o600
    assert (conf / "pg_hba.conf").read_text() == "local all all peer\n"
    assert any("pg_hba.conf: content changed" in c for c in asked["changes"])
    assert asked["material"]["key"]["state"] == "created" and "PRIVATE KEY" not in repr(asked)
    assert not asked["snapshot_taken"] and not (tls / ".pgtls-snapshot").exists()

    chain = sign(pki, asked["material"]["csr"])
    material = dict(params(conf)["material"], certificate=chain)
    seen = []

    class Activation:
        def __init__(self, given):
            seen.append(sorted(p.name for p in (tls / ".pgtls-snapshot").iterdir()))

        def run(self):
            return {"steps": []}  # the snapshot stays, as a run killed before its end would leave it

    activate = {"always": False, "ca_path": "/tls/root.crt"}
    done = cluster_files(params(conf, material=material, activate=activate), False, Activation)
    assert done["changed"] and done["snapshot_taken"]
    assert (tls / "server.crt").read_text() == chain and not (tls / ("server.key" + PENDING_SUFFIX)).exists()
    assert (conf / "pg_hba.conf").read_text() == "hostssl all all all cert\n"
    # One snapshot, before the first replacement: the old pg_hba.conf (no key or certificate existed), and the marker.
    assert seen == [sorted([str(conf / "pg_hba.conf").replace("/", "_"), ".pgtls-snapshot-of"])]

    again = cluster_files(dict(params(conf), compare_only=True), False)
    assert not again["changed"] and again["changes"] == [] and again["material"]["changes"] == []
    assert again["material"]["certificate"] == chain
    # Nothing to change: the snapshot the run left (as a killed run would) is removed.
    assert again["stale_snapshot_removed"] and not (tls / ".pgtls-snapshot").exists()


def test_check_mode_asks_and_writes_nothing(conf):
    before = sorted(p.name for p in conf.iterdir())
    asked = cluster_files(dict(params(conf), compare_only=True), True)
    assert asked["material"]["key"]["state"] == "created" and asked["changes"]
    assert sorted(p.name for p in conf.iterdir()) == before


def test_bad_input_stops_before_the_key_is_made(conf):
    (conf / "elsewhere").write_text("x\n")
    os.symlink(conf / "elsewhere", conf / "pg_ident.conf")
    files = params(conf)["files"] + [{"path": str(conf / "pg_ident.conf"), "content": "", "mode": "0640"}]
    with pytest.raises(PkiError, match="symbolic link"):
        cluster_files(params(conf, files=files, compare_only=True), False)
    assert not (conf / "tls").exists()


def test_served_compares_the_leaf_with_the_file(cert, tmp_path):
    cert_path, _key = cert
    port = stand_in_server(cert, accept_direct=False, alpn=None)
    assert served(port, cert_path)["matches_file"] is True
    other = tmp_path / "other.crt"
    other.write_text("")
    port = stand_in_server(cert, accept_direct=False, alpn=None)
    answer = served(port, str(other))
    assert answer["matches_file"] is False and answer["fingerprint_sha256"]
    refused = served(1, cert_path)  # nothing listens on port 1
    assert refused["matches_file"] is False and "cannot connect" in refused["error"]


def test_key_group_created_and_joined_once():
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host import accounts

    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    user = pwd.getpwuid(os.geteuid()).pw_name
    assert accounts.ensure_member("pgtls-no-such-group", user, check_mode=True, run=run) == [
        "group pgtls-no-such-group created", f"{user} added to group pgtls-no-such-group"]
    assert calls == []  # check mode: said, not done
    accounts.ensure_member("pgtls-no-such-group", user, check_mode=False, run=run)
    assert [c[1:] for c in calls] == [["--system", "pgtls-no-such-group"], ["-a", "-G", "pgtls-no-such-group", user]]
    primary = grp.getgrgid(pwd.getpwuid(os.geteuid()).pw_gid).gr_name
    assert accounts.ensure_member(primary, user, check_mode=False, run=run) == []  # already in it: nothing runs
    assert len(calls) == 2

    def refuse(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 10, "", "groupadd: cannot lock /etc/group")

    with pytest.raises(PkiError, match="cannot lock /etc/group"):
        accounts.ensure_member("pgtls-no-such-group", user, check_mode=False, run=refuse)
    with pytest.raises(PkiError, match="user pgtls-no-such-user does not exist"):
        accounts.ensure_member(primary, "pgtls-no-such-user", check_mode=False, run=run)
