"""Streaming replication over verify-full with a certificate, on two real PostgreSQL 15 clusters of this machine (each
its own inventory host, no service manager): the standby starts streaming over the primary's Unix socket without
TLS (what pg_basebackup -R leaves), the server role gives it a replication certificate and a primary_conninfo with
sslmode=verify-full, and the primary's walsender is then seen over TLS with that certificate's serial. A second run
changes nothing; inputs that cannot work are refused before any file changes; the replication role is refused
without its certificate."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest
import yaml
from conftest import PG_BIN, TARGET_PYTHON, Cluster, as_postgres, run_playbook

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


@pytest.fixture(scope="module")
def pair(workdir):
    """A primary (replicator exists) and a standby made by pg_basebackup, streaming over the primary's socket."""
    bases = {name: workdir / name for name in ("primary", "standby")}
    for base in bases.values():
        base.mkdir(mode=0o755)
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
    standby.start()
    wait_streaming(standby)
    yield primary, standby
    standby.stop()
    primary.stop()


def inventory(tmp_path, primary: Cluster, standby: Cluster, pki, **standby_vars) -> str:
    common = {"ansible_connection": "local", "ansible_host": "127.0.0.1"}
    found = {"all": {"vars": {"pgtls_pki_dir": str(pki), "pgtls_hba_rules": HBA,
                              "pgtls_replication_addresses": ["127.0.0.1/32"], "pgtls_key_layout": "owner"},
                     "children": {"pgtls_replicas": {"hosts": {
                         "primary": dict(common, pgtls_clusters=[described(primary)]),
                         "standby": dict(common, pgtls_clusters=[described(standby)],
                                         **{"pgtls_primary_host": "primary", **standby_vars})}}}}}
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
