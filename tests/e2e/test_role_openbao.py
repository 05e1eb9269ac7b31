"""The server role with the CA in OpenBao (pgtls_ca_backend=openbao) on a real PostgreSQL 15 and a real OpenBao 2.7
dev server: the engine's intermediate signs the CSR of the key made on the host (the key never leaves it), the CA
folder mirrors the engine's root, intermediate and CRLs, psql verify-full trusts the engine's root, a second run
changes nothing, a revocation made through the role reaches the engine's CRL and the server refuses the revoked
client certificate; a wrong token, a sealed engine, a role that refuses a name and a role whose max_ttl puts every
certificate inside the renewal window each fail naming the setting, with nothing changed on the host and the server
serving what it served before. The token never appears in the output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TARGET_PYTHON, ansible_env, plain_cluster, role_vars, run_playbook
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from openbao import ANY_NAME, BaoServer, policy, signed_serials

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import entries, parse_serial
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import fingerprint, serial_hex
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import issue_certificate, make_csr
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key, private_key_pem
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.probe import served_chain
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import ROOT_CA

# A role for a machine's own names (localhost, its host name, 127.0.0.1) and one that allows example.test only.
ROLES = {
    "any": ANY_NAME,
    "narrow": {"allowed_domains": "example.test", "allow_subdomains": True, "allow_localhost": True,
               "allow_ip_sans": True, "allow_any_name": False, "enforce_hostnames": True, "server_flag": True,
               "client_flag": True, "key_type": "any", "max_ttl": "720h"},
    "short": {"allow_any_name": True, "enforce_hostnames": False, "allow_ip_sans": True, "allow_localhost": True,
              "server_flag": True, "client_flag": True, "key_type": "any", "max_ttl": "48h"},
}


@pytest.fixture(scope="module")
def env(workdir, tmp_path_factory):
    bao = BaoServer(tmp_path_factory.mktemp("bao-role")).start()
    cluster = None
    try:
        bao.setup_pki()
        for name, role in ROLES.items():
            bao.api("POST", f"pki_int/roles/{name}", role)
        bao.api("POST", "sys/policies/acl/pgtls-role", {"policy": policy("*")})
        token = bao.api("POST", "auth/token/create", {"policies": ["pgtls-role"], "ttl": "30m"})["auth"]["client_token"]
        cluster = plain_cluster(workdir / "openbao")
        pki = workdir / "openbao" / "mirror"
        extra = dict(role_vars(cluster, "bao", pki), pgtls_ca_backend="openbao", pgtls_key_layout="owner",
                     pgtls_server_valid_days=20, pgtls_server_renew_before_days=5,
                     pgtls_openbao={"address": bao.address, "role": "any", "token": token})
        extra["pgtls_hba_rules"] = [*extra["pgtls_hba_rules"], {"type": "hostssl", "database": "all", "user": "all",
                                                                "address": "127.0.0.1/32", "method": "cert"}]
        yield {"bao": bao, "cluster": cluster, "vars": extra, "pki": pki, "token": token,
               "root": pem_of(bao, "pki/cert/ca")}
    finally:
        if cluster is not None:
            cluster.stop()
        bao.stop()


def pem_of(bao: BaoServer, path: str) -> str:
    return bao.api("GET", path)["data"]["certificate"].strip() + "\n"


def run(env, check: bool = True, **over):
    extra = dict(env["vars"], **over)
    done = run_playbook("role_local.yml", extra, "-v", check=check)
    assert env["token"] not in done.stdout + done.stderr, "the token was shown"
    return done


def served(env) -> x509.Certificate:
    return served_chain("127.0.0.1", env["cluster"].port)["chain"][0]


def tls(env):
    return env["cluster"].data / "tls"


def verify_full(env, tmp_path, *extra: str):
    root = tmp_path / "engine-root.crt"
    root.write_text(env["root"])
    return env["cluster"].psql(" ".join([f"host=localhost sslmode=verify-full sslrootcert={root}", *extra]))


def test_the_engine_signs_the_host_key_and_psql_verify_full_trusts_its_root(env, tmp_path):
    done = run(env)
    assert re.search(r"localhost\s+: ok=\d+\s+changed=[1-9]", done.stdout), done.stdout[-3000:]
    # OpenBao's CRLs last 72 hours unless the mount's config/crl says otherwise: shorter than the renewal window.
    assert "openbao.int_mount lasts 3 days (the mount's config/crl expiry)" in " ".join(
        (done.stdout + done.stderr).split()), done.stderr[-3000:]
    connected = verify_full(env, tmp_path, "user=postgres")
    assert connected.returncode == 0, connected.stderr
    leaf = served(env)
    intermediate = pem_of(env["bao"], "pki_int/cert/ca")
    assert leaf.issuer == compat.load_certificates(intermediate.encode(), "int")[0].subject
    # The engine keeps every certificate it signed: this one is there, by its serial.
    kept = env["bao"].api("GET", f"pki_int/cert/{serial_hex(leaf.serial_number).lower()}")
    assert fingerprint(compat.load_certificates(kept["data"]["certificate"].encode(), "kept")[0]) == fingerprint(leaf)
    # The mirror: the engine's root, intermediate and CRLs; no key of any CA.
    assert (env["pki"] / "root.crt").read_text() == env["root"]
    assert sorted(p.name for p in env["pki"].iterdir() if p.name.endswith(".key")) == []
    crls = (env["pki"] / "crl.pem").read_text()
    assert (tls(env) / "root.crl").read_text() == crls
    assert len(compat.load_crls(crls.encode(), "crl.pem")) == 2
    # The key was made on the host and stays there: the engine never saw it (it was asked for sign/, not issue/).
    assert "PRIVATE KEY" in (tls(env) / "server.key").read_text()


def test_a_second_run_changes_nothing_and_asks_the_engine_to_sign_nothing(env):
    before = served(env)
    done = run(env)
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\b", done.stdout), done.stdout[-3000:]
    assert fingerprint(served(env)) == fingerprint(before)


def _unchanged(env, before):
    assert fingerprint(served(env)) == fingerprint(before)
    assert compat.load_certificates((tls(env) / "server.crt").read_bytes(), "server.crt")[0] == before


def test_a_wrong_token_fails_naming_it_and_nothing_changes(env):
    before = served(env)
    done = run(env, check=False, pgtls_openbao=dict(env["vars"]["pgtls_openbao"], token="s.wrong-token-0123456789"))
    assert done.returncode != 0
    assert "openbao.token" in done.stdout, done.stdout[-3000:]
    assert "s.wrong-token-0123456789" not in done.stdout
    _unchanged(env, before)


def test_a_sealed_engine_fails_naming_the_address_and_nothing_changes(env):
    before = served(env)
    env["bao"].seal()
    try:
        done = run(env, check=False)
    finally:
        env["bao"].unseal()
    assert done.returncode != 0
    assert "sealed" in done.stdout and "openbao.address" in done.stdout, done.stdout[-3000:]
    _unchanged(env, before)


@pytest.mark.parametrize("role, says", [
    # allowed_domains example.test: the new name (and this machine's own) refused by the engine, named.
    ("narrow", ("the role 'narrow' of mount 'pki_int' refused to sign", "db9.other.test")),
    # max_ttl 48h: a certificate cut to two days is inside the five days' renewal window, refused here.
    ("short", ("the role 'short' issued a certificate valid until", "every run would sign again")),
])
def test_a_role_that_cannot_give_the_certificate_fails_naming_it_and_nothing_changes(env, role, says):
    """A new name makes the run sign; the role then refuses, or signs a certificate the run must refuse. The host
    keeps its files and the server serves what it served."""
    before = served(env)
    done = run(env, check=False, pgtls_server_extra_sans=["db9.other.test"],
               pgtls_openbao=dict(env["vars"]["pgtls_openbao"], role=role))
    assert done.returncode != 0
    text = " ".join(done.stdout.split())
    assert "openbao.role" in text and all(part in text for part in says), done.stdout[-3000:]
    _unchanged(env, before)


def test_a_revocation_through_the_role_reaches_the_engine_and_the_server_refuses_the_certificate(env, tmp_path):
    env["cluster"].admin("create role app login")
    key = generate_key("ec-p256")
    csr = make_csr(key, build_name("app"), []).public_bytes(Encoding.PEM).decode()
    signed = env["bao"].api("POST", "pki_int/sign/any", {"csr": csr, "common_name": "app", "ttl": "240h"})["data"]
    # libpq sends the file's chain: the leaf, then the intermediate (the server trusts the root only).
    (tmp_path / "app.crt").write_text(signed["certificate"] + "\n" + signed["issuing_ca"] + "\n")
    (tmp_path / "app.key").write_bytes(private_key_pem(key))
    (tmp_path / "app.key").chmod(0o600)
    as_app = ("user=app", f"sslcert={tmp_path / 'app.crt'}", f"sslkey={tmp_path / 'app.key'}")
    connected = verify_full(env, tmp_path, *as_app)
    assert connected.returncode == 0 and connected.stdout.strip() == "app", connected.stderr
    serial = compat.load_certificates(signed["certificate"].encode(), "app")[0].serial_number
    revoked = [{"serial_number": signed["serial_number"], "reason": "key_compromise"}]
    # Check mode says what would change and sends nothing to the engine.
    checked = run_playbook("role_local.yml", dict(env["vars"], pgtls_revoked=revoked), "--check")
    assert re.search(r"localhost\s+: ok=\d+\s+changed=[1-9]", checked.stdout), checked.stdout[-3000:]
    engine_crl = compat.load_crls(env["bao"].api("GET", "pki_int/cert/crl")["data"]["certificate"].encode(), "crl")[0]
    assert serial not in entries(engine_crl)
    assert verify_full(env, tmp_path, *as_app).returncode == 0
    done = run(env, pgtls_revoked=revoked)
    assert "revoked in the engine" in done.stdout, done.stdout[-3000:]
    engine_crl = compat.load_crls(env["bao"].api("GET", "pki_int/cert/crl")["data"]["certificate"].encode(), "crl")[0]
    assert serial in entries(engine_crl)
    assert serial in entries(compat.load_crls((tls(env) / "root.crl").read_bytes(), "root.crl")[0])
    refused = verify_full(env, tmp_path, *as_app)
    assert refused.returncode != 0 and "revoked" in refused.stderr, (refused.stdout, refused.stderr)
    # The same revocation again: already in the engine's CRL, nothing is sent or changed.
    again = run(env, pgtls_revoked=[{"serial_number": signed["serial_number"]}])
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\b", again.stdout), again.stdout[-3000:]


def test_a_new_mirror_rolls_out_to_a_fleet_that_trusts_the_engine_and_another_root_is_refused(env, tmp_path):
    """A controller whose mirror is new (an AWX job's execution environment starts without one): the trust check asks
    the engine for its root, the fleet trusts it, the mirror is filled and nothing is signed again. A mirror holding
    another root is refused before anything changes, naming openbao.root_mount."""
    before = served(env)
    fresh = tmp_path / "new-mirror"
    done = run(env, pgtls_pki_dir=str(fresh))
    assert (fresh / "root.crt").read_text() == env["root"]
    assert fingerprint(served(env)) == fingerprint(before)
    assert "certificate" not in " ".join(re.findall(r'"reasons": \[([^]]*)\]', done.stdout)), done.stdout[-3000:]
    other = tmp_path / "other-mirror"
    other.mkdir(mode=0o700)
    key = generate_key("ec-p256")
    foreign = issue_certificate(subject=build_name("Another root"), public_key=key.public_key(), profile=ROOT_CA,
                                valid_days=30, self_signing_key=key)
    (other / "root.crt").write_bytes(foreign.public_bytes(Encoding.PEM))
    refused = run(env, check=False, pgtls_pki_dir=str(other))
    assert refused.returncode != 0
    assert "openbao.root_mount" in refused.stdout and "another root" in refused.stdout, refused.stdout[-3000:]
    assert sorted(p.name for p in other.iterdir()) == ["root.crt"]
    _unchanged(env, before)


def test_the_client_role_gets_its_certificates_from_the_engine(env, tmp_path):
    """The client role with the same backend: a key made for an OS user here and one bundle on the controller, both
    signed by the engine; the server takes the certificate (cert auth, verify-full); a second run changes nothing."""
    env["cluster"].admin("create role reporter login")
    home = tmp_path / "certs"
    home.mkdir()
    playbook = [{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "pgtls.ssl.client", "vars": {
        "pgtls_pki_dir": str(env["pki"]), "pgtls_ca_backend": "openbao", "pgtls_openbao": env["vars"]["pgtls_openbao"],
        "pgtls_client_valid_days": 20, "pgtls_client_renew_before_days": 5,
        "pgtls_client_certs": [{"name": "reporter", "user": "root", "dir": str(home / "reporter")}],
        "pgtls_client_bundles": ["batch"]}}]}]
    path = tmp_path / "client.yml"
    path.write_text(json.dumps(playbook))
    first = run_playbook(str(path), {}, "-v")
    assert env["token"] not in first.stdout + first.stderr
    folder = env["reporter_dir"] = home / "reporter"
    leaf = compat.load_certificates((folder / "postgresql.crt").read_bytes(), "postgresql.crt")
    assert leaf[0].issuer == leaf[1].subject and len(leaf) == 2  # the leaf, then the engine's intermediate
    assert (folder / "root.crt").read_text() == env["root"]
    connected = verify_full(env, tmp_path, "user=reporter", f"sslcert={folder / 'postgresql.crt'}",
                            f"sslkey={folder / 'postgresql.key'}")
    assert connected.returncode == 0 and connected.stdout.strip() == "reporter", connected.stderr
    # The bundle for a system Ansible does not manage: its key made on the controller, signed by the engine too.
    bundle = compat.load_certificates((env["pki"] / "clients" / "batch" / "postgresql.crt").read_bytes(), "batch")
    assert bundle[0].issuer == leaf[0].issuer and bundle[0].public_key() != leaf[0].public_key()
    again = run_playbook(str(path), {})
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\b", again.stdout), again.stdout[-3000:]


def test_two_controllers_at_once_lose_nothing(env, workdir, tmp_path):
    """Two jobs at once, as two AWX job slices on two execution nodes: each its own host (disjoint limits) and its own
    CA folder (no shared lock file), one engine. Each revokes a certificate of its own and both revoke a third. Every
    host proven, every revocation in the engine's CRL, no serial issued twice; a second run of each brings every host
    the engine's whole CRL."""
    bao = env["bao"]
    second = plain_cluster(workdir / "openbao-second")
    try:
        serials = signed_serials(bao, "any", ["one", "two", "both"])
        jobs = []
        for cluster, mirror, mine in ((env["cluster"], env["pki"], serials[0]),
                                      (second, workdir / "openbao-second" / "mirror", serials[1])):
            extra = dict(env["vars"], **{k: v for k, v in role_vars(cluster, "bao", mirror).items()
                                         if k != "pgtls_hba_rules"},
                         pgtls_revoked=[{"serial_number": mine}, {"serial_number": serials[2]}])
            jobs.append((cluster, mirror, extra))
        cmds = [[str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e",
                 json.dumps(extra), str(Path(__file__).parent / "playbooks" / "role_local.yml")]
                for _cluster, _mirror, extra in jobs]
        running = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=ansible_env()) for cmd in cmds]
        outputs = [proc.communicate(timeout=600)[0] for proc in running]
        for proc, out in zip(running, outputs):
            assert proc.returncode == 0, out[-4000:]
        listed = entries(compat.load_crls(bao.api("GET", "pki_int/cert/crl")["data"]["certificate"].encode(), "crl")[0])
        for serial in serials:
            assert parse_serial(serial, "serial") in listed, serial
        issued = bao.api("LIST", "pki_int/certs")["data"]["keys"]
        assert len(issued) == len(set(issued))
        leaves = [served_chain("127.0.0.1", cluster.port)["chain"][0] for cluster, _m, _e in jobs]
        assert leaves[0].serial_number != leaves[1].serial_number
        for cluster, mirror, extra in jobs:
            connected = cluster.psql(f"host=localhost sslmode=verify-full sslrootcert={mirror / 'root.crt'} "
                                     "user=postgres")
            assert connected.returncode == 0, connected.stderr
            run_playbook("role_local.yml", extra)
            held = entries(compat.load_crls((cluster.data / "tls" / "root.crl").read_bytes(), "root.crl")[0])
            assert {parse_serial(s, "serial") for s in serials} <= set(held)
    finally:
        second.stop()


def test_the_revoke_playbook_revokes_in_the_engine_by_name_and_by_serial_in_use(env, tmp_path):
    """The site and revoke playbooks on an inventory (the database host db-local, on this machine): revoke by name
    finds the client role's certificate in the mirror's archive and the engine revokes it (the server then refuses
    it); revoke by serial of the certificate the server serves replaces it first (a new key, signed by the engine,
    proven served), then the engine revokes the old serial and every server gets the CRL."""
    cluster, bao = env["cluster"], env["bao"]
    host = dict(ansible_connection="local", ansible_host="127.0.0.1", ansible_become_method="ansible.builtin.su",
                ansible_python_interpreter=TARGET_PYTHON)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"children": {"pgtls_servers": {"hosts": {"db-local": host}}},
                                             "vars": env["vars"]}}))

    def playbook(name, *extra):
        done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
                               f"pgtls.ssl.{name}", *extra], capture_output=True, text=True, env=ansible_env(),
                              check=False, timeout=600)
        assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
        assert env["token"] not in done.stdout + done.stderr
        return done

    playbook("site")
    folder = env["reporter_dir"]  # the client role's certificate (test_the_client_role_...)
    as_reporter = ("user=reporter", f"sslcert={folder / 'postgresql.crt'}", f"sslkey={folder / 'postgresql.key'}")

    def login(*extra):
        root = tmp_path / "engine-root.crt"
        root.write_text(env["root"])
        return cluster.psql(" ".join(["host=127.0.0.1 sslmode=verify-full", f"sslrootcert={root}", *extra]))

    assert login(*as_reporter).returncode == 0
    reporter = compat.load_certificates((folder / "postgresql.crt").read_bytes(), "reporter")[0].serial_number
    playbook("revoke", "-e", json.dumps({"pgtls_revoke_names": ["reporter"]}))
    engine_crl = entries(compat.load_crls(bao.api("GET", "pki_int/cert/crl")["data"]["certificate"].encode(), "crl")[0])
    assert reporter in engine_crl
    refused = login(*as_reporter)
    assert refused.returncode != 0 and "revoked" in refused.stderr, refused.stderr

    old = served(env).serial_number
    playbook("revoke", "-e", json.dumps({"pgtls_revoke_serials": [f"0x{old:x}"]}))
    new = served(env)
    assert new.serial_number != old and "OpenBao test intermediate" in new.issuer.rfc4514_string()
    engine_crl = entries(compat.load_crls(bao.api("GET", "pki_int/cert/crl")["data"]["certificate"].encode(), "crl")[0])
    assert old in engine_crl
    assert old in entries(compat.load_crls((tls(env) / "root.crl").read_bytes(), "root.crl")[0])
    assert login("user=postgres").returncode == 0


def test_two_jobs_on_the_same_host_at_once_take_turns_and_leave_one_whole_pair(env, workdir):
    """Two jobs whose limits overlap (two controllers, each its own mirror, one engine), both asked for a name the
    certificate lacks, started together, twice: the host's lock on the cluster makes them take turns, so neither
    plans against, snapshots or restores the other's half-written files. Both succeed; the server serves the
    certificate installed (the engine's, with the name), verify-full connects, no snapshot or pending key is left,
    no serial was issued twice, and a run afterwards changes nothing."""
    bao, cluster = env["bao"], env["cluster"]
    mirrors = [workdir / "openbao-overlap" / name for name in ("a", "b")]
    mirrors[0].parent.mkdir()
    serials = signed_serials(bao, "any", ["overlap"] * 4)
    for round_, name in enumerate(("overlap-one.test", "overlap-two.test")):
        # Each job revokes a serial of its own too: whichever installs last, the host's CRL keeps every revocation
        # (a CRL file never goes back to an older CRL of the same CA).
        jobs = [dict(env["vars"], pgtls_pki_dir=str(mirror), pgtls_server_extra_sans=[name],
                     pgtls_revoked=[{"serial_number": serials[2 * r + i]} for r in range(round_ + 1)])
                for i, mirror in enumerate(mirrors)]
        running = [subprocess.Popen([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c",
                                     "local", "-e", json.dumps(extra),
                                     str(Path(__file__).parent / "playbooks" / "role_local.yml")],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ansible_env())
                   for extra in jobs]
        outputs = [proc.communicate(timeout=900)[0] for proc in running]
        for proc, out in zip(running, outputs):
            assert proc.returncode == 0, out[-5000:]
            assert env["token"] not in out
        leaf = served(env)
        installed = compat.load_certificates((tls(env) / "server.crt").read_bytes(), "server.crt")[0]
        assert fingerprint(leaf) == fingerprint(installed)
        assert name in leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
        assert "OpenBao test intermediate" in leaf.issuer.rfc4514_string()
        assert not (tls(env) / ".pgtls-snapshot").exists()
        assert not list(tls(env).glob("*.pgtls-new")), list(tls(env).iterdir())
        connected = cluster.psql(f"host=localhost sslmode=verify-full sslrootcert={mirrors[0] / 'root.crt'} "
                                 "user=postgres")
        assert connected.returncode == 0, connected.stderr
        held = entries(compat.load_crls((tls(env) / "root.crl").read_bytes(), "root.crl")[0])
        assert {parse_serial(s, "serial") for s in serials[:2 * round_ + 2]} <= set(held), round_
    issued = bao.api("LIST", "pki_int/certs")["data"]["keys"]
    assert len(issued) == len(set(issued))
    # A run afterwards changes nothing on the host (mirror a may still fetch the CRL job b's revocation made: a
    # change on the controller only), and the next one nothing at all.
    last = dict(pgtls_pki_dir=str(mirrors[0]), pgtls_server_extra_sans=["overlap-two.test"],
                pgtls_revoked=[{"serial_number": s} for s in serials])
    again = run(env, **last)
    step = again.stdout.split("TASK [pgtls.ssl.server : cluster | Key, certificate")[1].split("TASK [")[0]
    assert "ok: [localhost] => (item=15/bao)" in step and "changed:" not in step, step[:3000]
    again = run(env, **last)
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\b", again.stdout), again.stdout[-3000:]
