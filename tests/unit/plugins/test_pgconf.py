"""pg_hba rules and cipher strings: what each PostgreSQL version refuses, found before anything is written."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.pgtls.ssl.plugins.plugin_utils._pgconf import (
    INTERMEDIATE_CIPHERS,
    PASSPHRASE_WITHOUT_COMMAND,
    cipher_problems,
    cluster_problems,
    hba_problems,
    hba_rules,
    pgbouncer_hba_problems,
    pgbouncer_hba_rules,
    server_log_lines,
    service_problems,
    ssl_problems,
    ssl_settings,
)

SSL = {"type": "hostssl", "database": "all", "user": "all", "address": "10.0.0.0/8"}

HBA = [
    # (rule, version, expected message part or None)
    (dict(SSL, method="cert"), 15, None),
    (dict(SSL, method="scram-sha-256", options={"clientcert": "verify-full"}), 15, None),
    (dict(SSL, method="scram-sha-256", options={"clientcert": "1"}), 15, "clientcert=1 was removed in PostgreSQL 14"),
    (dict(SSL, method="scram-sha-256", options={"clientcert": "1"}), 13, None),
    (dict(SSL, method="scram-sha-256", options="clientcert=verify-full"), 11, "needs PostgreSQL 12"),
    (dict(SSL, type="host", method="scram-sha-256", options={"clientcert": "verify-ca"}), 15,
     "only allowed on hostssl lines"),
    (dict(SSL, method="cert", options={"clientcert": "verify-ca"}), 15, "cannot be used with method cert"),
    (dict(SSL, type="hostnossl", method="cert"), 15, "method cert needs a hostssl line"),
    (dict(SSL, method="cert", options={"clientname": "DN"}), 13, "clientname needs PostgreSQL 14"),
    (dict(SSL, method="cert", options={"clientname": "DN"}), 14, None),
    ({"type": "include", "path": "extra.conf"}, 15, "needs PostgreSQL 16"),
    ({"type": "include_dir", "path": "hba.d"}, 16, None),
    (dict(SSL, type="hots", method="cert"), 15, "type 'hots' is not one of"),
    ({"type": "local", "database": "all", "user": "all", "method": "peer", "address": "::1/128"}, 15,
     "a local line takes no address"),
    (dict(SSL, address=None, method="cert"), 15, "needs an address"),
    (dict(SSL, method="cert", options={"map": "certs"}), 15, "map=certs is not defined"),
]


@pytest.mark.parametrize("rule,version,expected", HBA)
def test_hba_problems(rule, version, expected):
    problems = hba_problems([rule], version)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0] and problems[0].startswith("pgtls_hba_rules[0]: ")


def test_ssl_only_policy_turns_host_into_hostssl_and_rejects_the_rest():
    rules = hba_rules([dict(SSL, type="host", method="scram-sha-256"),
                       {"type": "local", "database": "all", "user": "all", "method": "peer"}], ssl_only=True)
    assert [r["type"] for r in rules] == ["hostssl", "local", "hostnossl", "hostnossl"]
    assert [r["address"] for r in rules[2:]] == ["0.0.0.0/0", "::/0"]
    assert all(r["method"] == "reject" for r in rules[2:])


CIPHERS = [
    ("HIGH:!aNULL:!eNULL:!MD5:!3DES", []),
    ("HIGH:MEDIUM:+3DES:!aNULL", []),
    ("HIGH:NULL", ["'NULL' enables ciphers without encryption"]),
    ("eNULL", ["'eNULL' enables ciphers without encryption"]),
    ("HIGH:EXPORT", ["export-grade"]),
    ("ALL:COMPLEMENTOFALL", ["includes eNULL"]),
    ("HIGH:-NULL:!EXPORT", []),
]


@pytest.mark.parametrize("ciphers,expected", CIPHERS)
def test_cipher_problems(ciphers, expected):
    problems = cipher_problems(ciphers)
    assert len(problems) == len(expected), problems
    for part, problem in zip(expected, problems):
        assert part in problem and problem.startswith("pgtls_ssl_ciphers: ")


# ssl_groups, ssl_tls13_ciphers and the profile per PostgreSQL version: refused before anything is written.

SSL_SETTINGS = [
    # (settings, version, expected message part or None)
    ({"ssl_groups": "prime256v1"}, 13, None),
    ({"ssl_groups": "secp384r1"}, 17, None),
    ({"ssl_groups": "X25519:prime256v1"}, 17, "takes one curve"),
    ({"ssl_groups": "X25519:prime256v1"}, 13, "ECDH: unrecognized curve name"),
    ({"ssl_groups": "X25519"}, 16, "X25519 needs PostgreSQL 18"),
    ({"ssl_groups": "P-256"}, 15, "is not an EC curve"),
    ({"ssl_groups": "X25519:prime256v1"}, 18, None),
    ({"ssl_groups": "X25519"}, "18.4", None),
    ({"ssl_groups": "X25519::prime256v1"}, 18, "not a colon-separated list"),
    ({"ssl_groups": "X25519, prime256v1"}, 18, "not a colon-separated list"),
    ({"ssl_tls13_ciphers": "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"}, 18, None),
    ({"ssl_tls13_ciphers": "TLS_AES_256_GCM_SHA384"}, 17, "ssl_tls13_ciphers needs PostgreSQL 18 (this is 17)"),
    ({"ssl_tls13_ciphers": "ECDHE-RSA-AES128-GCM-SHA256"}, 18, "is not a TLS 1.3 suite"),
    ({"ssl_profile": "modern", "ssl_max_protocol_version": "TLSv1.2"}, 15, "contradicts pgtls_ssl_profile=modern"),
    ({"ssl_min_protocol_version": "TLSv1.3", "ssl_max_protocol_version": "TLSv1.2"}, 15, "is above"),
    ({"ssl_min_protocol_version": "TLSv1.4"}, 15, "is not one of"),
    ({}, 13, None),
]


@pytest.mark.parametrize("settings, version, expected", SSL_SETTINGS)
def test_ssl_problems(settings, version, expected):
    problems = ssl_problems(settings, version)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("version, expected", [
    (13, [("ssl_min_protocol_version", "TLSv1.2"), ("ssl_ecdh_curve", "prime256v1")]),
    (17, [("ssl_min_protocol_version", "TLSv1.2"), ("ssl_ecdh_curve", "prime256v1")]),
    (18, [("ssl_min_protocol_version", "TLSv1.2"), ("ssl_groups", "prime256v1"),
          ("ssl_tls13_ciphers", "TLS_AES_256_GCM_SHA384")]),
])
def test_ssl_settings_use_the_names_of_the_version(version, expected):
    settings = {"ssl_groups": "prime256v1", "ssl_tls13_ciphers": "TLS_AES_256_GCM_SHA384", "ssl_max_protocol_version": ""}
    assert ssl_settings(settings, version) == expected


def test_modern_profile_is_tls13_only():
    assert ssl_settings({"ssl_profile": "modern", "ssl_min_protocol_version": "TLSv1.2"}, 15) == [
        ("ssl_min_protocol_version", "TLSv1.3")]


def test_intermediate_ciphers_are_the_roles_default_and_pass_the_weak_cipher_check():
    defaults = yaml.safe_load((Path(__file__).parents[3] / "roles/server/defaults/main.yml").read_text())
    assert defaults["pgtls_ssl_ciphers"] == INTERMEDIATE_CIPHERS
    assert cipher_problems(INTERMEDIATE_CIPHERS) == []
    # Only AEAD suites with forward secrecy: no CBC, CCM, ARIA, CAMELLIA (what sslyze's intermediate check rejects).
    for name in INTERMEDIATE_CIPHERS.split(":"):
        assert name.startswith(("ECDHE-", "DHE-")) and ("GCM" in name or "CHACHA20" in name), name


def test_intermediate_ciphers_as_openssl_expands_them():
    if not shutil.which("openssl"):
        pytest.skip("no openssl")
    out = subprocess.run(["openssl", "ciphers", "-tls1_2", INTERMEDIATE_CIPHERS], capture_output=True, text=True,
                         check=True).stdout.strip().split(":")
    tls12 = [c for c in out if not c.startswith("TLS_")]
    assert sorted(tls12) == sorted(INTERMEDIATE_CIPHERS.split(":"))


@pytest.mark.parametrize("service, expected", [
    ({"name": "db", "sslnegotiation": "direct", "server_version": 17}, None),
    ({"name": "db", "sslnegotiation": "direct"}, None),
    ({"name": "db", "sslnegotiation": "direct", "server_version": 16}, "needs a PostgreSQL 17 server (this is 16)"),
    ({"name": "db", "sslnegotiation": "postgres", "server_version": 13}, None),
    ({"name": "db", "sslnegotiation": "tls"}, "is not postgres or direct"),
    ({"name": "db"}, None),
])
def test_service_problems(service, expected):
    problems = service_problems([service])
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("libpq, sslcertmode, services, expected", [
    (16, "require", [], None),
    (17, "allow", [{"name": "db", "sslnegotiation": "direct"}], None),
    (None, "", [{"name": "db", "sslnegotiation": "direct"}], None),  # not known: written as before
    (0, "require", [], "set pgtls_client_libpq_version to the major version of libpq"),
    (None, "require", [], "set pgtls_client_libpq_version"),
    (15, "require", [], "sslcertmode=require needs libpq 16 (this host's is 15"),
    ("15.8", "disable", [], "needs libpq 16 (this host's is 15"),
    (16, "verify", [], "pgtls_client_sslcertmode: verify is not one of allow, disable, require"),
    (16, "", [{"name": "db", "sslnegotiation": "direct"}], "pgtls_client_services[0]: sslnegotiation needs libpq 17"),
    (16, "", [{"name": "db", "sslnegotiation": "postgres"}], "sslnegotiation needs libpq 17 (this host's is 16"),
    (15, "", [{"name": "db"}], None),
])
def test_service_problems_by_libpq_version(libpq, sslcertmode, services, expected):
    problems = service_problems(services, libpq_version=libpq, sslcertmode=sslcertmode)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def test_server_log_keeps_the_servers_own_reason():
    # PostgreSQL 16's log after ssl_ecdh_curve = 'X25519:prime256v1' and a reload.
    log = """\
2026-11-27 14:00:01.001 UTC [100] LOG:  received SIGHUP, reloading configuration files
2026-11-27 14:00:01.002 UTC [100] LOG:  parameter "ssl_ecdh_curve" changed to "X25519:prime256v1"
2026-11-27 14:00:01.003 UTC [100] LOG:  ECDH: unrecognized curve name: X25519:prime256v1
2026-11-27 14:00:01.004 UTC [100] LOG:  SSL configuration was not reloaded
2026-11-27 14:00:02.000 UTC [101] LOG:  checkpoint starting: time
"""
    assert server_log_lines(log) == [
        "2026-11-27 14:00:01.003 UTC [100] LOG:  ECDH: unrecognized curve name: X25519:prime256v1",
        "2026-11-27 14:00:01.004 UTC [100] LOG:  SSL configuration was not reloaded"]
    assert server_log_lines("") == []
    assert len(server_log_lines("FATAL: x\n" * 20)) == 6


@pytest.mark.parametrize("rule,expected", [
    ({"type": "host", "database": "all", "user": "app", "address": "all", "method": "cert"}, None),
    ({"type": "hostssl", "database": "all", "user": "app", "address": "10.0.0.0/8", "method": "md5"}, None),
    ({"type": "local", "database": "pgbouncer", "user": "postgres", "method": "peer"}, None),
    ({"type": "host", "database": "all", "user": "app", "address": "db.example.com", "method": "cert"},
     "is not an IP address or CIDR range"),
    ({"type": "host", "database": "all", "user": "app", "address": "10.0.0.1", "method": "cert"}, "needs a /mask"),
    ({"type": "host", "database": "all", "user": "app", "address": "samenet", "method": "cert"},
     "is not an IP address"),
    ({"type": "host", "database": "all", "user": "app", "address": "all", "method": "scram-sha-256"},
     "method 'scram-sha-256' is not one"),
    ({"type": "host", "database": "all", "user": "app", "address": "all", "method": "cert", "options": {"map": "x"}},
     "takes no options"),
    ({"type": "hostgssenc", "database": "all", "user": "app", "address": "all", "method": "cert"}, "type 'hostgssenc'"),
    ({"type": "host", "database": "replication", "user": "app", "address": "all", "method": "md5"},
     "replication is not supported"),
    ({"type": "host", "database": "all", "user": "+admins", "address": "all", "method": "md5"}, "group names"),
    ({"type": "local", "database": "all", "user": "app", "method": "cert"}, "local (socket) line"),
])
def test_pgbouncer_hba_problems(rule, expected):
    problems = pgbouncer_hba_problems([rule])
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems
        assert problems[0].startswith("pgtls_pgbouncer_hba_rules[0]: ")


def test_pgbouncer_hba_rules_reject_revoked_first_and_tls_only():
    lines = pgbouncer_hba_rules(
        [{"type": "local", "database": "pgbouncer", "user": "postgres", "method": "peer"},
         {"type": "host", "database": "all", "user": "app,mallory", "address": "all", "method": "cert"}],
        ["mallory"])
    assert [(r["type"], r["user"], r["address"], r["method"]) for r in lines] == [
        ("host", "mallory", "0.0.0.0/0", "reject"),
        ("host", "mallory", "::/0", "reject"),
        ("local", "postgres", "", "peer"),
        ("hostssl", "app,mallory", "0.0.0.0/0", "cert"),
        ("hostssl", "app,mallory", "::/0", "cert"),
        ("hostnossl", "all", "0.0.0.0/0", "reject"),
        ("hostnossl", "all", "::/0", "reject"),
    ]
    # Every line PgBouncer will read is one the check accepts.
    assert pgbouncer_hba_problems(lines) == []


# The server role's checks before anything changes (assert.yml): one message per cluster, each naming it.
CHECKS = {"hba_rules": [], "hba_ssl_only": False, "ident_maps": [], "ssl_settings": {}, "ciphers": "HIGH:!aNULL",
          "passphrase_command": "", "passphrase_reload": False, "precheck_postmaster": False, "allow_restart": False,
          "root_group": False, "key_group": ""}
CLUSTERS = [{"version": 15, "name": "main", "bin_dir": "/usr/lib/postgresql/15/bin", "bin_dir_source": "default",
             "missing_programs": [], "service": "postgresql@15-main", "key_group_member": None, "pid": 41},
            {"version": 16, "name": "app", "bin_dir": "/opt/pg16/bin", "bin_dir_source": "pg_config --bindir",
             "missing_programs": ["/opt/pg16/bin/initdb", "/opt/pg16/bin/postgres"], "service": "",
             "key_group_member": False, "pid": 52}]


def problems_with(**changed):
    return cluster_problems(CLUSTERS, dict(CHECKS, **changed))


def test_cluster_problems_none_when_everything_is_accepted():
    assert problems_with() == []
    assert cluster_problems([], dict(CHECKS, ciphers="NULL")) == []


def test_cluster_problems_the_hosts_inputs_once_with_the_first_cluster():
    assert problems_with(ciphers="HIGH:eNULL", passphrase_reload=True) == [
        "15/main: " + "; ".join(cipher_problems("HIGH:eNULL")) + "; " + PASSPHRASE_WITHOUT_COMMAND]


def test_cluster_problems_per_cluster_each_named():
    problems = problems_with(precheck_postmaster=True, root_group=True, key_group="pgtls-ssl",
                             ssl_settings={"ssl_tls13_ciphers": "TLS_AES_128_GCM_SHA256"})
    assert problems == [
        "15/main: " + "; ".join(ssl_problems({"ssl_tls13_ciphers": "TLS_AES_128_GCM_SHA256"}, 15))
        + ". Nothing was changed.",
        "16/app: " + "; ".join(ssl_problems({"ssl_tls13_ciphers": "TLS_AES_128_GCM_SHA256"}, 16))
        + ". Nothing was changed. 16/app: /opt/pg16/bin/initdb, /opt/pg16/bin/postgres not found (bin_dir /opt/pg16/bin, "
        "from pg_config --bindir); set bin_dir for this cluster in pgtls_clusters. Nothing was changed. the running "
        "server 16/app (postmaster pid 52) is not in group pgtls-ssl, so it cannot read a root:pgtls-ssl 0640 key; "
        "joining a group takes a restart, not a reload. Set pgtls_allow_restart=true, restart it yourself, or use "
        "pgtls_key_layout=owner. Nothing was changed."]
    # A restart allowed: no key group refusal; 16/app has no service, so pg_ctl is needed, and it is there.
    assert problems_with(allow_restart=True, root_group=True, key_group="pgtls-ssl") == []


def test_cluster_problems_a_cluster_patroni_manages_is_refused_naming_its_file():
    clusters = [dict(CLUSTERS[0], config_dir="/srv/pg/15", managed_by="patroni"), dict(CLUSTERS[0], name="plain")]
    problems = cluster_problems(clusters, CHECKS)
    assert len(problems) == 1 and problems[0].startswith("15/main: Patroni manages it (/srv/pg/15/postgresql.conf ")
    assert "pgtls.ssl.patroni_config" in problems[0] and problems[0].endswith("Nothing was changed.")


def test_cluster_problems_hba_rules_as_the_version_takes_them():
    rules = [{"type": "hostssl", "database": "all", "user": "all", "address": "10.0.0.0/8", "method": "cert",
              "options": "clientcert=verify-ca"}]
    expected = "; ".join(hba_problems(rules, 15))
    assert expected and problems_with(hba_rules=rules)[0] == f"15/main: {expected}"


def test_cluster_problems_names_a_missing_check():
    with pytest.raises(ValueError, match="cluster_problems needs key_group in its checks"):
        cluster_problems(CLUSTERS, {k: v for k, v in CHECKS.items() if k != "key_group"})


@pytest.mark.parametrize("rekey_clusters", [[], ["16/app"], ["15/main", "16/app"]])
def test_cluster_problems_accept_rekey_clusters_of_the_host(rekey_clusters):
    assert problems_with(rekey_clusters=rekey_clusters) == []


@pytest.mark.parametrize("rekey_clusters,named", [(["15/mian"], "15/mian"), (["main", "16/app"], "main"),
                                                  (["15/main", "../16/app", 15], "../16/app, 15")])
def test_cluster_problems_name_a_rekey_cluster_the_host_does_not_have(rekey_clusters, named):
    """A forced re-key of one cluster (pgtls_rekey_clusters) with a typo would replace no key and say nothing."""
    assert problems_with(rekey_clusters=rekey_clusters) == [
        f"15/main: pgtls_rekey_clusters names {named}, not a cluster of this host (15/main, 16/app). Nothing was "
        "changed."]
