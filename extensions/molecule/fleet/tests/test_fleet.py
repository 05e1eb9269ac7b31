"""Verify the fleet from the application host with real clients, then run the life-cycle playbooks (revoke,
renewal, intermediate rotation with overlap, retirement) against it and check their effects with real connections.
The tests run in file order: each life-cycle step builds on the previous one."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import testinfra
import yaml
from conftest import playbook, recap_changed

PKI = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "pki")
DBS = ["pgtls-fleet-db1", "pgtls-fleet-db2", "pgtls-fleet-db3"]
ENDPOINTS = [(db, 5432) for db in DBS] + [("pgtls-fleet-db2", 5433)]
SCENARIO = Path(__file__).resolve().parents[1]
ROOT = SCENARIO.parents[2]
# The driver programs of tests/e2e/test_drivers.py and how each is started (tests/drivers/), copied to the app host.
_spec = importlib.util.spec_from_file_location("pgtls_drivers", ROOT / "tests" / "drivers" / "pgtls_drivers.py")
DRIVER_PROGRAMS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(DRIVER_PROGRAMS)
DRIVERS = DRIVER_PROGRAMS.DRIVERS
ON_APP = "/opt/pgtls-drivers"
# The role app's certificates per key type (converge.yml: the clients playbook, then the client role with ed25519).
APP_FOLDERS = {"ec-p256": "/home/app/.postgresql", "ed25519": "/home/app/.postgresql-ed25519"}
MALLORY_FOLDER = "/home/mallory/.postgresql"
# How each driver reports a refused (revoked) client certificate, when not libpq's/Node's "certificate revoked".
# The server closes the connection when it rejects the certificate; which words reach a driver that finished its
# TLS 1.3 handshake first depends on timing (measured: pgjdbc "Broken pipe" or "Connection reset by peer").
_CLOSED = r"|Broken pipe|Connection reset|connection was closed in the middle of operation"
REVOKED_REFUSAL = {"asyncpg": r"certificate revoked" + _CLOSED,
                   "jdbc-pk8": r"certificate_revoked" + _CLOSED, "jdbc-p12": r"certificate_revoked" + _CLOSED}
KEY_ALGORITHM = {"ec-p256": "ASN1 OID: prime256v1", "ed25519": "Public Key Algorithm: ED25519"}
# Why a driver refuses a server by a name its certificate does not carry, in each driver's words.
NAME_MISMATCH = re.compile(r"does not match host name|IP address mismatch|Hostname mismatch|ERR_TLS_CERT_ALTNAME_INVALID"
                           r"|hostname .* could not be verified")


def node(name):
    return testinfra.get_host(f"podman://{name}")


APP = node("pgtls-fleet-app")


def psql(user, server, port=5432, folder=None, sql="select current_user", sslmode="verify-full"):
    folder = folder or f"/home/{user}/.postgresql"
    conninfo = (f"host={server} port={port} dbname=postgres user={user} sslmode={sslmode} connect_timeout=10 "
                f"sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key sslrootcert={folder}/root.crt")
    return APP.run(f"psql -X -At -c {sql!r} {conninfo!r}")


def served_issuer(server, port=5432):
    out = APP.run(f"openssl s_client -starttls postgres -connect {server}:{port} -servername {server} </dev/null "
                  "2>/dev/null | openssl x509 -noout -issuer -fingerprint -sha256")
    assert out.rc == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("server,port", ENDPOINTS)
def test_verify_full_with_client_certificate_from_the_app_host(server, port):
    done = psql("app", server, port)
    assert done.rc == 0, done.stderr
    assert done.stdout.strip() == "app"


@pytest.mark.parametrize("server", DBS)
def test_connection_service_written_by_the_client_role(server):
    done = APP.run(f"runuser -u app -- psql -X -At -c 'select ssl from pg_stat_ssl where pid = pg_backend_pid()' "
                   f"'service={server} dbname=postgres'")
    assert done.rc == 0, done.stderr
    assert done.stdout.strip() == "t"


def test_client_files_have_libpq_permissions():
    key = APP.file("/home/app/.postgresql/postgresql.key")
    assert (key.user, key.mode) == ("app", 0o600)
    assert APP.file("/home/app/.postgresql/root.crt").exists


def test_bundle_for_an_unmanaged_system_on_the_controller():
    folder = os.path.join(PKI, "clients", "reporting")
    key = os.stat(os.path.join(folder, "postgresql.key"))
    assert key.st_mode & 0o777 == 0o600
    done = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", os.path.join(folder, "root.crt"),
                           "-untrusted", os.path.join(folder, "postgresql.crt"), os.path.join(folder, "postgresql.crt")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_name_not_in_the_certificate_fails_verify_full():
    address = APP.run("getent hosts pgtls-fleet-db1").stdout.split()[0]
    done = psql("app", address)
    assert done.rc != 0
    assert re.search(rf'does not match host name "{re.escape(address)}"', done.stderr), done.stderr


# db3 is a standby of db1 (host_vars), built by converge.yml with pg_basebackup over its verify-full primary_conninfo.
PRIMARY, STANDBY = node("pgtls-fleet-db1"), node("pgtls-fleet-db3")
REPLICATION_CERT = "/etc/postgresql/15/main/tls/replication/postgresql.crt"
WALSENDER = ("select s.ssl, s.version, s.client_serial, s.client_dn, r.backend_start from pg_stat_replication r "
             "join pg_stat_ssl s using (pid)")
# The walsender seen first, to count the standby's reconnects through the life-cycle steps below.
WATCHED = {}


def as_postgres(host, sql):
    done = host.run(f"runuser -u postgres -- psql -X -At -F '|' -c {shlex.quote(sql)}")
    assert done.rc == 0, done.stderr
    return done.stdout.strip()


def replication_serial():
    out = STANDBY.run(f"openssl x509 -noout -serial -in {REPLICATION_CERT}")
    assert out.rc == 0, out.stderr
    return int(out.stdout.strip().split("=")[1], 16)


def test_the_standby_streams_over_verify_full_with_its_certificate():
    rows = as_postgres(PRIMARY, WALSENDER).splitlines()
    assert len(rows) == 1, rows
    ssl, version, serial, subject, started = rows[0].split("|")
    assert (ssl, version, subject) == ("t", "TLSv1.3", "/CN=replicator")
    assert int(serial) == replication_serial()
    WATCHED.update(backend_start=started, serial=serial)
    status, conninfo = as_postgres(STANDBY, "select status, conninfo from pg_stat_wal_receiver").split("|")
    assert status == "streaming"
    for setting in ("host=pgtls-fleet-db1", "user=replicator", "sslmode=verify-full", f"sslcert={REPLICATION_CERT}"):
        assert setting in conninfo.split(), conninfo


def replication_attempt(**changes):
    """A replication connection from the standby host with its primary_conninfo, some settings changed."""
    conninfo = dict(kv.split("=", 1) for kv in as_postgres(STANDBY, "show primary_conninfo").split())
    conninfo.update(changes, replication="true", connect_timeout="10")
    text = " ".join(f"{k}={v}" for k, v in conninfo.items() if v is not None)
    return STANDBY.run(f"runuser -u postgres -- psql -X -At -c IDENTIFY_SYSTEM {shlex.quote(text)}")


def test_a_standby_with_a_wrong_root_no_certificate_or_a_name_the_certificate_lacks_is_refused():
    assert replication_attempt().rc == 0  # the standby's own settings: accepted
    address = STANDBY.run("getent hosts pgtls-fleet-db1").stdout.split()[0]
    refused = {
        # A root that is not the fleet's (the standby's own server certificate).
        "wrong root": (replication_attempt(sslrootcert="/etc/postgresql/15/main/tls/server.crt"),
                       r"certificate verify failed"),
        "no certificate": (replication_attempt(sslcert="/nonexistent.crt", sslkey="/nonexistent.key"),
                           r"connection requires a valid client certificate"),
        "a name the certificate lacks": (replication_attempt(host=address), r"does not match host name"),
        # The replication role is refused on every other path: by password over TLS, without a certificate.
        "without TLS": (replication_attempt(sslmode="disable", sslcert=None, sslkey=None),
                        r"pg_hba.conf rejects replication connection|no pg_hba.conf entry"),
    }
    for why, (done, expected) in refused.items():
        assert done.rc != 0, why
        assert re.search(expected, done.stderr), f"{why}: {done.stderr}"


def podman(*args):
    done = subprocess.run(["podman", *args], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"


@pytest.fixture(scope="module")
def drivers(tmp_path_factory):
    """The driver programs on the application host (the Java one compiled here: the host has a JRE, no JDK), and
    a function that runs cases there in one go: [(driver, host, port, user, folder)] -> [{ok, seen, out}]."""
    classes = tmp_path_factory.mktemp("java")
    subprocess.run(["javac", "-cp", DRIVER_PROGRAMS.JDBC_JAR, "-d", str(classes),
                    str(DRIVER_PROGRAMS.HERE / "PgtlsJdbc.java")], check=True, capture_output=True)
    podman("exec", "pgtls-fleet-app", "rm", "-rf", ON_APP)
    podman("cp", str(DRIVER_PROGRAMS.HERE), f"pgtls-fleet-app:{ON_APP}")
    podman("cp", f"{classes}/.", f"pgtls-fleet-app:{ON_APP}/")
    podman("cp", str((ROOT / ".cache" / "node" / "node_modules").resolve()), f"pgtls-fleet-app:{ON_APP}/node_modules")
    passphrase = yaml.safe_load((SCENARIO / "host_vars" / "pgtls-fleet-app.yml").read_text())[
        "pgtls_client_pkcs12_passphrase"]

    def run(cases):
        wanted = [dict(zip(("driver", "host", "port", "user", "dir"), case)) for case in cases]
        done = APP.run(f"python3 {ON_APP}/pgtls_drivers.py --jobs 3 --passphrase {shlex.quote(passphrase)} "
                       f"{shlex.quote(json.dumps(wanted))}")
        assert done.rc == 0, done.stderr
        results = json.loads(done.stdout)
        assert len(results) == len(wanted), done.stdout
        return results

    return run


def serial_on_app(folder):
    """The serial of the client certificate in folder on the application host, as pg_stat_ssl shows it (decimal)."""
    out = APP.run(f"openssl x509 -noout -serial -in {folder}/postgresql.crt")
    assert out.rc == 0, out.stderr
    return int(out.stdout.strip().split("=")[1], 16)


def test_every_driver_logs_in_by_name_on_every_cluster_and_is_refused_by_a_wrong_name(drivers):
    """libpq (psql), psycopg 3, asyncpg, node-postgres, pgjdbc with .pk8 and .p12, per key type, against every
    cluster by its name: the server sees the role app and the certificate of that folder. Then by the database's IP
    address and by another name of it (an /etc/hosts alias), neither in the certificate: every driver refuses.
    node-postgres checks an IP address host against "localhost" (tests/e2e/test_drivers.py): the fleet's server
    certificates do not carry it, so it refuses here too."""
    aliases = {}
    for db in DBS:
        address = APP.run(f"getent hosts {db}").stdout.split()[0]
        aliases[db] = [address, f"{db}-alias"]
        APP.run(f"grep -q ' {db}-alias$' /etc/hosts || echo '{address} {db}-alias' >> /etc/hosts")
    serials = {folder: serial_on_app(folder) for folder in [*APP_FOLDERS.values(), MALLORY_FOLDER]}
    for key_type, folder in APP_FOLDERS.items():  # the key types the drivers are measured with
        text = APP.run(f"openssl x509 -noout -text -in {folder}/postgresql.crt").stdout
        assert KEY_ALGORITHM[key_type] in text, text
    good = [(driver, server, port, "app", folder) for folder in APP_FOLDERS.values() for driver in DRIVERS
            for server, port in ENDPOINTS]
    good += [(driver, server, port, "mallory", MALLORY_FOLDER) for driver in DRIVERS for server, port in ENDPOINTS]
    wrong = [(driver, name, port, "app", APP_FOLDERS["ec-p256"]) for driver in DRIVERS for server, port in ENDPOINTS
             for name in aliases[server]]
    results = drivers(good + wrong)
    failures, table = [], {}
    for case, result in zip(good, results[:len(good)]):
        driver, server, port, user, folder = case
        expected = f"{user} {serials[folder]}"
        if user == "app":
            key_type = next(k for k, f in APP_FOLDERS.items() if f == folder)
            table.setdefault((driver, key_type), []).append(result["ok"] and result["seen"] == expected)
        if not (result["ok"] and result["seen"] == expected):
            failures.append(f"{driver} {user} {folder} -> {server}:{port}: want {expected!r}, got {result['out'][-300:]}")
    refused = 0
    for case, result in zip(wrong, results[len(good):]):
        driver, name, port = case[:3]
        refused += not result["ok"]
        if result["ok"] or not NAME_MISMATCH.search(result["out"]):
            failures.append(f"{driver} -> {name}:{port} (not in the certificate): "
                            f"{'logged in' if result['ok'] else 'refused for another reason'}: {result['out'][-300:]}")
    print(f"\ndrivers from pgtls-fleet-app, verify-full by name, logged in on {len(ENDPOINTS)} clusters "
          f"({', '.join(f'{s}:{p}' for s, p in ENDPOINTS)}):")
    print("| driver | " + " | ".join(APP_FOLDERS) + " |")
    for driver in DRIVERS:
        print(f"| {driver} | " + " | ".join(f"{sum(table[(driver, k)])}/{len(table[(driver, k)])}" for k in APP_FOLDERS)
              + " |")
    print(f"wrong names (IP address, alias) refused: {refused}/{len(wrong)}")
    assert not failures, "\n".join(failures)


def test_key_layouts():
    db1 = node("pgtls-fleet-db1").file("/etc/postgresql/15/main/tls/server.key")
    assert (db1.user, db1.group, db1.mode) == ("postgres", "postgres", 0o600)
    db2 = node("pgtls-fleet-db2")
    for cluster in ("main", "second"):
        key = db2.file(f"/etc/postgresql/15/{cluster}/tls/server.key")
        assert (key.user, key.group, key.mode) == ("root", "ssl-cert", 0o640)
    db3 = node("pgtls-fleet-db3")
    key = db3.file("/etc/postgresql/15/main/tls/server.key")
    assert (key.user, key.group, key.mode) == ("root", "pgtls-keys", 0o640)


def test_new_group_membership_reached_the_server_through_a_restart():
    db3 = node("pgtls-fleet-db3")
    gid = db3.run("getent group pgtls-keys | cut -d: -f3").stdout.strip()
    pid = db3.run("head -n 1 /var/lib/postgresql/15/main/postmaster.pid").stdout.strip()
    groups = db3.run(f"grep '^Groups:' /proc/{pid}/status").stdout.split()[1:]
    assert gid in groups


def test_audit_reports_every_cluster_and_passes():
    rc, out = playbook("audit")
    assert rc == 0, out
    for server in DBS:
        assert re.search(rf"{server}\s+15/main\s+\d+\s+ok\s+ok", out), out
    assert re.search(r"pgtls-fleet-db2\s+15/second", out), out
    assert "4 cluster(s) meet the policy" in out


def test_audit_is_safe_in_check_mode():
    rc, out = playbook("audit", "--check")
    assert rc == 0, out
    assert "4 cluster(s) meet the policy" in out
    assert set(recap_changed(out).values()) == {0}, out


def test_audit_fails_when_certificates_expire_too_soon():
    rc, out = playbook("audit", "-e", "pgtls_audit_min_days=400")
    assert rc != 0
    assert "4 cluster(s) break the policy" in out, out


def test_revoke_by_name_refuses_the_certificate_everywhere():
    assert psql("mallory", "pgtls-fleet-db1").rc == 0  # before: mallory may log in
    rc, out = playbook("revoke", "-e", '{"pgtls_revoke_names": ["mallory"]}')
    assert rc == 0, out
    for server, port in ENDPOINTS:
        done = psql("mallory", server, port)
        assert done.rc != 0
        assert "certificate revoked" in done.stderr, done.stderr
        assert psql("app", server, port).rc == 0


def test_every_driver_is_refused_with_the_revoked_certificate(drivers):
    """mallory logged in with every driver on every cluster (the matrix above); revoked, every driver is refused on
    every cluster, while app's certificate still logs in with the same drivers (the refusal is the revocation's).
    With TLS 1.3 the client has finished its handshake when the server rejects its certificate: libpq (psql,
    psycopg) and Node read the server's alert ("certificate revoked"), asyncpg and pgjdbc see only the connection
    closed (measured in this scenario)."""
    revoked = [(driver, server, port, "mallory", MALLORY_FOLDER) for driver in DRIVERS for server, port in ENDPOINTS]
    still = [(driver, server, port, "app", APP_FOLDERS["ec-p256"]) for driver in DRIVERS for server, port in ENDPOINTS]
    results = drivers(revoked + still)
    serial = serial_on_app(APP_FOLDERS["ec-p256"])
    failures = [f"{case[0]} -> {case[1]}:{case[2]} with the revoked certificate: {result['out'][-300:]}"
                for case, result in zip(revoked, results)
                if result["ok"] or not re.search(REVOKED_REFUSAL.get(case[0], r"certificate revoked"), result["out"])]
    refused = len(revoked) - len(failures)
    failures += [f"{case[0]} -> {case[1]}:{case[2]} as app: {result['out'][-300:]}"
                 for case, result in zip(still, results[len(revoked):]) if result["seen"] != f"app {serial}"]
    print(f"\nrevoked certificate refused: {refused}/{len(revoked)} (drivers x clusters); app still logs in: "
          f"{sum(1 for r in results[len(revoked):] if r['seen'] == f'app {serial}')}/{len(still)}")
    assert not failures, "\n".join(failures)


def test_revoke_by_serial_lands_in_every_servers_crl():
    bundle = os.path.join(PKI, "clients", "reporting", "postgresql.crt")
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", bundle],
                            capture_output=True, text=True, check=True).stdout.strip().split("=")[1]
    rc, out = playbook("revoke", "-e", json.dumps({"pgtls_revoke_serials": [f"0x{serial}"],
                                                   "pgtls_revoke_reason": "superseded"}))
    assert rc == 0, out
    for server in DBS:
        # Every CRL of the file (openssl crl would show only the first, the root's).
        crl = node(server).run("openssl storeutl -noout -text -crls /etc/postgresql/15/main/tls/root.crl")
        assert f"Serial Number: {serial}" in crl.stdout
        assert "Superseded" in crl.stdout


# libpq reads the client's certificate and then its key, two opens by path: a connection that starts at the instant
# the client role swaps the pair for a new key can read the old certificate and the new key (no order of two renames
# prevents it; docs: client certificates, "Key rotation and connecting clients"). Such a read is told apart by its
# message and the key's path; at most one per key swap the client saw, and no failure of any other kind.
TORN = "could not load private key file \"/home/app/.postgresql/postgresql.key\": key values mismatch"


@pytest.fixture()
def steady_client():
    """A client connecting with verify-full and its certificate every 0.2 s, to two databases, the whole time; it
    notes each change of its own key (a key swap by the client role)."""
    APP.run("systemctl stop pgtls-steady 2>/dev/null; rm -f /tmp/steady.log /tmp/steady.stop")
    script = ("key=$(sha256sum < ~/.postgresql/postgresql.key); while [ ! -e /tmp/steady.stop ]; do "
              "for s in pgtls-fleet-db1 pgtls-fleet-db2; do "
              "if err=$(psql -X -At -c 'select 1' \"host=$s dbname=postgres user=app sslmode=verify-full "
              "connect_timeout=5\" 2>&1 >/dev/null); then echo ok >>/tmp/steady.log; "
              "else echo \"fail $s: $(printf '%s' \"$err\" | tr '\\n' ' ')\" >>/tmp/steady.log; fi; done; "
              "now=$(sha256sum < ~/.postgresql/postgresql.key); "
              "if [ \"$now\" != \"$key\" ]; then echo swap >>/tmp/steady.log; key=$now; fi; sleep 0.2; done")
    started = APP.run(f"systemd-run --unit=pgtls-steady --uid=app --collect bash -c {shlex.quote(script)}")
    assert started.rc == 0, started.stderr

    def stop():
        APP.run("touch /tmp/steady.stop; sleep 2; systemctl stop pgtls-steady 2>/dev/null")
        log = APP.run("cat /tmp/steady.log").stdout.split("\n")
        ok, failed = sum(1 for line in log if line == "ok"), [line for line in log if line.startswith("fail")]
        torn, swaps = [line for line in failed if TORN in line], log.count("swap")
        print(f"\nsteady verify-full client: {ok} connections succeeded, {len(failed)} failed, of them {len(torn)} "
              f"read its certificate and key across one of its {swaps} key swaps")
        assert len(torn) <= swaps, f"more reads across a key swap than swaps: {torn}"
        failed = [line for line in failed if TORN not in line]
        return ok, failed, "\n".join(failed)

    return stop


def test_renewal_reissues_server_certificates_without_a_failed_connection(steady_client):
    before = {db: served_issuer(db) for db in DBS}
    # Inside the renewal window on purpose: 400 days before the end of a 365-day certificate. The new certificates
    # get 730 days, so the window is shorter than their life (the modules refuse one that is not).
    rc, out = playbook("rotate", "-e", "pgtls_server_renew_before_days=400", "-e", "pgtls_server_valid_days=730")
    ok, failed, errors = steady_client()
    assert rc == 0, out
    assert not failed, errors
    assert ok > 10
    for db in DBS:
        assert served_issuer(db) != before[db]


def test_intermediate_rotation_with_overlap(steady_client):
    APP.run("rm -rf /root/old && mkdir -p /root/old && cp /home/app/.postgresql/* /root/old/ && chmod 0600 /root/old/*")
    rc, out = playbook("rotate", "-e", "pgtls_rotate_intermediate=start")
    ok, failed, errors = steady_client()
    assert rc == 0, out
    assert not failed, errors
    assert ok > 10
    for server, port in ENDPOINTS:
        assert "pgtls PostgreSQL CA G2" in served_issuer(server, port)
        assert psql("app", server, port).rc == 0
        # Overlap: a certificate of the previous intermediate still logs in.
        assert psql("app", server, port, folder="/root/old").rc == 0
    issuer = APP.run("openssl x509 -noout -issuer -in /home/app/.postgresql/postgresql.crt").stdout
    assert "G2" in issuer


def test_the_standby_kept_its_walsender_through_renewal_and_rotation():
    """Every certificate of the pair renewed, then re-issued by a new intermediate: the standby's walsender is the
    one seen first (0 reconnects), still with the certificate it presented then (the intermediate it came from is
    still trusted)."""
    rows = as_postgres(PRIMARY, WALSENDER).splitlines()
    assert len(rows) == 1, rows
    ssl, _version, serial, _subject, started = rows[0].split("|")
    assert (ssl, started, serial) == ("t", WATCHED["backend_start"], WATCHED["serial"])


def test_a_second_rotation_waits_for_retirement():
    rc, out = playbook("rotate", "-e", "pgtls_rotate_intermediate=start")
    assert rc != 0
    assert "is still trusted: retire it first" in out


def test_retirement_refuses_certificates_of_the_previous_intermediate(steady_client):
    rc, out = playbook("rotate", "-e", "pgtls_rotate_intermediate=retire")
    WATCHED["retire"] = out
    ok, failed, errors = steady_client()
    assert rc == 0, out
    assert not failed, errors
    for server, port in ENDPOINTS:
        assert psql("app", server, port).rc == 0
        # Its CRL is gone from the server and the root revoked it: OpenSSL stops at the missing CRL ("unknown ca").
        done = psql("app", server, port, folder="/root/old")
        assert done.rc != 0
        assert re.search(r"alert (unknown ca|certificate revoked)", done.stderr), done.stderr
    retired = [f for f in os.listdir(os.path.join(PKI, "retired")) if f.endswith(".crt")]
    assert len(retired) == 1
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", os.path.join(PKI, "retired", retired[0])],
                            capture_output=True, text=True, check=True).stdout.strip().split("=")[1]
    root_crl = subprocess.run(["openssl", "crl", "-noout", "-text", "-in", os.path.join(PKI, "root.crl")],
                              capture_output=True, text=True, check=True).stdout
    assert f"Serial Number: {serial}" in root_crl, root_crl
    assert not os.path.exists(os.path.join(PKI, "previous"))


def test_lifecycle_is_idempotent_after_retirement():
    for name in ("site", "clients"):
        rc, out = playbook(name)
        assert rc == 0, out
        assert set(recap_changed(out).values()) == {0}, out


def test_a_forced_rekey_of_one_cluster_keeps_the_other_clusters_key():
    """pgtls_rekey_clusters: of db2's two clusters, 15/second gets a new key and certificate, served and verified by
    name; 15/main keeps both. A cluster the host does not have is refused before anything changes; the same
    variables again change nothing."""
    db2 = node("pgtls-fleet-db2")

    def state():
        return {c: db2.check_output(f"sha256sum /etc/postgresql/15/{c}/tls/server.key /etc/postgresql/15/{c}/tls/"
                                    "server.crt") for c in ("main", "second")}

    before = state()
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rc, out = playbook("site", "--limit", "pgtls-fleet-db2", "-e",
                       json.dumps({"pgtls_rekey_before": now, "pgtls_rekey_clusters": ["15/secnd"]}))
    assert rc != 0 and "pgtls_rekey_clusters names 15/secnd, not a cluster of this host (15/main, 15/second)" in \
        " ".join(out.split()), out[-3000:]
    assert state() == before
    forced = json.dumps({"pgtls_rekey_before": now, "pgtls_rekey_clusters": ["15/second"]})
    rc, out = playbook("site", "--limit", "pgtls-fleet-db2", "-e", forced)
    assert rc == 0, out[-3000:]
    after = state()
    assert after["main"] == before["main"]
    assert all(new != old for new, old in zip(after["second"].splitlines(), before["second"].splitlines()))
    installed = db2.check_output("openssl x509 -noout -fingerprint -sha256 -in /etc/postgresql/15/second/tls/server.crt")
    assert installed.split("=", 1)[1] in served_issuer("pgtls-fleet-db2", 5433)
    assert psql("app", "pgtls-fleet-db2", 5433).rc == 0
    rc, out = playbook("site", "--limit", "pgtls-fleet-db2", "-e", forced)
    assert rc == 0 and recap_changed(out).get("pgtls-fleet-db2") == 0, out[-3000:]


def test_retirement_ended_the_walsender_of_the_retired_intermediate_and_the_standby_is_back_with_its_new_one():
    """Through renewal and rotation start the standby kept its first walsender (checked before retirement, below).
    Retirement ended it (its certificate's intermediate revoked, refused at a handshake from then on); the standby
    connected again at once with the certificate the rotation re-issued, and a write on the primary replays on it."""
    assert re.search(r"1 ended; 15/main: /CN=replicator", WATCHED["retire"]), WATCHED["retire"]
    file_serial = replication_serial()
    assert file_serial != int(WATCHED["serial"])
    back = PRIMARY.run("for i in $(seq 100); do runuser -u postgres -- psql -X -At -c \"select s.client_serial from "
                       "pg_stat_replication r join pg_stat_ssl s using (pid) where s.ssl\" | grep -qx "
                       f"{file_serial} && exit 0; sleep 0.2; done; exit 1")
    assert back.rc == 0, as_postgres(PRIMARY, WALSENDER)
    as_postgres(PRIMARY, "create table if not exists pgtls_replayed (n int); insert into pgtls_replayed values (1)")
    replayed = STANDBY.run("for i in $(seq 50); do runuser -u postgres -- psql -X -At -c "
                           "'select count(*) from pgtls_replayed' 2>/dev/null | grep -qx 1 && exit 0; sleep 0.2; "
                           "done; exit 1")
    assert replayed.rc == 0


def test_root_rotation_with_overlap_fails_no_verify_full_connection(steady_client):
    """A new root (EC P-384) published, made the signing root, and the old root retired: each step one run of the
    rotate playbook (servers, the standby, the app host's client). The steady client (verify-full, its certificate,
    the root.crt the client role keeps) fails no connection through all three. The app's certificate of the old root,
    presented with today's root.crt, logs in on every cluster until the retire and is refused after it; the standby's
    walsender of the old root is ended at the retire and it streams again with its certificate of the new root; a
    site run after it changes nothing."""
    APP.run("rm -rf /root/oldroot && mkdir -p /root/oldroot && cp /home/app/.postgresql/postgresql.* /root/oldroot/ "
            "&& chmod 0600 /root/oldroot/*")
    seen = {}
    for step in ("start", "switch", "retire"):
        extra = ["-e", "pgtls_ca_key_type=ec-p384"] if step == "start" else []
        rc, out = playbook("rotate", "-e", f"pgtls_rotate_root={step}", *extra)
        assert rc == 0, out[-3000:]
        APP.run("cp /home/app/.postgresql/root.crt /root/oldroot/root.crt")
        seen[step] = {"roots": APP.run("grep -c 'BEGIN CERTIFICATE' /home/app/.postgresql/root.crt").stdout.strip(),
                      "old": [psql("app", server, port, folder="/root/oldroot").rc for server, port in ENDPOINTS],
                      "issuers": [served_issuer(server, port) for server, port in ENDPOINTS], "out": out}
    ok, failed, errors = steady_client()
    print(f"root rotation: {ok} verify-full connections, {len(failed)} failed")
    assert not failed, errors
    assert ok > 30
    assert [seen[s]["roots"] for s in ("start", "switch", "retire")] == ["2", "2", "1"]
    assert seen["start"]["old"] == [0] * len(ENDPOINTS) and seen["switch"]["old"] == [0] * len(ENDPOINTS), seen
    assert 0 not in seen["retire"]["old"], seen["retire"]["old"]
    assert all("G2" in issuer for issuer in seen["start"]["issuers"])
    assert all("G3" in issuer for issuer in seen["switch"]["issuers"])
    new_root = subprocess.run(["openssl", "x509", "-noout", "-subject", "-text", "-in", os.path.join(PKI, "root.crt")],
                              capture_output=True, text=True, check=True).stdout
    assert "Root CA R2" in new_root and "secp384r1" in new_root, new_root
    assert re.search(r"1 ended; 15/main: /CN=replicator", seen["retire"]["out"]), seen["retire"]["out"][-3000:]
    back = PRIMARY.run("for i in $(seq 100); do runuser -u postgres -- psql -X -At -c \"select s.client_serial from "
                       "pg_stat_replication r join pg_stat_ssl s using (pid) where s.ssl\" | grep -qx "
                       f"{replication_serial()} && exit 0; sleep 0.2; done; exit 1")
    assert back.rc == 0, as_postgres(PRIMARY, WALSENDER)
    rc, out = playbook("site")
    assert rc == 0 and set(recap_changed(out).values()) == {0}, out[-3000:]


# Last: the standby's certificate revoked, its replication stops.
def test_revoking_the_standbys_certificate_ends_its_replication():
    rc, out = playbook("revoke", "-e", '{"pgtls_revoke_names": ["replicator"]}')
    assert rc == 0, out
    assert as_postgres(PRIMARY, WALSENDER) == ""  # its walsender ended, and not back
    log = STANDBY.run("for i in $(seq 50); do grep -q 'certificate revoked' /var/log/postgresql/postgresql-15-main.log "
                      "&& exit 0; sleep 0.2; done; exit 1")
    assert log.rc == 0
    assert as_postgres(STANDBY, "select count(*) from pg_stat_wal_receiver where status = 'streaming'") == "0"
