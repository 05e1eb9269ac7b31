"""The proof on a real PostgreSQL 15 server: material made by the modules, real psql clients.

One cluster for the module; the tests run in order and build on each other (rollout, client login, probe,
revocation, wrong host name)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from conftest import Cluster, run_playbook

HBA = """\
local   all   all                      trust
hostssl all   postgres 127.0.0.1/32    trust
hostssl all   alice,bob 127.0.0.1/32   cert
hostnossl all all      127.0.0.1/32    reject
"""


@pytest.fixture(scope="module")
def env(workdir):
    pki, srv = workdir / "pki", workdir / "srv"
    for folder in (pki, srv, pki / "clients"):
        folder.mkdir()
    os.chmod(srv, 0o755)
    variables = {"pki": str(pki), "srv": str(srv), "sans": ["localhost"], "revoked": []}
    run_playbook("material.yml", variables)
    cluster = Cluster(workdir, srv)
    cluster.init(HBA)
    cluster.start()
    cluster.admin("create role alice login; create role bob login")
    yield {"pki": pki, "srv": srv, "vars": variables, "cluster": cluster, "base": workdir}
    cluster.stop()


def _client(env, role):
    folder = env["pki"] / "clients" / role
    return (f"host=localhost user={role} sslmode=verify-full sslrootcert={folder}/root.crt "
            f"sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key")


def test_server_key_is_postgres_0600_and_server_starts_with_it(env):
    st = os.stat(env["srv"] / "server.key")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (Path("/var/lib/postgresql").stat().st_uid, 0o600)


def test_verify_full_by_host_name_connects_over_tls(env):
    done = env["cluster"].psql(f"host=localhost user=postgres sslmode=verify-full sslrootcert={env['srv']}/root.crt",
                               "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("t|TLSv1.")


def test_plain_connection_is_rejected_by_hostnossl(env):
    done = env["cluster"].psql("host=localhost user=postgres sslmode=disable")
    assert done.returncode != 0 and "no encryption" in done.stderr


def test_cert_login_with_a_client_certificate(env):
    done = env["cluster"].psql(_client(env, "alice"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "alice"


def test_cert_login_without_a_certificate_is_refused(env):
    folder = env["pki"] / "clients" / "alice"
    done = env["cluster"].psql(f"host=localhost user=alice sslmode=verify-full sslrootcert={folder}/root.crt "
                               "sslcert=/nonexistent sslkey=/nonexistent")
    assert done.returncode != 0
    assert 'connection requires a valid client certificate' in done.stderr, done.stderr


def test_another_roles_certificate_does_not_log_in_as_alice(env):
    folder = env["pki"] / "clients" / "bob"
    done = env["cluster"].psql(f"host=localhost user=alice sslmode=verify-full sslrootcert={folder}/root.crt "
                               f"sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key")
    assert done.returncode != 0 and 'certificate authentication failed for user "alice"' in done.stderr


def test_wrong_host_name_fails_verify_full(env):
    # The certificate names only "localhost"; 127.0.0.1 is not in its SANs.
    done = env["cluster"].psql(f"host=127.0.0.1 user=postgres sslmode=verify-full sslrootcert={env['srv']}/root.crt")
    assert done.returncode != 0
    assert 'server certificate for "localhost"' in done.stderr
    assert 'does not match host name "127.0.0.1"' in done.stderr


def _probe(env) -> dict:
    out = env["base"] / "probe.json"
    run_playbook("probe.yml", {"srv": str(env["srv"]), "port": env["cluster"].port, "out": str(out)})
    return json.loads(out.read_text())


def test_probe_sees_the_served_certificate(env):
    log_before = env["cluster"].log.read_text()
    result = _probe(env)
    assert result["ok"], result["msg"]
    assert result["served"]["matches_file"] is True
    assert len(result["served"]["chain_fingerprints"]) == 2  # leaf + intermediate, as in server.crt
    logged = env["cluster"].log.read_text()[len(log_before):]
    assert "could not" not in logged and "reset" not in logged, f"the probe left noise in the server log: {logged}"


def test_probe_catches_a_new_certificate_that_is_not_served_until_reload(env):
    env["vars"]["sans"] = ["localhost", "127.0.0.1"]
    run_playbook("material.yml", env["vars"])
    stale = _probe(env)
    assert not stale["ok"] and stale["served"]["matches_file"] is False
    assert "the reload did not take effect" in stale["msg"]
    env["cluster"].reload()
    fresh = _probe(env)
    assert fresh["ok"] and fresh["served"]["matches_file"] is True
    # IP SAN honoured by libpq 15
    done = env["cluster"].psql(f"host=127.0.0.1 user=postgres sslmode=verify-full sslrootcert={env['srv']}/root.crt")
    assert done.returncode == 0, done.stderr


def test_revoked_certificate_is_refused_after_reload(env):
    env["vars"]["revoked"] = [{"certificate_path": str(env["pki"] / "clients/alice/postgresql.crt"),
                               "reason": "key_compromise"}]
    run_playbook("material.yml", env["vars"])
    env["cluster"].reload()
    refused = env["cluster"].psql(_client(env, "alice"))
    assert refused.returncode != 0 and "certificate revoked" in refused.stderr
    still = env["cluster"].psql(_client(env, "bob"))
    assert still.returncode == 0 and still.stdout.strip() == "bob", still.stderr


def test_second_run_changes_nothing(env):
    done = run_playbook("material.yml", env["vars"])
    recap = [line for line in done.stdout.splitlines() if line.startswith("localhost")][-1]
    assert "changed=0" in recap and "failed=0" in recap, recap


def test_missing_root_crl_makes_postgres_refuse_client_certificates(env):
    """The fact behind 'one CRL for every CA': without the root's CRL, cert logins fail."""
    crl = env["srv"] / "root.crl"
    saved = crl.read_bytes()
    try:
        shutil.copy(env["pki"] / "int.crl", crl)
        env["cluster"].reload()
        done = env["cluster"].psql(_client(env, "bob"))
        assert done.returncode != 0
        assert "unable to get certificate CRL" in done.stderr or "certificate verify failed" in done.stderr + \
            env["cluster"].log.read_text()
    finally:
        crl.write_bytes(saved)
        env["cluster"].reload()
    assert env["cluster"].psql(_client(env, "bob")).returncode == 0
