"""The server role with your own CA (pgtls_server_cert_source=external) on a real PostgreSQL 15: the role writes the
CSR and stops, naming the files; openssl (the "external CA") signs it; the role checks and installs it; a
certificate for another key is refused and the server keeps serving the previous one."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import plain_cluster, role_vars, run_playbook


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def ext_env(workdir):
    base = workdir / "external"
    cluster = plain_cluster(base)
    ca = base / "their-ca"
    ca.mkdir()
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
            "-subj", "/CN=Their Root", "-keyout", str(ca / "root.key"), "-out", str(ca / "root.crt"),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    extra = dict(role_vars(cluster, "ext", base / "pki"), pgtls_server_cert_source="external",
                 pgtls_crl_enabled=False, pgtls_key_layout="owner")
    yield cluster, extra, base / "pki" / "external" / "localhost-15-ext", ca
    cluster.stop()


def sign(ca, csr, out, *extra: str) -> None:
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca / "root.crt"), "-CAkey", str(ca / "root.key"),
            "-CAcreateserial", "-days", "20", "-copy_extensions", "copy", "-out", str(out), *extra)


def verify_full(cluster, root):
    return cluster.psql(f"host=localhost user=postgres sslmode=verify-full sslrootcert={root}")


def test_first_run_writes_the_csr_and_stops_naming_the_files(ext_env):
    cluster, extra, stem, _ca = ext_env
    done = run_playbook("role_local.yml", extra, check=False)
    assert done.returncode != 0
    assert f"sign {stem}.csr with your CA and save the certificate" in done.stdout.replace("\n", " "), done.stdout
    assert "BEGIN CERTIFICATE REQUEST" in stem.with_suffix(".csr").read_text()
    assert not (cluster.data / "tls" / "server.crt").exists()
    assert cluster.admin("show ssl").stdout.strip() == "off"


def test_signed_certificate_is_installed_and_served(ext_env):
    cluster, extra, stem, ca = ext_env
    sign(ca, stem.with_suffix(".csr"), stem.with_suffix(".crt"))
    (stem.parent / "root.crt").write_bytes((ca / "root.crt").read_bytes())
    run_playbook("role_local.yml", extra)
    connected = verify_full(cluster, ca / "root.crt")
    assert connected.returncode == 0, connected.stderr
    assert (cluster.data / "tls" / "server.crt").read_bytes() == stem.with_suffix(".crt").read_bytes()


def test_second_run_changes_nothing(ext_env):
    cluster, extra, _stem, _ca = ext_env
    done = run_playbook("role_local.yml", extra)
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\b", done.stdout), done.stdout


def test_a_certificate_for_another_key_is_refused_and_nothing_changes(ext_env, tmp_path):
    cluster, extra, stem, ca = ext_env
    installed = (cluster.data / "tls" / "server.crt").read_bytes()
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(tmp_path / "other.key"))
    openssl("pkey", "-in", str(tmp_path / "other.key"), "-pubout", "-out", str(tmp_path / "other.pub"))
    sign(ca, stem.with_suffix(".csr"), stem.with_suffix(".crt"), "-force_pubkey", str(tmp_path / "other.pub"))
    done = run_playbook("role_local.yml", extra, check=False)
    assert done.returncode != 0
    assert "refusing to install: the certificate does not match the private key" in done.stdout, done.stdout
    assert (cluster.data / "tls" / "server.crt").read_bytes() == installed
    assert verify_full(cluster, ca / "root.crt").returncode == 0
