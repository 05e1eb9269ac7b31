"""Streaming replication over verify-full with a certificate, on two real PostgreSQL 15 clusters of this machine (each
its own inventory host, no service manager): the standby starts streaming over the primary's Unix socket without
TLS (what pg_basebackup -R leaves), the server role gives it a replication certificate and a primary_conninfo with
sslmode=verify-full, and the primary's walsender is then seen over TLS with that certificate's serial. A second run
changes nothing; inputs that cannot work are refused before any file changes; the replication role is refused
without its certificate."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import PG_BIN, ROOT, TARGET_PYTHON, Cluster, as_postgres, run_playbook
from openbao import ANY_NAME, BaoServer
from openbao import ROLE as BAO_ROLE

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import serial_hex

USER = "replicator"
HBA = [{"type": "local", "database": "all", "user": "postgres", "method": "peer"},
       {"type": "hostssl", "database": "all", "user": "postgres", "address": "127.0.0.1/32", "method": "trust"}]


def described(cluster: Cluster) -> dict:
    return {"version": 15, "name": "repl", "port": cluster.port, "config_dir": str(cluster.data),
            "data_dir": str(cluster.data), "service": "", "socket_dir": str(cluster.sockets),
            "log_file": str(cluster.log)}


def receiver(standby: Cluster) -> str:
    return standby.admin("select status || ' ' || coalesce(conninfo, '') from pg_stat_wal_receiver").stdout.strip()


def wait_streaming(standby: Cluster, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    seen = ""
    while time.monotonic() < deadline:
        seen = receiver(standby)
        if seen.startswith("streaming"):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"the standby does not stream: {seen!r}")


@contextlib.contextmanager
def replicated(base: Path):
    """A primary (replicator exists) and a standby made by pg_basebackup, streaming over the primary's socket."""
    bases = {name: base / name for name in ("primary", "standby")}
    for folder in bases.values():
        folder.mkdir(mode=0o755, parents=True)
    primary = Cluster(bases["primary"], bases["primary"] / "unused")
    primary.init("local all all trust\nlocal replication all trust\n")
    conf = primary.data / "postgresql.conf"
    conf.write_text("".join(line for line in conf.read_text().splitlines(True) if not line.startswith("ssl")))
    primary.start()
    primary.admin(f"create role {USER} with replication login")
    standby = Cluster(bases["standby"], bases["standby"] / "unused")
    for folder in (standby.data, standby.sockets):
        folder.mkdir(mode=0o700)
        shutil.chown(folder, "postgres", "postgres")
    as_postgres(str(PG_BIN / "pg_basebackup"), "-D", str(standby.data), "-h", str(primary.sockets), "-p",
                str(primary.port), "-U", "postgres", "-X", "stream", "--no-sync")
    with (standby.data / "postgresql.conf").open("a") as handle:
        handle.write(f"\nport = {standby.port}\nunix_socket_directories = '{standby.sockets}'\n"
                     f"primary_conninfo = 'host={primary.sockets} port={primary.port} user=postgres'\n")
    (standby.data / "standby.signal").touch()
    shutil.chown(standby.data / "standby.signal", "postgres", "postgres")
    try:
        standby.start()
        wait_streaming(standby)
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()


@pytest.fixture(scope="module")
def pair(workdir):
    with replicated(workdir) as found:
        yield found


def inventory(tmp_path, primary: Cluster, standby: Cluster, pki, clients: dict | None = None, **standby_vars) -> str:
    """The pair as pgtls_replicas; ``clients``: an application host's pgtls_client_certs (the group pgtls_clients),
    with the CA folder's CRLs beside root.crt (pgtls_client_crl)."""
    common = {"ansible_connection": "local", "ansible_host": "127.0.0.1"}
    found = {"all": {"vars": {"pgtls_pki_dir": str(pki), "pgtls_hba_rules": HBA,
                              "pgtls_replication_addresses": ["127.0.0.1/32"], "pgtls_key_layout": "owner"},
                     "children": {"pgtls_replicas": {"hosts": {
                         # The name clients use for the primary: the standby's certificate keeps it too.
                         "primary": dict(common, pgtls_clusters=[described(primary)],
                                         pgtls_server_extra_sans=["db.example.test"]),
                         "standby": dict(common, pgtls_clusters=[described(standby)],
                                         **{"pgtls_primary_host": "primary", **standby_vars})}}}}}
    if clients:
        app = dict(common, pgtls_client_certs=clients, pgtls_client_crl=True)
        found["all"]["children"]["pgtls_clients"] = {"hosts": {"app": app}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(found))
    return str(path)


def play(inv: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_playbook("replication_local.yml", {}, "-i", inv, check=check)


def recap(output: str) -> dict:
    return {host: int(changed) for host, changed in re.findall(r"^(\w+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def files(*clusters: Cluster) -> dict:
    return {str(p): p.read_bytes() for c in clusters for p in sorted(c.data.rglob("*"))
            if p.is_file() and p.suffix in (".conf", ".crt", ".key", ".crl")}


def test_the_standby_streams_over_verify_full_with_its_certificate(pair, workdir, tmp_path_factory):
    primary, standby = pair
    pki = workdir / "replication-pki"
    inv = inventory(tmp_path_factory.mktemp("inv"), primary, standby, pki)
    done = play(inv)
    assert "The standby streams from its primary over verify-full with the replication certificate: ok" in \
        done.stdout, done.stdout[-4000:]
    cert = standby.data / "tls" / "replication" / "postgresql.crt"
    key = standby.data / "tls" / "replication" / "postgresql.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600" and key.owner() == "postgres"
    subject = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-subject", "-serial", "-ext",
                              "extendedKeyUsage"], capture_output=True, text=True, check=True).stdout
    assert f"CN = {USER}" in subject and "TLS Web Client Authentication" in subject, subject
    serial = int(re.search(r"serial=([0-9A-F]+)", subject).group(1), 16)
    seen = wait_streaming(standby)
    assert "sslmode=verify-full" in seen and f"sslcert={cert}" in seen and "host=127.0.0.1" in seen, seen
    # On the primary: the walsender over TLS, authenticated by the standby's certificate.
    row = primary.admin("select s.ssl, s.client_dn, s.client_serial from pg_stat_replication r join pg_stat_ssl s "
                        "using (pid)").stdout.strip()
    assert row == f"t|/CN={USER}|{serial}", row
    hba = (primary.data / "pg_hba.conf").read_text()
    assert re.search(rf"^hostssl\s+replication\s+{USER}\s+127\.0\.0\.1/32\s+cert$", hba, re.M), hba
    # A switchover keeps verify-full by the primary's shared name: the standby serves it too.
    served = subprocess.run(["openssl", "x509", "-in", str(standby.data / "tls" / "server.crt"), "-noout", "-ext",
                             "subjectAltName"], capture_output=True, text=True, check=True).stdout
    assert "DNS:standby" in served and "DNS:db.example.test" in served, served


def test_a_second_run_changes_nothing_in_one_execution_per_host(pair, workdir, tmp_path_factory):
    """The standby's replication certificate is inspected with its server key by discovery's execution."""
    primary, standby = pair
    tmp = tmp_path_factory.mktemp("inv")
    inv = inventory(tmp, primary, standby, workdir / "replication-pki")
    log, wrapper = tmp / "executions.log", tmp / "python-logging"
    wrapper.write_text(f"#!/bin/sh\necho \"$$ $*\" >> {log}\nexec {TARGET_PYTHON} \"$@\"\n")
    wrapper.chmod(0o755)
    log.write_text("")
    before = files(primary, standby)
    done = run_playbook("replication_local.yml", {}, "-i", inv, ANSIBLE_PYTHON_INTERPRETER=str(wrapper))
    assert recap(done.stdout) == {"primary": 0, "standby": 0}, done.stdout[-3000:]
    assert files(primary, standby) == before
    assert len(log.read_text().splitlines()) == 2  # one module execution on each host
    assert wait_streaming(standby)


def test_the_replication_role_is_refused_without_its_certificate(pair):
    primary, _standby = pair
    # Over TLS without a certificate, and over the socket: pg_hba.conf's cert line, then its reject lines.
    no_cert = subprocess.run(["psql", "-X", "-At", "-c", "select 1", f"host=127.0.0.1 port={primary.port} "
                              f"user={USER} dbname=postgres sslmode=require"], capture_output=True, text=True,
                             check=False)
    assert no_cert.returncode != 0 and "certificate" in no_cert.stderr, no_cert.stderr
    local = as_postgres("psql", "-X", "-At", "-h", str(primary.sockets), "-p", str(primary.port), "-U", USER, "-d",
                        "postgres", "-c", "select 1", check=False)
    assert local.returncode != 0 and "rejects connection" in local.stderr, local.stderr


@pytest.mark.parametrize(("standby_vars", "message"), [
    ({"pgtls_primary_address": "primary.example.com"},
     "standby: pgtls_primary_address: primary.example.com is not a name of primary's certificate"),
    ({"pgtls_primary_host": "nowhere"}, "standby: pgtls_primary_host: 'nowhere' is not a host of the inventory"),
    ({"pgtls_replication_user": "repl user"}, "pgtls_replication_user: 'repl user' is not a plain role name"),
])
def test_inputs_that_cannot_work_are_refused_before_anything_changes(pair, workdir, tmp_path_factory, standby_vars,
                                                                     message):
    primary, standby = pair
    inv = inventory(tmp_path_factory.mktemp("inv"), primary, standby, workdir / "replication-pki", **standby_vars)
    before = files(primary, standby)
    done = play(inv, check=False)
    assert done.returncode != 0
    assert message in done.stdout and "Nothing was changed." in done.stdout, done.stdout[-3000:]
    assert files(primary, standby) == before
    assert wait_streaming(standby)


def test_a_cycle_of_standbys_is_refused(pair, workdir, tmp_path_factory):
    primary, standby = pair
    path = inventory(tmp_path_factory.mktemp("inv"), primary, standby, workdir / "replication-pki")
    found = yaml.safe_load(open(path))
    found["all"]["children"]["pgtls_replicas"]["hosts"]["primary"]["pgtls_primary_host"] = "standby"
    with open(path, "w") as handle:
        handle.write(json.dumps(found))
    before = files(primary, standby)
    done = play(path, check=False)
    assert done.returncode != 0
    assert "pgtls_primary_host: the standbys form a cycle (standby -> primary -> standby)" in done.stdout, \
        done.stdout[-3000:]
    assert files(primary, standby) == before


def test_a_primary_conninfo_in_postgresql_auto_conf_is_named_and_the_files_restored(pair, workdir, tmp_path_factory):
    """pg_basebackup -R and ALTER SYSTEM write primary_conninfo into postgresql.auto.conf, which wins over the
    managed file: the configuration check names it, the previous files come back, replication goes on."""
    primary, standby = pair
    inv = inventory(tmp_path_factory.mktemp("inv"), primary, standby, workdir / "replication-pki",
                    pgtls_primary_application_name="db2")  # a change, so the standby's files are written
    standby.admin(f"alter system set primary_conninfo = 'host={primary.sockets} port={primary.port} user=postgres'")
    try:
        before = files(standby)
        done = play(inv, check=False)
        assert done.returncode != 0
        assert "primary_conninfo from" in done.stdout and "is overridden by" in done.stdout, done.stdout[-3000:]
        assert "postgresql.auto.conf" in done.stdout
        assert files(standby) == before
    finally:
        standby.admin("alter system reset primary_conninfo")
        standby.admin("select pg_reload_conf()")
    assert wait_streaming(standby)


class Background:
    """Runs ``step`` over and over in a thread (``pause`` seconds apart) while a ``with`` block runs the playbooks."""

    pause = 0.0

    def __init__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop.is_set():
            self.step()
            time.sleep(self.pause)

    def step(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class Watch(Background):
    """Polls the standby's WAL receiver (pid, status) every 0.1 s while the role runs: how many times it reconnected
    (a new WAL receiver) and the longest time it was not streaming."""

    pause = 0.1

    def __init__(self, standby: Cluster):
        super().__init__()
        self.standby, self.seen = standby, []

    def step(self) -> None:
        row = self.standby.admin("select pid || ' ' || status from pg_stat_wal_receiver").stdout.split()
        self.seen.append((time.monotonic(), row[0] if row else None, row[1] if len(row) > 1 else "none"))

    def reconnects(self) -> int:
        pids = [pid for _at, pid, _status in self.seen if pid]
        return sum(1 for before, after in zip(pids, pids[1:]) if before != after)

    def longest_gap(self) -> float:
        longest, since = 0.0, None
        for at, _pid, status in self.seen:
            if status != "streaming":
                since = at if since is None else since
                longest = max(longest, at - since)
            else:
                since = None
        return longest


def test_renewals_on_the_primary_and_the_standby_keep_it_streaming(pair, workdir, tmp_path_factory):
    """Every certificate of the pair renewed in one run (the server certificates of both, the standby's replication
    certificate): the standby goes on streaming - no reconnect, no gap - and no WAL is lost."""
    primary, standby = pair
    pki = workdir / "replication-pki"
    tmp = tmp_path_factory.mktemp("renew")
    play(inventory(tmp, primary, standby, pki))
    before = files(primary, standby)
    primary.admin("create table if not exists pgtls_wal (n int)")
    # 400 days before expiry, of 730: every certificate of 365 days is renewed now, once.
    path = inventory(tmp, primary, standby, pki)
    found = yaml.safe_load(open(path))
    found["all"]["vars"].update(pgtls_server_valid_days=730, pgtls_server_renew_before_days=400)
    with open(path, "w") as handle:
        handle.write(yaml.safe_dump(found))
    with Watch(standby) as watch:
        primary.admin("insert into pgtls_wal select generate_series(1, 1000)")
        done = play(path)
        primary.admin("insert into pgtls_wal select generate_series(1001, 2000)")
        time.sleep(1)
    after = files(primary, standby)
    renewed = {Path(p).name for p in after if p.endswith(".crt") and after[p] != before.get(p)}
    assert renewed >= {"server.crt", "postgresql.crt"}, (renewed, done.stdout[-3000:])
    # key_rotation=on_renewal (the default): each renewed certificate is for a new key, made on its host.
    rekeyed = {Path(p).name for p in after if p.endswith(".key") and after[p] != before.get(p)}
    assert rekeyed >= {"server.key", "postgresql.key"}, rekeyed
    assert not [p for p in after if p.endswith(".pgtls-new")]
    print(f"\nrenewals: {len(watch.seen)} polls, {watch.reconnects()} reconnects, longest gap "
          f"{watch.longest_gap():.2f} s")
    assert watch.reconnects() == 0 and watch.longest_gap() == 0.0, watch.seen
    lsn = primary.admin("select pg_current_wal_lsn()").stdout.strip()
    deadline = time.monotonic() + 10
    while standby.admin(f"select pg_last_wal_replay_lsn() >= '{lsn}'").stdout.strip() != "t":
        assert time.monotonic() < deadline, "the standby did not replay the primary's WAL"
        time.sleep(0.1)
    assert standby.admin("select count(*) from pgtls_wal").stdout.strip() == "2000"


def test_a_forced_rekey_replaces_every_key_once_and_keeps_the_standby_streaming(pair, workdir, tmp_path_factory):
    """pgtls_rekey_before (a key compromise suspected, an algorithm policy): every key of a certificate issued before
    it is replaced by a new one made on its host and certified, the standby streaming all along; the same run again
    changes nothing (the certificates are newer now)."""
    primary, standby = pair
    path = inventory(tmp_path_factory.mktemp("rekey"), primary, standby, workdir / "replication-pki")
    play(path)
    before = files(primary, standby)
    time.sleep(1.1)  # the certificates were issued in an earlier second than rekey_before
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with Watch(standby) as watch:
        done = run_playbook("replication_local.yml", {"pgtls_rekey_before": at}, "-i", path)
    after = files(primary, standby)
    rekeyed = sorted(p for p in after if p.endswith(".key") and after[p] != before.get(p))
    print(f"\nforced re-key: {rekeyed}; {len(watch.seen)} polls, {watch.reconnects()} reconnects, longest gap "
          f"{watch.longest_gap():.2f} s")
    assert len(rekeyed) == 3, rekeyed  # the primary's and the standby's server keys, the replication key
    assert watch.reconnects() == 0 and watch.longest_gap() == 0.0, watch.seen
    assert min(recap(done.stdout).values()) > 0, done.stdout[-3000:]
    again = run_playbook("replication_local.yml", {"pgtls_rekey_before": at}, "-i", path)
    assert recap(again.stdout) == {"primary": 0, "standby": 0}, again.stdout[-3000:]
    # The new replication certificate works at the next connection.
    reconnect(primary, standby)
    assert wait_streaming(standby)


class Steady(Background):
    """A client that connects verify-full by name, with a new TLS handshake each time, to the primary and the standby
    in turn while the playbooks run: how many connections succeeded and which failed."""

    def __init__(self, root, *clusters: Cluster, crl=None):
        super().__init__()
        self.conninfos = [f"host=db.example.test hostaddr=127.0.0.1 port={c.port} dbname=postgres user=postgres "
                          f"sslmode=verify-full sslrootcert={root} connect_timeout=5"
                          + (f" sslcrl={crl}" if crl else "") for c in clusters]
        self.ok, self.failed, self.turn = 0, [], 0

    def step(self) -> None:
        done = subprocess.run(["psql", "-X", "-Atc", "select 1", self.conninfos[self.turn % len(self.conninfos)]],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip() == "1":
            self.ok += 1
        else:
            self.failed.append(done.stderr.strip()[-300:])
        self.turn += 1


def lifetime(path) -> tuple[float, int]:
    """The lifetime (days) and serial of a certificate file, as openssl reads it."""
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-startdate", "-enddate", "-serial"],
                         capture_output=True, text=True, check=True).stdout
    dates = dict(line.split("=", 1) for line in out.splitlines())
    return (_seconds(dates["notAfter"]) - _seconds(dates["notBefore"])) / 86400, int(dates["serial"], 16)


def _seconds(text: str) -> float:
    return time.mktime(time.strptime(text.replace(" GMT", ""), "%b %d %H:%M:%S %Y"))


def test_a_week_of_short_lived_certificates_renewed_by_daily_runs_fails_no_connection(
        pair, workdir, tmp_path_factory):
    """Seven-day certificates (servers and the standby's replication certificate), re-issued with new keys by seven
    scheduled rotate runs in a row (each run a day: every certificate issued before it is due, pgtls_rekey_before
    stands for the clock), with a steady verify-full client and the standby streaming: 0 failed connections, 0
    reconnects, no gap; each run installs a new 7-day certificate and key on every cluster."""
    primary, standby = pair
    pki = workdir / "replication-pki"
    path = inventory(tmp_path_factory.mktemp("week"), primary, standby, pki)
    found = yaml.safe_load(open(path))
    found["all"]["vars"].update(pgtls_server_valid_days=7, pgtls_server_renew_before_days=1,
                                pgtls_run_interval_hours=24)
    with open(path, "w") as handle:
        handle.write(yaml.safe_dump(found))
    certs = [primary.data / "tls" / "server.crt", standby.data / "tls" / "server.crt",
             standby.data / "tls" / "replication" / "postgresql.crt"]
    serials = []
    with Steady(pki / "root.crt", primary, standby) as steady, Watch(standby) as watch:
        for _day in range(7):
            time.sleep(1.1)  # the certificates in place were issued in an earlier second
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            run_playbook(str(ROOT / "playbooks" / "rotate.yml"), {"pgtls_servers_group": "pgtls_replicas",
                                                                  "pgtls_rekey_before": at}, "-i", path)
            found = [lifetime(cert) for cert in certs]
            assert all(6.9 < days < 7.1 for days, _serial in found), found
            serials.append(tuple(serial for _days, serial in found))
    print(f"\na week of 7-day certificates: {len(serials)} renewals of {len(certs)} certificates, {steady.ok} "
          f"verify-full connections, {len(steady.failed)} failed; {watch.reconnects()} reconnects, longest gap "
          f"{watch.longest_gap():.2f} s")
    assert len(set(serials)) == 7 and all(len(set(day)) == 3 for day in serials)  # every certificate, every day
    assert steady.failed == [] and steady.ok > 100, (steady.ok, steady.failed[:5])
    assert watch.reconnects() == 0 and watch.longest_gap() == 0.0, watch.seen
    # The standby's next connection uses the last replication certificate.
    found = reconnect(primary, standby)
    assert found.split(" ", 1)[0] == str(serials[-1][2]), found
    assert wait_streaming(standby)


def walsender_certificate(primary: Cluster) -> str:
    return primary.admin("select s.client_serial || ' ' || s.issuer_dn from pg_stat_replication r join pg_stat_ssl s "
                         "using (pid)").stdout.strip()


def reconnect(primary: Cluster, standby: Cluster) -> str:
    """End the walsender: the standby connects again, now with the files it holds (libpq reads them at connect)."""
    primary.admin("select pg_terminate_backend(pid) from pg_stat_replication")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = walsender_certificate(primary)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the standby did not connect again: {receiver(standby)!r}")


@pytest.mark.parametrize("step", ["start", "retire"])
def test_an_intermediate_rotation_keeps_the_standby_streaming(pair, workdir, tmp_path_factory, step):
    """rotate start: every certificate of the pair re-issued by the new intermediate, with the standby streaming all
    along; its next connection presents the new replication certificate, which the primary accepts (its CRL file has
    the new intermediate's CRL). rotate retire: the previous intermediate revoked by the root, still streaming, and
    a reconnect still works."""
    primary, standby = pair
    path = inventory(tmp_path_factory.mktemp("rotate"), primary, standby, workdir / "replication-pki")
    play(path)
    cert = standby.data / "tls" / "replication" / "postgresql.crt"
    before = cert.read_bytes()
    with Watch(standby) as watch:
        run_playbook(str(ROOT / "playbooks" / "rotate.yml"), {"pgtls_rotate_intermediate": step,
                                                              "pgtls_servers_group": "pgtls_replicas"}, "-i", path)
    print(f"\nrotate {step}: {len(watch.seen)} polls, {watch.reconnects()} reconnects, longest gap "
          f"{watch.longest_gap():.2f} s")
    assert watch.reconnects() == 0 and watch.longest_gap() == 0.0, watch.seen
    subject = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-serial", "-issuer"],
                             capture_output=True, text=True, check=True).stdout
    serial = int(re.search(r"serial=([0-9A-F]+)", subject).group(1), 16)
    if step == "start":
        assert cert.read_bytes() != before  # re-issued by the new intermediate
    found = reconnect(primary, standby)
    assert found.split(" ", 1)[0] == str(serial), (found, subject)
    assert wait_streaming(standby)


def test_the_audit_shows_the_standby_and_its_walsender_by_certificate(pair, workdir, tmp_path_factory):
    """The audit playbook: the primary's walsender over TLS with the standby's certificate, the standby's replication
    certificate checked; both in the table and the JSON report; nothing changes."""
    primary, standby = pair
    tmp = tmp_path_factory.mktemp("audit")
    path = inventory(tmp, primary, standby, workdir / "replication-pki")
    play(path)
    before = files(primary, standby)
    report = tmp / "audit.json"
    done = run_playbook(str(ROOT / "playbooks" / "audit.yml"), {"pgtls_servers_group": "pgtls_replicas",
                                                                "pgtls_audit_json": str(report)}, "-i", path)
    assert re.search(r"primary\s+15/repl\s+\d+\s+ok\s+ok\s+TLSv1.3\s+-\s+1 by cert\s+ok", done.stdout), done.stdout[-3000:]
    assert re.search(r"standby\s+15/repl\s+\d+\s+ok\s+ok\s+TLSv1.3\s+-\s+standby\s+ok", done.stdout), done.stdout[-3000:]
    records = {r["host"]: r for r in json.loads(report.read_text())["servers"]}
    [sender] = [f for f in records["primary"]["findings"] if f["check"] == "walsender"]
    assert sender["status"] == "ok" and "over TLSv1.3, certificate /CN=replicator serial" in sender["message"], sender
    assert any(f["check"] == "replication_certificate" and "days left" in f["message"]
               for f in records["standby"]["findings"])
    # The standby's replication certificate is its own kind in the report: the file's fingerprint, a renewal time.
    cert = standby.data / "tls" / "replication" / "postgresql.crt"
    fingerprint = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                                 capture_output=True, text=True, check=True).stdout.split("=", 1)[1].strip()
    assert records["standby"]["replication"]["fingerprint_sha256"] == fingerprint
    due, end = (dt.datetime.fromisoformat(records["standby"]["replication"][k]) for k in ("renews_at", "not_after"))
    assert due < end
    assert records["primary"]["replication"] is None
    assert records["primary"]["ready"] is True and records["standby"]["ready"] is True
    assert files(primary, standby) == before


def certificates_in(path) -> list[str]:
    """The subjects of the certificates in a PEM file, as openssl reads them (the oracle)."""
    text = Path(path).read_text()
    return [subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"], input=block + "-----END "
                           "CERTIFICATE-----\n", capture_output=True, text=True, check=True).stdout.strip()
            for block in text.split("-----END CERTIFICATE-----")[:-1]]


def replication_login(primary: Cluster, folder, trust) -> subprocess.CompletedProcess:
    """A physical replication connection as the standby makes it (verify-full, its client certificate, cert login)."""
    return subprocess.run(["psql", "-X", "-Atc", "IDENTIFY_SYSTEM",
                           f"host=db.example.test hostaddr=127.0.0.1 port={primary.port} user={USER} replication=true "
                           f"sslmode=verify-full sslrootcert={trust} sslcert={folder}/postgresql.crt "
                           f"sslkey={folder}/postgresql.key connect_timeout=5"],
                          capture_output=True, text=True, check=False)


def test_a_root_rotation_fails_no_verify_full_connection_and_retires_the_old_root(pair, workdir, tmp_path_factory):
    """Root rotation with an overlap, each step a run of the rotate playbook: start (both roots in every trust file),
    switch (every certificate of the pair re-issued under the new root's intermediate, the old root still trusted),
    retire (the old root gone). A steady verify-full client that reads the trust file the role keeps (the standby's
    replication root.crt) connects throughout with a new handshake each time, and the standby streams throughout: 0
    failed connections, 0 reconnects, no gap. A client certificate of the old root logs in until the retire, and is
    refused after it."""
    primary, standby = pair
    pki = workdir / "replication-pki"
    tmp = tmp_path_factory.mktemp("root")
    path = inventory(tmp, primary, standby, pki)
    play(path)
    reconnect(primary, standby)  # the walsender uses the replication certificate in place now
    replication = standby.data / "tls" / "replication"
    trust = replication / "root.crt"
    old = tmp / "old-client"
    old.mkdir()
    for name in ("postgresql.crt", "postgresql.key"):
        shutil.copy(replication / name, old / name)
    (old / "postgresql.key").chmod(0o600)
    old_root = certificates_in(pki / "root.crt")
    before = certificates_in(standby.data / "tls" / "server.crt")[1:]  # the intermediate that signs now
    seen = {}
    with Steady(trust, primary, standby) as steady:
        for step in ("start", "switch", "retire"):
            with Watch(standby) as watch:
                run_playbook(str(ROOT / "playbooks" / "rotate.yml"), {"pgtls_rotate_root": step,
                                                                      "pgtls_servers_group": "pgtls_replicas"},
                             "-i", path)
            assert watch.reconnects() == 0 and watch.longest_gap() == 0.0, (step, watch.seen)
            seen[step] = {"trust": certificates_in(trust), "server": certificates_in(standby.data / "tls" / "server.crt"),
                          "old client": replication_login(primary, old, trust).returncode, "polls": len(watch.seen)}
            if step == "switch":
                # The standby's next connection presents its certificate of the new root; the primary accepts it.
                serial = subprocess.run(["openssl", "x509", "-in", str(replication / "postgresql.crt"), "-noout",
                                         "-serial"], capture_output=True, text=True, check=True).stdout
                found = reconnect(primary, standby)
                assert found.split(" ", 1)[0] == str(int(serial.strip().split("=")[1], 16)), found
                assert wait_streaming(standby)
    new_root = certificates_in(pki / "root.crt")
    print(f"\nroot rotation: {steady.ok} verify-full connections, {len(steady.failed)} failed; "
          + "; ".join(f"{step}: {found['polls']} standby polls, trust {len(found['trust'])} root(s)"
                      for step, found in seen.items()))
    assert new_root == ["subject=CN=pgtls Root CA R2"] and old_root == ["subject=CN=pgtls Root CA"], (old_root, new_root)
    assert steady.failed == [] and steady.ok > 30, (steady.ok, steady.failed[:5])
    assert seen["start"]["trust"] == old_root + new_root and seen["start"]["server"][1:] == before, (seen, before)
    assert seen["switch"]["trust"] == new_root + old_root, seen
    assert seen["switch"]["server"][1:] != before and re.search(r" G\d+$", seen["switch"]["server"][1]), seen
    assert seen["retire"]["trust"] == new_root, seen
    # The old root's client certificate: accepted while the old root is trusted, refused once it is retired.
    assert seen["start"]["old client"] == 0 and seen["switch"]["old client"] == 0, seen
    assert seen["retire"]["old client"] != 0, seen
    assert wait_streaming(standby)


def issue_clients(pki, dest, *names: str) -> None:
    """Client certificates from the same CA folder, on the controller (the test's clients)."""
    play = dest / "clients.yml"
    play.write_text(yaml.safe_dump([{"name": "Client certificates", "hosts": "localhost", "gather_facts": False,
                                     "tasks": [{"pgtls.ssl.client_cert": {
                                         "clients": [{"name": name} for name in names], "dest": str(dest),
                                         "key_location": "controller", "ca_folder": str(pki)}}]}]))
    run_playbook(str(play), {})


def open_session(primary: Cluster, folder) -> tuple[subprocess.Popen, int]:
    """A long-lived TLS session with a client certificate (as postgres: pg_hba's trust line; the certificate is
    still asked for and verified, and pg_stat_ssl shows its serial)."""
    conninfo = (f"host=127.0.0.1 port={primary.port} dbname=postgres user=postgres sslmode=verify-ca "
                f"sslrootcert={folder}/root.crt sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key")
    session = subprocess.Popen(["psql", "-X", "-At", conninfo], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    session.stdin.write("select pg_backend_pid();\n")
    session.stdin.flush()
    return session, int(session.stdout.readline())


def alive(primary: Cluster, pids) -> set[int]:
    found = primary.admin(f"select pid from pg_stat_activity where pid in ({','.join(map(str, pids))})").stdout
    return {int(pid) for pid in found.split()}


def serial_of(path) -> int:
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-serial"], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip().split("=")[1], 16)


def connect(conninfo: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", "-X", "-Atc", "select 1", conninfo], capture_output=True, text=True, check=False)


def certificates_pem(path) -> list[str]:
    text = Path(path).read_text()
    return [block.strip() + "\n-----END CERTIFICATE-----\n" for block in text.split("-----END CERTIFICATE-----")[:-1]]


def imposter(base: Path, stolen: Path, trust: Path) -> Cluster:
    """A throw-away PostgreSQL that presents the stolen server key and its old certificate (right name, right chain)."""
    base.mkdir(mode=0o755)
    srv = base / "srv"
    srv.mkdir(mode=0o755)
    for name in ("server.crt", "server.key"):
        shutil.copy(stolen / name, srv / name)
    shutil.copy(trust, srv / "root.crt")
    for path in srv.iterdir():
        shutil.chown(path, "postgres", "postgres")
    (srv / "server.key").chmod(0o600)
    fake = Cluster(base, srv)
    fake.init("local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
    conf = fake.data / "postgresql.conf"
    conf.write_text(conf.read_text().replace(f"ssl_crl_file = '{srv}/root.crl'", ""))
    fake.start()
    return fake


def steal(tmp: Path, tls: Path, replication: Path) -> dict:
    """Copies of the primary's server key and certificate and of the standby's replication ones: the stolen
    material."""
    stolen = {"server": tmp / "stolen-server", "replication": tmp / "stolen-replication"}
    for folder, source, names in zip(stolen.values(), (tls, replication),
                                     (("server.crt", "server.key"), ("postgresql.crt", "postgresql.key"))):
        folder.mkdir()
        for name in names:
            shutil.copy(source / name, folder / name)
        (folder / names[1]).chmod(0o600)
    return stolen


def stolen_server_refused(base: Path, tmp: Path, stolen: Path, trust: Path, crl: Path, primary: Cluster) -> tuple:
    """The stolen server key and certificate in a throw-away PostgreSQL on the primary's name: it passes verify-full
    for a libpq client that reads no CRL, and is refused with the installed CRL (libpq says only "certificate verify
    failed" on the client side) while the same conninfo and CRL reach the real primary. Returns openssl's verdicts
    (the oracle) on the stolen leaf with its chain, and on its issuer."""
    fake = imposter(base, stolen, trust)
    conninfo = (f"host=db.example.test hostaddr=127.0.0.1 port={fake.port} dbname=postgres user=postgres "
                f"sslmode=verify-full sslrootcert={trust} connect_timeout=5")
    try:
        without_crl, with_crl = (connect(conninfo), connect(f"{conninfo} sslcrl={crl}"))
    finally:
        fake.stop()
    genuine = connect(f"{conninfo.replace(str(fake.port), str(primary.port))} sslcrl={crl}")
    assert without_crl.returncode == 0, without_crl.stderr
    assert with_crl.returncode != 0 and "certificate verify failed" in with_crl.stderr, with_crl.stderr
    assert genuine.returncode == 0, genuine.stderr
    chain = certificates_pem(stolen / "server.crt")
    (tmp / "chain.pem").write_text("".join(chain[1:]))
    (tmp / "leaf.pem").write_text(chain[0])
    return tuple(subprocess.run(["openssl", "verify", "-crl_check_all", "-CAfile", str(trust), "-CRLfile", str(crl),
                                 *untrusted, str(tmp / name)], capture_output=True, text=True, check=False)
                 for untrusted, name in ((["-untrusted", str(tmp / "chain.pem")], "leaf.pem"), ([], "chain.pem")))


def test_a_serial_in_use_revoked_for_key_compromise_is_replaced_first_and_the_stolen_material_refused(
        pair, workdir, tmp_path_factory):
    """revoke by serial of the primary's server certificate and the standby's replication certificate (reason
    key_compromise): both hosts make new keys and activate new certificates first (the serials pending, in no CRL),
    then the CRLs are published and installed, and the walsender of the stolen certificate is ended. A steady
    verify-full client connects throughout with 0 failures; the standby streams again with its new certificate. Then
    the stolen material: a throw-away PostgreSQL presenting the old server key and certificate (right name, right
    chain) is refused by the client the role configured with the CRL (the standby's replication connection: its
    sslrootcert and sslcrl), and the old replication certificate is refused by the primary. A second run changes
    nothing."""
    primary, standby = pair
    pki = workdir / "replication-pki"
    tmp = tmp_path_factory.mktemp("compromise")
    # An application host whose client files the client role writes (root.crt and root.crl, libpq's sslcrl).
    alice = tmp / "alice"
    path = inventory(tmp, primary, standby, pki, clients=[{"name": "alice", "user": "root", "dir": str(alice)}])
    play(path)
    tls, replication = primary.data / "tls", standby.data / "tls" / "replication"
    stolen = steal(tmp, tls, replication)
    serials = [serial_of(tls / "server.crt"), serial_of(replication / "postgresql.crt")]
    trust, crl = replication / "root.crt", standby.data / "tls" / "root.crl"
    revoke = str(ROOT / "playbooks" / "revoke.yml")
    extra = {"pgtls_revoke_serials": [f"0x{s:X}" for s in serials], "pgtls_servers_group": "pgtls_replicas"}
    # Recorded (pending) and not yet replaced: the audit fails the primary (its server certificate) and the standby (its
    # replication certificate), naming the serials and the key, although no CRL lists them yet.
    record = tmp / "record.yml"
    record.write_text(yaml.safe_dump([{"name": "Record", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"pgtls.ssl.revocation_registry": {"pki_dir": str(pki), "serials": extra["pgtls_revoke_serials"],
                                           "reason": "key_compromise", "pending": True}}]}]))
    run_playbook(str(record), {})
    audit = str(ROOT / "playbooks" / "audit.yml")
    report, metrics = tmp / "audit.json", tmp / "audit.prom"
    found = run_playbook(audit, {"pgtls_servers_group": "pgtls_replicas", "pgtls_audit_json": str(report),
                                 "pgtls_audit_metrics": str(metrics)}, "-i", path, check=False)
    text = " ".join(found.stdout.split())
    assert found.returncode != 0 and "2 cluster(s) break the policy: primary 15/repl, standby 15/repl" in text, \
        found.stdout[-3000:]
    assert f"the certificate in use (serial {serial_hex(serials[0])}) is revoked in the CA folder (key_compromise " \
        "(pending))" in text and "revoked for key_compromise: a new key is needed" in text, found.stdout[-3000:]
    assert f"replication certificate: the certificate in use (serial {serial_hex(serials[1])}) is revoked" in text
    # The report files say it too: the primary's record revoked (a failed revoked finding), the standby's record a
    # failed replication_certificate finding; the metric per cluster.
    records = {r["host"]: r for r in json.loads(report.read_text())["servers"]}
    assert (records["primary"]["revoked"], records["primary"]["ready"]) == (True, False), records["primary"]
    assert {f["check"] for f in records["primary"]["findings"] if f["status"] == "fail"} == {"revoked"}
    assert records["standby"]["revoked"] is False and any(
        f["check"] == "replication_certificate" and f["status"] == "fail" and "is revoked in the CA folder" in f["message"]
        for f in records["standby"]["findings"]), records["standby"]["findings"]
    assert 'pgtls_certificate_revoked{host="primary",cluster="15/repl"} 1' in metrics.read_text()
    assert 'pgtls_certificate_revoked{host="standby",cluster="15/repl"} 0' in metrics.read_text()
    with Steady(trust, primary, standby) as steady, Watch(standby) as watch:
        done = run_playbook(revoke, extra, "-i", path)
    print(f"\ncompromise response: {steady.ok} verify-full connections, {len(steady.failed)} failed; standby "
          f"reconnects {watch.reconnects()} (the stolen certificate's walsender ended), longest gap "
          f"{watch.longest_gap():.1f} s")
    assert steady.failed == [] and steady.ok > 10, (steady.ok, steady.failed[:5])
    assert watch.reconnects() <= 1, watch.seen
    out = done.stdout
    # Replaced first, published after: the replacing play ran, then the publishing task, then the CRLs.
    order = [out.index(marker) for marker in ("Pending serials - database servers replace", "Publish the pending "
                                              "revocations", "New CRLs on every database server")]
    assert order == sorted(order), out[-4000:]
    assert f"certificate {serial_hex(serials[0])} is revoked (key_compromise (pending" in out, out[-6000:]
    assert serial_of(tls / "server.crt") != serials[0] and serial_of(replication / "postgresql.crt") != serials[1]
    for kind, name in (("server", "server.key"), ("replication", "postgresql.key")):
        now = (tls if kind == "server" else replication) / name
        assert now.read_bytes() != (stolen[kind] / name).read_bytes(), f"{kind}: the compromised key is still in use"
    registry = yaml.safe_load((pki / "revoked.yml").read_text())
    assert all(not e.get("pending") for e in registry)
    listed = subprocess.run(["openssl", "storeutl", "-noout", "-text", "-crls", str(tls / "root.crl")],
                            capture_output=True, text=True, check=True).stdout
    for serial in serials:
        assert re.search(rf"Serial Number: 0?{serial:X}\b", listed), (f"{serial:X}", listed)
    # The standby streams again, presenting its new certificate.
    assert wait_streaming(standby)
    assert walsender_certificate(primary).split(" ", 1)[0] == str(serial_of(replication / "postgresql.crt"))
    # The stolen material: the old server certificate and key in a throw-away PostgreSQL on the same name.
    leaf = stolen_server_refused(workdir / "imposter", tmp, stolen["server"], trust, crl, primary)[0]
    assert leaf.returncode != 0 and "certificate revoked" in leaf.stdout + leaf.stderr, leaf
    # ... and by the application host's libpq with the files the client role installed in the run (root.crl carries
    # the published serials; the run proved each refused by it).
    assert (alice / "root.crl").read_bytes() == (pki / "crl.pem").read_bytes()
    assert "Each revoked certificate is rejected by the CRL each client now reads" in out, out[-3000:]
    stolen_server_refused(workdir / "imposter-app", tmp, stolen["server"], alice / "root.crt", alice / "root.crl",
                          primary)
    refused = replication_login(primary, stolen["replication"], trust)
    assert refused.returncode != 0 and "certificate revoked" in refused.stderr, refused.stderr
    again = run_playbook(revoke, extra, "-i", path)
    assert recap(again.stdout) == {"app": 0, "localhost": 0, "primary": 0, "standby": 0}, again.stdout[-3000:]
    assert "2 cluster(s) meet the policy" in run_playbook(audit, {"pgtls_servers_group": "pgtls_replicas"}, "-i",
                                                          path).stdout


def test_a_compromised_intermediate_is_rotated_in_one_revoke_run(pair, workdir, tmp_path_factory):
    """revoke of the intermediate's serial (reason key_compromise): an emergency rotation in one run - a new
    intermediate, every certificate of the pair re-issued under it with a new key, the old intermediate retired (the
    root's CRL revokes it) - while a steady verify-full client connects (0 failed) and the standby streams again with
    its new certificate. The stolen material afterwards: the old server certificate and key in a throw-away
    PostgreSQL are refused by a libpq client with the installed CRL (accepted by one without: why the standby's
    conninfo carries sslcrl); the old replication certificate is refused by the primary. Run again: nothing changes."""
    primary, standby = pair
    pki = workdir / "replication-pki"
    tmp = tmp_path_factory.mktemp("intermediate")
    # An application host whose libpq checks the CRLs the client role installs (root.crt and root.crl).
    alice = tmp / "alice"
    path = inventory(tmp, primary, standby, pki, clients=[{"name": "alice", "user": "root", "dir": str(alice)}])
    play(path)
    run_playbook(str(ROOT / "playbooks" / "clients.yml"), {}, "-i", path)
    tls, replication = primary.data / "tls", standby.data / "tls" / "replication"
    stolen = steal(tmp, tls, replication)
    old = serial_of(pki / "intermediate.crt")
    old_subject = certificates_in(pki / "intermediate.crt")
    trust, crl = replication / "root.crt", standby.data / "tls" / "root.crl"
    revoke = str(ROOT / "playbooks" / "revoke.yml")
    extra = {"pgtls_revoke_serials": [f"0x{old:X}"], "pgtls_servers_group": "pgtls_replicas"}
    with Steady(trust, primary, standby) as steady, Watch(standby) as watch, \
            Steady(alice / "root.crt", primary, standby, crl=alice / "root.crl") as checking:
        run_playbook(revoke, extra, "-i", path)
    print(f"\nemergency intermediate rotation: {steady.ok} verify-full connections, {len(steady.failed)} failed; "
          f"with the client role's CRLs {checking.ok}, {len(checking.failed)} failed; standby reconnects "
          f"{watch.reconnects()}, longest gap {watch.longest_gap():.1f} s")
    assert steady.failed == [] and steady.ok > 10, (steady.ok, steady.failed[:5])
    assert checking.failed == [] and checking.ok > 10, (checking.ok, checking.failed[:5])
    new_subject = certificates_in(pki / "intermediate.crt")
    assert new_subject != old_subject and any(f"{old:X}" in p.name for p in (pki / "retired").iterdir())
    assert not (pki / "previous").exists()
    for cert in (tls / "server.crt", standby.data / "tls" / "server.crt", replication / "postgresql.crt"):
        assert certificates_in(cert)[1:] == new_subject, cert
    for kind, now in (("server", tls / "server.key"), ("replication", replication / "postgresql.key")):
        assert now.read_bytes() != (stolen[kind] / now.name).read_bytes(), f"{kind}: the old key is still in use"
    listed = subprocess.run(["openssl", "storeutl", "-noout", "-text", "-crls", str(tls / "root.crl")],
                            capture_output=True, text=True, check=True).stdout
    assert re.search(rf"Serial Number: 0?{old:X}\b", listed), listed
    assert wait_streaming(standby)
    assert walsender_certificate(primary).split(" ", 1)[0] == str(serial_of(replication / "postgresql.crt"))
    leaf, issuer = stolen_server_refused(workdir / "imposter-intermediate", tmp, stolen["server"], trust, crl, primary)
    # openssl: the leaf fails (its issuer has no CRL any more: the first error), its issuer is revoked.
    assert leaf.returncode != 0, leaf
    assert issuer.returncode != 0 and "certificate revoked" in issuer.stdout + issuer.stderr, issuer
    # The primary no longer knows the retired intermediate (unknown ca), or finds it revoked when one presents it.
    refused = replication_login(primary, stolen["replication"], trust)
    assert refused.returncode != 0 and re.search("unknown ca|revoked", refused.stderr), refused.stderr
    again = run_playbook(revoke, extra, "-i", path)
    assert recap(again.stdout) == {"app": 0, "localhost": 0, "primary": 0, "standby": 0}, again.stdout[-3000:]


def test_with_the_ca_in_openbao_the_standby_streams_with_the_engines_certificates(workdir, tmp_path_factory):
    """A pair of its own, the CA in a real OpenBao (pgtls_ca_backend=openbao, an AppRole): the engine signs both
    servers' certificates and the standby's replication certificate from the keys made on the hosts; the standby
    streams over verify-full and the primary's walsender is authenticated by the engine's certificate (its serial in
    pg_stat_ssl); a second run changes nothing; the secret ID never appears in the output."""
    bao = BaoServer(tmp_path_factory.mktemp("bao-replication")).start()
    try:
        credentials = bao.setup_pki()
        bao.api("POST", f"pki_int/roles/{BAO_ROLE}", ANY_NAME)
        with replicated(workdir / "with-openbao") as (primary, standby):
            tmp = tmp_path_factory.mktemp("inv")
            path = inventory(tmp, primary, standby, workdir / "with-openbao" / "mirror")
            found = yaml.safe_load(open(path))
            engine = {"address": bao.address, "role": BAO_ROLE, "role_id": credentials["role_id"],
                      "secret_id": credentials["secret_id"]}
            found["all"]["vars"].update(pgtls_server_valid_days=20, pgtls_server_renew_before_days=5,
                                        pgtls_ca_backend="openbao", pgtls_openbao=engine)
            with open(path, "w") as handle:
                handle.write(yaml.safe_dump(found))
            done = play(path)
            assert credentials["secret_id"] not in done.stdout + done.stderr
            assert "The standby streams from its primary over verify-full with the replication certificate: ok" in \
                done.stdout, done.stdout[-4000:]
            replication = standby.data / "tls" / "replication" / "postgresql.crt"
            for cert in (replication, primary.data / "tls" / "server.crt", standby.data / "tls" / "server.crt"):
                issuer = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-issuer"],
                                        capture_output=True, text=True, check=True).stdout
                assert "pgtls OpenBao test intermediate" in issuer, (cert, issuer)
            serial = serial_of(replication)
            assert wait_streaming(standby)
            assert reconnect(primary, standby).split(" ", 1)[0] == str(serial)
            again = play(path)
            assert recap(again.stdout) == {"primary": 0, "standby": 0}, again.stdout[-3000:]
            assert credentials["secret_id"] not in again.stdout + again.stderr
            issued = bao.api("LIST", "pki_int/certs")["data"]["keys"]
            assert f"{serial:x}" in {key.replace(":", "").lstrip("0") for key in issued}
    finally:
        bao.stop()


# Last in this file: the standby's certificate is revoked, so it stops replicating.
def test_revoke_ends_the_sessions_of_revoked_certificates_and_replication_stops(pair, workdir, tmp_path_factory):
    """PostgreSQL checks its CRL at the handshake only: without the revoke playbook's last step, a revoked client's
    session and the standby's walsender go on. With it they end (the standby's reconnect is then refused), an
    unrevoked client's session stays, and a second run changes nothing."""
    primary, standby = pair
    pki = workdir / "replication-pki"
    tmp = tmp_path_factory.mktemp("revoke")
    path = inventory(tmp, primary, standby, pki)
    found = yaml.safe_load(open(path))
    found["all"]["vars"]["ansible_become_method"] = "ansible.builtin.su"
    with open(path, "w") as handle:
        handle.write(yaml.safe_dump(found))
    play(path)  # the pair as the earlier tests left it: streaming with its certificate
    issue_clients(pki, tmp, "gone", "kept")
    sessions = {name: open_session(primary, tmp / name) for name in ("gone", "kept")}
    walsender = primary.admin("select pid from pg_stat_replication").stdout.split()
    assert len(walsender) == 1, walsender
    revoke = str(ROOT / "playbooks" / "revoke.yml")
    names = {"pgtls_revoke_names": ["replicator", "gone"], "pgtls_servers_group": "pgtls_replicas"}
    try:
        done = run_playbook(revoke, names, "-i", path)
        assert re.search(r"2 ended; 15/repl: (/CN=replicator, /CN=gone|/CN=gone, /CN=replicator)", done.stdout), \
            done.stdout[-4000:]
        # The standby's own activation did not wait for a link its primary now refuses.
        assert "The standby streams from its primary over verify-full with the replication certificate: skipped" \
            in done.stdout, done.stdout[-4000:]
        gone, kept = sessions["gone"][1], sessions["kept"][1]
        assert alive(primary, [gone, kept, int(walsender[0])]) == {kept}
        # The revoked client's psql finds its connection ended; the other one goes on.
        assert "administrator command" in sessions["gone"][0].communicate("select 1;\n", timeout=30)[1]
        sessions["kept"][0].stdin.write("select 41 + 1;\n")
        sessions["kept"][0].stdin.flush()
        assert sessions["kept"][0].stdout.readline().strip() == "42"
        # The standby reconnects and is refused: replication has stopped, its log says why.
        time.sleep(6)  # more than wal_retrieve_retry_interval (5 s)
        assert not receiver(standby).startswith("streaming"), receiver(standby)
        assert primary.admin("select count(*) from pg_stat_replication").stdout.strip() == "0"
        assert "certificate revoked" in standby.log.read_text()
        again = run_playbook(revoke, names, "-i", path)
        assert recap(again.stdout) == {"localhost": 0, "primary": 0, "standby": 0}, again.stdout[-3000:]
        assert "0 ended" in again.stdout
    finally:
        for session, _pid in sessions.values():
            session.kill()
