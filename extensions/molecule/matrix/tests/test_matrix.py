"""Every matrix cell, checked from inside its host with real clients (psql, openssl) against what converge wrote
in /root/pgtls-matrix.json: cert login with verify-full by host name, wrong name refused, settings in effect,
served certificate == installed one, direct TLS on 17+ (openssl with ALPN postgresql) and the audit's view."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def cell(host):
    data = json.loads(host.file("/root/pgtls-matrix.json").content_string)
    assert data["clusters"], "converge managed no cluster"
    data["name"] = host.run("hostname").stdout.strip()
    return data


def clusters(host):
    return json.loads(host.file("/root/pgtls-matrix.json").content_string)["clusters"]


def app_psql(host, conninfo, sql="select current_user"):
    return host.run(f"runuser -u app -- env HOME=/home/app psql -X -At -c {sql!r} {conninfo!r}")


def test_every_cluster_is_proven(host, cell):
    failures = []
    for c in cell["clusters"]:
        version, port, tls = int(c["cluster"].split("/")[0]), c["port"], c["tls_dir"]
        service = f"pg{version}"
        # cert login, verify-full by host name (the service: host=<name>, sslmode=verify-full, the app certificate)
        done = app_psql(host, f"service={service}", "select current_user || ' ' || ssl::text || ' ' || "
                        "coalesce(client_dn, '-') from pg_stat_ssl where pid = pg_backend_pid()")
        if done.rc != 0 or not done.stdout.startswith("app true /CN=app"):
            failures.append(f"{c['cluster']}: cert login by name: {done.stdout} {done.stderr}")
        # a name the certificate does not carry
        done = app_psql(host, f"service={service} host=localhost")
        if done.rc == 0 or not re.search(r'does not match host name "localhost"', done.stderr):
            failures.append(f"{c['cluster']}: wrong name not refused: {done.rc} {done.stderr}")
        # without a client certificate: refused by the cert rule
        done = app_psql(host, f"service={service} sslcert=/nonexistent sslkey=/nonexistent")
        if done.rc == 0:
            failures.append(f"{c['cluster']}: login without a client certificate was accepted")
        # settings in effect
        shown = dict(line.split("=", 1) for line in host.run(
            f"runuser -u postgres -- psql -X -At -h /var/run/postgresql -p {port} -d postgres -c "
            "\"select name || '=' || setting from pg_settings where name like 'ssl%'\"").stdout.split())
        expected = {"ssl": "on", "ssl_cert_file": f"{tls}/server.crt", "ssl_key_file": f"{tls}/server.key",
                    "ssl_ca_file": f"{tls}/root.crt", "ssl_crl_file": f"{tls}/root.crl",
                    "ssl_ciphers": cell["ciphers"], "ssl_min_protocol_version": "TLSv1.2"}
        if cell["groups"]:
            expected["ssl_groups" if version >= 18 else "ssl_ecdh_curve"] = cell["groups"]
        wrong = {k: (v, shown.get(k)) for k, v in expected.items() if shown.get(k) != v}
        if wrong:
            failures.append(f"{c['cluster']}: settings (wanted, shown): {wrong}")
        # served certificate == installed certificate (openssl speaks the SSLRequest itself)
        served = host.run(f"openssl s_client -starttls postgres -connect 127.0.0.1:{port} </dev/null 2>/dev/null "
                          "| openssl x509 -noout -fingerprint -sha256").stdout.strip()
        installed = host.run(f"openssl x509 -in {tls}/server.crt -noout -fingerprint -sha256").stdout.strip()
        if not served or served != installed:
            failures.append(f"{c['cluster']}: serves {served!r}, installed {installed!r}")
        # direct TLS (no SSLRequest, ALPN postgresql): PostgreSQL 17 and newer
        direct = host.run(f"openssl s_client -alpn postgresql -connect 127.0.0.1:{port} </dev/null 2>&1")
        accepts = "ALPN protocol: postgresql" in direct.stdout
        if accepts != (version >= 17):
            failures.append(f"{c['cluster']}: direct TLS accepted={accepts}, expected {version >= 17}")
    assert failures == [], "\n".join(failures)


def test_audit_reports_each_cluster_and_direct_tls(cell):
    rows = {r["cluster"]: r for r in cell["audit"]}
    assert set(rows) == {c["cluster"] for c in cell["clusters"]}
    for name, row in rows.items():
        version = int(name.split("/")[0])
        assert row["served_matches"] and row["key_ok"] and not row["fail"], row
        assert row["direct_tls"] == (True if version >= 17 else None), row


def test_direct_negotiation_service_when_configured(host):
    conf = host.file("/home/app/.pg_service.conf").content_string
    if "sslnegotiation=direct" not in conf:
        pytest.skip("no sslnegotiation=direct service in this cell")
    done = app_psql(host, "service=pg17-direct", "select current_user || ' ' || ssl::text from pg_stat_ssl "
                    "where pid = pg_backend_pid()")
    assert done.rc == 0 and done.stdout.strip() == "app true", done.stderr


def test_sslcertmode_service_when_configured(host):
    """libpq 16+ reads sslcertmode from the service file: with require it logs in with the certificate; the same
    service with sslcertmode=disable (the command line wins over the file) sends none and the cert method refuses."""
    conf = host.file("/home/app/.pg_service.conf").content_string
    if "sslcertmode=require" not in conf:
        pytest.skip("no sslcertmode in this cell")
    done = app_psql(host, "service=pg17", "select current_user || ' ' || (client_dn is not null)::text from pg_stat_ssl "
                    "where pid = pg_backend_pid()")
    assert done.rc == 0 and done.stdout.strip() == "app true", done.stderr
    refused = app_psql(host, "service=pg17 sslcertmode=disable")
    assert refused.rc != 0
    assert "connection requires a valid client certificate" in refused.stderr, refused.stderr


def test_discovery_and_python_of_the_cell(host, cell):
    """What the cell stands for: the Debian 11 cell has no JSON.pm and cryptography 3.3.2."""
    release = host.file("/etc/debian_version").content_string.strip()
    crypto = host.run("python3 -c 'import cryptography; print(cryptography.__version__)'").stdout.strip()
    if release.startswith("11"):
        assert host.run("perl -MJSON -e 1").rc != 0, "libjson-perl must be absent in the Debian 11 cell"
        assert crypto == "3.3.2"
    elif release.startswith("13"):
        assert crypto.split(".")[0] == "43"


def test_data_dir_clusters_restarted_with_their_own_programs(host, cell):
    """Data-dir cell: the key group was new to the running postmasters, so the role restarted each with pg_ctl from
    the program folder it found (the npm build's, not /usr/lib/postgresql): the new postmaster is in the group."""
    data_dirs = [c for c in cell["clusters"] if c["tls_dir"].startswith("/srv/pg/")]
    if not data_dirs:
        pytest.skip("no data-dir clusters in this cell")
    gid = host.group("pgtls-matrix-keys").gid
    for c in data_dirs:
        data = c["tls_dir"].rsplit("/", 1)[0]
        pid = host.file(f"{data}/postmaster.pid").content_string.split()[0]
        # The postmaster's command name (/proc/<pid>/exe is unreadable for root without CAP_SYS_PTRACE here).
        exe = host.run(f"tr '\\0' '\\n' < /proc/{pid}/cmdline | head -n 1").stdout.strip()
        assert exe.startswith("/opt/embedded-postgres/pg") and exe.endswith("/native/bin/postgres"), exe
        groups = host.run(f"sed -n 's/^Groups:\\t*//p' /proc/{pid}/status").stdout.split()
        assert str(gid) in groups, (c["cluster"], groups)
        assert host.file(f"{c['tls_dir']}/server.key").group == "pgtls-matrix-keys"


def test_every_certificate_is_the_engines_and_the_ca_folder_holds_no_key(host, cell):
    """The CA is in OpenBao: each cluster's certificate and the app's client certificate were issued by the engine's
    intermediate; the trust file is the engine's root; the controller's CA folder is its mirror, without a CA key."""
    with urllib.request.urlopen("http://127.0.0.1:18731/v1/pki/cert/ca", timeout=10) as answer:
        root = json.load(answer)["data"]["certificate"].strip()
    pki = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki"
    assert (pki / "root.crt").read_text().strip() == root
    assert sorted(p.name for p in pki.iterdir() if p.suffix == ".key") == []
    files = [f"{c['tls_dir']}/server.crt" for c in cell["clusters"]] + ["/home/app/.postgresql/postgresql.crt"]
    for path in files:
        issuer = host.run(f"openssl x509 -in {path} -noout -issuer")
        assert issuer.rc == 0 and "pgtls Molecule intermediate (OpenBao)" in issuer.stdout, (path, issuer.stdout)
    for c in cell["clusters"]:
        assert host.file(f"{c['tls_dir']}/root.crt").content_string.strip() == root, c


def test_pgbouncer_serves_the_engines_certificate_and_logs_in_with_its_own(host):
    """The data-dir cell's PgBouncer (site's pooler play, CA in OpenBao): its server certificate and its client
    certificate to PostgreSQL are the engine's; app connects through it with verify-full by name and its own
    certificate, and PostgreSQL sees PgBouncer's client certificate (its serial in pg_stat_ssl) on that session."""
    if host.run("hostname").stdout.strip() != "pgtls-matrix-datadir":
        pytest.skip("PgBouncer runs on the data-dir cell only (molecule.yml: group pgtls_poolers)")
    tls = "/etc/pgbouncer/tls"
    for path in (f"{tls}/server.crt", f"{tls}/client/postgresql.crt"):
        issuer = host.run(f"openssl x509 -in {path} -noout -issuer")
        assert issuer.rc == 0 and "pgtls Molecule intermediate (OpenBao)" in issuer.stdout, (path, issuer.stdout)
    served = host.run("openssl s_client -starttls postgres -connect pgtls-matrix-datadir:6432 -servername "
                      f"pgtls-matrix-datadir -CAfile {tls}/root.crt -verify_return_error </dev/null 2>/dev/null "
                      "| openssl x509 -noout -fingerprint -sha256")
    installed = host.run(f"openssl x509 -in {tls}/server.crt -noout -fingerprint -sha256")
    assert served.rc == 0 and served.stdout.strip() == installed.stdout.strip(), served.stderr
    serial = host.run(f"openssl x509 -in {tls}/client/postgresql.crt -noout -serial").stdout.strip().split("=")[1]
    folder = "/home/app/.postgresql"
    done = app_psql(host, f"host=pgtls-matrix-datadir port=6432 dbname=appdb user=app sslmode=verify-full "
                    f"sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key sslrootcert={folder}/root.crt",
                    "select current_user || ' ' || ssl::text || ' ' || client_serial::text from pg_stat_ssl "
                    "where pid = pg_backend_pid()")
    assert done.rc == 0, done.stderr
    user, ssl, seen = done.stdout.strip().split()
    assert (user, ssl) == ("app", "true") and int(seen) == int(serial, 16), done.stdout
    bare = app_psql(host, "host=pgtls-matrix-datadir port=6432 dbname=appdb user=app sslmode=verify-full "
                    f"sslrootcert={folder}/root.crt sslcert=/nonexistent sslkey=/nonexistent")
    assert bare.rc != 0, bare.stdout
