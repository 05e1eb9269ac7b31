"""A cluster's sessions (sessions.py): the walsenders with their TLS, and the sessions of revoked certificates -
matched by serial and issuer against the CRL file a server reads, ended, proven gone; a stopped cluster is not asked;
check mode and end_revoked=false end nothing. psql is a fake here that answers pg_stat_ssl's rows;
tests/e2e/test_replication.py ends real sessions (a walsender and a client) on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from pkitools import Pki
from test_activation import FakeCommands

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import Revocation, build_crl
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host import sessions


def crl_file(tmp_path, pki: Pki, serials, name="root.crl", others=()) -> str:
    """The file a server reads: the root's CRL (empty) and the intermediate's, revoking ``serials`` (and an empty
    CRL of each of ``others``' intermediates)."""
    root = build_crl(pki.root_issuer, [], None, dt.timedelta(days=30))
    inter = build_crl(pki.issuer, [Revocation(serial) for serial in serials], None, dt.timedelta(days=30))
    path = tmp_path / name
    path.write_bytes(root.public_bytes(Encoding.PEM) + inter.public_bytes(Encoding.PEM) + b"".join(
        build_crl(other.issuer, [], None, dt.timedelta(days=30)).public_bytes(Encoding.PEM) for other in others))
    return str(path)


class Backends(FakeCommands):
    """pg_stat_ssl as psql shows it: the rows of the sessions still alive; pg_terminate_backend ends the pids
    it is given (unless ``stubborn``)."""

    def __init__(self, rows, stubborn=(), walsenders=()):
        super().__init__()
        self.rows = list(rows)
        self.walsenders = list(walsenders)
        self.stubborn = set(stubborn)
        self.ended = []

    def run(self, argv, as_server=False, timeout=120):
        self.calls.append((argv, as_server))
        sql = argv[-1]
        if "pg_terminate_backend" in sql:
            pids = [int(p) for p in sql.split("array[", 1)[1].split("]", 1)[0].split(",")]
            self.ended += pids
            self.rows = [row for row in self.rows if row["pid"] not in pids or row["pid"] in self.stubborn]
            return subprocess.CompletedProcess(argv, 0, "", "")
        found = {"certified": self.rows, "walsenders": self.walsenders}
        return subprocess.CompletedProcess(argv, 0, json.dumps(found) + "\n", "")


@pytest.fixture
def world(tmp_path):
    pki = Pki()
    _key, gone = pki.client("gone")
    _key, kept = pki.client("kept")
    _key, replica = pki.client("replicator")
    issuer = sessions.openssl_name(pki.int.subject)
    other = Pki(int_name="Other Intermediate")  # another CA the server trusts, with its CRL in the file
    rows = [
        {"pid": 101, "user": "gone", "application_name": "psql", "backend_type": "client backend",
         "client_addr": "10.0.0.5", "serial": str(gone.serial_number), "issuer": issuer, "subject": "/CN=gone"},
        {"pid": 102, "user": "kept", "application_name": "psql", "backend_type": "client backend",
         "client_addr": "10.0.0.6", "serial": str(kept.serial_number), "issuer": issuer, "subject": "/CN=kept"},
        {"pid": 103, "user": "replicator", "application_name": "db2", "backend_type": "walsender",
         "client_addr": "10.0.0.7", "serial": str(replica.serial_number), "issuer": issuer,
         "subject": "/CN=replicator"},
        {"pid": 104, "user": "gone", "application_name": "psql", "backend_type": "client backend",
         "client_addr": None, "serial": str(gone.serial_number), "issuer": sessions.openssl_name(other.int.subject),
         "subject": "/CN=gone"},  # the same serial from another CA, whose CRL does not list it: not to end
    ]
    crl = crl_file(tmp_path, pki, [gone.serial_number, replica.serial_number, 0x1F2E], others=[other])
    return pki, rows, crl, replica


def args(crl, **extra):
    base = {"clusters": [{"label": "15/main", "port": 5432, "socket_dir": "/run/pg", "running": True,
                          "crl_path": crl}], "poolers": [], "server_user": "postgres", "end_revoked": True,
            "wait_seconds": 10}
    base.update(extra)
    return base


def run(params, commands, check_mode=False, slept=None):
    original = sessions.Commands
    sessions.Commands = lambda user, run_command: commands
    try:
        return sessions.sessions(params, check_mode, sleep=(slept.append if slept is not None else lambda s: None))
    finally:
        sessions.Commands = original


def test_the_revoked_sessions_are_ended_and_the_others_stay(world):
    _pki, rows, crl, _replica = world
    commands = Backends(rows)
    done = run(args(crl), commands)
    assert commands.ended == [101, 103]
    assert [row["pid"] for row in commands.rows] == [102, 104]  # another certificate; the same serial of another CA
    assert done["changed"] and done["ended"] == 2 and done["remaining"] == 0
    cluster = done["clusters"][0]
    assert cluster["revoked_serials"] == 3 and cluster["ended"] == 2
    ended = [(s["user"], s["backend_type"]) for s in cluster["revoked"]]
    assert ended == [("gone", "client backend"), ("replicator", "walsender")]
    # psql as the server's user on the cluster's socket, never as root.
    assert all(as_server and argv[:7] == ["psql", "-X", "-At", "-h", "/run/pg", "-p", "5432"]
               for argv, as_server in commands.calls)


def test_nothing_revoked_is_no_change_and_one_query(world):
    _pki, rows, crl, _replica = world
    commands = Backends([rows[1], rows[3]])
    done = run(args(crl), commands)
    assert not done["changed"] and done["ended"] == 0 and len(commands.calls) == 1


@pytest.mark.parametrize("how", ["check_mode", "report_only"])
def test_check_mode_and_report_only_end_nothing_and_tell(world, how):
    _pki, rows, crl, _replica = world
    commands = Backends(rows)
    done = run(args(crl, end_revoked=how != "report_only"), commands, check_mode=how == "check_mode")
    assert commands.ended == [] and done["ended"] == 0 and done["remaining"] == 2
    assert done["changed"] is (how == "check_mode")  # check mode tells what a run would change


def test_a_session_that_does_not_end_fails_naming_it(world):
    _pki, rows, crl, _replica = world
    slept = []
    with pytest.raises(PkiError, match=r"clusters\[0\] \(15/main\): 1 session\(s\) of revoked certificates are still "
                                       r"there after 10 s: pid 103 \(replicator, serial"):
        run(args(crl), Backends(rows, stubborn=[103]), slept=slept)
    assert sum(slept) == pytest.approx(10)


def test_a_stopped_cluster_is_not_asked_but_its_crl_is_read(world, tmp_path):
    _pki, rows, crl, _replica = world
    commands = Backends(rows)
    done = run(args(crl, clusters=[{"label": "15/main", "port": 5432, "socket_dir": None, "running": False,
                                    "crl_path": crl}]), commands)
    assert commands.calls == [] and not done["changed"] and done["clusters"][0]["revoked_serials"] == 3
    garbage = tmp_path / "garbage.crl"
    garbage.write_text("not a CRL\n")
    with pytest.raises(PkiError, match=rf"clusters\[0\] \(15/main\)\.crl_path: {garbage}: contains no PEM CRL"):
        run(args(crl, clusters=[{"label": "15/main", "port": 5432, "running": False, "crl_path": str(garbage)}]),
            commands)


def test_walsenders_are_reported_with_their_tls_and_without_a_crl_nothing_is_revoked(world):
    _pki, rows, _crl, replica = world
    walsenders = [
        {"pid": 103, "user": "replicator", "application_name": "db2", "client_addr": "10.0.0.7", "state": "streaming",
         "ssl": True, "version": "TLSv1.3", "serial": str(replica.serial_number), "issuer": "/CN=Test Intermediate",
         "subject": "/CN=replicator"},
        {"pid": 105, "user": "postgres", "application_name": "db3", "client_addr": None, "state": "streaming",
         "ssl": False, "version": None, "serial": None, "issuer": None, "subject": None},
    ]
    commands = Backends(rows, walsenders=walsenders)
    done = run(args(None, clusters=[{"label": "15/main", "port": 5432, "running": True, "crl_path": None}]), commands)
    cluster = done["clusters"][0]
    assert [(w["application_name"], w["ssl"], w["version"], w["serial"], w["client_addr"])
            for w in cluster["walsenders"]] == [("db2", True, "TLSv1.3", f"{replica.serial_number:X}", "10.0.0.7"),
                                                ("db3", False, None, None, "local")]
    assert cluster["revoked"] == [] and cluster["revoked_serials"] == 0 and not done["changed"]
    assert commands.ended == []


def test_psql_failing_is_named(world):
    _pki, _rows, crl, _replica = world
    commands = FakeCommands({"pg_stat_ssl": (2, "", "psql: error: connection to server failed")})
    with pytest.raises(PkiError, match=r"clusters\[0\] \(15/main\): psql on port 5432 failed \(2\): psql: error"):
        run(args(crl), commands)


@pytest.mark.parametrize(("shown", "plain"), [
    ("/CN=Example CA", "/CN=Example CA"),
    (r"/CN=Example\, Inc. CA/O=Example", "/CN=Example, Inc. CA/O=Example"),
    (r"/CN=back\\slash", "/CN=back\\slash"),
])
def test_postgresql_escapes_are_read(shown, plain):
    assert sessions._plain(shown) == plain


def test_an_unknown_server_user_is_named(world):
    _pki, _rows, crl, _replica = world
    with pytest.raises(PkiError, match=r"^server_user: user nobody-here does not exist"):
        sessions.sessions(args(crl, server_user="nobody-here"), False)


@pytest.mark.parametrize(("cluster", "message"), [
    ({"port": 0}, r"clusters\[0\] \(15/main\)\.port: must be a port number \(1-65535\), got 0"),
    ({"port": 70000}, r"clusters\[0\] \(15/main\)\.port: must be a port number \(1-65535\), got 70000"),
    ({"socket_dir": "db.example.com"}, r"clusters\[0\] \(15/main\)\.socket_dir: must be an absolute folder \(libpq "
                                       r"reads 'db.example.com' as a host name\)"),
])
def test_a_port_or_socket_folder_psql_cannot_use_is_refused_before_psql_runs(world, cluster, message):
    _pki, rows, crl, _replica = world
    commands = Backends(rows)
    given = dict({"label": "15/main", "port": 5432, "socket_dir": "/run/pg", "running": True, "crl_path": crl},
                 **cluster)
    with pytest.raises(PkiError, match=message):
        run(args(crl, clusters=[given]), commands)
    assert commands.calls == []


def test_a_session_whose_issuer_has_no_crl_in_the_file_is_ended(world, tmp_path):
    """A retired intermediate: the root revoked it and its CRL left the servers, so a new connection with its
    certificates is refused ("unknown ca"), but a session opened before goes on: it is ended like a revoked one. An
    issuer spelled with an attribute outside SHORT_NAMES is never matched by absence (no guess)."""
    pki, rows, _crl, _replica = world
    retired = Pki(int_name="Retired Intermediate")
    _key, old = retired.client("app")
    crl = crl_file(tmp_path, pki, [], name="after-retire.crl")
    leftover = [
        dict(rows[1], pid=201, serial=str(old.serial_number), issuer=sessions.openssl_name(retired.int.subject)),
        dict(rows[1], pid=202, serial=str(old.serial_number), issuer="/CN=Odd CA/businessCategory=x"),
        rows[1],
    ]
    commands = Backends(leftover)
    done = run(args(crl), commands)
    assert commands.ended == [201] and done["ended"] == 1
    assert [row["pid"] for row in commands.rows] == [202, 102]


@pytest.mark.parametrize("dn,known", [("/CN=pgtls PostgreSQL CA G1/O=pgtls", True), ("/CN=a/O=b/OU=c", True),
                                      ("/CN=a/1.2.3.4=x", False), ("/CN=a/businessCategory=b", False), ("", False)])
def test_names_matched_by_absence_are_spelled_with_known_short_names(dn, known):
    assert sessions._known_names(dn) is known


@pytest.mark.parametrize("in_recovery", [True, False])
def test_whether_a_cluster_is_in_recovery_is_reported(world, in_recovery):
    _pki, _rows, crl, _replica = world
    commands = Backends([])
    original = commands.run

    def answer(argv, as_server=False, timeout=120):
        done = original(argv, as_server, timeout)
        return subprocess.CompletedProcess(argv, 0, json.dumps(dict(json.loads(done.stdout),
                                                                    in_recovery=in_recovery)), "")

    commands.run = answer
    done = run(args(crl), commands)
    assert done["clusters"][0]["in_recovery"] is in_recovery
    assert "pg_is_in_recovery()" in sessions.LIST_SQL


# PgBouncer: SHOW CLIENTS as psql --csv prints it (PgBouncer 1.18's columns), ss -K destroys a client's socket.
CLIENT_COLUMNS = ("type,user,database,state,addr,port,local_addr,local_port,connect_time,request_time,wait,wait_us,"
                  "close_needed,ptr,link,remote_pid,tls")


def client_line(user, addr, port, local_addr="10.0.0.2", local_port=6432, database="appdb"):
    return (f"C,{user},{database},active,{addr},{port},{local_addr},{local_port},2026-12-05 10:00:00 UTC,"
            f"2026-12-05 10:00:01 UTC,0,0,0,0x1,0x2,0,TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519")


class Pooler(FakeCommands):
    """PgBouncer's admin console and the kernel: ss -K ends the client whose two ends it names (unless it is
    ``stubborn``, as where the kernel cannot destroy sockets)."""

    def __init__(self, lines, stubborn=False):
        super().__init__()
        self.lines = list(lines)
        self.stubborn = stubborn
        self.killed = []

    def run(self, argv, as_server=False, timeout=120):
        self.calls.append((argv, as_server))
        if argv[0] == "ss":
            dst, src = argv[argv.index("dst") + 1], argv[argv.index("src") + 1]
            self.killed.append((dst, src))
            if not self.stubborn:
                self.lines = [line for line in self.lines if "unix" in line or (dst, src) != tuple(
                    sessions._endpoint(*line.split(",")[first:first + 2]) for first in (4, 6))]
            return subprocess.CompletedProcess(argv, 0, "", "")
        return subprocess.CompletedProcess(argv, 0, "\n".join([CLIENT_COLUMNS] + self.lines) + "\n", "")


def pooler_args(**extra):
    base = {"clusters": [], "poolers": [{"label": "pgbouncer:6432", "port": 6432, "socket_dir": "/run/pg",
                                         "running": True, "revoked_names": ["mallory"]}],
            "server_user": "postgres", "end_revoked": True, "wait_seconds": 10}
    base.update(extra)
    return base


def test_pgbouncer_clients_of_revoked_names_are_ended_by_their_sockets_and_the_others_stay():
    commands = Pooler([client_line("mallory", "10.0.0.5", 51712), client_line("app", "10.0.0.5", 51713),
                       client_line("mallory", "::1", 40000, local_addr="::1"),
                       client_line("mallory", "unix", 0, local_addr="unix", local_port=0, database="pgbouncer")])
    done = run(pooler_args(), commands)
    assert commands.killed == [("10.0.0.5:51712", "10.0.0.2:6432"), ("[::1]:40000", "[::1]:6432")]
    assert [line.split(",")[1] for line in commands.lines] == ["app", "mallory"]  # the other name; a socket client
    assert done["changed"] and done["ended"] == 2 and done["remaining"] == 0
    (pooler,) = done["poolers"]
    assert pooler["ended"] == 2 and pooler["revoked"][0] == {
        "user": "mallory", "database": "appdb", "state": "active", "client_addr": "10.0.0.5:51712",
        "tls": "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519"}
    psql = [argv for argv, as_server in commands.calls if argv[0] == "psql"]
    assert psql[0] == ["psql", "-X", "--csv", "-h", "/run/pg", "-p", "6432", "-d", "pgbouncer", "-c", "SHOW CLIENTS"]
    # The admin console as the pooler's user; ss as root (the module's user).
    assert all(as_server == (argv[0] == "psql") for argv, as_server in commands.calls)


@pytest.mark.parametrize("how", ["check_mode", "report_only"])
def test_pgbouncer_check_mode_and_report_only_end_nothing(how):
    commands = Pooler([client_line("mallory", "10.0.0.5", 51712)])
    done = run(pooler_args(end_revoked=how != "report_only"), commands, check_mode=how == "check_mode")
    assert commands.killed == [] and done["remaining"] == 1 and done["ended"] == 0
    assert done["changed"] is (how == "check_mode")


def test_a_pgbouncer_client_the_kernel_does_not_end_fails_naming_it_and_what_to_do():
    slept = []
    with pytest.raises(PkiError, match=r"poolers\[0\] \(pgbouncer:6432\): 1 client\(s\) of revoked names are still "
                                       r"there after 10 s: mallory from 10.0.0.5:51712 .*restart PgBouncer"):
        run(pooler_args(), Pooler([client_line("mallory", "10.0.0.5", 51712)], stubborn=True), slept=slept)
    assert sum(slept) == pytest.approx(10)


@pytest.mark.parametrize("pooler,message", [
    ({"port": 6432, "running": False, "revoked_names": ["mallory"]}, None),  # stopped: not asked
    ({"port": 6432, "revoked_names": []}, None),  # no revoked name: nothing to look for
    ({"port": 0, "revoked_names": ["mallory"]}, r"poolers\[0\] \(0\)\.port: must be a port number"),
    ({"port": 6432, "socket_dir": "run/pg", "revoked_names": ["m"]}, r"poolers\[0\] \(6432\)\.socket_dir: must be"),
])
def test_a_pgbouncer_not_to_ask_or_that_cannot_be_asked(pooler, message):
    commands = Pooler([client_line("mallory", "10.0.0.5", 51712)])
    params = pooler_args(poolers=[dict({"label": None, "socket_dir": None, "running": True}, **pooler)])
    if message:
        with pytest.raises(PkiError, match=message):
            run(params, commands)
    else:
        assert run(params, commands)["remaining"] == 0
    assert commands.calls == []


@pytest.mark.parametrize("output,message", [
    ("type,name\nC,x\n", r"SHOW CLIENTS on port 6432 has no user, addr, port"),
    (CLIENT_COLUMNS + "\n" + client_line("mallory", "not-an-address", 1) + "\n", r"gave 'not-an-address' port"),
])
def test_pgbouncer_output_that_is_not_what_it_should_be_is_refused(output, message):
    class Odd(Pooler):
        def run(self, argv, as_server=False, timeout=120):
            if argv[0] == "psql":
                self.calls.append((argv, as_server))
                return subprocess.CompletedProcess(argv, 0, output, "")
            return super().run(argv, as_server, timeout)

    commands = Odd([])
    with pytest.raises(PkiError, match=message):
        run(pooler_args(), commands)
    assert not any(argv[0] == "ss" for argv, _as_server in commands.calls)
