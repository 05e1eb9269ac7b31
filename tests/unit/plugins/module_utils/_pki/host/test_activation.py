"""Activation in one execution (the server role's last step): the steps in order, each program as which user, and
on every failure the snapshot restored, the server reloaded and the step named. Programs are recorded, not run
(the e2e and Molecule suites run them against real servers); the material check is the real one, on real files."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import subprocess
import time
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pkitools import Pki, key_pem, pem

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import Revocation, build_crl
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host import activation, snapshot
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.activation import (
    ActivationFailed,
    PostgreSQL,
    parse_sql,
)


class FakeCommands:
    """Answers by the first word that matches the command line; records (argv, as_server)."""

    def __init__(self, answers=None):
        self.user = SimpleNamespace(pw_uid=os.geteuid(), pw_gid=os.getegid(), pw_name="postgres", pw_dir="/")
        self.answers = answers or {}
        self.calls = []

    def run(self, argv, as_server=False, timeout=120):
        self.calls.append((argv, as_server))
        line = " ".join(argv)
        for word, (rc, out, err) in self.answers.items():
            if word in line:
                return subprocess.CompletedProcess(argv, rc, out, err)
        # The parse check's query found nothing, so its session reloaded (PostgreSQL prints t).
        reloaded = "select pg_reload_conf() where not exists" in line
        return subprocess.CompletedProcess(argv, 0, "t\n" if reloaded else "", "")


@pytest.fixture
def cluster_files(tmp_path):
    pki = Pki()
    key, leaf = pki.leaf(name="db1", sans=("db1",))
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "server.crt").write_bytes(pem(leaf, pki.int))
    (tls / "root.crt").write_bytes(pem(pki.root))
    (tls / "server.key").write_bytes(key_pem(key))
    os.chmod(tls / "server.key", 0o600)
    (tmp_path / "pgtls.conf").write_text("ssl = on\n")
    (tmp_path / "pg_hba.conf").write_text("new\n")
    snap = tls / ".pgtls-snapshot"
    snap.mkdir()
    (snap / snapshot.copy_name(str(tmp_path / "pg_hba.conf"))).write_text("old\n")
    log = tmp_path / "postgresql.log"
    log.write_text("LOG:  received SIGHUP, reloading configuration files\n"
                   "LOG:  pg_hba.conf was not reloaded\n")
    return SimpleNamespace(pki=pki, leaf=leaf, tls=tls, root=tmp_path, snap=snap, log=log)


def params(files, **extra):
    cluster = {"version": 15, "name": "main", "port": 5432, "config_dir": str(files.root), "data_dir": "/data",
               "service": "postgresql@15-main", "socket_dir": "/run/pg", "log_file": str(files.log), "running": True,
               "bin_dir": "/usr/lib/postgresql/15/bin"}
    cluster.update(extra.pop("cluster", {}))
    # The server's user: the key's owner here (the material check asks whether it can read the key).
    base = {"cluster": cluster, "server_user": pwd.getpwuid(os.geteuid()).pw_name,
            "settings_file": str(files.root / "pgtls.conf"),
            "cert_path": str(files.tls / "server.crt"), "key_path": str(files.tls / "server.key"),
            "ca_path": str(files.tls / "root.crt"), "crl_path": None, "hostnames": ["db1"], "warn_days": 30,
            "precheck_postmaster": False, "verify": True, "restart": False, "always": True, "wait_seconds": 5,
            "snapshot_dir": str(files.snap), "snapshot_paths": [str(files.root / "pg_hba.conf"),
                                                                str(files.root / "pg_ident.conf")]}
    base.update(extra)
    return base


def serving(*certs):
    """A probe that answers with each certificate in turn (the last one from then on)."""
    answers = list(certs)

    def probe(host, port):
        assert (host, port) == ("127.0.0.1", 5432)
        return {"chain": [answers.pop(0) if len(answers) > 1 else answers[0]]}

    return probe


def test_steps_in_order_the_check_and_the_reload_in_one_session(cluster_files):
    """The material first, then one psql: the parse check's query with pg_reload_conf() where it returns no row -
    no second psql, no systemctl (a reload is a SIGHUP whoever sends it)."""
    commands = FakeCommands()
    done = PostgreSQL(params(cluster_files), commands, probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    assert [s["step"] for s in done["steps"]] == [activation.MATERIAL, activation.PARSE, activation.RELOAD_CHECKED,
                                                  activation.WAIT, activation.LIBPQ]
    assert [s["status"] for s in done["steps"]] == ["ok", "ok", "changed", "ok", "ok"]
    session, libpq = commands.calls
    assert session[0][:7] == ["psql", "-X", "-At", "-h", "/run/pg", "-p", "5432"] and session[1] is True
    sql = session[0][-1]
    assert sql == f"select pg_reload_conf() where not exists ({parse_sql(str(cluster_files.root / 'pgtls.conf'), 15)})"
    assert "pg_hba_file_rules" in sql and "pg_file_settings" in sql
    assert libpq[1] is False and "host=db1 hostaddr=127.0.0.1 port=5432" in libpq[0][-1]
    assert "sslmode=verify-full" in libpq[0][-1] and done["snapshot_removed"] and not cluster_files.snap.exists()
    assert (cluster_files.root / "pg_hba.conf").read_text() == "new\n"


def test_a_restart_keeps_the_check_and_the_service_managers_restart_apart(cluster_files):
    commands = FakeCommands()
    done = PostgreSQL(params(cluster_files, restart=True), commands, probe=serving(cluster_files.leaf),
                      sleep=lambda s: None).run()
    assert [s["step"] for s in done["steps"]] == [activation.MATERIAL, activation.PARSE, activation.RESTART,
                                                  activation.WAIT, activation.LIBPQ]
    assert "pg_reload_conf" not in commands.calls[0][0][-1] and "pg_hba_file_rules" in commands.calls[0][0][-1]
    assert commands.calls[1] == (["systemctl", "restart", "postgresql@15-main"], False)


def test_no_service_manager_reloads_with_sql_and_restarts_with_pg_ctl(cluster_files):
    commands = FakeCommands()
    done = PostgreSQL(params(cluster_files, cluster={"service": ""}), commands, probe=serving(cluster_files.leaf),
                      sleep=lambda s: None).run()
    assert activation.RELOAD_CHECKED in [s["step"] for s in done["steps"]]
    assert commands.calls[0][0][-1].startswith("select pg_reload_conf() where not exists (") and commands.calls[0][1]
    assert not [argv for argv, _as_server in commands.calls if argv[0] == "systemctl"]
    commands = FakeCommands()
    done = PostgreSQL(params(cluster_files, cluster={"service": ""}, restart=True), commands,
                      probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    assert activation.RESTART_PG_CTL in [s["step"] for s in done["steps"]]
    argv, as_server = commands.calls[1]
    assert argv[:4] == ["/usr/lib/postgresql/15/bin/pg_ctl", "restart", "-D", "/data"] and as_server


def test_a_session_that_cannot_run_the_check_fails_the_parse_step(cluster_files):
    commands = FakeCommands({"where not exists": (2, "", "psql: error: connection to server failed")})
    with pytest.raises(ActivationFailed) as failed:
        PostgreSQL(params(cluster_files), commands, probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    assert failed.value.details["failed_step"] == activation.PARSE
    assert "non-zero return code 2: psql: error: connection to server failed" in str(failed.value)
    assert (cluster_files.root / "pg_hba.conf").read_text() == "old\n"


def test_a_parse_error_restores_reloads_and_names_the_step(cluster_files):
    commands = FakeCommands({"pg_hba_file_rules": (0, 'pg_hba.conf line 3: invalid authentication method "md6"\n',
                                                   "")})
    (cluster_files.root / "pg_ident.conf").write_text("created by this run\n")
    with pytest.raises(ActivationFailed) as failed:
        PostgreSQL(params(cluster_files), commands, probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    message = str(failed.value)
    assert message.startswith('15/main: "Configuration files (pg_hba.conf, settings, pg_ident.conf) as PostgreSQL '
                              'parses them" failed: pg_hba.conf line 3: invalid authentication method "md6"')
    assert "The previous files were restored and the server reloaded" in message
    assert (cluster_files.root / "pg_hba.conf").read_text() == "old\n"
    assert not (cluster_files.root / "pg_ident.conf").exists()  # it had no copy: it did not exist before
    assert not cluster_files.snap.exists()
    assert commands.calls[-1][0] == ["systemctl", "reload", "postgresql@15-main"]  # back to the previous files
    # The session's query found the row (so it did not reload), then the query alone named it.
    assert commands.calls[0][0][-1].startswith("select pg_reload_conf() where not exists (")
    assert commands.calls[1][0][-1].startswith("select 'pg_hba.conf line ' ||")
    assert failed.value.details["failed_step"] == activation.PARSE
    assert "pg_hba.conf was not reloaded" in failed.value.details["log_tail"]


def test_each_step_says_how_long_it_took(cluster_files):
    """ms: the step's own time - a reload that takes 0.3 s shows in the reload's step, not in the others. (The
    session's query answers no t here, as if it had found a row the query alone no longer finds: the separate check
    and the service manager's reload follow.)"""

    class SlowReload(FakeCommands):
        def run(self, argv, as_server=False, timeout=120):
            if "reload" in argv:
                time.sleep(0.3)
            return super().run(argv, as_server, timeout)

    commands = SlowReload({"where not exists": (0, "", "")})
    done = PostgreSQL(params(cluster_files), commands, probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    assert [s["step"] for s in done["steps"]][:3] == [activation.MATERIAL, activation.PARSE, activation.RELOAD]
    took = {s["step"]: s["ms"] for s in done["steps"]}
    assert took[activation.RELOAD] >= 300
    assert all(ms < 250 for step, ms in took.items() if step != activation.RELOAD), took


def test_the_old_certificate_still_served_fails_after_waiting(cluster_files):
    _key, old = cluster_files.pki.leaf(name="db1", sans=("db1",))
    waited = []
    with pytest.raises(ActivationFailed, match="the server still serves the previous certificate") as failed:
        PostgreSQL(params(cluster_files), FakeCommands(), probe=serving(old), sleep=waited.append).run()
    # wait_seconds (5) in all, the first probes close together: 0.05, 0.1, 0.2, 0.4, 0.8, then 1 s apart.
    assert waited == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 0.45]
    assert failed.value.details["failed_step"] == activation.WAIT


def test_the_new_certificate_may_take_a_moment(cluster_files):
    _key, old = cluster_files.pki.leaf(name="db1", sans=("db1",))
    waited = []
    done = PostgreSQL(params(cluster_files), FakeCommands(), probe=serving(old, old, cluster_files.leaf),
                      sleep=waited.append).run()
    assert done["steps"][3] == {"step": activation.WAIT, "status": "ok", "attempts": 3, "ms": done["steps"][3]["ms"]}
    assert waited == [0.05, 0.1]


@pytest.mark.parametrize(("total", "delays"), [
    (0, []), (1, [0.05, 0.1, 0.2, 0.4, 0.25]), (2.5, [0.05, 0.1, 0.2, 0.4, 0.8, 0.95])])
def test_the_pauses_between_probes_add_up_to_wait_seconds(total, delays):
    assert activation.backoff(total) == delays and sum(delays) == pytest.approx(total)


def test_libpq_refused_by_pg_hba_still_proves_tls_and_name(cluster_files):
    commands = FakeCommands({"select 1": (2, "", 'FATAL:  no pg_hba.conf entry for host "127.0.0.1"')})
    PostgreSQL(params(cluster_files), commands, probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    commands = FakeCommands({"select 1": (2, "", "server certificate for \"other\" does not match host name")})
    with pytest.raises(ActivationFailed, match="does not match host name"):
        PostgreSQL(params(cluster_files), commands, probe=serving(cluster_files.leaf), sleep=lambda s: None).run()


def test_a_stopped_cluster_gets_the_checks_without_a_server(cluster_files):
    commands = FakeCommands()
    done = PostgreSQL(params(cluster_files, cluster={"running": False}), commands,
                      probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    assert [s["step"] for s in done["steps"]] == [activation.MATERIAL] and commands.calls == []


def test_bad_material_is_refused_before_the_reload(cluster_files):
    (cluster_files.tls / "root.crt").write_bytes(pem(Pki().root))  # another CA's root
    commands = FakeCommands()
    with pytest.raises(ActivationFailed, match="The installed material, as the server will read it"):
        PostgreSQL(params(cluster_files), commands, probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    assert ["systemctl", "reload", "postgresql@15-main"] not in [c[0] for c in commands.calls[:-1]]


def test_no_snapshot_means_this_run_replaced_nothing(cluster_files):
    commands = FakeCommands({"where not exists": (1, "", "could not connect")})
    os.rename(cluster_files.snap, cluster_files.root / "elsewhere")
    with pytest.raises(ActivationFailed, match="This run replaced no file"):
        PostgreSQL(params(cluster_files), commands, probe=serving(cluster_files.leaf), sleep=lambda s: None).run()


def test_parse_sql_by_version():
    assert "pg_ident_file_mappings" not in parse_sql("/etc/pg/conf.d/pgtls.conf", 14)
    sql = parse_sql("/etc/pg/conf.d/pgtls.conf", 16)
    assert "like '%/pgtls.conf'" in sql and "because SSL is disabled" in sql


def test_an_unknown_server_user_is_named():
    with pytest.raises(PkiError, match="user no-such-user-pgtls does not exist"):
        activation.Commands("no-such-user-pgtls", run_command=None)


@pytest.fixture
def run_command(monkeypatch):
    """A real AnsibleModule's run_command (what the cluster_files module passes in), on this machine."""
    from ansible.module_utils import basic

    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": {}}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    return basic.AnsibleModule(argument_spec={}).run_command


def test_commands_run_under_timeout_and_as_the_server_user_with_runuser():
    seen = []

    def record(argv, **kwargs):
        seen.append((argv, kwargs))
        return 0, "", ""

    other = next(u for u in pwd.getpwall() if u.pw_uid != os.geteuid())
    commands = activation.Commands(other.pw_name, record)
    commands.run(["psql", "-c", "select 1"], as_server=True, timeout=30)
    commands.run(["systemctl", "reload", "x"])
    assert seen[0] == (["runuser", "-u", other.pw_name, "--", "timeout", "30", "psql", "-c", "select 1"],
                       {"cwd": "/", "expand_user_and_vars": False})
    assert seen[1] == (["timeout", "120", "systemctl", "reload", "x"], {"cwd": None, "expand_user_and_vars": False})
    own = activation.Commands(pwd.getpwuid(os.geteuid()).pw_name, record)
    own.run(["pg_ctl", "status"], as_server=True, timeout=60)  # already that user: no switch
    assert seen[2][0] == ["timeout", "60", "pg_ctl", "status"]


@pytest.mark.skipif(os.geteuid() != 0, reason="runuser needs root")
def test_commands_really_switch_user_and_time_out(run_command, tmp_path):
    user = next((u for u in pwd.getpwall() if u.pw_uid != 0 and u.pw_dir not in ("", "/nonexistent")
                 and u.pw_shell.endswith("sh")), None) or pwd.getpwnam("nobody")
    commands = activation.Commands(user.pw_name, run_command)
    done = commands.run(["sh", "-c", "id -un; id -G; pwd; echo $HOME"], as_server=True)
    name, groups, cwd, home = done.stdout.split("\n")[:4]
    assert done.returncode == 0 and name == user.pw_name and cwd == "/" and home == user.pw_dir
    assert set(map(int, groups.split())) == set(os.getgrouplist(user.pw_name, user.pw_gid))
    slow = commands.run(["sleep", "5"], timeout=1)
    assert (slow.returncode, slow.stderr) == (124, "sleep: no answer in 1 s")
    missing = commands.run([str(tmp_path / "no-such-program")])
    assert missing.returncode == 127 and "No such file" in missing.stderr


# PgBouncer: the same engine, its own parse check, reload and proof -------------------------------------------------
@pytest.fixture
def bouncer(cluster_files):
    """PgBouncer's files beside the server's: pgbouncer.ini naming them, its own client certificate."""
    root, tls = cluster_files.root, cluster_files.tls
    client_key, client_leaf = cluster_files.pki.client("pgbouncer")
    (tls / "client").mkdir()
    (tls / "client/postgresql.crt").write_bytes(pem(client_leaf, cluster_files.pki.int))
    (tls / "client/postgresql.key").write_bytes(key_pem(client_key))
    os.chmod(tls / "client/postgresql.key", 0o600)
    (root / "userlist.txt").write_text('"app" ""\n')
    (root / "pgbouncer.ini").write_text(
        "[databases]\nappdb = host=db1 dbname=appdb\n\n[pgbouncer]\nlisten_port = 6432\nauth_type = cert\n"
        f"auth_file = {root}/userlist.txt\nclient_tls_sslmode = verify-full\n"
        f"client_tls_key_file = {tls}/server.key\nclient_tls_cert_file = {tls}/server.crt\n"
        f"client_tls_ca_file = {tls}/root.crt\n; a comment\n")
    return cluster_files


def pgbouncer_params(files, **extra):
    pgbouncer = extra.pop("pgbouncer", {})
    base = params(files, settings_file=None, **extra)
    base.pop("cluster")
    base["pgbouncer"] = dict({"port": 6432, "service": "pgbouncer", "config_file": str(files.root / "pgbouncer.ini"),
                              "log_file": str(files.log), "probe_user": "pgtls-probe",
                              "client_cert_path": str(files.tls / "client/postgresql.crt"),
                              "client_key_path": str(files.tls / "client/postgresql.key")}, **pgbouncer)
    return base


def on_6432(*certs):
    answers = list(certs)

    def probe(host, port):
        assert (host, port) == ("127.0.0.1", 6432)
        return {"chain": [answers.pop(0) if len(answers) > 1 else answers[0]]}

    return probe


def test_pgbouncer_running_is_parsed_checked_reloaded_started_and_proved(bouncer):
    commands = FakeCommands()
    done = activation.activation_for(pgbouncer_params(bouncer), commands=commands, probe=on_6432(bouncer.leaf),
                                     sleep=lambda s: None).run()
    assert [(s["step"], s["status"]) for s in done["steps"]] == [
        (activation.MATERIAL, "ok"), (activation.PGBOUNCER_PARSE, "ok"), (activation.PGBOUNCER_RELOAD, "changed"),
        (activation.PGBOUNCER_START, "ok"), (activation.PGBOUNCER_WAIT, "ok"), (activation.LIBPQ, "ok")]
    argvs = [argv for argv, _as_server in commands.calls]
    assert argvs[:3] == [["systemctl", "is-active", "--quiet", "pgbouncer"], ["systemctl", "reload", "pgbouncer"],
                         ["systemctl", "enable", "--now", "pgbouncer"]]
    conninfo = argvs[3][-1]
    assert "host=db1 hostaddr=127.0.0.1 port=6432 dbname=pgbouncer user=pgtls-probe" in conninfo
    assert f"sslcert={bouncer.tls}/client/postgresql.crt sslkey={bouncer.tls}/client/postgresql.key" in conninfo
    assert done["snapshot_removed"] and not bouncer.snap.exists()


def test_a_stopped_pgbouncer_is_started_without_a_parse_check(bouncer):
    commands = FakeCommands({"is-active": (3, "", "")})
    done = activation.activation_for(pgbouncer_params(bouncer), commands=commands, probe=on_6432(bouncer.leaf),
                                     sleep=lambda s: None).run()
    assert [(s["step"], s["status"]) for s in done["steps"]] == [
        (activation.MATERIAL, "ok"), (activation.PGBOUNCER_START, "changed"), (activation.PGBOUNCER_WAIT, "ok"),
        (activation.LIBPQ, "ok")]


def test_pgbouncer_ini_naming_a_missing_file_is_refused_before_the_reload(bouncer):
    ini = bouncer.root / "pgbouncer.ini"
    ini.write_text(ini.read_text().replace(f"{bouncer.tls}/root.crt", f"{bouncer.tls}/gone.crt"))
    commands = FakeCommands()
    with pytest.raises(ActivationFailed) as failed:
        activation.activation_for(pgbouncer_params(bouncer), commands=commands, probe=on_6432(bouncer.leaf),
                                  sleep=lambda s: None).run()
    assert str(failed.value).startswith(f'pgbouncer on port 6432: "{activation.PGBOUNCER_PARSE}" failed: {ini}: '
                                        f"client_tls_ca_file = {bouncer.tls}/gone.crt: no such file")
    assert "The previous files were restored and the PgBouncer reloaded" in str(failed.value)
    assert (bouncer.root / "pg_hba.conf").read_text() == "old\n"
    argvs = [argv for argv, _as_server in commands.calls]
    assert argvs == [["systemctl", "is-active", "--quiet", "pgbouncer"], ["systemctl", "reload", "pgbouncer"]]


def test_pgbouncer_client_certificate_is_checked_as_postgresql_will(bouncer):
    # A server certificate where PgBouncer's client certificate goes: no clientAuth.
    (bouncer.tls / "client/postgresql.crt").write_bytes((bouncer.tls / "server.crt").read_bytes())
    with pytest.raises(ActivationFailed, match="client authentication") as failed:
        activation.activation_for(pgbouncer_params(bouncer), commands=FakeCommands(), probe=on_6432(bouncer.leaf),
                                  sleep=lambda s: None).run()
    assert failed.value.details["failed_step"] == activation.MATERIAL


def test_pgbouncer_asking_for_a_certificate_after_the_name_check_proves_it(bouncer):
    commands = FakeCommands({"select 1": (2, "", "SSL error: tlsv13 alert certificate required")})
    activation.activation_for(pgbouncer_params(bouncer, pgbouncer={"client_cert_path": None,
                                                                   "client_key_path": None}),
                              commands=commands, probe=on_6432(bouncer.leaf), sleep=lambda s: None).run()
    assert "sslcert" not in commands.calls[-1][0][-1]


def test_pgbouncer_still_serving_the_old_certificate_is_a_failure(bouncer):
    _key, old = bouncer.pki.leaf(name="db1", sans=("db1",))
    with pytest.raises(ActivationFailed, match="the server still serves the previous certificate") as failed:
        activation.activation_for(pgbouncer_params(bouncer), commands=FakeCommands(), probe=on_6432(old),
                                  sleep=lambda s: None).run()
    assert failed.value.details["failed_step"] == activation.PGBOUNCER_WAIT


@pytest.mark.parametrize("text, problem", [
    ("[databases]\n", "no [pgbouncer] section with settings"),
    ("[pgbouncer]\nlisten_port 6432\n", "2: not a key = value line"),
    ("[pgbouncer\nlisten_port = 6432\n", "1: section header without ]"),
    ("[pgbouncer]\nauth_hba_file = '/nonexistent/hba'\n", "auth_hba_file = /nonexistent/hba: no such file"),
])
def test_pgbouncer_ini_problems(tmp_path, text, problem):
    ini = tmp_path / "pgbouncer.ini"
    ini.write_text(text)
    assert any(problem in found for found in activation.pgbouncer_ini_problems(str(ini))), \
        activation.pgbouncer_ini_problems(str(ini))


def test_pgbouncer_ini_follows_include(tmp_path):
    (tmp_path / "tls.ini").write_text(f"client_tls_ca_file = {tmp_path}/missing.crt\n")
    (tmp_path / "pgbouncer.ini").write_text(f"[pgbouncer]\nlisten_port = 6432\n%include {tmp_path}/tls.ini\n")
    assert activation.pgbouncer_ini_problems(str(tmp_path / "pgbouncer.ini")) == [
        f"{tmp_path}/pgbouncer.ini: client_tls_ca_file = {tmp_path}/missing.crt: no such file"]
    (tmp_path / "missing.crt").write_text("x")
    assert activation.pgbouncer_ini_problems(str(tmp_path / "pgbouncer.ini")) == []


def test_an_activation_names_its_service(cluster_files):
    bare = params(cluster_files)
    del bare["settings_file"]
    with pytest.raises(PkiError, match="activate.settings_file"):
        activation.activation_for(bare, commands=FakeCommands())
    assert isinstance(activation.activation_for(params(cluster_files), commands=FakeCommands()), activation.PostgreSQL)


# A standby: after the proof, its WAL receiver must stream with verify-full and the replication certificate.
class Receiver(FakeCommands):
    """pg_stat_wal_receiver's answers, one per query in turn (the last one from then on)."""

    def __init__(self, *rows):
        super().__init__()
        self.rows = list(rows)

    def run(self, argv, as_server=False, timeout=120):
        if "pg_stat_wal_receiver" in " ".join(argv):
            self.calls.append((argv, as_server))
            row = self.rows.pop(0) if len(self.rows) > 1 else self.rows[0]
            return subprocess.CompletedProcess(argv, 0, row, "")
        return super().run(argv, as_server, timeout)


STREAMING = ("streaming user=replicator host=db1 port=5432 sslmode=verify-full sslcert=/etc/tls/replication/"
             "postgresql.crt sslkey=/etc/tls/replication/postgresql.key\n")


def test_a_standby_is_proven_streaming_with_its_certificate(cluster_files):
    waited = []
    commands = Receiver("", STREAMING.replace("streaming", "starting"), STREAMING)
    done = PostgreSQL(params(cluster_files, standby_cert_path="/etc/tls/replication/postgresql.crt"), commands,
                      probe=serving(cluster_files.leaf), sleep=waited.append).run()
    assert done["steps"][-1] == {"step": activation.STREAMING, "status": "ok", "attempts": 3,
                                 "ms": done["steps"][-1]["ms"]}
    assert waited == [0.05, 0.1]
    queries = [argv for argv, as_server in commands.calls if "pg_stat_wal_receiver" in " ".join(argv)]
    assert len(queries) == 3 and all(as_server for argv, as_server in commands.calls if argv in queries)


@pytest.mark.parametrize("row", [
    "",  # no WAL receiver at all (the primary refuses it)
    STREAMING.replace("sslmode=verify-full", "sslmode=prefer"),  # streaming, but the primary is not verified
    STREAMING.replace("/etc/tls/replication/postgresql.crt", "/var/lib/postgresql/other.crt"),  # another certificate
])
def test_a_standby_not_streaming_as_wanted_fails_and_is_restored(cluster_files, row):
    waited = []
    with pytest.raises(ActivationFailed, match="The standby streams from its primary") as failed:
        PostgreSQL(params(cluster_files, standby_cert_path="/etc/tls/replication/postgresql.crt"), Receiver(row),
                   probe=serving(cluster_files.leaf), sleep=waited.append).run()
    assert failed.value.details["failed_step"] == activation.STREAMING
    assert sum(waited) == pytest.approx(activation.STREAMING_SECONDS)
    assert (cluster_files.root / "pg_hba.conf").read_text() == "old\n"  # the snapshot restored


def test_a_server_without_standby_cert_path_is_not_asked_for_its_receiver(cluster_files):
    commands = Receiver(STREAMING)
    PostgreSQL(params(cluster_files), commands, probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    assert not any("pg_stat_wal_receiver" in " ".join(call[0]) for call in commands.calls)


def test_a_standby_whose_certificate_is_revoked_is_not_awaited(cluster_files, tmp_path):
    """The revoke playbook ends its walsender on the primary, which then refuses it: nothing to wait for."""
    _key, replica = cluster_files.pki.client("replicator")
    cert = tmp_path / "replication.crt"
    cert.write_bytes(pem(replica, cluster_files.pki.int))
    crl = tmp_path / "root.crl"
    pki = cluster_files.pki
    crl.write_bytes(build_crl(pki.root_issuer, [], None, dt.timedelta(days=30)).public_bytes(Encoding.PEM)
                    + build_crl(pki.issuer, [Revocation(replica.serial_number)], None, dt.timedelta(days=30))
                    .public_bytes(Encoding.PEM))
    commands = FakeCommands()
    done = PostgreSQL(params(cluster_files, standby_cert_path=str(cert), crl_path=str(crl)), commands,
                      probe=serving(cluster_files.leaf), sleep=lambda s: None).run()
    assert done["steps"][-1]["step"] == activation.STREAMING and done["steps"][-1]["status"] == "skipped"
    assert not any("pg_stat_wal_receiver" in " ".join(argv) for argv, _as_server in commands.calls)


def test_a_declared_standby_not_in_recovery_is_not_awaited(cluster_files):
    """Not a standby yet (its primary_conninfo is written before pg_basebackup builds it) or promoted: the step says
    so at once, without the 30 s wait."""
    waited = []
    commands = Receiver(activation.NOT_IN_RECOVERY + "\n")
    done = PostgreSQL(params(cluster_files, standby_cert_path="/etc/tls/replication/postgresql.crt"), commands,
                      probe=serving(cluster_files.leaf), sleep=waited.append).run()
    assert done["steps"][-1]["step"] == activation.STREAMING and done["steps"][-1]["status"] == "skipped"
    assert "pg_basebackup" in done["steps"][-1]["reason"] and not waited
    assert (cluster_files.root / "pg_hba.conf").read_text() != "old\n"  # kept: nothing was restored
