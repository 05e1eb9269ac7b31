"""Verify from inside the host, with real clients: files, served certificate, verify-full, cert login, CRL."""

from __future__ import annotations

import re

CONF = "/etc/postgresql/15/main"
TLS = f"{CONF}/tls"


def psql(host, conninfo, sql="select current_user"):
    return host.run(f"psql -X -At -c {sql!r} \"port=5432 dbname=postgres {conninfo}\"")


def app(user="app", folder="/root/pg-app", name=None, host=None):
    return (f"host={name} user={user} sslmode=verify-full sslrootcert={folder}/root.crt "
            f"sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key")


def test_owners_and_modes(host):
    expected = {
        f"{TLS}": ("root", "ssl-cert", 0o750),
        f"{TLS}/server.key": ("root", "ssl-cert", 0o640),
        f"{TLS}/server.crt": ("root", "ssl-cert", 0o644),
        f"{TLS}/root.crt": ("root", "ssl-cert", 0o644),
        f"{TLS}/root.crl": ("root", "ssl-cert", 0o644),
        f"{CONF}/conf.d/pgtls.conf": ("postgres", "postgres", 0o644),
        f"{CONF}/pg_hba.conf": ("postgres", "postgres", 0o640),
    }
    for path, (user, group, mode) in expected.items():
        f = host.file(path)
        assert (f.user, f.group, f.mode) == (user, group, mode), path
    assert "ssl-cert" in host.user("postgres").groups


def test_served_certificate_is_the_installed_one(host):
    served = host.run("openssl s_client -starttls postgres -connect 127.0.0.1:5432 </dev/null 2>/dev/null "
                      "| openssl x509 -noout -fingerprint -sha256")
    installed = host.run(f"openssl x509 -in {TLS}/server.crt -noout -fingerprint -sha256")
    assert served.rc == 0 and installed.rc == 0
    assert served.stdout.strip() == installed.stdout.strip() != ""


def test_verify_full_to_own_name_and_cert_login(host):
    name = host.run("hostname -f").stdout.strip()
    done = psql(host, app(name=name))
    assert done.rc == 0, done.stderr
    assert done.stdout.strip() == "app"


def test_name_not_in_sans_fails_verify_full(host):
    done = psql(host, app(name="127.0.0.1"))
    assert done.rc != 0
    assert re.search(r'does not match host name "127\.0\.0\.1"', done.stderr), done.stderr


def test_revoked_client_certificate_is_refused(host):
    name = host.run("hostname -f").stdout.strip()
    done = psql(host, app(user="mallory", folder="/root/pg-mallory", name=name))
    assert done.rc != 0
    assert "certificate revoked" in done.stderr, done.stderr


def test_non_ssl_tcp_is_rejected(host):
    name = host.run("hostname -f").stdout.strip()
    done = psql(host, f"host={name} user=app sslmode=disable")
    assert done.rc != 0
    assert "no encryption" in done.stderr, done.stderr


def test_settings_in_effect(host):
    done = host.run("runuser -u postgres -- psql -X -At -c "
                    "\"select name || '=' || setting from pg_settings where name in "
                    "('ssl', 'ssl_min_protocol_version', 'ssl_cert_file') order by name\"")
    assert done.rc == 0, done.stderr
    assert done.stdout.split() == ["ssl=on", f"ssl_cert_file={TLS}/server.crt", "ssl_min_protocol_version=TLSv1.2"]
