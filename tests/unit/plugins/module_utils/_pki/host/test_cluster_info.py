"""Cluster discovery without pg_lsclusters --json (Debian 11 has no JSON.pm), on fixture folders, and each
cluster's program folder."""

from __future__ import annotations

import os

import pytest
from pkitools import Pki, key_pem, pem

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host import cluster_info as cl

# pg_lsclusters (postgresql-common 225, Debian 11) without --json: the oracle we compare discovery with.
LSCLUSTERS = """\
Ver Cluster Port Status Owner    Data directory              Log file
13  main    5432 online postgres /var/lib/postgresql/13/main /var/log/postgresql/postgresql-13-main.log
13  second  5433 down   postgres /srv/pg/13/second           <unknown>
"""


def _debian(tmp_path, proc):
    etc = tmp_path / "etc"
    main = etc / "13" / "main"
    second = etc / "13" / "second"
    for folder in (main / "conf.d", second, tmp_path / "data13"):
        folder.mkdir(parents=True)
    (main / "postgresql.conf").write_text(
        "data_directory = '/var/lib/postgresql/13/main'\t\t# use data in another directory\n"
        "port = 5431  # overridden below by conf.d\n"
        "unix_socket_directories = '/var/run/postgresql' # comment\n"
        "#port = 1\n"
        "include_dir = 'conf.d'\n")
    (main / "conf.d" / "10-port.conf").write_text("port=5432\n")
    (main / "conf.d" / "ignored.txt").write_text("port=9\n")
    (second / "postgresql.conf").write_text("port 5433\nlisten_addresses = 'it''s'\n")
    os.symlink("/srv/pg/13/second", second / "pgdata")
    # A live postmaster for 13/main: a postmaster.pid under the fake data directory, a /proc entry with exe.
    (etc / "13" / "main" / "postgresql.conf").write_text(
        (main / "postgresql.conf").read_text().replace("/var/lib/postgresql/13/main", str(tmp_path / "data13")))
    (tmp_path / "data13" / "postmaster.pid").write_text("4242\n/var/lib/postgresql/13/main\n")
    (proc / "4242").mkdir(parents=True)
    os.symlink("/opt/pg13/bin/postgres", proc / "4242" / "exe")
    return etc


def test_debian_clusters_read_from_etc_match_pg_lsclusters(tmp_path):
    proc = tmp_path / "proc"
    etc = _debian(tmp_path, proc)
    found = cl.debian_clusters(str(etc), str(proc))
    listed = cl.parse_lsclusters(LSCLUSTERS)
    assert [(c["version"], c["name"], c["port"]) for c in found] == [(r["version"], r["name"], r["port"])
                                                                     for r in listed]
    assert [c["running"] for c in found] == [r["status"] == "online" for r in listed]
    main, second = found
    assert main["data_dir"] == str(tmp_path / "data13") and main["pid"] == 4242
    assert main["service"] == "postgresql@13-main" and main["config_dir"] == str(etc / "13" / "main")
    assert main["log_file"] == "/var/log/postgresql/postgresql-13-main.log"
    assert main["socket_dir"] == "/var/run/postgresql"
    assert second["data_dir"] == "/srv/pg/13/second" == listed[1]["data_dir"] and second["pid"] is None
    assert listed[1]["log_file"] == ""


def test_plain_lsclusters_without_header():
    rows = cl.parse_lsclusters("15 main 5432 online,recovery postgres /var/lib/postgresql/15/main syslog\n")
    assert rows == [{"version": 15, "name": "main", "port": 5432, "status": "online,recovery", "owner": "postgres",
                     "data_dir": "/var/lib/postgresql/15/main", "log_file": "syslog"}]


def test_datadir_clusters(tmp_path):
    for version, port in ((16, None), (17, 5444)):
        data = tmp_path / "pgsql" / str(version) / "data"
        data.mkdir(parents=True)
        (data / "PG_VERSION").write_text(f"{version}\n")
        (data / "postgresql.conf").write_text("" if port is None else f"port = {port}\n")
        (data / "postgresql.auto.conf").write_text("" if port is None else "port = '5445'\n")
    (tmp_path / "pgsql" / "data").mkdir()  # no PG_VERSION: not a cluster
    found = cl.datadir_clusters([str(tmp_path / "pgsql" / "*" / "data"), str(tmp_path / "pgsql" / "data")],
                                str(tmp_path / "proc"))
    assert [(c["version"], c["service"], c["port"], c["running"]) for c in found] == [
        (16, "postgresql-16", 5432, False), (17, "postgresql-17", 5445, False)]


def _fake_pg_config(out: str, rc: int = 0):
    """The module's run_command: (rc, stdout, stderr); pg_config runs under coreutils' timeout."""
    def run_command(cmd, **_kw):
        assert cmd[:2] == ["timeout", "10"] and cmd[3:] == ["--bindir", "--version"]
        return rc, out, ""
    return run_command


@pytest.mark.parametrize("pid, pg_config_out, expected, source", [
    (4242, "/usr/bin\nPostgreSQL 15.8\n", "/opt/pg13/bin", "the running postmaster (pid 4242)"),
    (None, "/usr/lib/postgresql/13/bin\npg_config (PostgreSQL) 13.16 (Debian 13.16-0+deb11u1)\n",
     "/usr/lib/postgresql/13/bin", "pg_config --bindir"),
    (None, "/usr/lib/postgresql/15/bin\npg_config (PostgreSQL) 15.8\n", "/usr/pgsql-13/bin", "the layout's default"),
])
def test_bin_dir_order(tmp_path, pid, pg_config_out, expected, source):
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    os.symlink("/opt/pg13/bin/postgres", proc / "4242" / "exe")
    folder, how = cl.bin_dir(13, pid, "/usr/pgsql-{version}/bin", "pg_config", str(proc), _fake_pg_config(pg_config_out))
    assert (folder, how) == (expected, source)


def test_given_clusters_keep_their_bin_dir_and_report_missing_programs(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("pg_ctl", "postgres"):
        (bindir / name).write_text("#!/bin/sh\n")
        (bindir / name).chmod(0o755)
    given = [{"version": 16, "name": "app", "port": 5433, "config_dir": "/x", "data_dir": str(tmp_path / "d"),
              "bin_dir": str(bindir)},
             {"version": "16", "name": "other", "port": 5434, "config_dir": "/x", "data_dir": str(tmp_path / "d")}]
    first, second = cl.describe(given, "debian", str(tmp_path / "nowhere" / "{version}"), [], pg_config=None,
                                proc=str(tmp_path / "proc"))
    assert first["bin_dir_source"] == "pgtls_clusters"
    assert first["missing_programs"] == [str(bindir / "initdb")]
    assert second["bin_dir"] == str(tmp_path / "nowhere" / "16") and second["version"] == 16
    assert second["missing_programs"] == [str(tmp_path / "nowhere" / "16" / p) for p in cl.PROGRAMS]


def test_given_cluster_without_a_data_dir_is_refused():
    with pytest.raises(PkiError, match=r"pgtls_clusters\[0\]: data_dir is missing"):
        cl.describe([{"version": 15, "name": "x", "port": 1, "config_dir": "/x"}], "debian", "/b", [], pg_config=None)


def test_include_loops_are_refused(tmp_path):
    (tmp_path / "a.conf").write_text("include 'a.conf'\n")
    with pytest.raises(PkiError, match="nested more than 10 deep"):
        cl.read_conf(str(tmp_path / "a.conf"))


def test_missing_include_is_an_error_but_include_if_exists_is_not(tmp_path):
    (tmp_path / "a.conf").write_text("include_if_exists = 'nope.conf'\nport = 1\n")
    assert cl.read_conf(str(tmp_path / "a.conf")) == {"port": "1"}
    (tmp_path / "b.conf").write_text("include 'nope.conf'\n")
    with pytest.raises(PkiError, match="nope.conf: cannot read"):
        cl.read_conf(str(tmp_path / "b.conf"))


def test_bin_dir_from_the_command_line_when_exe_is_not_readable(tmp_path):
    """Root in a container has no CAP_SYS_PTRACE: /proc/<pid>/exe of the postgres user's process is unreadable;
    the postmaster's absolute argv[0] (as pg_ctl starts it) tells the same folder."""
    proc = tmp_path / "proc"
    (proc / "77").mkdir(parents=True)
    (proc / "77" / "cmdline").write_bytes(b"/opt/embedded-postgres/pg17/native/bin/postgres\0-D\0/srv/pg/17\0")
    assert cl.bin_dir(17, 77, "/usr/lib/postgresql/{version}/bin", None, str(proc)) == (
        "/opt/embedded-postgres/pg17/native/bin", "the running postmaster (pid 77)")
    (proc / "77" / "cmdline").write_bytes(b"postgres: main\0")  # a relative name: not a folder
    assert cl.bin_dir(17, 77, "/usr/lib/postgresql/{version}/bin", None, str(proc))[1] == "the layout's default"


def test_ready_code_socket_then_loopback_and_running(tmp_path):
    """pg_isready on the socket first, then on 127.0.0.1; 0 means running, 1 and 2 not; none keeps discovery's."""
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_info import ready_code, with_state
    program = tmp_path / "pg_isready"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    calls = []

    def answers(codes):
        def run_command(args, **_kw):
            calls.append(args)
            return codes[len(calls) - 1], "", ""
        return run_command

    cluster = {"bin_dir": str(tmp_path), "port": 5433, "socket_dir": "/run/pg", "running": True}
    assert ready_code(cluster, answers([2, 0])) == 0
    assert calls[0][-2:] == ["-h", "/run/pg"] and calls[1][-2:] == ["-h", "127.0.0.1"] and "5433" in calls[0]
    calls.clear()
    assert ready_code(cluster, answers([1, 2])) == 1
    calls.clear()
    assert ready_code(cluster, answers([0])) == 0 and len(calls) == 1
    calls.clear()
    assert ready_code(cluster, answers([124, 127])) == 2  # timeout's "no answer", then no program: not running
    assert calls[0][:2] == ["timeout", "15"]
    calls.clear()
    states = with_state([dict(cluster), dict(cluster)], answers([0, 2, 2]))
    assert [s["running"] for s in states] == [True, False] and [s["ready_code"] for s in states] == [0, 2]


def test_trust_file_is_read_inside_the_configuration_folder_only(tmp_path):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_info import read_trust_file
    pki = Pki()
    (tmp_path / "a" / "tls").mkdir(parents=True)
    (tmp_path / "a" / "tls" / "root.crt").write_bytes(b"# a comment\n" + pem(pki.root))
    (tmp_path / "b").mkdir()
    (tmp_path / "c" / "tls").mkdir(parents=True)
    (tmp_path / "c" / "tls" / "root.crt").write_text("damaged\n")
    found = read_trust_file([{"config_dir": str(tmp_path / d)} for d in "abc"], "tls/root.crt")
    # The certificates only (as PEM), never anything else the file holds; a damaged one trusts nothing.
    assert [c["trusted_root"] for c in found] == [pem(pki.root).decode(), None, None]
    (tmp_path / "a" / "tls" / "root.crt").write_bytes(pem(pki.root) + key_pem(pki.root_key))
    with pytest.raises(PkiError) as err:
        read_trust_file([{"config_dir": str(tmp_path / "a")}], "tls/root.crt")
    assert str(err.value).startswith("trust_file: ") and "holds a private key" in str(err.value)
    assert "PRIVATE KEY-----" not in str(err.value)
    for bad in ("/etc/passwd", "../b/x", "tls/../../x"):
        with pytest.raises(PkiError, match="inside the configuration folder"):
            read_trust_file([{"config_dir": str(tmp_path / "a")}], bad)


# Per OS family defaults (the server role's __pgtls_os_defaults), picked on the host without gathered facts.
OS_DEFAULTS = {
    "Debian": {"layout": "debian", "bin_dir_default": "/usr/lib/postgresql/{version}/bin", "key_group": "ssl-cert"},
    "RedHat": {"layout": "datadir", "bin_dir_default": "/usr/pgsql-{version}/bin",
               "datadir_globs": ["/var/lib/pgsql/*/data"], "key_group": "pgtls-ssl"},
}
UNSET = {"layout": None, "bin_dir_default": None, "datadir_globs": None, "key_group": None}


def test_the_families_entry_fills_what_the_task_leaves_unset():
    chosen = cl.resolve_defaults(UNSET, "RedHat", OS_DEFAULTS)
    assert chosen == {"layout": "datadir", "bin_dir_default": "/usr/pgsql-{version}/bin",
                      "datadir_globs": ["/var/lib/pgsql/*/data"], "key_group": "pgtls-ssl"}


def test_what_the_task_gives_wins_over_the_family():
    given = dict(UNSET, layout="debian", key_group="pg-keys", datadir_globs=[])
    chosen = cl.resolve_defaults(given, "RedHat", OS_DEFAULTS)
    assert chosen["layout"] == "debian" and chosen["key_group"] == "pg-keys"
    assert chosen["bin_dir_default"] == "/usr/pgsql-{version}/bin"


def test_without_os_defaults_the_fallbacks_apply():
    assert cl.resolve_defaults(UNSET, "Debian", None) == {
        "layout": "debian", "bin_dir_default": "/usr/lib/postgresql/{version}/bin", "datadir_globs": [],
        "key_group": None}


def test_a_family_without_an_entry_is_refused_by_name():
    with pytest.raises(PkiError, match=r"os_defaults: no entry for this host's OS family 'Suse' \(known: Debian, RedHat\)"):
        cl.resolve_defaults(UNSET, "Suse", OS_DEFAULTS)


def test_a_family_without_an_entry_is_fine_when_the_clusters_are_described():
    given = dict(UNSET, clusters=[{"version": 16, "name": "main"}])
    assert cl.resolve_defaults(given, "Suse", OS_DEFAULTS)["bin_dir_default"] == "/usr/lib/postgresql/{version}/bin"


def test_host_names_are_setups(monkeypatch):
    monkeypatch.setattr(cl.platform, "node", lambda: "db7.dc1.example.com")
    monkeypatch.setattr(cl.socket, "getfqdn", lambda: "db7.dc1.example.com")
    assert cl.host_names() == {"hostname": "db7", "nodename": "db7.dc1.example.com",
                               "fqdn": "db7.dc1.example.com"}


@pytest.mark.parametrize(("chosen", "looked"), [
    ({"layout": "debian", "datadir_globs": None}, "layout debian: no /etc/postgresql/<version>/<name>/postgresql.conf"),
    ({"layout": "datadir", "datadir_globs": ["/var/lib/pgsql/*/data"]},
     "layout datadir: no PG_VERSION in /var/lib/pgsql/*/data"),
])
def test_a_host_without_a_cluster_is_refused_naming_where_discovery_looked(chosen, looked):
    msg = cl.nothing_found(chosen)
    assert f"no PostgreSQL cluster found on this host ({looked})" in msg
    assert "pgtls_clusters" in msg


def test_the_module_fails_without_a_cluster_only_when_asked(tmp_path):
    """require_clusters: the server role's check that there is something to manage, in discovery's execution."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "modules"))
    from inprocess import run_module

    args = {"layout": "datadir", "datadir_globs": [str(tmp_path / "none" / "*")]}
    found = run_module("cluster_info", args)
    assert not found.get("failed") and found["clusters"] == [], found
    refused = run_module("cluster_info", dict(args, require_clusters=True))
    assert refused.get("failed"), refused
    assert refused["msg"].startswith("clusters: no PostgreSQL cluster found on this host (layout datadir"), refused


# The OS family from os-release, as setup names it (no facts gathered, setup's collector not in the payload).
@pytest.mark.parametrize(("release", "family"), [
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', "Debian"),
    ('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', "Debian"),
    ('NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n', "Debian"),
    ('NAME="Red Hat Enterprise Linux"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n', "RedHat"),
    ('NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n', "RedHat"),
    ('NAME="AlmaLinux"\nID="almalinux"\nID_LIKE="rhel centos fedora"\n', "RedHat"),
    ('NAME="Oracle Linux Server"\nID="ol"\nID_LIKE="fedora"\n', "RedHat"),
    ('NAME="Amazon Linux"\nID="amzn"\nID_LIKE="fedora"\n', "RedHat"),
    ('NAME="openSUSE Leap"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n', "Suse"),
    ('NAME="Arch Linux"\nID=arch\n', "Archlinux"),
    ('NAME="Alpine Linux"\nID=alpine\n', "Alpine"),
    # A derivative setup does not know takes its parent's family; an unknown one keeps its own name, as in setup.
    ('NAME="Zorin OS"\nID=zorin\nID_LIKE="ubuntu debian"\n', "Debian"),
    ('NAME="NixOS"\nID=nixos\n', "Nixos"),
    ("# comments, blank lines and garbage\n\n=\nnot a field\nID=\n", None),
])
def test_os_family_from_os_release(tmp_path, release, family):
    (tmp_path / "os-release").write_text(release)
    assert cl.os_family((str(tmp_path / "os-release"),)) == family


def test_os_family_falls_back_to_usr_lib_and_is_none_without_os_release(tmp_path):
    (tmp_path / "usr-lib-os-release").write_text("ID=debian\n")
    assert cl.os_family((str(tmp_path / "missing"), str(tmp_path / "usr-lib-os-release"))) == "Debian"
    assert cl.os_family((str(tmp_path / "missing"),)) is None


def test_os_family_is_setups_on_this_machine():
    """The machine running the tests (and each unit venv's distribution): the same family as setup's collector."""
    from ansible.module_utils.facts.system.distribution import DistributionFactCollector

    class Module:
        def run_command(self, *args, **kwargs):
            return 1, "", ""

        def get_bin_path(self, *args, **kwargs):
            return None

    assert cl.os_family() == DistributionFactCollector().collect(module=Module())["os_family"]


# postgresql.conf as Patroni 4.1 writes it (patroni/postgresql/config.py: ConfigWriter, write_postgresql_conf).
PATRONI_CONF = ("# Do not edit this file manually!\n# It will be overwritten by Patroni!\n"
                "include 'postgresql.base.conf'\n\ncluster_name = 'demo'\nhba_file = '/srv/pg/pg_hba.conf'\n")


@pytest.mark.parametrize(("text", "expected"), [
    (PATRONI_CONF, "patroni"),
    ("port = 5432\n", None),
    # The header further down (a comment someone copied) is not Patroni writing the file.
    ("port = 5432\n" + PATRONI_CONF, None),
    (None, None),
])
def test_a_cluster_whose_postgresql_conf_patroni_writes_is_marked(tmp_path, text, expected):
    conf = tmp_path / "conf"
    conf.mkdir()
    if text is not None:
        (conf / "postgresql.conf").write_text(text)
    given = [{"version": 16, "name": "app", "port": 5433, "config_dir": str(conf), "data_dir": str(tmp_path / "d")}]
    (found,) = cl.describe(given, "debian", str(tmp_path / "bin"), [], pg_config=None, proc=str(tmp_path / "proc"))
    assert found["managed_by"] == expected
