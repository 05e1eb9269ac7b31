"""Client certificates from pgtls.ssl with real drivers beyond psql, against a real PostgreSQL 15 behind the server
role (hostssl ... cert): libpq (psql), psycopg 3, asyncpg (Python's ssl), node-postgres (Node's TLS) and the
PostgreSQL JDBC driver (Java's TLS; PKCS#8 DER and PKCS#12 keys), the programs of tests/drivers/ (shared with the
Molecule fleet scenario). Per key type and driver: verify-full by name logs in with the certificate (the server
reports that user and that certificate's serial); by IP address (not a SAN) it is refused; a revoked certificate is
refused.
The measured table is written to tests/output/drivers.md and must equal COMPATIBLE (the table in the docs)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PG_BIN, ROOT, plain_cluster, role_vars, run_playbook
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding

# The driver programs and how each is started: shared with the Molecule fleet scenario (tests/drivers/).
_spec = importlib.util.spec_from_file_location("pgtls_drivers", ROOT / "tests" / "drivers" / "pgtls_drivers.py")
DRIVER_PROGRAMS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(DRIVER_PROGRAMS)

KEY_TYPES = ["ec-p256", "ec-p384", "rsa2048", "ed25519"]
DRIVERS = DRIVER_PROGRAMS.DRIVERS
P12_PASSPHRASE = "drivers-P12-pass"
NODE_MODULES = ROOT / ".cache" / "node" / "node_modules"
JDBC_JAR = Path("/usr/share/java/postgresql.jar")

# What the docs say works (measured: PostgreSQL 15 with OpenSSL 3.0, Debian 12's drivers, Java 17).
COMPATIBLE = {(driver, key_type): True for driver in DRIVERS for key_type in KEY_TYPES}
# node-postgres leaves Node's servername unset for an IP address host, and Node then checks the certificate against
# "localhost" (its default), which this local server's certificate carries: by 127.0.0.1 it connects. Measured and
# documented (give ssl.servername when connecting by address); every other driver refuses the address.
CONNECTS_BY_ADDRESS = {"node-pg"}


def role(key_type: str) -> str:
    return "app_" + key_type.replace("-", "_")


@pytest.fixture(scope="module")
def drivers_env(workdir):
    missing = [tool for tool in ("java", "javac", "node") if not shutil.which(tool)]
    missing += [str(p) for p in (JDBC_JAR, NODE_MODULES / "pg") if not p.exists()]
    if missing:
        pytest.fail(f"driver test tools missing: {', '.join(missing)} (make system-deps and make node-deps install them)")
    base = workdir / "drivers"
    cluster = plain_cluster(base)
    pki = base / "pki"
    extra = role_vars(cluster, "e2e", pki)
    extra["pgtls_hba_rules"] = extra["pgtls_hba_rules"] + [
        {"type": "hostssl", "database": "postgres", "user": "all", "address": "127.0.0.1/32", "method": "cert"}]
    run_playbook("role_local.yml", extra)
    for name in [role(k) for k in KEY_TYPES] + ["revoked_app"]:
        cluster.admin(f"create role {name} login")
    clients = base / "clients"
    clients.mkdir()
    issuer = {"issuer_cert_path": f"{pki}/intermediate.crt", "issuer_key_path": f"{pki}/intermediate.key",
              "issuer_chain_path": f"{pki}/root.crt"}
    tasks = [{"pgtls.ssl.client_cert": dict(issuer, key_location="controller", dest=str(clients), key_type=key_type,
                                            clients=[{"name": role(key_type)}] + (
                                                [{"name": "revoked_app"}] if key_type == "ec-p256" else []),
                                            formats=["pem", "pkcs8_der", "pkcs12"], pkcs12_passphrase=P12_PASSPHRASE,
                                            record_dir=f"{pki}/issued")}
             for key_type in KEY_TYPES]
    playbook = base / "clients.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    run_playbook(str(playbook), {})
    classes = base / "java"
    classes.mkdir()
    subprocess.run(["javac", "-cp", str(JDBC_JAR), "-d", str(classes), str(DRIVER_PROGRAMS.HERE / "PgtlsJdbc.java")],
                   check=True, capture_output=True)
    yield cluster, extra, clients, classes, pki
    cluster.stop()


def connect(env, driver: str, host: str, user: str) -> tuple[bool, str]:
    """Log in with the driver; True when the server saw this user and the certificate of the user's folder."""
    cluster, _extra, clients, classes, _pki = env
    folder = clients / user
    cmd = DRIVER_PROGRAMS.command(driver, host, cluster.port, user, str(folder), classes=str(classes),
                                  passphrase=P12_PASSPHRASE, psql=str(PG_BIN / "psql"))
    done = DRIVER_PROGRAMS.run(cmd, DRIVER_PROGRAMS.environment(str(NODE_MODULES), home=str(cluster.base)))
    serial = x509.load_pem_x509_certificate((folder / "postgresql.crt").read_bytes()).serial_number
    return done["ok"] and done["seen"] == f"{user} {serial}", done["out"]


def test_every_driver_and_key_type_by_name_and_refused_by_address(drivers_env):
    measured, failures = {}, []
    for key_type in KEY_TYPES:
        for driver in DRIVERS:
            ok, out = connect(drivers_env, driver, "localhost", role(key_type))
            measured[(driver, key_type)] = ok
            if ok != COMPATIBLE[(driver, key_type)]:
                failures.append(f"{driver} {key_type} by name: {'connected' if ok else 'failed'}: {out[-300:]}")
            if ok:
                by_address, out = connect(drivers_env, driver, "127.0.0.1", role(key_type))
                if by_address != (driver in CONNECTS_BY_ADDRESS):
                    failures.append(f"{driver} {key_type} by IP address (not a SAN): "
                                    f"{'connected' if by_address else 'refused'}: {out[-300:]}")
    table = ["| driver | " + " | ".join(KEY_TYPES) + " |", "| --- |" + " --- |" * len(KEY_TYPES)]
    table += [f"| {d} | " + " | ".join("yes" if measured[(d, k)] else "no" for k in KEY_TYPES) + " |" for d in DRIVERS]
    keep = ROOT / "tests" / "output"
    keep.mkdir(parents=True, exist_ok=True)
    (keep / "drivers.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    assert not failures, "\n".join(failures)


def test_a_revoked_certificate_is_refused_by_every_driver(drivers_env):
    _cluster, extra, _clients, _classes, pki = drivers_env
    for driver in DRIVERS:
        ok, out = connect(drivers_env, driver, "localhost", "revoked_app")
        assert ok, f"{driver} before the revocation: {out[-300:]}"
    serial = next((pki / "issued" / "revoked_app").iterdir()).stem
    playbook = pki.parent / "revoke.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"pgtls.ssl.revocation_registry": {"path": f"{pki}/revoked.yml",
                                           "add": [{"serial_number": f"0x{serial}", "name": "revoked_app"}]}}]}]))
    run_playbook(str(playbook), {})
    run_playbook("role_local.yml", extra)  # the CRL regenerated, installed, reloaded and proven
    for driver in DRIVERS:
        ok, out = connect(drivers_env, driver, "localhost", "revoked_app")
        assert not ok, f"{driver} logged in with a revoked certificate: {out[-300:]}"
    still, out = connect(drivers_env, "libpq", "localhost", role("ec-p256"))
    assert still, out


# The drivers that check the server's certificate against a CRL when the client folder has root.crl (what the client
# role writes with pgtls_client_crl), and how each refuses a revoked one (measured). The JDBC driver has no CRL
# setting: it connects (documented; the collection replaces a revoked server certificate before it publishes).
CRL_REFUSAL = {"libpq": "certificate verify failed", "psycopg": "certificate verify failed",
               "asyncpg": "certificate revoked", "node-pg": "certificate revoked"}


def test_a_revoked_server_certificate_is_refused_by_every_driver_that_reads_a_crl(drivers_env):
    """A client folder with root.crl: the CA folder's CRLs as they are (every driver connects), then with an
    intermediate CRL that revokes the server's certificate (as after a stolen server key): libpq, psycopg, asyncpg
    and node-postgres refuse the server, the JDBC driver (no CRL setting) connects."""
    cluster, _extra, clients, classes, pki = drivers_env
    user = role("ec-p256")
    served = x509.load_pem_x509_certificate((cluster.data / "tls" / "server.crt").read_bytes())
    issuer_key = serialization.load_pem_private_key((pki / "intermediate.key").read_bytes(), None)
    current = x509.load_pem_x509_crl((pki / "intermediate.crl").read_bytes())
    now = dt.datetime.now(dt.timezone.utc)
    revoking = (x509.CertificateRevocationListBuilder().issuer_name(current.issuer).last_update(now)
                .next_update(now + dt.timedelta(days=1))
                .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(served.serial_number)
                                         .revocation_date(now).build())
                .add_extension(x509.CRLNumber(current.extensions.get_extension_for_class(x509.CRLNumber).value
                                              .crl_number + 1), critical=False)
                .sign(issuer_key, hashes.SHA256()))
    root_crl = (pki / "root.crl").read_bytes()
    folders = {"current CRLs": root_crl + (pki / "intermediate.crl").read_bytes(),
               "server revoked": root_crl + revoking.public_bytes(Encoding.PEM)}
    env = DRIVER_PROGRAMS.environment(str(NODE_MODULES), home=str(cluster.base))
    failures, seen = [], {}
    for label, crl in folders.items():
        folder = clients / label.replace(" ", "-")
        shutil.copytree(clients / user, folder)
        (folder / "root.crl").write_bytes(crl)
        for driver in DRIVERS:
            done = DRIVER_PROGRAMS.run(DRIVER_PROGRAMS.command(driver, "localhost", cluster.port, user, str(folder),
                                                               classes=str(classes), passphrase=P12_PASSPHRASE,
                                                               psql=str(PG_BIN / "psql")), env)
            seen[(label, driver)] = done["ok"]
            refusal = CRL_REFUSAL.get(driver) if label == "server revoked" else None
            if (not done["ok"]) != bool(refusal) or (refusal and refusal not in done["out"]):
                failures.append(f"{label}, {driver}: {'connected' if done['ok'] else 'refused'}: {done['out'][-300:]}")
    print("\n" + "; ".join(f"{label} {driver}: {'connects' if ok else 'refused'}" for (label, driver), ok in seen.items()))
    assert not failures, "\n".join(failures)
