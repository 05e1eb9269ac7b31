"""The client role and the libpq version of its host: sslcertmode (libpq 16+) is written only for a declared libpq 16+,
and the role fails before writing anything otherwise, because an older libpq refuses the whole service file at a
keyword it does not know. Measured here with this machine's libpq 15: the service file the role would write with
sslcertmode is refused by psql ("syntax error in service file"). No server is involved."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import PG_BIN, run_playbook


def client_play(tmp_path, **role_vars):
    """A play with the client role on this machine: one service, no certificate and no CA (the input checks come
    before anything that needs the CA folder)."""
    pki = tmp_path / "pki"
    home = tmp_path / "home"
    play = [{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "pgtls.ssl.client", "vars": {
        "pgtls_pki_dir": str(pki),
        "pgtls_client_certs": [{"name": "root", "user": "root", "dir": str(home / ".postgresql")}],
        "pgtls_client_services": [{"name": "db1", "host": "db1.example.com", "role": "root"}],
        **role_vars}}]}]
    playbook = tmp_path / "client.yml"
    playbook.write_text(json.dumps(play))
    return str(playbook), home


@pytest.mark.parametrize("libpq, message", [
    (15, "pgtls_client_sslcertmode: sslcertmode=require needs libpq 16 (this host's is 15"),
    (0, "set pgtls_client_libpq_version to the major version of libpq on this host"),
])
def test_sslcertmode_is_refused_before_writing_without_a_libpq_16(tmp_path, libpq, message):
    playbook, home = client_play(tmp_path, pgtls_client_sslcertmode="require", pgtls_client_libpq_version=libpq)
    done = run_playbook(playbook, {}, check=False)
    assert done.returncode != 0
    assert message in done.stdout, done.stdout[-3000:]
    assert not home.exists()


def test_sslnegotiation_is_refused_for_a_declared_libpq_older_than_17(tmp_path):
    playbook, _home = client_play(tmp_path, pgtls_client_libpq_version=16, pgtls_client_services=[
        {"name": "db1", "host": "db1.example.com", "role": "root", "sslnegotiation": "direct"}])
    done = run_playbook(playbook, {}, check=False)
    assert done.returncode != 0
    assert "pgtls_client_services[0]: sslnegotiation needs libpq 17 (this host's is 16" in done.stdout, done.stdout[-3000:]


def test_libpq_15_refuses_a_service_file_with_sslcertmode(tmp_path):
    """Why the role refuses: the entry it would write, read by libpq 15 (this machine's), is a syntax error."""
    version = subprocess.run([str(PG_BIN / "psql"), "--version"], capture_output=True, text=True, check=True).stdout
    assert " 15." in version, version
    service = tmp_path / "pg_service.conf"
    service.write_text("[db1]\nhost=127.0.0.1\nport=1\nsslmode=verify-full\nsslcertmode=require\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    done = subprocess.run([str(PG_BIN / "psql"), "service=db1", "-c", "select 1"], capture_output=True, text=True,
                          env=dict(env, PGSERVICEFILE=str(service)), check=False)
    assert done.returncode != 0
    assert f'syntax error in service file "{service}", line 5' in done.stderr, done.stderr
