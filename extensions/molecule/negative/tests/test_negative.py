"""After every broken converge: the server is up, serves the good certificate and accepts TLS connections."""

from __future__ import annotations

CONF = "/etc/postgresql/15/main"


def test_server_is_running(host):
    assert host.service("postgresql@15-main").is_running


def test_still_serves_the_good_certificate(host):
    expected = host.file("/root/expected-fingerprint").content_string.strip()
    served = host.run("openssl s_client -starttls postgres -connect 127.0.0.1:5432 </dev/null 2>/dev/null "
                      "| openssl x509 -noout -fingerprint -sha256")
    installed = host.run(f"openssl x509 -in {CONF}/tls/server.crt -noout -fingerprint -sha256")
    assert expected.startswith("sha256 Fingerprint=") or expected.startswith("SHA256 Fingerprint=")
    assert served.stdout.strip() == expected
    assert installed.stdout.strip() == expected


def test_files_are_the_good_ones(host):
    hba = host.file(f"{CONF}/pg_hba.conf").content_string
    assert "md6" not in hba and "clientcert" not in hba
    conf = host.file(f"{CONF}/conf.d/pgtls.conf").content_string
    assert "TLSv1.3" not in conf and "NULL'" not in conf.replace("!aNULL", "").replace("!eNULL", "")


def test_accepts_verify_full_connections(host):
    name = host.run("hostname -f").stdout.strip()
    done = host.run(f"psql -X -At -c 'select ssl from pg_stat_ssl where pid = pg_backend_pid()' "
                    f"\"host={name} port=5432 dbname=postgres user=postgres sslmode=verify-full "
                    f"sslrootcert={CONF}/tls/root.crt\"")
    assert done.rc == 0, done.stderr
    assert done.stdout.strip() == "t"
