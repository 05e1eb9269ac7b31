"""The client role's filters (plugin_utils/_client.py through plugins/filter/client.py): the OS users of its
certificates, where each role's files go, the bundles' entries, and the ~/.pg_service.conf files. The expected values
are written out by hand (tests/e2e/test_client_role.py has libpq read a file the role writes)."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgtls.ssl.plugins.filter.client import FilterModule

F = FilterModule().filters()
ROOT = Path(__file__).resolve().parents[3]
PASSWD = {
    "web": ["x", "1001", "1001", "", "/home/web", "/bin/sh"],
    "report": ["x", "1002", "1003", "", "/srv/report", "/bin/sh"],
    "root": ["x", "0", "0", "root", "/root", "/bin/bash"],
}


def test_client_users_each_once_in_order_the_role_name_by_default():
    certs = [{"name": "app", "user": "web"}, {"name": "report"}, {"name": "app_ro", "user": "web"},
             {"name": "etl", "user": ""}]
    assert F["client_users"](certs) == ["web", "report", "etl"]
    assert F["client_users"]([]) == []


def test_client_entries_owner_group_and_folder():
    certs = [{"name": "app", "user": "web"}, {"name": "report", "dir": "/srv/report/tls"},
             {"name": "app_ro", "user": "web", "dir": ""}]
    assert F["client_entries"](certs, PASSWD) == [
        {"name": "app", "owner": "web", "group": 1001, "dir": "/home/web/.postgresql"},
        {"name": "report", "owner": "report", "group": 1003, "dir": "/srv/report/tls"},
        {"name": "app_ro", "owner": "web", "group": 1001, "dir": "/home/web/.postgresql"},
    ]


def test_client_entries_without_passwd_leave_folder_and_group_to_the_host():
    """What the role hands to client_cert: the host's passwd fills in ~user/.postgresql and the primary group."""
    certs = [{"name": "app", "user": "web"}, {"name": "report", "dir": "/srv/report/tls"},
             {"name": "app_ro", "user": "web", "dir": "", "rekey_before": "2026-12-01"}]
    assert F["client_entries"](certs) == [
        {"name": "app", "owner": "web", "group": None, "dir": None, "rekey_before": None},
        {"name": "report", "owner": "report", "group": None, "dir": "/srv/report/tls", "rekey_before": None},
        {"name": "app_ro", "owner": "web", "group": None, "dir": None, "rekey_before": "2026-12-01"},
    ]


@pytest.mark.parametrize("certs, passwd, message", [
    ([{"name": "app", "user": "ghost"}], PASSWD,
     "pgtls_client_certs[0] (app): no passwd entry for the OS user 'ghost' (getent passwd ghost)"),
    ([{"name": "app", "user": "web"}], {"web": ["x", "1001", "staff", "", "/home/web", "/bin/sh"]},
     "pgtls_client_certs[0] (app): the passwd entry of 'web' has group id 'staff', not a number"),
    ([{"user": "web"}], PASSWD, "pgtls_client_certs[0] needs a name (the database role), got {'user': 'web'}"),
    ("app", PASSWD, "pgtls_client_certs must be a list, got str"),
])
def test_client_entries_refusals_name_the_entry(certs, passwd, message):
    with pytest.raises(AnsibleFilterError) as raised:
        F["client_entries"](certs, passwd)
    assert str(raised.value) == message


def test_client_bundle_entries():
    assert F["client_bundle_entries"](["reporting", "backup"]) == [{"name": "reporting"}, {"name": "backup"}]
    assert F["client_bundle_entries"]([]) == []
    with pytest.raises(AnsibleFilterError, match=r"^pgtls_client_bundles\[1\] must be a role name, got ''$"):
        F["client_bundle_entries"](["reporting", ""])


# pgtls.ssl.client_cert's clients: each folder, owner, group and home as the host has them.
CLIENTS = [{"name": "app", "owner": "web", "group": 1001, "dir": "/home/web/.postgresql", "home": "/home/web",
            "crl": "/home/web/.postgresql/root.crl"},
           {"name": "report", "owner": "report", "group": 1003, "dir": "/srv/report/tls", "home": "/srv/report"},
           {"name": "app_ro", "owner": "web", "group": 1001, "dir": "/home/web/ro", "home": "/home/web"}]
SERVICES = [{"name": "db1", "host": "db1.example.com", "role": "app_ro"},
            {"name": "db2", "host": "db2.example.com", "port": 6432, "role": "app", "dbname": "sales",
             "sslnegotiation": "direct"},
            {"name": "db3", "host": "db3.example.com", "role": "mallory"}]


def test_service_files_one_per_owner_entries_in_service_order():
    files = F["client_service_files"](CLIENTS, SERVICES)
    assert files == [{"owner": "web", "group": 1001, "path": "/home/web/.pg_service.conf", "services": [
        {"name": "db1", "host": "db1.example.com", "port": 5432, "dbname": "app_ro", "user": "app_ro",
         "sslcert": "/home/web/ro/postgresql.crt", "sslkey": "/home/web/ro/postgresql.key",
         "sslrootcert": "/home/web/ro/root.crt", "sslcrl": "", "sslnegotiation": ""},
        {"name": "db2", "host": "db2.example.com", "port": 6432, "dbname": "sales", "user": "app",
         "sslcert": "/home/web/.postgresql/postgresql.crt", "sslkey": "/home/web/.postgresql/postgresql.key",
         "sslrootcert": "/home/web/.postgresql/root.crt", "sslcrl": "/home/web/.postgresql/root.crl",
         "sslnegotiation": "direct"}]}]
    # report names no service: no file; mallory (revoked, so not among the clients) gets no entry.


def test_a_service_of_an_owner_without_home_is_refused_by_name():
    homeless = [dict(CLIENTS[0], home=None)]
    with pytest.raises(AnsibleFilterError, match=r"^pgtls_client_certs \(app\): no home folder for the OS user 'web'"):
        F["client_service_files"](homeless, SERVICES)


def test_no_services_no_files():
    assert F["client_service_files"](CLIENTS, []) == []


def render(file: dict, sslcertmode: str = "") -> str:
    """The role's template as the template module renders it (trim_blocks)."""
    source = (ROOT / "roles" / "client" / "templates" / "pg_service.conf.j2").read_text()
    env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.from_string(source).render(ansible_managed="Ansible managed", __pgtls_client_file=file,
                                          pgtls_client_sslcertmode=sslcertmode)


def test_the_template_renders_a_files_entries():
    (file,) = F["client_service_files"](CLIENTS, SERVICES)
    assert render(file, "require") == """\
# Ansible managed
# Connection services for web: psql "service=<name>" verifies the server's name
# (sslmode=verify-full) against root.crt and logs in with the role's client certificate.

[db1]
host=db1.example.com
port=5432
dbname=app_ro
user=app_ro
sslmode=verify-full
sslcert=/home/web/ro/postgresql.crt
sslkey=/home/web/ro/postgresql.key
sslrootcert=/home/web/ro/root.crt
sslcertmode=require

[db2]
host=db2.example.com
port=6432
dbname=sales
user=app
sslmode=verify-full
sslcert=/home/web/.postgresql/postgresql.crt
sslkey=/home/web/.postgresql/postgresql.key
sslrootcert=/home/web/.postgresql/root.crt
sslcrl=/home/web/.postgresql/root.crl
sslcertmode=require
sslnegotiation=direct
"""
