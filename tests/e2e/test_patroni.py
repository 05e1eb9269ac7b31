"""Two real Patroni 4.1 members on a real etcd 3.4 cluster of three members, all over TLS from the collection's CA, on
loopback: the patroni playbook gives the etcd members their TLS first (pgtls.ssl.etcd: clients and peers with mTLS,
a CRL file with the issuer's CRL first, restarted one at a time through a stand-in for systemctl, /health over mTLS),
then pgtls.ssl.patroni_config sets PostgreSQL's, replication's, the REST API's, patronictl's and etcd's TLS in each
member's Patroni YAML, and Patroni bootstraps PostgreSQL 15 (db1) and clones a replica from it (db2) with that.
Proven from outside: the leader is elected through etcd over mTLS; patronictl lists both members over mTLS; the REST
APIs, the etcd members (client and peer ports) and PostgreSQL serve the installed certificates (psql verify-full); a
client without a certificate is refused by a REST API and by etcd; the replica streams over verify-full with the
replication certificate (the leader's walsender shows it); a second run changes nothing; renewed server certificates
are served after `patronictl reload`, a changed etcd file restarts the etcd members one at a time, and an
intermediate rotation reaches every member, each with no leader change, no failed patronictl call and the replica
streaming throughout; a planned switchover afterwards has the old leader streaming from the new one over TLS; a
revoked client certificate is refused by every etcd member; bad input is refused and Patroni keeps serving."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import etcd_service
import pytest
import yaml
from conftest import PG_BIN, ansible_env, as_postgres, free_port, run_playbook
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pgtls_harness import kill_tree, marked_processes

PATRONI = Path(os.environ.get("PGTLS_PATRONI", "/nonexistent"))
ETCD = Path(os.environ.get("PGTLS_ETCD", "/nonexistent"))
SECRET = "pgtls-e2e-superuser-secret"


def served_serial(port: int, starttls: bool) -> int:
    """The serial of the leaf a server presents (openssl, the oracle)."""
    args = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts"]
    done = subprocess.run(args + (["-starttls", "postgres"] if starttls else []), input=b"", capture_output=True,
                          timeout=20, check=False)
    assert b"BEGIN CERTIFICATE" in done.stdout, done.stdout.decode(errors="replace")[-2000:]
    start = done.stdout.index(b"-----BEGIN CERTIFICATE-----")
    end = done.stdout.index(b"-----END CERTIFICATE-----") + len(b"-----END CERTIFICATE-----")
    return x509.load_pem_x509_certificate(done.stdout[start:end]).serial_number


def file_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def wait(condition, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds} s: {what}")


HERE = Path(__file__).resolve().parent


class EtcdMember:
    """One etcd member: its environment file (as an operator writes it: https URLs, no TLS yet), its TLS folder, its
    process (started and restarted by etcd_service.py, the stand-in for systemctl restart etcd)."""

    def __init__(self, fleet: Fleet, name: str):
        self.fleet, self.name = fleet, name
        self.base = fleet.base / name
        self.tls, self.env = self.base / "tls", self.base / "etcd.env"
        self.client_port, self.peer_port = free_port(), free_port()
        self.pid_file, self.log = self.base / "etcd.pid", self.base / "etcd.log"

    def write_env(self) -> None:
        self.base.mkdir(mode=0o755)
        cluster = ",".join(f"{m.name}=https://127.0.0.1:{m.peer_port}" for m in self.fleet.etcd_members)
        self.env.write_text(
            "# etcd's environment file, as the operator wrote it: https URLs; TLS comes from pgtls.ssl\n"
            f'ETCD_NAME="{self.name}"\nETCD_DATA_DIR="{self.base / "data"}"\n'
            f'ETCD_LISTEN_CLIENT_URLS="https://127.0.0.1:{self.client_port}"\n'
            f'ETCD_ADVERTISE_CLIENT_URLS="https://127.0.0.1:{self.client_port}"\n'
            f'ETCD_LISTEN_PEER_URLS="https://127.0.0.1:{self.peer_port}"\n'
            f'ETCD_INITIAL_ADVERTISE_PEER_URLS="https://127.0.0.1:{self.peer_port}"\n'
            f'ETCD_INITIAL_CLUSTER="{cluster}"\nETCD_INITIAL_CLUSTER_STATE="new"\n'
            'ETCD_INITIAL_CLUSTER_TOKEN="pgtls-e2e"\n')

    def restart_command(self) -> list[str]:
        return [sys.executable, str(HERE / "etcd_service.py"), str(ETCD), str(self.env), str(self.pid_file),
                str(self.log)]

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        subprocess.run(self.restart_command(), check=True, timeout=60)

    def stop(self) -> None:
        etcd_service.stop(str(self.pid_file))


class Member:
    """One Patroni member: its Patroni YAML, its TLS folder, its PostgreSQL (the postgres user's folder)."""

    def __init__(self, fleet: Fleet, name: str):
        self.fleet, self.name = fleet, name
        self.base = fleet.base / name
        self.tls, self.config = self.base / "tls", self.base / "patroni.yml"
        self.pg_port, self.rest_port = free_port(), free_port()
        self.pg = self.base / "pg"  # the postgres user's: data folder, sockets, pgpass, Patroni's log
        self.data, self.sockets = self.pg / "data", self.pg / "sockets"
        self.client = self.tls / "clients" / "patroni"
        self.process: subprocess.Popen | None = None

    def write_config(self) -> None:
        self.base.mkdir(mode=0o755)
        (self.tls / "clients").mkdir(parents=True)
        config = {
            "scope": "pgtls", "name": self.name,
            "log": {"level": "INFO", "dir": str(self.pg / "log")},
            "restapi": {"listen": f"127.0.0.1:{self.rest_port}", "connect_address": f"127.0.0.1:{self.rest_port}"},
            "etcd3": {"hosts": ",".join(f"127.0.0.1:{m.client_port}" for m in self.fleet.etcd_members)},
            "bootstrap": {"dcs": {"ttl": 20, "loop_wait": 2, "retry_timeout": 8}, "initdb": [{"encoding": "UTF8"}]},
            "postgresql": {
                "listen": f"127.0.0.1:{self.pg_port}", "connect_address": f"127.0.0.1:{self.pg_port}",
                "data_dir": str(self.data), "bin_dir": str(PG_BIN), "pgpass": str(self.pg / "pgpass"),
                "use_unix_socket": True,
                "authentication": {"superuser": {"username": "postgres", "password": SECRET},
                                   "replication": {"username": "replicator", "password": SECRET}},
                "parameters": {"unix_socket_directories": str(self.sockets)},
                "pg_hba": ["local all all trust", "local replication all trust",
                           "hostssl all postgres 127.0.0.1/32 trust",
                           "hostssl replication replicator 127.0.0.1/32 cert"],
            },
        }
        self.config.write_text("# written by the test, as an operator would\n" + yaml.safe_dump(config))
        os.chmod(self.config, 0o600)
        shutil.chown(self.config, "postgres", "postgres")

    def start(self) -> None:
        for folder in (self.pg, self.sockets, self.pg / "log"):
            folder.mkdir(mode=0o700, exist_ok=True)
            shutil.chown(folder, "postgres", "postgres")
        log = open(self.base / "patroni.out", "wb")
        self.process = subprocess.Popen(["runuser", "-u", "postgres", "--", str(PATRONI / "patroni"),
                                         str(self.config)], stdout=log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rest(self, path: str, client: bool = True) -> dict:
        context = ssl.create_default_context(cafile=str(self.tls / "root.crt"))
        if client:
            context.load_cert_chain(str(self.client / "postgresql.crt"), str(self.client / "postgresql.key"))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.rest_port}{path}", context=context, timeout=10) as page:
            return json.loads(page.read())

    def rest_answers_anyone(self) -> bool:
        try:
            self.rest("/patroni", client=False)
            return True
        except (ssl.SSLError, ConnectionError, urllib.error.URLError):
            return False

    def psql(self, sql: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HOME"] = str(self.base)
        conninfo = (f"host=127.0.0.1 port={self.pg_port} dbname=postgres user=postgres sslmode=verify-full "
                    f"sslrootcert={self.tls / 'root.crt'}")
        return subprocess.run(["psql", "-X", "-At", "-c", sql, conninfo], capture_output=True, text=True, env=env,
                              timeout=30, check=False)

    def admin(self, sql: str) -> str:
        return as_postgres("psql", "-X", "-At", "-h", str(self.sockets), "-p", str(self.pg_port), "-d", "postgres",
                           "-c", sql, check=False).stdout.strip()

    def streaming(self) -> bool:
        return self.admin("select status from pg_stat_wal_receiver") == "streaming"

    def walsenders(self) -> list[str]:
        """The leader's replication connections: TLS, client certificate subject, the standby's application name."""
        rows = self.admin("select s.ssl, s.client_dn, r.application_name from pg_stat_replication r "
                          "join pg_stat_ssl s using (pid) order by 3")
        return rows.splitlines()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False)


class Fleet:
    """etcd's members and Patroni's, sharing one CA folder."""

    def __init__(self, base: Path):
        self.base = base
        self.pki = base / "pki"
        self.etcd_members = [EtcdMember(self, f"etcd{n}") for n in (1, 2, 3)]
        self.etcd_port = self.etcd_members[0].client_port
        self.etcd_tls = self.etcd_members[0].tls
        self.members = [Member(self, "db1"), Member(self, "db2")]
        self.etcd_results: list = []

    def write_inventory(self) -> None:
        """The members as the patroni playbook's groups (pgtls_patroni, pgtls_etcd), all on this host (local connection,
        already root; etcd runs as root here)."""
        local = {"ansible_connection": "local", "ansible_become": False, "ansible_host": "127.0.0.1"}
        hosts = {m.name: {**local, "pgtls_patroni_config": str(m.config), "pgtls_patroni_tls_dir": str(m.tls),
                          "result_file": str(m.base / "result.json")} for m in self.members}
        etcd = {m.name: {**local, "pgtls_etcd_config": str(m.env), "pgtls_etcd_tls_dir": str(m.tls),
                         "pgtls_etcd_restart_command": m.restart_command(), "result_file": str(m.base / "result.json")}
                for m in self.etcd_members}
        inventory = {"all": {"children": {
            "pgtls_patroni": {"hosts": hosts, "vars": {"pgtls_pki_dir": str(self.pki),
                                                       "pgtls_patroni_patronictl": str(PATRONI / "patronictl")}},
            "pgtls_etcd": {"hosts": etcd, "vars": {"pgtls_pki_dir": str(self.pki), "pgtls_etcd_user": "root",
                                                   "pgtls_etcd_group": "root"}}}}}
        self.inventory = self.base / "inventory.yml"
        self.inventory.write_text(yaml.safe_dump(inventory))

    def tls_run(self, *args: str, check: bool = True, **extra) -> tuple[subprocess.CompletedProcess, list]:
        """The collection's patroni playbook on both members (one at a time); each member's patroni_config result."""
        for member in self.members + self.etcd_members:
            (member.base / "result.json").unlink(missing_ok=True)
        done = run_playbook("patroni_fleet.yml", extra, "-i", str(self.inventory), *args, check=check)
        results = [json.loads((m.base / "result.json").read_text()) if (m.base / "result.json").exists() else None
                   for m in self.members + self.etcd_members]
        self.etcd_results = results[len(self.members):]
        return done, results[:len(self.members)]

    def watched(self, **extra) -> tuple[tuple, tuple]:
        """tls_run while a watcher calls patronictl list and reads the replica's wal receiver every 0.3 s: the run's
        outcome, and (calls, the listings that were not RUNNING with the time and patronictl's stderr, the times of
        the samples without streaming) - the times (wall clock, as Patroni's and PostgreSQL's logs) place a failure
        in the logs."""
        calls, failed, gaps, stop = [0], [], [], threading.Event()

        def now() -> str:
            return time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"

        def watch() -> None:
            while not stop.is_set():
                calls[0] += 1
                done = self.patronictl("list", "-f", "json")
                if (roles := self.listing(done)) != RUNNING:
                    failed.append((now(), roles, done.stderr[-300:]))
                if not self.members[1].streaming():
                    gaps.append(now())
                time.sleep(0.3)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            outcome = self.tls_run(**extra)
            time.sleep(3)
        finally:
            stop.set()
            watcher.join()
        return outcome, (calls[0], failed, gaps)

    def start_etcd(self) -> None:
        """The three members as their environment files (written by the etcd role) say, through the stand-in."""
        for member in self.etcd_members:
            member.start()
        wait(lambda: self.etcdctl("endpoint", "health", "--cluster").returncode == 0,
             "the three etcd members healthy over mTLS", 60)

    def etcdctl(self, *args: str, client: bool = True, cert: tuple | None = None,
                port: int | None = None) -> subprocess.CompletedProcess:
        tls = ["--cacert", str(self.etcd_tls / "root.crt")]
        if cert:
            tls += ["--cert", str(cert[0]), "--key", str(cert[1])]
        elif client:
            member = self.members[0]
            tls += ["--cert", str(member.client / "postgresql.crt"), "--key", str(member.client / "postgresql.key")]
        return subprocess.run([str(ETCD.parent / "etcdctl"), "--endpoints", f"https://127.0.0.1:{port or self.etcd_port}",
                               "--dial-timeout", "3s", "--command-timeout", "5s", *tls, *args], capture_output=True,
                              text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"}, check=False)

    def patronictl(self, *args: str) -> subprocess.CompletedProcess:
        return as_postgres("timeout", "30", str(PATRONI / "patronictl"), "-c", str(self.members[0].config), *args,
                           check=False)

    def listed(self) -> list[dict]:
        done = self.patronictl("list", "-f", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        return sorted(json.loads(done.stdout), key=lambda m: m["Member"])

    def roles(self) -> list[tuple]:
        return self.listing(self.patronictl("list", "-f", "json"))

    @staticmethod
    def listing(done: subprocess.CompletedProcess) -> list[tuple]:
        """(member, role, state) of each member in a patronictl list -f json; [] when it failed."""
        if done.returncode != 0:
            return []
        return sorted((m["Member"], m["Role"], m["State"]) for m in json.loads(done.stdout or "[]"))

    def wait_for(self, roles: list[tuple], what: str, seconds: float = 120) -> None:
        def ready() -> bool:
            dead = [m.name for m in self.members if m.process is not None and not m.alive()]
            assert not dead, f"Patroni exited on {dead}\n{self.logs()}"
            return self.roles() == roles
        try:
            wait(ready, what, seconds)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.roles()}\n{self.logs()}") from None

    def logs(self) -> str:
        names = [f"{m.name}/etcd.log" for m in self.etcd_members] + [
            f"{m.name}/{n}" for m in self.members for n in ("patroni.out", "pg/log/patroni.log")]
        return "".join(f"--- {name}\n{(self.base / name).read_text(errors='replace')[-6000:]}\n"
                       for name in names if (self.base / name).exists())

    def stop(self) -> None:
        for member in reversed(self.members):
            member.stop()
        for member in self.etcd_members:
            member.stop()


def patroni_version() -> tuple:
    done = subprocess.run([str(PATRONI / "patroni"), "--version"], capture_output=True, text=True, check=False)
    words = done.stdout.split()
    return tuple(int(part) for part in words[-1].split(".")) if words else ()


# patronictl list says "streaming" for a streaming replica since Patroni 3.1 (4.1 here, PGDG's); Debian 12's 3.0.2 says
# "running" (the watcher reads pg_stat_wal_receiver for streaming with either).
REPLICA = "streaming" if patroni_version() >= (3, 1) else "running"
RUNNING = [("db1", "Leader", "running"), ("db2", "Replica", REPLICA)]


@pytest.fixture(scope="module")
def fleet(workdir):
    if not (PATRONI / "patroni").exists() or not ETCD.exists():
        pytest.fail("Patroni or etcd is missing: run through `make e2e` (it installs .venv-patroni and .cache/etcd)")
    base = workdir / "patroni"
    base.mkdir(mode=0o755)
    found = Fleet(base)
    db1, db2 = found.members
    for member in found.etcd_members:
        member.write_env()
    for member in found.members:
        member.write_config()
    found.write_inventory()
    # etcd is not running yet (its TLS comes from this run): Patroni's check of etcd's names waits for the next runs
    found.first_run = found.tls_run(pgtls_patroni_check_etcd=False)
    found.first_etcd_results = found.etcd_results
    try:
        found.start_etcd()
        db1.start()
        found.wait_for([("db1", "Leader", "running")], "db1 the leader, through etcd over mTLS")
        db2.start()
        found.wait_for(RUNNING, "db2 cloned from db1 and streaming")
        wait(db2.streaming, "db2 streaming (pg_stat_wal_receiver)", 60)
        yield found
    finally:
        found.stop()


def test_the_first_run_sets_tls_in_patronis_configuration(fleet):
    done, results = fleet.first_run
    assert "Preflight - every member's Patroni file read" in done.stdout
    for member, result in zip(fleet.members, results):
        assert result["changed"] is True and result["dcs"] == "etcd3"
        assert "restapi.verify_client" in result["changed_keys"]
        # Patroni was not started yet: nothing to reload, and the run says so
        assert result["reloaded"] is False and "does not answer" in done.stdout + done.stderr
        assert SECRET not in done.stdout and SECRET not in json.dumps(result)
        config = yaml.safe_load(member.config.read_text())
        assert config["postgresql"]["authentication"]["superuser"]["password"] == SECRET  # the rest stays
        assert config["postgresql"]["pg_hba"][3] == "hostssl replication replicator 127.0.0.1/32 cert"
        assert config["restapi"]["verify_client"] == "required" and config["etcd3"]["protocol"] == "https"
        assert config["postgresql"]["authentication"]["replication"]["sslmode"] == "verify-full"


def first_crl_issuer(path: Path) -> str:
    data = path.read_bytes()
    end = data.index(b"-----END X509 CRL-----") + len(b"-----END X509 CRL-----")
    return x509.load_pem_x509_crl(data[:end]).issuer.rfc4514_string()


def test_the_etcd_members_serve_their_certificates_to_clients_and_peers(fleet):
    """The first run wrote each member's TLS variables (etcd was not running: nothing restarted, and the run said so);
    every other line of the operator's file stays; each member serves its certificate on its client and its peer
    port; its CRL file starts with its issuer's CRL (etcd reads the first CRL only); the cluster is healthy over mTLS
    and refuses a client without a certificate."""
    for member, result in zip(fleet.etcd_members, fleet.first_etcd_results):
        assert result["changed"] is True and result["restarted"] is False and result["crl_changed"] is True
        assert {"ETCD_CLIENT_CERT_AUTH", "ETCD_PEER_CLIENT_CERT_AUTH", "ETCD_PEER_CRL_FILE"} <= set(result["changed_keys"])
        text = member.env.read_text()
        assert text.startswith("# etcd's environment file, as the operator wrote it") and f'ETCD_NAME="{member.name}"' in text
        assert f'ETCD_CERT_FILE="{member.tls / "server.crt"}"' in text and 'ETCD_PEER_CLIENT_CERT_AUTH="true"' in text
        serial = file_serial(member.tls / "server.crt")
        assert served_serial(member.client_port, starttls=False) == serial
        assert served_serial(member.peer_port, starttls=False) == serial
        assert first_crl_issuer(member.tls / "etcd.crl") == issuer_cn(member.tls / "server.crt")
    assert "etcd does not answer" in fleet.first_run[0].stdout + fleet.first_run[0].stderr
    health = fleet.etcdctl("endpoint", "health", "--cluster")
    # etcdctl prints the health of each endpoint on stderr
    assert health.returncode == 0 and health.stderr.count("is healthy") == 3, health.stdout + health.stderr
    assert fleet.etcdctl("endpoint", "health", client=False).returncode != 0


def test_patroni_leads_through_etcd_and_patronictl_talks_mtls(fleet):
    assert [(m["Member"], m["Role"], m["State"]) for m in fleet.listed()] == RUNNING
    refused = fleet.etcdctl("get", "--prefix", "/service/pgtls", client=False)
    assert refused.returncode != 0, refused.stdout
    assert "/service/pgtls/leader" in fleet.etcdctl("get", "--prefix", "--keys-only", "/service/pgtls").stdout


def test_the_rest_apis_serve_their_certificates_and_require_a_client_one(fleet):
    for member, role in zip(fleet.members, ("primary", "replica")):
        assert member.rest("/patroni")["role"] in ({role, "master"} if role == "primary" else {role})  # 3.0.2: master
        assert served_serial(member.rest_port, starttls=False) == file_serial(member.tls / "server.crt")
    with pytest.raises((ssl.SSLError, ConnectionResetError, urllib.error.URLError)):
        fleet.members[0].rest("/patroni", client=False)


def test_postgresql_serves_its_certificate_to_verify_full(fleet):
    for member in fleet.members:
        done = member.psql("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().startswith("t|TLSv1.")
        assert member.psql("show ssl_crl_file").stdout.strip() == str(member.client / "root.crl")
        assert served_serial(member.pg_port, starttls=True) == file_serial(member.tls / "server.crt")


def test_the_replica_streams_over_verify_full_with_its_certificate(fleet):
    db1, db2 = fleet.members
    assert db2.streaming()
    assert db1.walsenders() == ["t|/CN=replicator|db2"]
    conninfo = db2.admin("select conninfo from pg_stat_wal_receiver")
    assert "sslmode=verify-full" in conninfo and f"sslcert={db2.client.parent / 'replicator' / 'postgresql.crt'}" \
        in conninfo, conninfo


def test_a_second_run_changes_nothing_and_check_mode_says_so(fleet):
    for args in (("--check", "--diff"), ()):
        done, results = fleet.tls_run(*args)
        for member, result in zip(fleet.members, results):
            assert result["changed"] is False and result["changed_keys"] == []
            assert result["reload_needed"] is False and result["reloaded"] is False
            assert f"{member.name}" in done.stdout
        assert done.stdout.count("changed=0") == 6 and "failed=0" in done.stdout  # localhost, 3 etcd, db1, db2


def test_the_audit_shows_postgresql_and_the_rest_api_of_every_member(fleet):
    """The audit playbook on the members: both endpoints serve the installed certificate, the REST API refuses a
    client without a certificate; the JSON report has them (kinds server and rest_api). Then one REST API answers
    anyone (verify_client optional): its row and entry fail, naming it."""
    report = fleet.base / "audit.json"
    done = run_playbook("patroni_audit.yml", {"pgtls_audit_json": str(report), "pgtls_pki_dir": str(fleet.pki)},
                        "-i", str(fleet.inventory))
    assert "10 cluster(s) meet the policy" in done.stdout
    entries = {(e["host"], e["cluster"]): e for e in json.loads(report.read_text())["servers"]}
    for member in fleet.etcd_members:
        for label, port in ((f"etcd:{member.name}", member.client_port), (f"etcd-peer:{member.name}", member.peer_port)):
            entry = entries.pop((member.name, label))
            assert (entry["kind"], entry["port"], entry["served"]["matches_installed"]) == ("etcd", port, True)
            assert {f["check"] for f in entry["findings"] if f["status"] != "ok"} <= {"hostname"}, entry["findings"]
            assert [f["status"] for f in entry["findings"] if f["check"] == "client_auth"] == ["ok"]
    assert sorted(entries) == [("db1", "patroni-rest:db1"), ("db1", "patroni:db1"), ("db2", "patroni-rest:db2"),
                               ("db2", "patroni:db2")]
    for member in fleet.members:
        pg, rest = entries[(member.name, f"patroni:{member.name}")], entries[(member.name, f"patroni-rest:{member.name}")]
        assert (pg["kind"], pg["port"], rest["kind"], rest["port"]) == ("server", member.pg_port, "rest_api",
                                                                        member.rest_port)
        for entry in (pg, rest):
            assert entry["served"]["matches_installed"] is True, entry["findings"]
            # the only warning: the connect address is an IP address (libpq before 15 ignores IP SANs)
            assert {f["check"] for f in entry["findings"] if f["status"] != "ok"} == {"hostname"}, entry["findings"]
        assert [f["status"] for f in rest["findings"] if f["check"] == "client_auth"] == ["ok"]

    db2 = fleet.members[1]
    before = db2.config.read_bytes()
    config = yaml.safe_load(before)
    config["restapi"]["verify_client"] = "optional"
    db2.config.write_text(yaml.safe_dump(config))
    try:
        assert fleet.patronictl("reload", "pgtls", "db2", "--force").returncode == 0
        wait(db2.rest_answers_anyone, "db2's REST API answering without a client certificate", 30)
        done = run_playbook("patroni_audit.yml", {"pgtls_audit_json": str(report), "pgtls_pki_dir": str(fleet.pki)},
                            "-i", str(fleet.inventory), check=False)
        assert done.returncode != 0 and "1 cluster(s) break the policy: db2 patroni-rest:db2" in done.stdout, \
            done.stdout[-3000:]
        rest = {(e["host"], e["cluster"]): e for e in json.loads(report.read_text())["servers"]}[("db2", "patroni-rest:db2")]
        assert rest["status"] == "fail" and [f["status"] for f in rest["findings"] if f["check"] == "client_auth"] \
            == ["fail"]
    finally:
        db2.config.write_bytes(before)
        assert fleet.patronictl("reload", "pgtls", "db2", "--force").returncode == 0
    wait(lambda: not db2.rest_answers_anyone(), "db2's REST API requiring client certificates again", 30)


def test_ssl_parameters_in_the_dcs_do_not_override_the_members_files(fleet):
    """Patroni merges the local file on top of the DCS's dynamic configuration: ssl = off and another certificate
    written into the DCS (patronictl edit-config) change nothing once every member reloaded - each member still serves
    its installed certificate to verify-full and reports the local values; a run of the playbook changes nothing."""
    edit = ["edit-config", "pgtls", "--force", "-p", "ssl=off", "-p", "ssl_cert_file=/nonexistent/server.crt"]
    done = fleet.patronictl(*edit)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        shown = fleet.patronictl("show-config", "pgtls").stdout
        assert "ssl: false" in shown and "ssl_cert_file: /nonexistent/server.crt" in shown, shown
        for member in fleet.members:
            assert fleet.patronictl("reload", "pgtls", member.name, "--force").returncode == 0
        time.sleep(3)
        for member in fleet.members:
            assert member.psql("show ssl").stdout.strip() == "on"
            assert member.psql("show ssl_cert_file").stdout.strip() == str(member.tls / "server.crt")
            assert served_serial(member.pg_port, starttls=True) == file_serial(member.tls / "server.crt")
        assert [r["changed"] for r in fleet.tls_run()[1]] == [False, False]
    finally:
        fleet.patronictl("edit-config", "pgtls", "--force", "-p", "ssl=null", "-p", "ssl_cert_file=null")
    assert "ssl_cert_file" not in fleet.patronictl("show-config", "pgtls").stdout


def pending_restart(fleet) -> list:
    return [bool(m.rest("/patroni").get("pending_restart")) for m in fleet.members]


def test_renewed_certificates_are_reloaded_and_proven_without_a_leader_change_or_a_gap(fleet):
    """The renewal reloads each member; a restart Patroni says is pending (shared_buffers changed in the DCS, not by
    the collection) is reported after the reload, and no member is restarted for it."""
    db1, db2 = fleet.members
    timeline = fleet.listed()[0]["TL"]
    before = [file_serial(m.tls / "server.crt") for m in fleet.members]
    bump = fleet.patronictl("edit-config", "pgtls", "--force", "-p", "shared_buffers=48MB")
    assert bump.returncode == 0, bump.stdout + bump.stderr
    try:
        wait(lambda: pending_restart(fleet) == [True, True], "both members say a restart is pending", 60)
        started = [m.psql("select pg_postmaster_start_time()").stdout for m in fleet.members]
        assert all(started), started
        (done, results), (calls, failed, gaps) = fleet.watched(pgtls_patroni_extra_sans=["renamed.pgtls.test"])
        warned = " ".join((done.stdout + done.stderr).split())
        assert [r["pending_restart"] for r in results] == [True, True]
        named = "shared_buffers" if "pending_restart_reason" in db1.rest("/patroni") else "Patroni 3 does not say"
        for member in fleet.members:
            assert f"member {member.name} has a restart pending ({named}" in warned, warned[-3000:]
        assert [m.psql("select pg_postmaster_start_time()").stdout for m in fleet.members] == started
    finally:
        fleet.patronictl("edit-config", "pgtls", "--force", "-p", "shared_buffers=null")
    wait(lambda: pending_restart(fleet) == [False, False], "no restart pending once shared_buffers is back", 60)
    after = [file_serial(m.tls / "server.crt") for m in fleet.members]
    assert all(a != b for a, b in zip(after, before))
    for member, result, serial in zip(fleet.members, results, after):
        # The same paths: Patroni's file stays; the member served the old certificate, so it was reloaded and proven
        assert result["changed_keys"] == [] and result["reloaded"] is True and result["changed"] is True
        assert [s["step"] for s in result["steps"]][-4:] == [
            "Reload Patroni (patronictl reload: PostgreSQL and the REST API)",
            "Wait until the REST API and PostgreSQL serve the new certificate",
            "Connect with libpq, sslmode=verify-full by name",
            "The REST API answers over mTLS (the ctl certificate), verified by name"]
        assert served_serial(member.rest_port, starttls=False) == serial
        assert served_serial(member.pg_port, starttls=True) == serial
    assert calls >= 5 and failed == [] and gaps == [], (calls, failed, gaps, fleet.logs())
    assert [(m["Member"], m["Role"], m["State"], m["TL"]) for m in fleet.listed()] == [
        ("db1", "Leader", "running", timeline), ("db2", "Replica", REPLICA, timeline)]
    # the next runs (with the new name kept) need nothing
    assert [r["reload_needed"] for r in fleet.tls_run(pgtls_patroni_extra_sans=["renamed.pgtls.test"])[1]] == [
        False, False]


def test_a_changed_environment_file_restarts_the_etcd_members_one_at_a_time(fleet):
    """An operator's edit took ETCD_PEER_CLIENT_CERT_AUTH out of every member's file: the run puts it back and, since
    etcd reads the file only when it starts, restarts the members one at a time (the stand-in for systemctl), each
    proven healthy over mTLS before the next; the cluster keeps its quorum throughout - no failed patronictl list, the
    replica streaming - and the leader stays. As the documentation says to: Patroni paused for the run (Patroni may
    demote a leader whose etcd member stops in the middle of a request - patroni/patroni#3118, seen here in 3 of 28
    runs without the pause), resumed after."""
    timeline = fleet.listed()[0]["TL"]
    pids = [member.pid() for member in fleet.etcd_members]
    for member in fleet.etcd_members:
        member.env.write_text("".join(line for line in member.env.read_text().splitlines(keepends=True)
                                      if not line.startswith("ETCD_PEER_CLIENT_CERT_AUTH")))
    paused = fleet.patronictl("pause", "--wait")
    assert paused.returncode == 0, paused.stdout + paused.stderr
    try:
        (done, _results), (calls, failed, gaps) = fleet.watched()
    finally:
        resumed = fleet.patronictl("resume", "--wait")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "pause: true" not in fleet.patronictl("show-config").stdout
    for member, result, pid in zip(fleet.etcd_members, fleet.etcd_results, pids):
        assert result["changed_keys"] == ["ETCD_PEER_CLIENT_CERT_AUTH"] and result["restarted"] is True
        assert [s["step"] for s in result["steps"]] == [
            "The installed material, as the server will read it",
            "Restart etcd (it reads its environment file and its trusted CA file only when it starts)",
            "Wait until etcd serves the new certificate to clients and peers",
            "etcd answers /health over mTLS (its own certificate as the client), verified by name"]
        assert member.pid() != pid and 'ETCD_PEER_CLIENT_CERT_AUTH="true"' in member.env.read_text()
    # one member at a time: each one's restart task ran in its own batch, in the inventory's order
    first = done.stdout.index("pgtls.ssl.etcd : config |")
    restarts = [done.stdout.index(f"changed: [{m.name}]", first) for m in fleet.etcd_members]
    assert restarts == sorted(restarts)
    assert calls >= 5 and failed == [] and gaps == [], (calls, failed, gaps, fleet.logs())
    assert [(m["Member"], m["Role"], m["TL"]) for m in fleet.listed()] == [("db1", "Leader", timeline),
                                                                           ("db2", "Replica", timeline)]
    assert fleet.etcdctl("endpoint", "health", "--cluster").stderr.count("is healthy") == 3
    assert [r["changed"] for r in fleet.tls_run()[1] + fleet.etcd_results] == [False] * 5


def issuer_cn(path: Path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).issuer.rfc4514_string()


def test_an_intermediate_rotation_reaches_every_member_without_a_leader_change_or_a_gap(fleet):
    """The patroni playbook with -e pgtls_rotate_intermediate=start: a new intermediate, every member's CRLs first,
    then member after member a certificate of it (server, patronictl's, replication's), reloaded and proven, while a
    watcher sees no failed patronictl list and no moment without streaming; the replica's next connection (its
    walsender ended) verifies the leader's new chain with its CRL file and presents its new replication
    certificate, which the leader's reloaded CRL accepts."""
    db1, db2 = fleet.members
    timeline = fleet.listed()[0]["TL"]
    before = {m.name: issuer_cn(m.tls / "server.crt") for m in fleet.members}
    (done, results), (calls, failed, gaps) = fleet.watched(pgtls_rotate_intermediate="start",
                                                           pgtls_patroni_extra_sans=["renamed.pgtls.test"])
    assert "The CA folder's CRLs on every member" in done.stdout
    # etcd first: each member's certificate from the new intermediate, served at once - no restart (it reads its
    # certificate at each handshake; the root it trusts stayed) - and the member proven healthy before the next
    for member, result in zip(fleet.etcd_members, fleet.etcd_results):
        assert issuer_cn(member.tls / "server.crt") != before[fleet.members[0].name]
        assert result["changed"] is True and result["restarted"] is False and result["restart_needed"] is False
        assert [s["step"] for s in result["steps"]] == [
            "etcd answers /health over mTLS (its own certificate as the client), verified by name"]
        assert served_serial(member.client_port, starttls=False) == file_serial(member.tls / "server.crt")
        assert served_serial(member.peer_port, starttls=False) == file_serial(member.tls / "server.crt")
        assert first_crl_issuer(member.tls / "etcd.crl") == issuer_cn(member.tls / "server.crt")
    for member, result in zip(fleet.members, results):
        for path in (member.tls / "server.crt", member.client / "postgresql.crt",
                     member.client.parent / "replicator" / "postgresql.crt"):
            assert issuer_cn(path) != before[member.name], path
        assert result["reloaded"] is True
        assert served_serial(member.rest_port, starttls=False) == file_serial(member.tls / "server.crt")
        assert served_serial(member.pg_port, starttls=True) == file_serial(member.tls / "server.crt")
    assert calls >= 5 and failed == [] and gaps == [], (calls, failed, gaps, fleet.logs())
    assert [m["TL"] for m in fleet.listed()] == [timeline, timeline]
    # the replica connects again: the leader's new chain checked with its CRL file, its new certificate presented
    assert db1.admin("select count(pg_terminate_backend(pid)) from pg_stat_replication") == "1"
    wait(lambda: db1.walsenders() == ["t|/CN=replicator|db2"] and db2.streaming(), "db2 streaming again", 30)
    assert [r["changed"] for r in fleet.tls_run(pgtls_patroni_extra_sans=["renamed.pgtls.test"])[1]] == [False, False]


def test_a_planned_switchover_afterwards_streams_the_other_way_over_tls(fleet):
    db1, db2 = fleet.members
    done = fleet.patronictl("switchover", "pgtls", "--leader", "db1", "--candidate", "db2", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    fleet.wait_for([("db1", "Replica", REPLICA), ("db2", "Leader", "running")], "db1 streaming from db2")
    wait(db1.streaming, "db1 streaming from db2 (pg_stat_wal_receiver)", 60)
    assert db2.walsenders() == ["t|/CN=replicator|db1"]
    assert db2.psql("select pg_is_in_recovery()").stdout.strip() == "f"


def another_root(path: Path) -> None:
    """A root CA certificate of another CA (cryptography directly, not the collection)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Another Root")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_members_trusting_another_root_stop_the_run_before_any_member_changes(fleet):
    """db2's Patroni file names another CA's root (ctl.cacert): the preflight reads every member first and refuses,
    naming db2 and the file, before db1 (the first batch) or anything else changes; Patroni keeps serving."""
    db1, db2 = fleet.members
    other = db2.base / "other-root.crt"
    another_root(other)
    config_before = db2.config.read_bytes()
    config = yaml.safe_load(config_before)
    config["ctl"]["cacert"] = str(other)
    db2.config.write_text(yaml.safe_dump(config))
    broken = db2.config.read_bytes()
    watched = [db1.config, db1.tls / "server.crt", db1.tls / "server.key", db2.tls / "server.crt", fleet.pki / "crl.pem"]
    before = {path: path.read_bytes() for path in watched}
    try:
        # a new name for every member: without the refusal, db1 would get a new certificate and a reload
        done, results = fleet.tls_run(check=False, pgtls_patroni_extra_sans=["another.pgtls.test"])
        assert done.returncode != 0 and results == [None, None]
        assert "refusing to change the fleet's trust anchor" in done.stdout
        assert f"db2 patroni/pgtls ({other}) trusts" in done.stdout, done.stdout[-3000:]
        assert {path: path.read_bytes() for path in watched} == before and db2.config.read_bytes() == broken
    finally:
        db2.config.write_bytes(config_before)
    assert db1.rest("/patroni")["state"] == "running" and db2.rest("/patroni")["state"] == "running"


def test_an_etcd_address_its_certificate_does_not_name_stops_the_run_before_any_member_changes(fleet):
    """db2's Patroni file dials etcd as localhost; etcd's certificate names 127.0.0.1 only: Patroni over https would
    refuse it and lose the DCS. The preflight asks every member's etcd addresses first and refuses, naming db2, the
    address and the certificate's names; nothing changes."""
    db1, db2 = fleet.members
    config_before = db2.config.read_bytes()
    config = yaml.safe_load(config_before)
    config["etcd3"]["hosts"] = f"localhost:{fleet.etcd_port}"
    db2.config.write_text(yaml.safe_dump(config))
    broken = db2.config.read_bytes()
    watched = [db1.config, db1.tls / "server.crt", db2.tls / "server.crt", fleet.pki / "crl.pem"]
    before = {path: path.read_bytes() for path in watched}
    try:
        done, results = fleet.tls_run(check=False, pgtls_patroni_extra_sans=["etcd-check.pgtls.test"])
        assert done.returncode != 0 and results == [None, None]
        assert (f"db2: etcd at localhost:{fleet.etcd_port} ({db2.config}) serves CN=etcd1, whose names "
                f"(etcd1, 127.0.0.1) do not include localhost") in done.stdout, done.stdout[-3000:]
        assert {path: path.read_bytes() for path in watched} == before and db2.config.read_bytes() == broken
    finally:
        db2.config.write_bytes(config_before)
    assert all(member.rest("/patroni")["state"] == "running" for member in fleet.members)


def test_a_revoked_client_certificate_is_refused_by_every_etcd_member(fleet):
    """A client certificate of the CA folder works against every etcd member; revoked (pgtls_revoked), the next run
    gives each member its new CRL file - the issuing intermediate's CRL first, since etcd reads the first CRL only -
    with no restart (etcd reads its CRL file per connection), and every member refuses that client while the members'
    own certificates still pass."""
    dest = fleet.base / "clients"
    dest.mkdir()
    run_playbook("patroni_client.yml", {"pki": str(fleet.pki), "client_name": "intruder", "dest": str(dest)})
    pair = (dest / "intruder" / "postgresql.crt", dest / "intruder" / "postgresql.key")
    for member in fleet.etcd_members:
        allowed = fleet.etcdctl("get", "--prefix", "--keys-only", "/service/pgtls", cert=pair, port=member.client_port)
        assert allowed.returncode == 0 and "/service/pgtls/leader" in allowed.stdout, allowed.stderr
    fleet.tls_run(pgtls_revoked=[{"certificate_path": str(pair[0])}])
    for member, result in zip(fleet.etcd_members, fleet.etcd_results):
        assert result["crl_changed"] is True and result["restarted"] is False, result
        assert first_crl_issuer(member.tls / "etcd.crl") == issuer_cn(pair[0])
        refused = fleet.etcdctl("get", "--prefix", "--keys-only", "/service/pgtls", cert=pair, port=member.client_port)
        assert refused.returncode != 0 and "/service/pgtls" not in refused.stdout, refused.stdout
    assert fleet.etcdctl("endpoint", "health", "--cluster").stderr.count("is healthy") == 3
    assert fleet.roles() == [("db1", "Replica", REPLICA), ("db2", "Leader", "running")]


def test_a_crl_written_by_a_stopped_run_is_loaded_by_the_next_run(fleet):
    """A client certificate (CN replicator: pg_hba.conf's replication rule takes it) is revoked by a run that is
    killed when the first member's batch calls patronictl reload: the CRL play has written every member's CRL, no
    member was reloaded, and PostgreSQL still lets the certificate in. The next run finds nothing to change and the
    installed certificates served, but each member's CRL differs from what it last loaded (patroni_config's
    record): each member is reloaded and proven, and every member's PostgreSQL refuses the certificate; one more run
    changes nothing, and the leader never changed."""
    dest = fleet.base / "clients-pg"
    dest.mkdir()
    run_playbook("patroni_client.yml", {"pki": str(fleet.pki), "client_name": "replicator", "dest": str(dest)})
    pair = (dest / "replicator" / "postgresql.crt", dest / "replicator" / "postgresql.key")
    roles = fleet.roles()

    def replication(member) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        conninfo = (f"host=127.0.0.1 port={member.pg_port} user=replicator dbname=postgres replication=true "
                    f"sslmode=verify-full sslrootcert={member.tls / 'root.crt'} sslcert={pair[0]} sslkey={pair[1]}")
        return subprocess.run(["psql", "-X", "-At", "-c", "IDENTIFY_SYSTEM", conninfo], capture_output=True, text=True,
                              env=env, timeout=30, check=False)

    for member in fleet.members:
        assert replication(member).returncode == 0, replication(member).stderr
    crls = {member.name: (member.client / "root.crl").read_bytes() for member in fleet.members}
    hold = fleet.base / "hold"
    hold.mkdir()
    os.chmod(hold, 0o777)  # patronictl runs as postgres
    reached = hold / "reached"
    (hold / "patronictl").write_text(f"""#!/bin/sh
case "$*" in *" reload "*) : > {reached}; sleep 300;; esac
exec {PATRONI / "patronictl"} "$@"
""")
    os.chmod(hold / "patronictl", 0o755)
    revoked = [{"certificate_path": str(pair[0])}]
    extra = {"pgtls_revoked": revoked, "pgtls_patroni_patronictl": str(hold / "patronictl")}
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
           json.dumps(extra), "-i", str(fleet.inventory), str(HERE / "playbooks" / "patroni_fleet.yml")]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ansible_env(),
                           start_new_session=True)
    deadline = time.monotonic() + 300
    while not reached.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    kill_tree(run)
    # The held patronictl's chain may outlive the kill (seen with the fleet's psql): only it, not the etcd members
    # that earlier runs restarted (marked too).
    for pid, line in marked_processes().items():
        if str(hold) in line or line.startswith("sleep 300"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    seen = run.stdout.read()
    run.wait()
    assert reached.exists(), seen[-5000:]
    for member in fleet.members:
        assert (member.client / "root.crl").read_bytes() != crls[member.name], seen[-5000:]  # written by the CRL play
        assert replication(member).returncode == 0  # not loaded: still let in
    done, results = fleet.tls_run(pgtls_revoked=revoked)
    for member, result in zip(fleet.members, results):
        assert result["changed_keys"] == [] and result["reload_needed"] is True and result["reloaded"] is True, result
        refused = replication(member)
        assert refused.returncode != 0 and "certificate revoked" in refused.stderr, (member.name, refused.stderr)
    done, results = fleet.tls_run(pgtls_revoked=revoked)
    assert all(result["changed"] is False and result["reloaded"] is False for result in results), done.stdout[-3000:]
    assert fleet.roles() == roles
