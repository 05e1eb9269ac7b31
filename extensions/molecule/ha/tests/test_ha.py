"""Verify the HA fleet from outside with real clients, then run the life-cycle steps against it: an intermediate
rotation with a watcher (no leader change, no failed patronictl list, the replicas streaming throughout), a second
run that changes nothing, a planned switchover, and a revoked certificate refused by PostgreSQL and by etcd.
The tests run in file order: each life-cycle step builds on the previous one."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time

import pytest
import testinfra
import yaml
from conftest import playbook, recap_changed

PKI = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "pki")
DBS = ["pgtls-ha-db1", "pgtls-ha-db2", "pgtls-ha-db3"]
CONFIG = "/etc/patroni/config.yml"
PATRONI_TLS, ETCD_TLS = "/etc/patroni/tls", "/etc/etcd/tls"
SECRET = "pgtls-ha-superuser-secret"  # group_vars/all.yml: ha_secret
ON_APP = "/root/ha"  # the CA folder's root certificate (and a client's files) copied to the application host


def node(name):
    return testinfra.get_host(f"podman://{name}")


APP = node("pgtls-ha-app")


def podman(*args, check=True):
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120, check=False)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def patronictl(*args, on=DBS[0]):
    """patronictl as postgres on a member: over HTTPS to the REST APIs with the ctl certificate, to etcd with it too."""
    return podman("exec", on, "runuser", "-u", "postgres", "--", "timeout", "30", "patronictl", "-c", CONFIG, *args,
                  check=False)


def listed():
    """(member, role, state, timeline) of every member, as patronictl list says; [] when patronictl failed."""
    done = patronictl("list", "-f", "json")
    if done.returncode != 0:
        return []
    return sorted((m["Member"], m["Role"], m["State"], m.get("TL")) for m in json.loads(done.stdout or "[]"))


def leader():
    return [m[0] for m in listed() if m[1] == "Leader"]


def replicas_ok(members):
    """One leader running, every other member a replica (patronictl 3.0.2 says running, 3.1+ streaming)."""
    return (len(members) == len(DBS) and [m[1] for m in members].count("Leader") == 1
            and all(m[2] == "running" for m in members if m[1] == "Leader")
            and all(m[1] == "Replica" and m[2] in ("running", "streaming") for m in members if m[1] != "Leader"))


def wait(condition, what, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"not within {seconds} s: {what}: {listed()}")


def admin(member, sql):
    """psql as postgres on the member's socket (peer)."""
    done = podman("exec", member, "runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-F", "|", "-c", sql,
                  check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def streaming(member):
    return admin(member, "select status from pg_stat_wal_receiver") == "streaming"


def walsenders(member):
    rows = admin(member, "select s.ssl, s.client_dn, r.application_name from pg_stat_replication r "
                         "join pg_stat_ssl s using (pid) order by 3")
    return (rows or "").splitlines()


def psql(server, sql="select ssl from pg_stat_ssl where pid = pg_backend_pid()", client=None):
    """psql from the application host as postgres, verify-full by name, the password from the environment."""
    conninfo = (f"host={server} port=5432 dbname=postgres user=postgres sslmode=verify-full connect_timeout=10 "
                f"sslrootcert={ON_APP}/root.crt")
    if client:
        conninfo += f" sslcert={client}/postgresql.crt sslkey={client}/postgresql.key"
    return APP.run(f"PGPASSWORD={shlex.quote(SECRET)} psql -X -At -c {shlex.quote(sql)} {shlex.quote(conninfo)}")


def served(server, port, starttls=False):
    """The SHA-256 fingerprint of the leaf the server presents (openssl on the application host)."""
    out = APP.run(f"openssl s_client {'-starttls postgres ' if starttls else ''}-connect {server}:{port} "
                  f"-servername {server} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 -issuer")
    assert out.rc == 0, out.stderr
    return out.stdout


def installed(member, path):
    out = node(member).run(f"openssl x509 -noout -fingerprint -sha256 -issuer -in {path}")
    assert out.rc == 0, out.stderr
    return out.stdout


def curl(url, client=None):
    """curl from the application host, the CA folder's root trusted: its exit code (0: answered with 2xx)."""
    cert = f"--cert {client}/postgresql.crt --key {client}/postgresql.key " if client else ""
    return APP.run(f"curl -sf -o /dev/null --max-time 10 --cacert {ON_APP}/root.crt {cert}{url}").rc


@pytest.fixture(scope="module", autouse=True)
def root_on_the_app_host():
    APP.run(f"mkdir -p {ON_APP}")
    podman("cp", os.path.join(PKI, "root.crt"), f"pgtls-ha-app:{ON_APP}/root.crt")


def test_patronictl_lists_a_leader_and_two_replicas_over_mtls():
    """patronictl reaches the REST APIs and etcd with the certificate the role gave it (ctl in Patroni's file)."""
    members = listed()
    assert replicas_ok(members), members
    config = yaml.safe_load(node(DBS[0]).file(CONFIG).content_string)
    assert config["restapi"]["verify_client"] == "required" and config["etcd3"]["protocol"] == "https"
    assert config["ctl"]["certfile"] == f"{PATRONI_TLS}/clients/patroni/postgresql.crt"
    assert SECRET in node(DBS[0]).file(CONFIG).content_string  # the operator's secrets stay in the file


@pytest.mark.parametrize("server", DBS)
def test_every_member_serves_verify_full_by_name_from_the_application_host(server):
    done = psql(server)
    assert done.rc == 0 and done.stdout.strip() == "t", done.stderr
    assert served(server, 5432, starttls=True) == installed(server, f"{PATRONI_TLS}/server.crt")


def test_a_name_the_certificate_lacks_fails_verify_full():
    address = APP.run(f"getent hosts {DBS[0]}").stdout.split()[0]
    done = psql(address)
    assert done.rc != 0 and f'does not match host name "{address}"' in done.stderr, done.stderr


def test_the_replicas_stream_over_verify_full_with_the_replication_certificate():
    first = leader()
    assert len(first) == 1
    others = sorted(set(DBS) - set(first))
    assert walsenders(first[0]) == [f"t|/CN=replicator|{m}" for m in others]
    assert all(streaming(m) for m in others)


@pytest.mark.parametrize("server", DBS)
def test_the_rest_apis_and_etcd_serve_their_certificates_and_refuse_a_client_without_one(server):
    assert served(server, 8008) == installed(server, f"{PATRONI_TLS}/server.crt")
    assert served(server, 2379) == installed(server, f"{ETCD_TLS}/server.crt")
    assert served(server, 2380) == installed(server, f"{ETCD_TLS}/server.crt")
    assert curl(f"https://{server}:8008/patroni") != 0
    assert curl(f"https://{server}:2379/health") != 0
    assert curl(f"https://{server}:2380/members") != 0


def test_etcd_is_healthy_over_mtls_with_etcdctls_certificate():
    done = node(DBS[0]).run(
        f"ETCDCTL_API=3 etcdctl --endpoints https://{DBS[0]}:2379 --cacert {ETCD_TLS}/root.crt "
        f"--cert {ETCD_TLS}/etcdctl/postgresql.crt --key {ETCD_TLS}/etcdctl/postgresql.key endpoint health --cluster")
    assert done.rc == 0 and done.stdout.count("is healthy") + done.stderr.count("is healthy") == 3, done.stderr


def test_the_audit_shows_postgresql_the_rest_api_and_etcd_of_every_member(tmp_path):
    report = tmp_path / "audit.json"
    rc, out = playbook("audit", "-e", f"pgtls_audit_json={report}")
    assert rc == 0, out[-3000:]
    assert "12 cluster(s) meet the policy" in out, out[-3000:]
    entries = {(e["host"], e["cluster"]): e for e in json.loads(report.read_text())["servers"]}
    assert sorted(entries) == sorted((m, f"{kind}:{m}") for m in DBS
                                     for kind in ("patroni", "patroni-rest", "etcd", "etcd-peer"))
    for entry in entries.values():
        assert entry["served"]["matches_installed"] is True, entry
        assert [f for f in entry["findings"] if f["status"] != "ok"] == [], entry["findings"]


class Watcher:
    """patronictl list and every replica's wal receiver, read in a loop while a playbook runs."""

    def __init__(self):
        self.calls, self.failed, self.gaps, self.leaders = 0, [], 0, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch)

    def _watch(self):
        while not self._stop.is_set():
            self.calls += 1
            members = listed()
            if not replicas_ok(members):
                self.failed.append(members)
            else:
                self.leaders.update(m[0] for m in members if m[1] == "Leader")
                self.gaps += sum(not streaming(m[0]) for m in members if m[1] != "Leader")
            time.sleep(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        time.sleep(3)
        self._stop.set()
        self._thread.join()
        print(f"watcher: {self.calls} patronictl list calls, {len(self.failed)} failed, {self.gaps} streaming gaps, "
              f"leaders {sorted(self.leaders)}")


def test_an_intermediate_rotation_reaches_every_member_without_a_leader_change_or_a_gap():
    before = listed()
    issuers = {m: installed(m, f"{PATRONI_TLS}/server.crt").split("issuer=")[1] for m in DBS}
    with Watcher() as watched:
        rc, out = playbook("patroni", "-e", "pgtls_rotate_intermediate=start")
    assert rc == 0, out[-3000:]
    assert watched.calls >= 10 and watched.failed == [] and watched.gaps == 0, (watched.failed, watched.gaps)
    assert watched.leaders == {m[0] for m in before if m[1] == "Leader"}
    assert [(m[0], m[1], m[3]) for m in listed()] == [(m[0], m[1], m[3]) for m in before]  # no failover, same timeline
    for member in DBS:
        for port, path, starttls in ((5432, f"{PATRONI_TLS}/server.crt", True), (8008, f"{PATRONI_TLS}/server.crt", False),
                                     (2379, f"{ETCD_TLS}/server.crt", False)):
            now = installed(member, path)
            assert served(member, port, starttls) == now
        assert now.split("issuer=")[1] != issuers[member]
    assert all(psql(m).stdout.strip() == "t" for m in DBS)


def test_a_second_run_changes_nothing():
    rc, out = playbook("patroni")
    assert rc == 0, out[-3000:]
    assert recap_changed(out) == {"localhost": 0, **{m: 0 for m in DBS}}, out[-3000:]


def test_a_planned_switchover_keeps_verify_full_by_name_to_the_new_leader():
    old = leader()[0]
    new = [m for m in DBS if m != old][0]
    done = patronictl("switchover", "pgtls", "--leader", old, "--candidate", new, "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    wait(lambda: replicas_ok(members := listed()) and leader() == [new] and all(
        streaming(m[0]) for m in members if m[1] != "Leader"), f"{new} leading, the others streaming from it")
    assert psql(new, "select pg_is_in_recovery()").stdout.strip() == "f"
    assert walsenders(new) == [f"t|/CN=replicator|{m}" for m in sorted(set(DBS) - {new})]


def test_a_revoked_certificate_is_refused_by_postgresql_and_etcd_on_every_member(tmp_path):
    """A client certificate of the CA folder passes PostgreSQL's and etcd's TLS on every member; revoked
    (pgtls_revoked, the patroni playbook), every member refuses it, and the fleet keeps its leader."""
    issue = tmp_path / "issue.yml"
    task = {"name": "The client certificate",
            "pgtls.ssl.client_cert": {"ca_folder": PKI, "clients": [{"name": "intruder"}], "dest": str(tmp_path)}}
    issue.write_text(yaml.safe_dump([{"name": "A client certificate from the CA folder", "hosts": "localhost",
                                      "gather_facts": False, "tasks": [task]}]))
    done = subprocess.run(["ansible-playbook", str(issue)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    podman("cp", str(tmp_path / "intruder"), f"pgtls-ha-app:{ON_APP}/intruder")
    client = f"{ON_APP}/intruder"
    for member in DBS:
        assert psql(member, client=client).stdout.strip() == "t"
        assert curl(f"https://{member}:2379/health", client=client) == 0
    fleet_before = listed()
    revoked = json.dumps({"pgtls_revoked": [{"certificate_path": str(tmp_path / "intruder" / "postgresql.crt")}]})
    rc, out = playbook("patroni", "-e", revoked)
    assert rc == 0, out[-3000:]
    for member in DBS:
        refused = psql(member, client=client)
        assert refused.rc != 0 and "certificate revoked" in refused.stderr, (member, refused.stderr)
        assert curl(f"https://{member}:2379/health", client=client) != 0
        assert psql(member).stdout.strip() == "t"  # without that certificate: still served
    assert listed() == fleet_before
