"""A fleet moves from the collection's CA folder to OpenBao with 0 failed verify-full connections, on a real
PostgreSQL 15 and a real OpenBao 2.7: the folder's root is imported into the engine's root mount and signs the
engine's intermediate, so every host keeps its root; with pgtls_openbao_migrate_from the servers' CRL file keeps the
folder intermediate's CRL, and a client certificate of the folder keeps logging in while the server, then the client,
get certificates from the engine. A client polls all along (server certificate checked by name against the root,
its own certificate checked by the server). Once the option is left out, the old intermediate's certificates stop
working and the engine's go on."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time

import pytest
from conftest import plain_cluster, role_vars, run_playbook
from cryptography.hazmat.primitives.serialization import Encoding
from openbao import ANY_NAME, BaoServer, policy

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import issue_certificate
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.probe import served_chain
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import ROOT_CA


@pytest.fixture(scope="module")
def move(workdir, tmp_path_factory):
    bao = BaoServer(tmp_path_factory.mktemp("bao-move")).start()
    base = workdir / "migration"
    cluster = plain_cluster(base)
    try:
        folder, mirror, home = base / "pki", base / "mirror", base / "home"
        home.mkdir()
        server = dict(role_vars(cluster, "mig", folder), pgtls_key_layout="owner", pgtls_server_valid_days=20,
                      pgtls_server_renew_before_days=5)
        server["pgtls_hba_rules"] = [*server["pgtls_hba_rules"], {"type": "hostssl", "database": "all", "user": "all",
                                                                  "address": "127.0.0.1/32", "method": "cert"}]
        yield {"bao": bao, "cluster": cluster, "folder": folder, "mirror": mirror, "home": home, "server": server,
               "base": base}
    finally:
        cluster.stop()
        bao.stop()


def client_play(move, **extra) -> str:
    play = [{"hosts": "localhost", "gather_facts": False, "roles": [{"role": "pgtls.ssl.client", "vars": {
        "pgtls_client_certs": [{"name": "mover", "user": "root", "dir": str(move["home"] / "mover")}],
        "pgtls_client_valid_days": 20, "pgtls_client_renew_before_days": 5, **extra}}]}]
    path = move["base"] / f"client-{len(list(move['base'].glob('client-*.yml')))}.yml"
    path.write_text(json.dumps(play))
    return str(path)


def engine_under_the_folders_root(move) -> dict:
    """The engine's root mount gets the folder's root (certificate and key), which signs the intermediate mount's
    CA; a role and a token of the collection's policy."""
    bao, folder = move["bao"], move["folder"]
    bao.api("POST", "sys/mounts/pki", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
    bundle = (folder / "root.key").read_text() + (folder / "root.crt").read_text()
    bao.api("POST", "pki/config/ca", {"pem_bundle": bundle})
    bao.api("POST", "sys/mounts/pki_int", {"type": "pki", "config": {"max_lease_ttl": "43800h"}})
    csr = bao.api("POST", "pki_int/intermediate/generate/internal",
                  {"common_name": "pgtls OpenBao intermediate under the folder's root", "key_type": "ec",
                   "key_bits": 256})["data"]["csr"]
    signed = bao.api("POST", "pki/root/sign-intermediate", {"csr": csr, "ttl": "8760h", "format": "pem"})
    bao.api("POST", "pki_int/intermediate/set-signed", {"certificate": signed["data"]["certificate"]})
    bao.api("POST", "pki_int/roles/any", ANY_NAME)
    bao.api("POST", "sys/policies/acl/pgtls", {"policy": policy("any")})
    token = bao.api("POST", "auth/token/create", {"policies": ["pgtls"], "ttl": "30m"})["auth"]["client_token"]
    return {"address": bao.address, "role": "any", "token": token}


class Poller:
    """Connects every 0.2 s until stopped: as postgres (the server's certificate checked by name) and as mover with
    each client certificate of ``certs`` (the server checks it, CRLs included). Every failure is kept."""

    def __init__(self, cluster, root, certs: dict) -> None:
        self.cluster, self.root, self.certs = cluster, root, certs
        self.attempts, self.failures = 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            tries = [("postgres", "user=postgres")] + [
                (name, f"user=mover sslcert={crt} sslkey={key}") for name, (crt, key) in self.certs.items()]
            for name, extra in tries:
                done = self.cluster.psql(f"host=localhost sslmode=verify-full sslrootcert={self.root} {extra}")
                self.attempts += 1
                if done.returncode != 0:
                    self.failures.append((name, done.stderr.strip()[-200:]))
            time.sleep(0.2)


def test_a_fleet_moves_from_the_ca_folder_to_openbao_with_no_failed_connection(move):
    cluster, folder, mirror = move["cluster"], move["folder"], move["mirror"]
    # Before: the collection's CA folder; the server and a client certificate from it.
    run_playbook("role_local.yml", move["server"])
    cluster.admin("create role mover login")
    run_playbook(client_play(move, pgtls_pki_dir=str(folder)), {})
    kept = move["base"] / "folder-cert"
    kept.mkdir(mode=0o700)
    for name in ("postgresql.crt", "postgresql.key"):
        shutil.copy2(move["home"] / "mover" / name, kept / name)
    old_issuer = served_chain("127.0.0.1", cluster.port)["chain"][0].issuer
    settings = engine_under_the_folders_root(move)
    engine = dict(move["server"], pgtls_ca_backend="openbao", pgtls_openbao=settings, pgtls_pki_dir=str(mirror))
    root = folder / "root.crt"  # what every client trusts, before and after
    with Poller(cluster, root, {"folder's": (kept / "postgresql.crt", kept / "postgresql.key")}) as poller:
        time.sleep(1)
        # The move: the server's certificate from the engine, the folder intermediate's CRL kept.
        run_playbook("role_local.yml", dict(engine, pgtls_openbao_migrate_from=str(folder)))
        served = served_chain("127.0.0.1", cluster.port)["chain"][0]
        assert served.issuer != old_issuer and "OpenBao intermediate" in served.issuer.rfc4514_string()
        assert (mirror / "root.crt").read_bytes().strip() == root.read_bytes().strip()
        assert len(compat.load_crls((mirror / "crl.pem").read_bytes(), "crl.pem")) == 3
        # Then the client's certificate from the engine too.
        run_playbook(client_play(move, pgtls_pki_dir=str(mirror), pgtls_ca_backend="openbao",
                                 pgtls_openbao=settings), {})
        time.sleep(1)
    assert poller.failures == [], poller.failures[:5]
    assert poller.attempts >= 20, poller.attempts
    print(f"\nthe move: {poller.attempts} verify-full connections (postgres, and mover with the folder's certificate), "
          f"{len(poller.failures)} failed")
    new = compat.load_certificates((move["home"] / "mover" / "postgresql.crt").read_bytes(), "mover")[0]
    assert new.issuer == served.issuer
    # The move is over: without migrate_from the old intermediate's CRL leaves the servers, and with it every
    # certificate of the folder; the engine's go on.
    done = run_playbook("role_local.yml", engine)
    assert len(compat.load_crls((cluster.data / "tls" / "root.crl").read_bytes(), "root.crl")) == 2
    as_mover = "host=localhost sslmode=verify-full sslrootcert={} user=mover sslcert={} sslkey={}"
    refused = cluster.psql(as_mover.format(root, kept / "postgresql.crt", kept / "postgresql.key"))
    assert refused.returncode != 0, refused.stdout
    fresh = move["home"] / "mover"
    accepted = cluster.psql(as_mover.format(root, fresh / "postgresql.crt", fresh / "postgresql.key"))
    assert accepted.returncode == 0 and accepted.stdout.strip() == "mover", accepted.stderr
    again = run_playbook("role_local.yml", engine)
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\b", again.stdout), again.stdout[-3000:]
    assert "changed=" in done.stdout


def test_migrate_from_is_refused_for_a_folder_of_another_root(move, tmp_path):
    """A CA folder whose root is not the root mount's: refused before any host changes, naming migrate_from."""
    other = tmp_path / "other"
    other.mkdir()
    key = generate_key("ec-p256")
    cert = issue_certificate(subject=build_name("Another root"), public_key=key.public_key(), profile=ROOT_CA,
                             valid_days=30, self_signing_key=key)
    for name in ("root.crt", "intermediate.crt"):
        (other / name).write_bytes(cert.public_bytes(Encoding.PEM))
    (other / "intermediate.crl").write_text("")
    before = served_chain("127.0.0.1", move["cluster"].port)["chain"][0]
    done = run_playbook("role_local.yml", dict(move["server"], pgtls_ca_backend="openbao", pgtls_pki_dir=str(move["mirror"]),
                                               pgtls_openbao=_settings(move), pgtls_openbao_migrate_from=str(other)),
                        check=False)
    assert done.returncode != 0
    assert "migrate_from" in done.stdout and "not the root mount's root" in " ".join(done.stdout.split()), \
        done.stdout[-3000:]
    assert served_chain("127.0.0.1", move["cluster"].port)["chain"][0] == before


def _settings(move) -> dict:
    bao = move["bao"]
    token = bao.api("POST", "auth/token/create", {"policies": ["pgtls"], "ttl": "30m"})["auth"]["client_token"]
    return {"address": bao.address, "role": "any", "token": token}
