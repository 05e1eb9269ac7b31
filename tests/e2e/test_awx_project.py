"""The example AWX project (examples/awx-project) run through ansible-runner the way AWX runs a job.

One local PostgreSQL 15 cluster (no containers) is both the database server and, as the same host, the
application host. Each job gets what AWX gives it: a private data folder with the project, the inventory, the
"pgtls CA" credential type's injectors (the CA as extra vars in env/extravars, PGTLS_PKI_DIR in env/envvars),
the collection installed from the built tarball, no passwords (nothing may prompt). Every job must end
"successful", and no key or passphrase may appear in its job events or stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT, TARGET_PYTHON, plain_cluster, role_vars, run_playbook
from pgtls_harness import assert_no_deprecation, run_env

BIN = Path(sys.executable).parent
PROJECT = ROOT / "examples" / "awx-project"
PASS = "awx-Root-Pa55phrase"
JOBS = [
    ("site", {}),
    ("clients", {}),
    ("audit", {}),
    ("rotate", {}),
    ("revoke", {"pgtls_revoke_names": ["mallory"]}),
]

CA_PLAYBOOK = """
- name: The CA an operator keeps in AWX's credential store
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Root CA
      pgtls.ssl.ca: {cert_path: "{{ vault }}/root.crt", key_path: "{{ vault }}/root.key", key_passphrase: "{{ pass }}",
                     common_name: pgtls Root CA}
    - name: Intermediate CA
      pgtls.ssl.ca:
        cert_path: "{{ vault }}/intermediate.crt"
        key_path: "{{ vault }}/intermediate.key"
        common_name: pgtls PostgreSQL CA
        issuer_cert_path: "{{ vault }}/root.crt"
        issuer_key_path: "{{ vault }}/root.key"
        issuer_key_passphrase: "{{ pass }}"
"""


def _install_built_collection(dest: Path) -> Path:
    """AWX's project update installs collections/requirements.yml; here: the tarball built from this checkout."""
    out = dest / "dist"
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)],
                   check=True, capture_output=True)
    (tarball,) = out.glob("pgtls-ssl-*.tar.gz")
    collections = dest / "requirements_collections"
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections),
                    str(tarball)], check=True, capture_output=True)
    return collections


def _credential(vault: Path) -> dict:
    """The injectors' extra vars of the pgtls CA credential type (docs: "AWX and execution environments")."""
    return {
        "pgtls_root_ca_cert_content": (vault / "root.crt").read_text(),
        "pgtls_root_ca_key_content": (vault / "root.key").read_text(),
        "pgtls_root_ca_key_passphrase": PASS,
        "pgtls_intermediate_ca_cert_content": (vault / "intermediate.crt").read_text(),
        "pgtls_intermediate_ca_key_content": (vault / "intermediate.key").read_text(),
    }


def _secret_lines(*paths: Path) -> set[str]:
    lines = {PASS}
    for path in paths:
        lines |= {line for line in path.read_text().splitlines() if line and "-----" not in line}
    return lines


def test_awx_project_jobs_through_ansible_runner(workdir):
    base = workdir / "awx"
    base.mkdir()
    os.chmod(base, 0o755)
    vault, persistent_pki, clients = base / "vault", base / "pki", base / "app"
    vault.mkdir()
    clients.mkdir(mode=0o755)
    run_playbook(str(_write(base / "ca.yml", CA_PLAYBOOK)), {"vault": str(vault), "pass": PASS})
    collections = _install_built_collection(base)

    cluster = plain_cluster(base / "pg")
    try:
        host = role_vars(cluster, "main", persistent_pki)
        del host["pgtls_pki_dir"]  # from the credential's PGTLS_PKI_DIR, as in AWX
        host["pgtls_hba_rules"].append(
            {"type": "hostssl", "database": "all", "user": "mallory", "address": "127.0.0.1/32", "method": "cert"})
        host.update(
            ansible_connection="local",
            ansible_python_interpreter=TARGET_PYTHON,
            ansible_become_method="ansible.builtin.su",
            pgtls_client_certs=[{"name": "mallory", "user": "postgres", "dir": str(clients / "mallory")}],
        )
        inventory = {"all": {"hosts": {"localhost": host},
                             "children": {"pgtls_servers": {"hosts": {"localhost": {}}},
                                          "pgtls_clients": {"hosts": {"localhost": {}}}}}}
        secrets = _secret_lines(vault / "root.key", vault / "intermediate.key")
        for ident, job_vars in JOBS:
            pdd = base / f"job-{ident}"
            shutil.copytree(PROJECT, pdd / "project")
            _write(pdd / "inventory" / "hosts.yml", yaml.safe_dump(inventory))
            _write(pdd / "env" / "extravars", yaml.safe_dump({**_credential(vault), **job_vars}))
            _write(pdd / "env" / "envvars", yaml.safe_dump({
                "PGTLS_PKI_DIR": str(persistent_pki),
                "ANSIBLE_COLLECTIONS_PATH": str(collections),
                "ANSIBLE_LOCALHOST_WARNING": "false",
                "ANSIBLE_NOCOLOR": "1",
                "PATH": f"{BIN}:{os.environ['PATH']}",
                **run_env(),
            }))
            _write(pdd / "env" / "settings", yaml.safe_dump({"idle_timeout": 120, "job_timeout": 600}))
            done = subprocess.run([str(BIN / "ansible-runner"), "run", str(pdd), "-p", f"{ident}.yml", "--ident", ident],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=700, check=False)
            artifacts = pdd / "artifacts" / ident
            status = (artifacts / "status").read_text().strip()
            stdout = (artifacts / "stdout").read_text()
            assert status == "successful", f"{ident}: {status} (rc {done.returncode})\n{stdout[-6000:]}"
            assert "PLAY RECAP" in stdout
            assert_no_deprecation(f"job {ident}", stdout)
            events = [json.loads(p.read_text()) for p in sorted((artifacts / "job_events").glob("*.json"))]
            assert any(e.get("event") == "playbook_on_stats" for e in events)
            if ident == "site":
                server_keys = sorted(cluster.data.rglob("*.key"))
                assert server_keys, "no server key made"
                secrets |= _secret_lines(*server_keys)
            if ident == "clients":
                client_keys = sorted((clients / "mallory").glob("*.key"))
                assert client_keys, "no client key made"
                secrets |= _secret_lines(*client_keys)
            dumped = stdout + "\n".join(json.dumps(e) for e in events)
            assert "PRIVATE KEY" not in dumped, ident
            leaked = sorted(line for line in secrets if line in dumped)
            assert leaked == [], f"{ident}: {len(leaked)} secret line(s) in job events or stdout"
        # The revoked client is refused by the server, seen from outside the job.
        refused = cluster.psql(f"host=localhost user=mallory sslmode=verify-full sslcert={clients}/mallory/postgresql.crt "
                               f"sslkey={clients}/mallory/postgresql.key sslrootcert={clients}/mallory/root.crt")
        assert refused.returncode != 0 and "revoked" in refused.stderr
    finally:
        cluster.stop()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
