"""The life-cycle playbooks on a fleet of two database "hosts" (inventory names db1 and db2, each with its own real
PostgreSQL 15 cluster on this machine) when things go wrong: a CA folder whose root the fleet does not trust (an
empty one, another one) is refused before anything changes anywhere; a stopped cluster fails its host, the audit
flags it, and pgtls_allow_stopped accepts it; a run killed between installing new certificates and reloading
converges on the next run; snapshots never leave the TLS folder; the CRL number never goes back when the CRL file
is lost. The tests run in order and build on each other."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TARGET_PYTHON, ansible_env, plain_cluster
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from pgtls_harness import assert_no_deprecation, kill_tree, leftovers

HOSTS = ("db1", "db2")
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def first_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(PEM_CERT.search(path.read_bytes()).group(0))


@pytest.fixture(scope="module")
def fleet(workdir):
    base = workdir / "fleet"
    base.mkdir(mode=0o755)
    clusters = {host: plain_cluster(base / host) for host in HOSTS}
    hba = [{"type": "local", "database": "all", "user": "postgres", "method": "peer"},
           {"type": "hostssl", "database": "all", "user": "postgres", "address": "127.0.0.1/32", "method": "trust"}]
    hosts = {host: {"pgtls_clusters": [{"version": 15, "name": "main", "port": c.port, "config_dir": str(c.data),
                                        "data_dir": str(c.data), "service": "", "socket_dir": str(c.sockets),
                                        "log_file": str(c.log)}]}
             for host, c in clusters.items()}
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": TARGET_PYTHON,
                                  "ansible_become_method": "ansible.builtin.su", "pgtls_key_layout": "owner",
                                  "pgtls_hba_rules": hba},
                         "children": {"pgtls_servers": {"hosts": hosts}}}}
    (base / "inventory.json").write_text(json.dumps(inventory))
    state = {"base": base, "clusters": clusters, "inventory": base / "inventory.json", "pki": base / "pki-a"}
    yield state
    for cluster in clusters.values():
        cluster.stop()
    subprocess.run(["find", "/tmp", "-maxdepth", "1", "-name", "ansible.pgtls-e2e*.pgtls", "-exec", "rm", "-rf",
                    "{}", "+"], check=False)


def play(fleet, playbook: str, check: bool = True, **extra) -> subprocess.CompletedProcess:
    extra.setdefault("pgtls_pki_dir", str(fleet["pki"]))
    cmd = [PLAYBOOK, "-i", str(fleet["inventory"]), "-e", json.dumps(extra), f"pgtls.ssl.{playbook}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(), check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{playbook} failed ({done.returncode}):\n{done.stdout[-8000:]}\n{done.stderr[-2000:]}")
    assert_no_deprecation(cmd, done.stdout, done.stderr)
    return done


def recap(output: str, host: str) -> dict:
    line = re.search(rf"^{host}\s+: (.*)$", output, re.M).group(1)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def tls(fleet, host: str) -> Path:
    return fleet["clusters"][host].data / "tls"


def watched_files(fleet) -> dict:
    """Bytes and metadata of every file the role may change, on every host."""
    out = {}
    for cluster in fleet["clusters"].values():
        for path in [*sorted((cluster.data / "tls").iterdir()), cluster.data / "pg_hba.conf",
                     cluster.data / "pg_ident.conf", cluster.data / "postgresql.conf", cluster.data / "conf.d" / "pgtls.conf"]:
            st = path.lstat()
            data = path.read_bytes() if path.is_file() else b"<dir>"
            out[str(path)] = (data, st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_mtime_ns)
    return out


def served(fleet, host: str) -> x509.Certificate:
    """The leaf the server really serves (openssl s_client, STARTTLS postgres)."""
    done = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect",
                           f"127.0.0.1:{fleet['clusters'][host].port}"], input="", capture_output=True, timeout=30,
                          check=False)
    found = PEM_CERT.search(done.stdout)
    assert found, done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    return x509.load_pem_x509_certificate(found.group(0))


def verify_full(fleet, host: str, root: Path) -> subprocess.CompletedProcess:
    return fleet["clusters"][host].psql(f"host={host} hostaddr=127.0.0.1 user=postgres sslmode=verify-full "
                                        f"sslrootcert={root}")


def assert_serves_installed(fleet, host: str) -> None:
    installed = first_cert(tls(fleet, host) / "server.crt")
    assert served(fleet, host).public_bytes(Encoding.DER) == installed.public_bytes(Encoding.DER)


def test_rollout(fleet):
    play(fleet, "site")
    for host in HOSTS:
        assert_serves_installed(fleet, host)
        connected = verify_full(fleet, host, fleet["pki"] / "root.crt")
        assert connected.returncode == 0, connected.stderr
        assert (tls(fleet, host) / "root.crt").read_bytes() == (fleet["pki"] / "root.crt").read_bytes()


def test_empty_ca_folder_is_refused_before_anything_changes(fleet):
    """The demo's trap: site run without the fleet's CA folder would make a new root and replace the fleet's."""
    before = watched_files(fleet)
    empty = fleet["base"] / "pki-empty"
    done = play(fleet, "site", check=False, pgtls_pki_dir=str(empty))
    assert done.returncode != 0
    text = " ".join(done.stdout.split())
    root_a = first_cert(fleet["pki"] / "root.crt")
    assert "refusing to change the fleet's trust anchor" in text, done.stdout
    assert f"the CA folder {empty} holds no root CA" in text
    assert f"{root_a.subject.rfc4514_string()} (SHA-256 {fingerprint(root_a)})" in text
    assert "db1 15/main" in text and "db2 15/main" in text and "pgtls_accept_new_root=true" in text
    assert not empty.exists()  # not even the CA folder was made
    assert watched_files(fleet) == before
    for host in HOSTS:
        assert_serves_installed(fleet, host)


def test_another_root_is_refused_naming_both_roots(fleet):
    before = watched_files(fleet)
    other = fleet["base"] / "pki-b"
    other.mkdir(mode=0o700)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "3650", "-subj", "/CN=Other Root", "-keyout", str(other / "root.key"),
                    "-out", str(other / "root.crt"), "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"], capture_output=True, check=True)
    done = play(fleet, "site", check=False, pgtls_pki_dir=str(other))
    assert done.returncode != 0
    text = " ".join(done.stdout.split())
    root_a, root_b = first_cert(fleet["pki"] / "root.crt"), first_cert(other / "root.crt")
    assert f"the CA folder {other} holds the root CN=Other Root (SHA-256 {fingerprint(root_b)})" in text, done.stdout
    assert f"trust {root_a.subject.rfc4514_string()} (SHA-256 {fingerprint(root_a)})" in text
    assert sorted(p.name for p in other.iterdir()) == ["root.crt", "root.key"]  # no intermediate, no CRL made
    assert watched_files(fleet) == before
    for host in HOSTS:
        assert_serves_installed(fleet, host)
        assert verify_full(fleet, host, fleet["pki"] / "root.crt").returncode == 0


def test_accept_new_root_moves_the_fleet(fleet):
    other = fleet["base"] / "pki-b"
    play(fleet, "site", pgtls_pki_dir=str(other), pgtls_accept_new_root=True)
    fleet["pki"] = other  # the fleet's CA folder from here on
    for host in HOSTS:
        assert (tls(fleet, host) / "root.crt").read_bytes() == (other / "root.crt").read_bytes()
        assert_serves_installed(fleet, host)
        connected = verify_full(fleet, host, other / "root.crt")
        assert connected.returncode == 0, connected.stderr
    done = play(fleet, "site")  # the fleet's own CA folder now: no refusal, nothing to change
    assert recap(done.stdout, "db1")["changed"] == 0 and recap(done.stdout, "db2")["changed"] == 0, done.stdout


def test_stopped_cluster_fails_its_host(fleet):
    fleet["clusters"]["db2"].stop()
    done = play(fleet, "site", check=False, pgtls_ssl_min_protocol_version="TLSv1.3")
    assert done.returncode != 0
    text = " ".join(done.stdout.split())
    assert "PostgreSQL is not running on db2: 15/main (port" in text, done.stdout
    assert "set pgtls_allow_stopped=true" in text
    assert recap(done.stdout, "db1")["failed"] == 0 and recap(done.stdout, "db2")["failed"] == 1
    # Its files are in place (checked without the server); db1 was reloaded and proven.
    assert "ssl_min_protocol_version = 'TLSv1.3'" in (fleet["clusters"]["db2"].data / "conf.d" / "pgtls.conf").read_text()
    assert fleet["clusters"]["db1"].admin("show ssl_min_protocol_version").stdout.strip() == "TLSv1.3"


def test_audit_flags_the_stopped_cluster(fleet):
    done = play(fleet, "audit", check=False)
    assert done.returncode != 0
    text = " ".join(done.stdout.split())
    assert re.search(r"db2 +15/main .*FAIL +PostgreSQL is not running", done.stdout), done.stdout
    assert "1 cluster(s) break the policy: db2 15/main" in text


def test_allow_stopped_accepts_it_and_start_proves_it(fleet):
    done = play(fleet, "site", pgtls_allow_stopped=True)
    # A warning (standard error), the run succeeds.
    assert "not running, so not proven: 15/main on db2" in " ".join((done.stdout + done.stderr).split()), done.stderr
    fleet["clusters"]["db2"].start()
    play(fleet, "site")
    for host in HOSTS:
        assert_serves_installed(fleet, host)
        assert fleet["clusters"][host].admin("show ssl_min_protocol_version").stdout.strip() == "TLSv1.2"


def killed_at_the_parse_check(fleet, extra: dict) -> list[str]:
    """Run site with ``extra`` and kill the whole run when the first host's install-and-activate execution reaches
    its first PostgreSQL check (a psql in front of the real one waits there): its files written, nothing reloaded.
    The run's output lines."""
    hold = fleet["base"] / "hold"
    hold.mkdir(exist_ok=True)
    os.chmod(hold, 0o777)  # the check runs as postgres
    reached = hold / "reached"
    reached.unlink(missing_ok=True)
    wrapper = hold / "psql"
    wrapper.write_text(f"""#!/bin/sh
case "$*" in *pg_hba_file_rules*) : > {reached}; sleep 300;; esac
PATH={os.environ["PATH"]} exec psql "$@"
""")
    os.chmod(wrapper, 0o755)
    cmd = [PLAYBOOK, "-i", str(fleet["inventory"]), "-e", json.dumps(extra), "pgtls.ssl.site"]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=ansible_env(PATH=f"{hold}:{os.environ['PATH']}"), start_new_session=True)
    deadline = time.monotonic() + 300
    while not reached.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    kill_tree(run)  # the run's process group, and its workers, which setsid()
    # Then whatever of this run's marked processes escaped the tree (seen once on CI with ansible-core 2.20: the held
    # psql's runuser/timeout/sh/sleep chain outlived the kill), killed until none is left: the files are read when
    # nothing of the run can still write them. No other run is active in this test.
    escaped: dict[int, str] = {}
    deadline = time.monotonic() + 30
    while (found := leftovers(grace=0)) and time.monotonic() < deadline:
        escaped.update(found)
        time.sleep(0.2)
    seen = run.stdout.readlines()
    seen += [f"outlived the kill: {pid} {line[:200]}\n" for pid, line in sorted(escaped.items())]
    run.wait()
    assert_no_deprecation(cmd, "".join(seen))
    assert reached.exists(), "".join(seen[-80:])
    return seen


def test_interrupted_reissue_converges_on_the_next_run(fleet):
    """Killed (every process of the run) after the new certificates are installed, before any reload: the host's
    one install-and-activate execution is held at its first PostgreSQL check (a psql in front of the real one
    waits there) and the whole run is killed then."""
    old = {host: first_cert(tls(fleet, host) / "server.crt") for host in HOSTS}
    legacy = Path("/tmp/ansible.pgtls-e2e-legacy.pgtls")  # where earlier releases left their snapshots
    legacy.mkdir(mode=0o700, exist_ok=True)
    (legacy / "server.key").write_bytes((tls(fleet, "db1") / "server.key").read_bytes())
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))  # left by a run two hours ago
    extra = {"pgtls_pki_dir": str(fleet["pki"]), "pgtls_server_extra_sans": ["renamed.pgtls.test"]}
    seen = killed_at_the_parse_check(fleet, extra)
    # Hosts run their clusters one include at a time: the first host has its new files, not loaded; maybe not all.
    interrupted = [h for h in HOSTS if first_cert(tls(fleet, h) / "server.crt").serial_number != old[h].serial_number]
    assert interrupted, "".join(seen[-80:])
    for host in interrupted:
        assert served(fleet, host).serial_number == old[host].serial_number  # installed, but not served
        snapshot = tls(fleet, host) / ".pgtls-snapshot"
        assert snapshot.is_dir() and (snapshot.stat().st_mode & 0o777) == 0o750 and snapshot.stat().st_uid == 0
        copies = list(snapshot.glob("*server.key"))
        key = (tls(fleet, host) / "server.key").stat()
        assert copies and all((c.stat().st_mode & 0o777, c.stat().st_uid) == (key.st_mode & 0o777, key.st_uid)
                              for c in copies)
    done = play(fleet, "site", pgtls_server_extra_sans=["renamed.pgtls.test"])
    assert "though no file changed in this run" in " ".join(done.stdout.split()), done.stdout
    assert "Reload with pg_reload_conf(), in the parse check's session (it found nothing): changed" in done.stdout, done.stdout
    for host in HOSTS:
        assert_serves_installed(fleet, host)
        assert served(fleet, host).serial_number != old[host].serial_number
        assert not (tls(fleet, host) / ".pgtls-snapshot").exists()
        assert verify_full(fleet, host, fleet["pki"] / "root.crt").returncode == 0
    assert not legacy.exists()  # other /tmp/ansible.*.pgtls may belong to other runs on this machine: see below
    assert recap(play(fleet, "site", pgtls_server_extra_sans=["renamed.pgtls.test"]).stdout, "db1")["changed"] == 0


def test_an_interrupted_rule_change_is_loaded_on_the_next_run(fleet):
    """Killed after a new pg_hba.conf rule is written and before the reload: on disk the rule refuses role blocked,
    the server still lets it in. Afterwards nothing differs and the server serves the installed certificate, so only
    the snapshot the killed run left says that something may not be loaded: the next run validates, reloads and
    proves all the same (and says why), and the rule is in force; one more run changes nothing."""
    sans = ["renamed.pgtls.test"]  # as the run before: the certificates stay, only the rule changes
    rules = json.loads(fleet["inventory"].read_text())["all"]["vars"]["pgtls_hba_rules"]
    blocked = {"type": "hostssl", "database": "all", "user": "blocked", "address": "127.0.0.1/32"}
    allowed, refused = [dict(blocked, method="trust"), *rules], [dict(blocked, method="reject"), *rules]
    for cluster in fleet["clusters"].values():
        cluster.admin("create role blocked login")

    def login(host: str) -> subprocess.CompletedProcess:
        return fleet["clusters"][host].psql("host=127.0.0.1 user=blocked sslmode=require connect_timeout=10")

    play(fleet, "site", pgtls_server_extra_sans=sans, pgtls_hba_rules=allowed)
    assert all(login(host).stdout.strip() == "blocked" for host in HOSTS)
    seen = killed_at_the_parse_check(fleet, {"pgtls_pki_dir": str(fleet["pki"]), "pgtls_server_extra_sans": sans,
                                             "pgtls_hba_rules": refused})
    # The hosts the killed run reached: the rule's own line (the file's header says "rejected" on every host).
    rule = re.compile(r"^hostssl\s+all\s+blocked\s+127\.0\.0\.1/32\s+reject\s*$", re.MULTILINE)
    written = [h for h in HOSTS if rule.search((fleet["clusters"][h].data / "pg_hba.conf").read_text())]
    assert written, "".join(seen[-80:])
    for host in written:
        assert login(host).stdout.strip() == "blocked"  # on disk, not loaded
        assert (tls(fleet, host) / ".pgtls-snapshot").is_dir(), "".join(seen[-80:])
        assert_serves_installed(fleet, host)
    done = play(fleet, "site", pgtls_server_extra_sans=sans, pgtls_hba_rules=refused)
    text = " ".join(done.stdout.split())
    for host in written:
        assert re.search(rf"\[{host}\].*?15/main: an earlier run stopped before its end \(its snapshot was left in "
                         rf"{re.escape(str(tls(fleet, host)))}/\.pgtls-snapshot\): no file differs now", text), text
    assert "Reload with pg_reload_conf(), in the parse check's session (it found nothing): changed" in done.stdout, done.stdout
    for host in HOSTS:
        denied = login(host)
        assert denied.returncode != 0 and "pg_hba.conf rejects connection" in denied.stderr, denied
        assert not (tls(fleet, host) / ".pgtls-snapshot").exists()
        assert verify_full(fleet, host, fleet["pki"] / "root.crt").returncode == 0
    again = play(fleet, "site", pgtls_server_extra_sans=sans, pgtls_hba_rules=refused).stdout
    assert all(recap(again, host)["changed"] == 0 for host in HOSTS), again


def test_no_key_copy_outside_its_folder(fleet):
    """Every file of /tmp (ansible's and the modules' temporary files land there, and the fleet's folders) read for
    the key's bytes. Git checkouts and Python venvs (source trees: nothing of a run is written there; CI's clone and
    its venvs hold ~90,000 files) are not walked."""
    keys = {host: (tls(fleet, host) / "server.key").read_bytes() for host in HOSTS}
    found = []
    for root, dirs, files in os.walk("/tmp"):
        if ".git" in dirs or "pyvenv.cfg" in files:
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d not in ("node_modules", "__pycache__")]
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or st.st_size > 65536:  # no links, FIFOs, sockets or big files
                    continue
                data = open(path, "rb").read()
            except OSError:
                continue
            for host, key in keys.items():
                if key in data and path != str(tls(fleet, host) / "server.key"):
                    found.append(path)
    assert found == []


def crl_number(path: Path) -> int:
    crl = x509.load_pem_x509_crl(path.read_bytes())
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crl_number_never_goes_back_when_the_crl_file_is_lost(fleet):
    play(fleet, "revoke", pgtls_revoke_serials=["0x0BADC0DE"], pgtls_revoke_unknown_serials=True)
    crl = fleet["pki"] / "intermediate.crl"
    revoked_number = crl_number(crl)
    crl.unlink()
    play(fleet, "site")
    assert crl_number(crl) > revoked_number
    reloaded = x509.load_pem_x509_crl(crl.read_bytes())
    assert reloaded.get_revoked_certificate_by_serial_number(0x0BADC0DE) is not None
    for host in HOSTS:  # the servers read the new CRL
        assert crl.read_bytes().strip() in (tls(fleet, host) / "root.crl").read_bytes()


def test_a_host_that_cannot_replace_its_certificate_stops_the_publication(fleet):
    """revoke by serial of db1's server certificate while db2's cluster is stopped: db1 replaces its certificate (a
    new key, proven served), db2 fails, and nothing is published - the serial stays pending in the registry, in no
    CRL - with a message naming db2 and the serial. Once db2 runs, the same command publishes it."""
    old = first_cert(tls(fleet, "db1") / "server.crt").serial_number
    old_key = (tls(fleet, "db1") / "server.key").read_bytes()
    crl = fleet["pki"] / "intermediate.crl"
    fleet["clusters"]["db2"].stop()
    try:
        done = play(fleet, "revoke", check=False, pgtls_revoke_serials=[f"0x{old:X}"])
    finally:
        fleet["clusters"]["db2"].start()
    assert done.returncode != 0
    text = " ".join(done.stdout.split())
    assert "not published: db2 did not replace its certificates" in text and f"0x{old:X}" in text, done.stdout[-4000:]
    assert "New CRLs on every database server" not in done.stdout
    replaced = first_cert(tls(fleet, "db1") / "server.crt")
    assert replaced.serial_number != old and (tls(fleet, "db1") / "server.key").read_bytes() != old_key
    assert_serves_installed(fleet, "db1")
    assert x509.load_pem_x509_crl(crl.read_bytes()).get_revoked_certificate_by_serial_number(old) is None
    assert "pending: true" in (fleet["pki"] / "revoked.yml").read_text()
    play(fleet, "revoke", pgtls_revoke_serials=[f"0x{old:X}"])
    assert x509.load_pem_x509_crl(crl.read_bytes()).get_revoked_certificate_by_serial_number(old) is not None
    assert "pending" not in (fleet["pki"] / "revoked.yml").read_text()
    assert first_cert(tls(fleet, "db1") / "server.crt").serial_number == replaced.serial_number
    for host in HOSTS:
        assert_serves_installed(fleet, host)
        assert crl.read_bytes().strip() in (tls(fleet, host) / "root.crl").read_bytes()


def test_site_starts_the_intermediate_rotation_when_it_is_due(fleet):
    """Leaves of 1,500 days and a third of their lifetime to renew need an intermediate with 1,995 days left; this
    one (1,825 days) has fewer: site starts the overlap rotation before the servers, which get certificates of the
    new intermediate in the same run and keep verify-full; the next site changes nothing (a rotation is in
    progress: none starts again); rotate retires it."""
    pki = fleet["pki"]
    old = (pki / "intermediate.crt").read_bytes()
    done = play(fleet, "site", pgtls_server_valid_days=1500)
    assert "rotation started - run the rotate playbook with -e pgtls_rotate_intermediate=retire" in \
        " ".join(done.stdout.split()), done.stdout
    assert (pki / "previous" / "intermediate.crt").read_bytes() == old
    new = first_cert(pki / "intermediate.crt")
    assert new.subject != x509.load_pem_x509_certificate(old).subject
    for host in HOSTS:
        assert first_cert(tls(fleet, host) / "server.crt").issuer == new.subject
        assert_serves_installed(fleet, host)
        assert verify_full(fleet, host, pki / "root.crt").returncode == 0
    again = play(fleet, "site", pgtls_server_valid_days=1500)
    assert "rotation started - run the rotate playbook" not in " ".join(again.stdout.split()), again.stdout
    assert all(recap(again.stdout, host)["changed"] == 0 for host in ("localhost", *HOSTS)), again.stdout
    play(fleet, "rotate", pgtls_rotate_intermediate="retire")
    assert not (pki / "previous").exists()
    for host in HOSTS:
        assert verify_full(fleet, host, pki / "root.crt").returncode == 0


def test_a_host_left_alone_keeps_its_files_and_the_others_refuse_its_revoked_certificate(fleet):
    """pgtls_revoke_leave_hosts (a host being retired): refused for key_compromise and for a name not in the
    inventory, before anything changes; with cessation_of_operation, db2's serial is published at once, db1 gets
    the CRL that revokes it and refuses db2's certificate, and db2 is not touched (every file the role writes, to
    the inode and mtime); the run says so."""
    serial = first_cert(tls(fleet, "db2") / "server.crt").serial_number
    registry = (fleet["pki"] / "revoked.yml").read_bytes()
    before = watched_files(fleet)
    for extra, message in (({}, "a certificate revoked for key_compromise is replaced on every host that uses it"),
                           ({"pgtls_revoke_leave_hosts": ["db3"]}, "names db3, not an inventory host")):
        args = {"pgtls_revoke_serials": [f"0x{serial:X}"], "pgtls_revoke_leave_hosts": ["db2"], **extra}
        done = play(fleet, "revoke", check=False, **args)
        assert done.returncode != 0 and message in " ".join(done.stdout.split()), done.stdout[-3000:]
        assert (fleet["pki"] / "revoked.yml").read_bytes() == registry
        assert watched_files(fleet) == before
    done = play(fleet, "revoke", pgtls_revoke_serials=[f"0x{serial:X}"], pgtls_revoke_reason="cessation_of_operation",
                pgtls_revoke_leave_hosts=["db2"])
    assert f"left alone: db2 - not replaced and given no new CRL by this run; each may still use a certificate with " \
           f"serial 0x{serial:X}" in " ".join(done.stdout.split()), done.stdout[-3000:]
    assert {path: found for path, found in watched_files(fleet).items() if "/db2/" in path} == \
        {path: found for path, found in before.items() if "/db2/" in path}
    crl = x509.load_pem_x509_crl((fleet["pki"] / "intermediate.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert crl.public_bytes(Encoding.PEM).strip() in (tls(fleet, "db1") / "root.crl").read_bytes()
    refused = subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", str(tls(fleet, "db1") / "root.crt"),
                              "-CRLfile", str(tls(fleet, "db1") / "root.crl"), "-untrusted",
                              str(tls(fleet, "db2") / "server.crt"), str(tls(fleet, "db2") / "server.crt")],
                             capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr, refused
