"""The example AWX project (examples/awx-project) run through ansible-runner the way AWX runs a job.

One local PostgreSQL 15 cluster (no containers) is both the database server and, as the same host, the
application host. Each job gets what AWX gives it: a private data folder with the project, the inventory, the
"pgtls CA" credential type's injectors (the CA as extra vars in env/extravars, PGTLS_PKI_DIR in env/envvars),
the collection installed from the built tarball, no passwords (nothing may prompt). Every job must end
"successful", and no key or passphrase may appear in its job events or stdout. The "pgtls OpenBao" credential type's
injectors, rendered as AWX renders them, run the same jobs against a real OpenBao.
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
            stdout, events = _job(base, ident, inventory, {**_credential(vault), **job_vars},
                                  {"PGTLS_PKI_DIR": str(persistent_pki)}, collections)
            assert "PLAY RECAP" in stdout
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


def _job(base: Path, ident: str, inventory: dict, extravars: dict, env: dict, collections: Path) -> tuple[str, list]:
    """One job as AWX runs it: a private data folder with the project, the inventory, the credential's extra vars and
    environment, no prompts; through ansible-runner. It must end successful. Returns its stdout and job events."""
    pdd = base / f"job-{ident}"
    shutil.copytree(PROJECT, pdd / "project")
    _write(pdd / "inventory" / "hosts.yml", yaml.safe_dump(inventory))
    _write(pdd / "env" / "extravars", yaml.safe_dump(extravars))
    _write(pdd / "env" / "envvars", yaml.safe_dump({
        **env,
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
    assert_no_deprecation(f"job {ident}", stdout)
    return stdout, [json.loads(p.read_text()) for p in sorted((artifacts / "job_events").glob("*.json"))]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _injected(credential_type: dict, inputs: dict, files: Path) -> tuple[dict, dict]:
    """What AWX gives a job for a credential of this type: each injector template rendered with the inputs (empty
    fields as empty strings), ``tower.filename.<id>`` the file it writes for ``template.<id>``. Returns the job's
    environment and extra vars."""
    from jinja2.sandbox import SandboxedEnvironment  # noqa: PLC0415 - ansible-core's own dependency

    jinja = SandboxedEnvironment()
    context = {field["id"]: inputs.get(field["id"], field.get("default", "")) for field in
               credential_type["inputs"]["fields"]}
    written = {}
    for name, template in credential_type["injectors"].get("file", {}).items():
        path = files / name.split(".", 1)[1]
        path.write_text(jinja.from_string(template).render(**context))
        written[name.split(".", 1)[1]] = str(path)
    context["tower"] = {"filename": written}

    def render(value):
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        return jinja.from_string(value).render(**context) if isinstance(value, str) else value

    return render(credential_type["injectors"]["env"]), render(credential_type["injectors"]["extra_vars"])


def test_the_openbao_credential_type_runs_the_jobs_against_a_real_engine(workdir):
    """The "pgtls OpenBao" credential type as AWX injects it (examples/awx-project/credential-types/openbao.yml):
    BAO_ADDR, BAO_TOKEN and PGTLS_PKI_DIR in the environment, pgtls_ca_backend and pgtls_openbao as extra vars; the
    site, clients and revoke jobs through ansible-runner against a real OpenBao. Every job successful; the server
    and the client get the engine's certificates; the revoked client is in the engine's CRL and refused; the token
    appears in no job event or stdout."""
    from openbao import ANY_NAME, BaoServer, policy  # noqa: PLC0415 - the e2e helper

    base = workdir / "awx-openbao"
    base.mkdir()
    os.chmod(base, 0o755)
    (base / "bao").mkdir()
    bao = BaoServer(base / "bao").start()
    cluster = None
    try:
        bao.setup_pki()
        bao.api("POST", "pki_int/roles/awx", ANY_NAME)
        bao.api("POST", "sys/policies/acl/pgtls-awx", {"policy": policy("awx")})
        token = bao.api("POST", "auth/token/create", {"policies": ["pgtls-awx"], "ttl": "30m"})["auth"]["client_token"]
        credential_type = yaml.safe_load((PROJECT / "credential-types" / "openbao.yml").read_text())
        mirror, clients = base / "mirror", base / "app"
        clients.mkdir(mode=0o755)
        (base / "files").mkdir()
        env, extra = _injected(credential_type, {"address": bao.address, "role": "awx", "token": token,
                                                 "pki_dir": str(mirror)}, base / "files")
        assert env["BAO_TOKEN"] == token and extra["pgtls_openbao"]["role"] == "awx" and env["BAO_CACERT"] == ""
        env = {k: v for k, v in env.items() if v}  # AWX sets BAO_CACERT only with a CA certificate (the type's note)
        collections = _install_built_collection(base)
        cluster = plain_cluster(base / "pg")
        host = role_vars(cluster, "main", mirror)
        del host["pgtls_pki_dir"]  # from the credential's PGTLS_PKI_DIR
        host["pgtls_hba_rules"].append(
            {"type": "hostssl", "database": "all", "user": "mallory", "address": "127.0.0.1/32", "method": "cert"})
        host.update(ansible_connection="local", ansible_python_interpreter=TARGET_PYTHON,
                    ansible_become_method="ansible.builtin.su", pgtls_server_valid_days=20,
                    pgtls_server_renew_before_days=5, pgtls_client_valid_days=20, pgtls_client_renew_before_days=5,
                    pgtls_client_certs=[{"name": "mallory", "user": "postgres", "dir": str(clients / "mallory")}])
        inventory = {"all": {"hosts": {"localhost": host},
                             "children": {"pgtls_servers": {"hosts": {"localhost": {}}},
                                          "pgtls_clients": {"hosts": {"localhost": {}}}}}}
        for ident, job_vars in (("site", {}), ("clients", {}), ("revoke", {"pgtls_revoke_names": ["mallory"]})):
            stdout, events = _job(base, ident, inventory, {**extra, **job_vars}, env, collections)
            assert token not in stdout + json.dumps(events), f"{ident}: the token is in the job's output"
        for path in (cluster.data / "tls" / "server.crt", clients / "mallory" / "postgresql.crt"):
            issuer = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-issuer", "-serial"],
                                    capture_output=True, text=True, check=True).stdout
            assert "pgtls OpenBao test intermediate" in issuer, (path, issuer)
        serial = issuer.split("serial=")[1].strip().lower()
        crl = subprocess.run(["openssl", "crl", "-noout", "-text"], input=bao.api("GET", "pki_int/cert/crl")["data"][
            "certificate"], capture_output=True, text=True, check=True).stdout.lower()
        assert serial.lstrip("0") in crl.replace(":", ""), crl
        refused = cluster.psql(f"host=localhost user=mallory sslmode=verify-full sslcert={clients}/mallory/postgresql.crt "
                               f"sslkey={clients}/mallory/postgresql.key sslrootcert={clients}/mallory/root.crt")
        assert refused.returncode != 0 and "revoked" in refused.stderr, refused.stderr
    finally:
        if cluster is not None:
            cluster.stop()
        bao.stop()
