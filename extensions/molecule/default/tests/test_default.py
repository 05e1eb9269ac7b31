"""Verify from inside the host, with real clients: files, served certificate, verify-full, cert login, CRL; and
after the broken inputs of side_effect.yml, every cluster runs and serves the certificate it served before them."""

from __future__ import annotations

import re

import pytest

CONF = "/etc/postgresql/15/main"
TLS = f"{CONF}/tls"
CLUSTERS = [("main", 5432), ("second", 5433)]


def psql(host, conninfo, sql="select current_user"):
    return host.run(f"psql -X -At -c {sql!r} \"port=5432 dbname=postgres {conninfo}\"")


def app(user="app", folder="/root/pg-app", name=None, host=None):
    return (f"host={name} user={user} sslmode=verify-full sslrootcert={folder}/root.crt "
            f"sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key")


@pytest.mark.parametrize("cluster,port", CLUSTERS)
def test_owners_and_modes(host, cluster, port):
    conf = f"/etc/postgresql/15/{cluster}"
    expected = {
        f"{conf}/tls": ("root", "ssl-cert", 0o750),
        f"{conf}/tls/server.key": ("root", "ssl-cert", 0o640),
        f"{conf}/tls/server.crt": ("root", "ssl-cert", 0o644),
        f"{conf}/tls/root.crt": ("root", "ssl-cert", 0o644),
        f"{conf}/tls/root.crl": ("root", "ssl-cert", 0o644),
        f"{conf}/conf.d/pgtls.conf": ("postgres", "postgres", 0o644),
        f"{conf}/pg_hba.conf": ("postgres", "postgres", 0o640),
    }
    for path, (user, group, mode) in expected.items():
        f = host.file(path)
        assert (f.user, f.group, f.mode) == (user, group, mode), path
    assert "ssl-cert" in host.user("postgres").groups


@pytest.mark.parametrize("cluster,port", CLUSTERS)
def test_served_certificate_is_the_installed_one(host, cluster, port):
    served = host.run(f"openssl s_client -starttls postgres -connect 127.0.0.1:{port} </dev/null 2>/dev/null "
                      "| openssl x509 -noout -fingerprint -sha256")
    installed = host.run(f"openssl x509 -in /etc/postgresql/15/{cluster}/tls/server.crt -noout -fingerprint -sha256")
    assert served.rc == 0 and installed.rc == 0
    assert served.stdout.strip() == installed.stdout.strip() != ""


def test_each_cluster_has_its_own_key(host):
    digests = set()
    for cluster, _port in CLUSTERS:
        done = host.run(f"openssl pkey -in /etc/postgresql/15/{cluster}/tls/server.key -pubout | sha256sum")
        assert done.rc == 0, done.stderr
        digests.add(done.stdout.split()[0])
    assert len(digests) == len(CLUSTERS)


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


@pytest.mark.parametrize("cluster,port", CLUSTERS)
def test_no_snapshot_or_key_copy_left(host, cluster, port):
    """Snapshots live in the TLS folder while a run needs them, and are gone after it; nothing in /tmp."""
    assert not host.file(f"/etc/postgresql/15/{cluster}/tls/.pgtls-snapshot").exists
    assert host.run("ls -d /tmp/ansible.*.pgtls").rc != 0
    key = host.run(f"sha256sum < /etc/postgresql/15/{cluster}/tls/server.key").stdout.split()[0]
    copies = host.run(f"find / -xdev -type f -size -64k ! -path /proc/\\* -exec sha256sum {{}} + 2>/dev/null "
                      f"| grep {key}").stdout.split("\n")
    assert [line.split()[1] for line in copies if line] == [f"/etc/postgresql/15/{cluster}/tls/server.key"]


@pytest.mark.parametrize("cluster,port", CLUSTERS)
def test_broken_input_left_the_server_as_it_was(host, cluster, port):
    """side_effect.yml: each broken run failed with its message (asserted there); the cluster runs, serves and has
    installed the certificate recorded before them, and its files are the good ones."""
    conf = f"/etc/postgresql/15/{cluster}"
    assert host.service(f"postgresql@15-{cluster}").is_running
    expected = host.file(f"/root/expected-fingerprint-{cluster}").content_string.strip()
    assert re.match(r"(sha256|SHA256) Fingerprint=", expected), expected
    served = host.run(f"openssl s_client -starttls postgres -connect 127.0.0.1:{port} </dev/null 2>/dev/null "
                      "| openssl x509 -noout -fingerprint -sha256")
    installed = host.run(f"openssl x509 -in {conf}/tls/server.crt -noout -fingerprint -sha256")
    assert served.stdout.strip() == expected
    assert installed.stdout.strip() == expected
    hba = host.file(f"{conf}/pg_hba.conf").content_string
    assert "md6" not in hba and "clientcert" not in hba
    settings = host.file(f"{conf}/conf.d/pgtls.conf").content_string
    assert "NOSUCHCIPHER" not in settings and ":NULL" not in settings
