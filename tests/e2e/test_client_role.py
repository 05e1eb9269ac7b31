"""The client role through ansible-playbook on this machine, against a CA folder made by pgtls.ssl.ca_folder: a folder
without its CA stops the role before anything is written, naming ca_folder; keys, certificates and bundles are made
(openssl verifies them against the folder's root); a second run and check mode change nothing; a name revoked in the
folder's registry is left out, warned about and exported in pgtls_client_revoked, its files left as they are; the
service file the role would write (check mode and diff: root's home is not the test's to change) names the role's
files, and libpq reads it. No server is involved (tests/e2e/test_drivers.py logs in with such certificates)."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
from pathlib import Path

import pytest
from conftest import PG_BIN, free_port, run_playbook


def recap(stdout: str) -> dict:
    found = re.search(r"^localhost\s+:\s+(.*)$", stdout, re.M)
    assert found, stdout[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found.group(1))}


def snapshot(*folders: Path) -> dict:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for folder in folders
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def fleet(tmp_path):
    """A play with the client role: two roles of root on this host, one bundle on the controller; its facts saved."""
    pki, home = tmp_path / "pki", tmp_path / "certs"
    home.mkdir()

    def play(services=(), **role_vars):
        tasks = [{"name": "Save what the role exports", "changed_when": False, "ansible.builtin.copy": {
            "dest": str(tmp_path / "facts.json"), "mode": "0600",
            "content": "{{ {'changed': pgtls_client_changed, 'revoked': pgtls_client_revoked, "
                       "'certificates': pgtls_client_certificates | map(attribute='name') | list} | to_json }}"}}]
        playbook = [{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "pgtls.ssl.client", "vars": {
            "pgtls_pki_dir": str(pki),
            "pgtls_client_certs": [{"name": "app", "user": "root", "dir": str(home / "app")},
                                   {"name": "mallory", "user": "root", "dir": str(home / "mallory")}],
            "pgtls_client_bundles": ["report"],
            "pgtls_client_services": list(services),
            "pgtls_client_crl": True,
            **role_vars}}], "tasks": tasks}]
        path = tmp_path / "client.yml"
        path.write_text(json.dumps(playbook))
        return str(path)

    return {"tmp": tmp_path, "pki": pki, "home": home, "play": play,
            "facts": lambda: json.loads((tmp_path / "facts.json").read_text())}


def controller(tmp_path: Path, task: dict) -> None:
    path = tmp_path / "controller.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    run_playbook(str(path), {})


def verify(pki: Path, folder: Path) -> None:
    done = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(pki / "root.crt"), "-untrusted",
                           str(folder / "postgresql.crt"), str(folder / "postgresql.crt")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (folder / "root.crt").read_bytes() == (pki / "root.crt").read_bytes()
    # root.crl: the CA folder's CRLs, for libpq's sslcrl (pgtls_client_crl, on by default).
    assert (folder / "root.crl").read_bytes() == (pki / "crl.pem").read_bytes()
    assert oct((folder / "postgresql.key").stat().st_mode & 0o777) == "0o600"


def test_the_client_role_with_the_ca_folder(fleet):
    tmp, pki, home = fleet["tmp"], fleet["pki"], fleet["home"]
    # No CA yet: the role stops before anything is written, naming ca_folder.
    refused = run_playbook(fleet["play"](), {}, check=False)
    assert refused.returncode != 0
    assert f"no intermediate CA in ca_folder ({pki}: intermediate.crt is missing): run the site playbook" in \
        refused.stdout, refused.stdout[-3000:]
    assert not pki.exists() and list(home.iterdir()) == []

    controller(tmp, {"pgtls.ssl.ca_folder": {"path": str(pki), "root_common_name": "E2E Root",
                                             "intermediate_common_name": "E2E Clients CA"}})
    first = run_playbook(fleet["play"](), {})
    assert recap(first.stdout)["changed"] >= 2, first.stdout[-3000:]
    assert fleet["facts"]() == {"changed": True, "revoked": [], "certificates": ["app", "mallory", "report"]}
    for folder in (home / "app", home / "mallory", pki / "clients" / "report"):
        verify(pki, folder)
    assert sorted(p.name for p in (pki / "issued").iterdir()) == ["app", "mallory", "report"]

    # Again, and in check mode: nothing changes.
    for args in ((), ("--check", "--diff")):
        again = run_playbook(fleet["play"](), {}, *args)
        assert recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
        assert fleet["facts"]()["changed"] is False

    # mallory revoked by name: left out, warned about, exported; its files stay as they are.
    controller(tmp, {"pgtls.ssl.revocation_registry": {"pki_dir": str(pki), "names": ["mallory"],
                                                       "reason": "key_compromise"}})
    before = snapshot(home, pki / "clients", pki / "issued")
    revoked = run_playbook(fleet["play"](), {})
    output = revoked.stdout + revoked.stderr
    assert f"not certified again, revoked in {pki}/revoked.yml: mallory. To give such a role a new certificate, " \
        "remove its entries from the registry and its old key (postgresql.key) from the host, so a new key is made." \
        in re.sub(r"\s+", " ", output), output[-3000:]
    assert recap(revoked.stdout)["changed"] == 0, revoked.stdout[-3000:]
    assert fleet["facts"]() == {"changed": False, "certificates": ["app", "report"], "revoked": [
        {"name": "mallory", "owner": "root", "group": 0, "dir": str(home / "mallory")}]}
    assert snapshot(home, pki / "clients", pki / "issued") == before


def test_the_service_file_the_role_would_write(fleet):
    """In check mode with diff: the entry names the role's files; libpq reads it (the server it names is not there)."""
    tmp, pki, home = fleet["tmp"], fleet["pki"], fleet["home"]
    controller(tmp, {"pgtls.ssl.ca_folder": {"path": str(pki), "root_common_name": "E2E Root",
                                             "intermediate_common_name": "E2E Clients CA"}})
    run_playbook(fleet["play"](), {})
    service_file = Path(pwd.getpwnam("root").pw_dir) / ".pg_service.conf"
    state = service_file.stat().st_mtime_ns if service_file.exists() else None
    port = free_port()
    services = [{"name": "e2e_db1", "host": "127.0.0.1", "port": port, "role": "app"},
                {"name": "e2e_db2", "host": "localhost", "role": "mallory", "dbname": "sales"}]
    checked = run_playbook(fleet["play"](services), {}, "--check", "--diff")
    assert (service_file.stat().st_mtime_ns if service_file.exists() else None) == state
    # The entries, as the diff shows the file's new lines.
    added = [line[1:] for line in checked.stdout.splitlines() if line.startswith("+") and not line.startswith("+++")]
    start = added.index("[e2e_db1]")
    entry = added[start:start + 10]
    assert entry == ["[e2e_db1]", "host=127.0.0.1", f"port={port}", "dbname=app", "user=app", "sslmode=verify-full",
                     f"sslcert={home}/app/postgresql.crt", f"sslkey={home}/app/postgresql.key",
                     f"sslrootcert={home}/app/root.crt", f"sslcrl={home}/app/root.crl"], checked.stdout[-3000:]
    assert f"sslcert={home}/mallory/postgresql.crt" in added and "dbname=sales" in added
    # libpq reads the entry and goes where it says: 127.0.0.1 on the port, where nothing listens.
    (tmp / "pg_service.conf").write_text("\n".join(entry) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    done = subprocess.run([str(PG_BIN / "psql"), "service=e2e_db1", "-c", "select 1"], capture_output=True, text=True,
                          env=dict(env, PGSERVICEFILE=str(tmp / "pg_service.conf")), check=False)
    assert done.returncode != 0 and "syntax error" not in done.stderr, done.stderr
    assert f'"127.0.0.1", port {port} failed: Connection refused' in done.stderr, done.stderr
