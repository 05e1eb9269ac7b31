"""Verify PgBouncer in front of PostgreSQL with real clients: the certificate PgBouncer serves, libpq through it with
verify-full and a client certificate, PgBouncer's own verify-full connection as PostgreSQL sees it (pg_stat_ssl),
then the negative cases: names not in the certificates, a bad key file (PgBouncer keeps the old one; the role
refuses before changing anything), a revoked client. The tests run in file order."""

from __future__ import annotations

import json
import os
import re
import shlex
import time

import testinfra
from conftest import playbook

POOLER = "pgtls-pgb-pooler"
TLS = "/etc/pgbouncer/tls"
LOG = "/var/log/postgresql/pgbouncer.log"


def node(name):
    return testinfra.get_host(f"podman://{name}")


APP = node(POOLER)
DB = node("pgtls-pgb-db")


def psql(user="app", host=POOLER, dbname="appdb", sql="select current_user", extra=""):
    folder = f"/home/{user}/.postgresql"
    conninfo = (f"host={host} port=6432 dbname={dbname} user={user} sslmode=verify-full connect_timeout=10 "
                f"sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key sslrootcert={folder}/root.crt {extra}")
    command = shlex.join(["psql", "-X", "-At", "-c", sql, conninfo])
    return APP.run(f"su {user} -c {shlex.quote(command)}")


def served_fingerprint():
    out = APP.run(f"openssl s_client -starttls postgres -connect {POOLER}:6432 -servername {POOLER} "
                  f"-CAfile {TLS}/root.crt -verify_return_error </dev/null 2>/dev/null "
                  "| openssl x509 -noout -fingerprint -sha256")
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def installed_fingerprint():
    out = APP.run(f"openssl x509 -in {TLS}/server.crt -noout -fingerprint -sha256")
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def test_files_owners_and_modes():
    expected = {
        TLS: ("root", "postgres", 0o750),
        f"{TLS}/server.key": ("postgres", "postgres", 0o600),
        f"{TLS}/server.crt": ("postgres", "postgres", 0o644),
        f"{TLS}/root.crt": ("postgres", "postgres", 0o644),
        f"{TLS}/client/postgresql.key": ("postgres", "postgres", 0o600),
        "/etc/pgbouncer/pgbouncer.ini": ("postgres", "postgres", 0o640),
        "/etc/pgbouncer/pg_hba.conf": ("postgres", "postgres", 0o640),
        "/etc/pgbouncer/userlist.txt": ("postgres", "postgres", 0o640),
    }
    for path, (user, group, mode) in expected.items():
        f = APP.file(path)
        assert (f.user, f.group, f.mode) == (user, group, mode), path
    assert not APP.file(f"{TLS}/.pgtls-snapshot").exists
    assert APP.service("pgbouncer").is_running and APP.service("pgbouncer").is_enabled


def test_settings_written():
    ini = APP.file("/etc/pgbouncer/pgbouncer.ini").content_string
    for line in ("client_tls_sslmode = verify-full", "server_tls_sslmode = verify-full", "auth_type = hba",
                 f"client_tls_ca_file = {TLS}/root.crt", f"server_tls_ca_file = {TLS}/root.crt",
                 f"server_tls_cert_file = {TLS}/client/postgresql.crt", "client_tls_protocols = tlsv1.2,tlsv1.3"):
        assert line in ini, line


def test_handshake_serves_the_ca_issued_certificate():
    assert served_fingerprint() == installed_fingerprint() != ""
    issuer = APP.run(f"openssl x509 -in {TLS}/server.crt -noout -issuer -ext subjectAltName")
    assert "pgtls PostgreSQL CA" in issuer.stdout and f"DNS:{POOLER}" in issuer.stdout
    # TLS 1.1 is refused (client_tls_protocols).
    old = APP.run(f"openssl s_client -starttls postgres -connect {POOLER}:6432 -tls1_1 </dev/null")
    assert old.rc != 0


def test_verify_full_with_client_certificate_through_pgbouncer():
    done = psql(sql="select current_user, inet_server_port()")
    assert done.rc == 0, done.stderr
    assert done.stdout.strip() == "app|5432"


def test_pgbouncer_to_postgresql_is_tls_with_its_own_certificate():
    # Run through PgBouncer, so PostgreSQL answers about PgBouncer's server connection.
    done = psql(sql="select ssl, version, client_dn from pg_stat_ssl where pid = pg_backend_pid()")
    assert done.rc == 0, done.stderr
    ssl, version, client_dn = done.stdout.strip().split("|")
    assert ssl == "t" and version in ("TLSv1.2", "TLSv1.3") and client_dn == "/CN=pgbouncer"
    # And as the database server lists it: every connection from the pooler is TLS with PgBouncer's certificate.
    sql = ("select a.usename, s.ssl, s.client_dn from pg_stat_ssl s join pg_stat_activity a using (pid) "
           "where a.client_addr is not null")
    rows = DB.run(f"su postgres -c {shlex.quote(shlex.join(['psql', '-X', '-At', '-c', sql]))}")
    assert rows.rc == 0, rows.stderr
    assert "app|t|/CN=pgbouncer" in rows.stdout.splitlines()


def test_a_name_not_in_the_certificate_is_refused():
    ip = APP.run("getent hosts pgtls-pgb-pooler").stdout.split()[0]
    done = psql(host=ip)
    assert done.rc != 0 and "does not match host name" in done.stderr, done.stderr
    # PgBouncer's side: a database named by an address the server's certificate does not carry.
    lines = int(APP.run(f"wc -l < {LOG}").stdout.strip())
    done = psql(dbname="byaddress")
    assert done.rc != 0, done.stdout
    log = APP.run(f"tail -n +{lines + 1} {LOG}").stdout
    refusal = r"(not present in server certificate|does not match|certificate verify failed)"
    assert re.search(refusal, log), f"client: {done.stderr}\nPgBouncer: {log[-2000:]}"


def test_a_login_without_client_certificate_is_refused():
    done = APP.run(f"psql -X -At -c 'select 1' 'host={POOLER} port=6432 dbname=appdb user=app sslmode=verify-full "
                   f"sslrootcert={TLS}/root.crt connect_timeout=10'")
    assert done.rc != 0 and "certificate required" in done.stderr, done.stderr


def test_bad_key_pgbouncer_keeps_serving_and_the_role_refuses():
    before = served_fingerprint()
    key = f"{TLS}/server.key"
    assert APP.run(f"cp -a {key} /root/server.key.good").rc == 0
    try:
        # PgBouncer itself: a reload with a garbage key logs an error and keeps its old TLS configuration.
        APP.run(f"echo garbage > {key}")
        said = "grep -c 'TLS configuration could not be reloaded, keeping old configuration' " + LOG
        before_count = int(APP.run(said).stdout.strip() or 0)
        assert APP.run("systemctl reload pgbouncer").rc == 0
        # PgBouncer handles SIGHUP in its event loop: on a loaded machine the log line may take a few seconds.
        kept = APP.run(f"for i in $(seq 20); do [ \"$({said})\" -gt {before_count} ] && exit 0; sleep 0.5; done; "
                       f"tail -n 20 {LOG}; exit 1")
        assert kept.rc == 0, kept.stdout
        assert served_fingerprint() == before
        assert psql().rc == 0
        # The role: refuses the file before changing anything, naming it.
        ini = APP.file("/etc/pgbouncer/pgbouncer.ini").content_string
        rc, out = playbook("site", "--limit", POOLER)
        assert rc != 0, out
        assert key in out and "refusing to replace it" in out, out[-3000:]
        assert APP.file("/etc/pgbouncer/pgbouncer.ini").content_string == ini
        assert served_fingerprint() == before
    finally:
        APP.run(f"cp -a /root/server.key.good {key} && systemctl reload pgbouncer")
    assert psql().rc == 0


def long_session(user):
    """A session through PgBouncer that lasts (pg_sleep), its psql's exit code and words in /tmp/long-<user>.*."""
    folder = f"/home/{user}/.postgresql"
    conninfo = (f"host={POOLER} port=6432 dbname=appdb user={user} sslmode=verify-full sslcert={folder}/postgresql.crt "
                f"sslkey={folder}/postgresql.key sslrootcert={folder}/root.crt")
    script = (f"psql -X -At -c 'select pg_sleep(90)' {shlex.quote(conninfo)} >/tmp/long-{user}.out 2>&1; "
              f"echo $? >/tmp/long-{user}.rc")
    APP.run(f"rm -f /tmp/long-{user}.*")
    started = APP.run(f"systemd-run --unit=pgtls-long-{user} --uid={user} --collect bash -c {shlex.quote(script)}")
    assert started.rc == 0, started.stderr


def clients_of(user, database="appdb"):
    """PgBouncer's clients of ``user`` on ``database`` (all of them without a user). Not the other databases: the
    refused "byaddress" login of an earlier test can wait there for its server until query_wait_timeout."""
    shown = APP.run("runuser -u postgres -- psql -X -At -F ' ' -h /var/run/postgresql -p 6432 -d pgbouncer "
                    "-c 'SHOW CLIENTS'")
    assert shown.rc == 0, shown.stderr
    return [line for line in shown.stdout.splitlines() if not user or line.split(" ")[1:3] == [user, database]]


def test_a_revoked_client_is_refused_by_pgbouncer_and_its_open_session_ended():
    """PgBouncer checks a client at login only: mallory's session, open through PgBouncer before the revocation, is
    ended by the revoke playbook (its socket destroyed), app's session beside it goes on."""
    assert psql("mallory").stdout.strip() == "mallory"
    long_session("mallory")
    long_session("app")
    for _attempt in range(50):
        if len(clients_of("mallory")) == 1 and len(clients_of("app")) == 1:
            break
        time.sleep(0.2)
    assert len(clients_of("mallory")) == 1 and len(clients_of("app")) == 1, clients_of("")
    rc, out = playbook("revoke", "-e", '{"pgtls_revoke_names": ["mallory"]}')
    assert rc == 0, out[-4000:]
    assert re.search(r'"1 ended; pgbouncer:6432: mallory"', out), out[-4000:]
    assert clients_of("mallory") == [] and len(clients_of("app")) == 1
    ended = APP.run("for i in $(seq 50); do [ -e /tmp/long-mallory.rc ] && exit 0; sleep 0.2; done; exit 1")
    assert ended.rc == 0
    assert APP.run("cat /tmp/long-mallory.rc").stdout.strip() != "0", APP.run("cat /tmp/long-mallory.out").stdout
    assert APP.run("systemctl is-active pgtls-long-app").stdout.strip() == "active"  # app's session goes on
    APP.run("systemctl kill --signal=KILL pgtls-long-app")  # psql in a query outlives SIGTERM (90 s stop)
    done = psql("mallory")
    assert done.rc != 0 and "login rejected" in done.stderr, done.stderr
    assert psql().stdout.strip() == "app"
    assert "mallory" not in APP.file("/etc/pgbouncer/userlist.txt").content_string
    # PostgreSQL, which reads the CRL, refuses mallory's certificate directly too.
    direct = psql("mallory", host="pgtls-pgb-db", dbname="postgres", extra="port=5432")
    assert direct.rc != 0 and "revoked" in direct.stderr, direct.stderr


def serial_of(path):
    out = APP.run(f"openssl x509 -in {path} -noout -serial")
    assert out.rc == 0, out.stderr
    return out.stdout.strip().split("=", 1)[1]


def stolen_client_login():
    """PostgreSQL directly, with the copy of PgBouncer's client certificate and key taken before the revocation (its
    CN pgbouncer maps to app)."""
    conninfo = ("host=pgtls-pgb-db port=5432 dbname=postgres user=app sslmode=verify-full connect_timeout=10 "
                f"sslcert=/root/stolen/postgresql.crt sslkey=/root/stolen/postgresql.key sslrootcert={TLS}/root.crt")
    return APP.run(shlex.join(["psql", "-X", "-At", "-c", "select current_user", conninfo]))


def test_pgbouncers_certificates_revoked_by_serial_in_use_are_replaced_first():
    """revoke by serial (key_compromise) of the certificate PgBouncer serves and of its client certificate to
    PostgreSQL, both in use: the pgbouncer role issues both again with new keys made on the pooler, activates them and
    proves the new server certificate served, then the CRLs list the serials. Afterwards the app logs in through
    PgBouncer with verify-full, PgBouncer reaches PostgreSQL with its new client certificate, and the stolen client
    certificate, accepted by PostgreSQL before, is refused ("certificate revoked")."""
    copied = APP.run(f"rm -rf /root/stolen && mkdir -m 700 /root/stolen && cp {TLS}/server.key {TLS}/client/postgresql.crt "
                     f"{TLS}/client/postgresql.key /root/stolen/")
    assert copied.rc == 0, copied.stderr
    assert stolen_client_login().stdout.strip() == "app"
    serials = {"server": serial_of(f"{TLS}/server.crt"), "client": serial_of(f"{TLS}/client/postgresql.crt")}
    rc, out = playbook("revoke", "-e", json.dumps({"pgtls_revoke_serials": [f"0x{s}" for s in serials.values()]}))
    assert rc == 0, out[-4000:]
    order = [out.index(marker) for marker in ("Pending serials - PgBouncer replaces", "Publish the pending revocations",
                                              "Revoked names rejected by every PgBouncer")]
    assert order == sorted(order), out[-4000:]
    assert serial_of(f"{TLS}/server.crt") != serials["server"]
    assert serial_of(f"{TLS}/client/postgresql.crt") != serials["client"]
    for key in ("server.key", "client/postgresql.key"):
        assert APP.run(f"cmp -s /root/stolen/{os.path.basename(key)} {TLS}/{key}").rc != 0, f"{key}: the old key stays"
    assert served_fingerprint() == installed_fingerprint()
    done = psql(sql="select ssl, client_dn from pg_stat_ssl where pid = pg_backend_pid()")
    assert done.rc == 0 and done.stdout.strip() == "t|/CN=pgbouncer", done.stderr
    refused = stolen_client_login()
    assert refused.rc != 0 and "certificate revoked" in refused.stderr, refused.stderr


def test_audit_reports_pgbouncer():
    """The table row, and the JSON report and metrics: PgBouncer's certificate is kind pooler, ready, with its
    renewal time, and its chain's CAs have a leaf's lifetime and renewal window left (ca_validity)."""
    out_dir = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "audit")
    os.makedirs(out_dir, exist_ok=True)
    report, metrics = os.path.join(out_dir, "audit.json"), os.path.join(out_dir, "pgtls.prom")
    rc, out = playbook("audit", "-e", f"pgtls_audit_json={report}", "-e", f"pgtls_audit_metrics={metrics}")
    assert rc == 0, out[-3000:]
    assert re.search(rf"{POOLER}\s+pgbouncer:6432\s+\d+\s+ok\s+ok", out), out[-3000:]
    with open(report, encoding="utf-8") as stream:
        records = {(r["host"], r["cluster"]): r for r in json.load(stream)["servers"]}
    pooler = records[(POOLER, "pgbouncer:6432")]
    assert pooler["kind"] == "pooler" and pooler["ready"] is True and pooler["installed"]["renews_at"], pooler
    assert [f["status"] for f in pooler["findings"] if f["check"] == "ca_validity"] == ["ok"], pooler["findings"]
    assert {r["kind"] for (host, _cluster), r in records.items() if host != POOLER} == {"server"}
    with open(metrics, encoding="utf-8") as stream:
        text = stream.read()
    assert f'pgtls_certificate_ready{{host="{POOLER}",cluster="pgbouncer:6432"}} 1' in text
    assert f'pgtls_certificate_renewal_timestamp_seconds{{host="{POOLER}",cluster="pgbouncer:6432",kind="pooler"}}' \
        in text


def roots_in(host, path):
    return host.run(f"grep -c 'BEGIN CERTIFICATE' {path}").stdout.strip()


def test_a_root_rotation_reaches_pgbouncer_on_both_sides():
    """Each step of a root rotation, one rotate run: PgBouncer's trust file (client and server side) holds both roots
    from start to retire and the new one only after it; at the switch PgBouncer's server certificate and its client
    certificate to PostgreSQL are re-issued under the new root's intermediate; after every step the app logs in
    through PgBouncer with verify-full and its certificate, PgBouncer reaches PostgreSQL with its own, and PgBouncer
    serves the certificate installed."""
    seen = {}
    for step in ("start", "switch", "retire"):
        rc, out = playbook("rotate", "-e", f"pgtls_rotate_root={step}")
        assert rc == 0, out[-3000:]
        done = psql(sql="select ssl, client_dn from pg_stat_ssl where pid = pg_backend_pid()")
        assert done.rc == 0 and done.stdout.strip() == "t|/CN=pgbouncer", (step, done.stderr)
        assert served_fingerprint() == installed_fingerprint()
        issuers = APP.run(f"openssl x509 -in {TLS}/server.crt -noout -issuer; "
                          f"openssl x509 -in {TLS}/client/postgresql.crt -noout -issuer").stdout
        seen[step] = (roots_in(APP, f"{TLS}/root.crt"), roots_in(APP, "/home/app/.postgresql/root.crt"), issuers)
    assert [s[:2] for s in seen.values()] == [("2", "2"), ("2", "2"), ("1", "1")], seen
    assert seen["switch"][2] != seen["start"][2] and seen["switch"][2].count("G2") == 2, seen
