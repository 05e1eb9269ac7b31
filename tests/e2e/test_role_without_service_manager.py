"""The server role against a real PostgreSQL 15 with no service manager: pg_reload_conf() reloads, pg_ctl restarts
for a new key group, and the audit entry point discovers a data-directory (PGDG/RHEL) cluster by itself."""

from __future__ import annotations

import grp
import json
import re
import subprocess

import pytest
from conftest import plain_cluster, role_vars, run_playbook

GROUP = "pgtls-e2e-keys"


def recap_changed(output: str) -> int:
    return int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", output).group(1))


@pytest.fixture(scope="module")
def role_env(workdir):
    cluster = plain_cluster(workdir / "role")
    extra = role_vars(cluster, "e2e", workdir / "role" / "pki")
    yield cluster, extra
    cluster.stop()
    subprocess.run(["gpasswd", "-d", "postgres", GROUP], capture_output=True, check=False)
    subprocess.run(["groupdel", GROUP], capture_output=True, check=False)


def verify_full(cluster, base):
    return cluster.psql(f"host=localhost user=postgres sslmode=verify-full sslrootcert={base}/tls/root.crt")


def test_owner_layout_reloads_with_pg_reload_conf(role_env):
    cluster, extra = role_env
    done = run_playbook("role_local.yml", dict(extra, pgtls_key_layout="owner"))
    # What the activation ran, step by step (the role's task "cluster | What the activation ran, and why" prints
    # "What the activation ran for 15/e2e:", then each step with its status).
    assert "cluster | What the activation ran, and why" in done.stdout, done.stdout
    assert "What the activation ran for 15/e2e:" in done.stdout, done.stdout
    assert "Reload with pg_reload_conf(), in the parse check's session (it found nothing): changed" in done.stdout, done.stdout
    assert "Connect with libpq, sslmode=verify-full by name: ok" in done.stdout, done.stdout
    connected = verify_full(cluster, cluster.data)
    assert connected.returncode == 0, connected.stderr
    assert cluster.admin("show ssl").stdout.strip() == "on"


def test_second_run_changes_nothing(role_env):
    cluster, extra = role_env
    done = run_playbook("role_local.yml", dict(extra, pgtls_key_layout="owner"))
    assert recap_changed(done.stdout) == 0, done.stdout


def test_new_key_group_is_refused_without_permission_to_restart(role_env):
    cluster, extra = role_env
    key = cluster.data / "tls" / "server.key"
    before = key.stat()
    done = run_playbook("role_local.yml", dict(extra, pgtls_ssl_group=GROUP), check=False)
    assert done.returncode != 0
    assert f"is not in group {GROUP}" in done.stdout and "Nothing was changed" in done.stdout, done.stdout
    after = key.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    assert verify_full(cluster, cluster.data).returncode == 0


def test_missing_program_folder_is_named_before_anything_changes(role_env):
    """A cluster whose programs are elsewhere: pg_ctl would be needed for the restart, and it is not there."""
    cluster, extra = role_env
    key, conf = cluster.data / "tls" / "server.key", cluster.data / "conf.d" / "pgtls.conf"
    before, conf_before = key.stat(), conf.read_bytes()
    clusters = [dict(extra["pgtls_clusters"][0], bin_dir="/nonexistent/pg15/bin")]
    done = run_playbook("role_local.yml", dict(extra, pgtls_clusters=clusters, pgtls_ssl_group=GROUP,
                                               pgtls_allow_restart=True), check=False)
    assert done.returncode != 0
    assert "/nonexistent/pg15/bin/pg_ctl not found (bin_dir /nonexistent/pg15/bin, from pgtls_clusters)" in done.stdout
    assert "Nothing was changed" in done.stdout, done.stdout
    after = key.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    assert conf.read_bytes() == conf_before
    assert verify_full(cluster, cluster.data).returncode == 0


@pytest.mark.parametrize("settings, message", [
    ({"pgtls_ssl_groups": "X25519:prime256v1"}, "takes one curve (written as ssl_ecdh_curve"),
    ({"pgtls_ssl_tls13_ciphers": "TLS_AES_256_GCM_SHA384"}, "ssl_tls13_ciphers needs PostgreSQL 18 (this is 15)"),
])
def test_settings_postgresql_15_refuses_are_refused_before_writing(role_env, settings, message):
    cluster, extra = role_env
    conf = cluster.data / "conf.d" / "pgtls.conf"
    conf_before = conf.read_bytes()
    done = run_playbook("role_local.yml", dict(extra, pgtls_key_layout="owner", **settings), check=False)
    assert done.returncode != 0
    assert message in done.stdout and "Nothing was changed" in done.stdout, done.stdout
    assert conf.read_bytes() == conf_before


def test_one_curve_is_written_as_ssl_ecdh_curve_and_in_effect(role_env):
    cluster, extra = role_env
    run_playbook("role_local.yml", dict(extra, pgtls_key_layout="owner", pgtls_ssl_groups="secp384r1"))
    assert "ssl_ecdh_curve = 'secp384r1'" in (cluster.data / "conf.d" / "pgtls.conf").read_text()
    assert cluster.admin("show ssl_ecdh_curve").stdout.strip() == "secp384r1"
    run_playbook("role_local.yml", dict(extra, pgtls_key_layout="owner"))
    assert cluster.admin("show ssl_ecdh_curve").stdout.strip() == "prime256v1"


def test_new_key_group_restarts_with_pg_ctl_when_allowed(role_env):
    cluster, extra = role_env
    pid_before = (cluster.data / "postmaster.pid").read_text().split()[0]
    done = run_playbook("role_local.yml", dict(extra, pgtls_ssl_group=GROUP, pgtls_allow_restart=True))
    assert "Restart with pg_ctl (no service manager; a group membership changed): changed" in done.stdout, done.stdout
    pid = (cluster.data / "postmaster.pid").read_text().split()[0]
    assert pid != pid_before
    gid = str(grp.getgrnam(GROUP).gr_gid)
    status = open(f"/proc/{pid}/status").read()
    assert gid in re.search(r"^Groups:(.*)$", status, re.M).group(1).split()
    key = cluster.data / "tls" / "server.key"
    assert (key.stat().st_uid, key.stat().st_gid, key.stat().st_mode & 0o777) == (0, int(gid), 0o640)
    assert verify_full(cluster, cluster.data).returncode == 0


def test_ca_given_as_content_is_used_and_never_shown(role_env, tmp_path):
    """The AWX way: the CA arrives as content (credential extra vars), written into an empty CA folder."""
    cluster, extra = role_env
    pki = extra["pgtls_pki_dir"]
    cert = (cluster.data / "tls" / "server.crt").read_bytes()
    content = {}
    for name in ("root", "intermediate"):
        content[f"pgtls_{name}_ca_cert_content"] = open(f"{pki}/{name}.crt").read()
        content[f"pgtls_{name}_ca_key_content"] = open(f"{pki}/{name}.key").read()
    done = run_playbook("role_local.yml", dict(extra, pgtls_pki_dir=str(tmp_path / "pki"), pgtls_ssl_group=GROUP,
                                               **content), "-vvv")
    assert "PRIVATE KEY" not in done.stdout + done.stderr
    assert (cluster.data / "tls" / "server.crt").read_bytes() == cert  # same intermediate: nothing re-issued
    assert (tmp_path / "pki" / "intermediate.key").stat().st_mode & 0o777 == 0o600
    assert verify_full(cluster, cluster.data).returncode == 0


def test_audit_discovers_a_data_directory_cluster(role_env, tmp_path):
    cluster, extra = role_env
    out = tmp_path / "audit.json"
    run_playbook("audit_local.yml", {"__pgtls_layout": "datadir", "__pgtls_datadir_globs": [str(cluster.data)],
                                     "pgtls_server_extra_sans": [], "out": str(out)})
    rows = json.loads(out.read_text())
    assert len(rows) == 1
    row = rows[0]
    assert (row["cluster"], row["port"]) == ("15/postgresql", cluster.port)
    assert row["served_matches"] and row["key_ok"] and not row["fail"], row
    assert row["days_left"] > 300


def test_a_cluster_patroni_manages_is_refused_before_anything_changes(workdir):
    """A cluster whose postgresql.conf Patroni writes (as Patroni 4.1 does: the original renamed to
    postgresql.base.conf and included from a file that begins with Patroni's header), running on it: the role
    refuses it naming the cluster and the file (the settings it would add are lost when Patroni writes the file
    again), and writes nothing - no key, no conf.d, no line in postgresql.conf."""
    cluster = plain_cluster(workdir / "patroni-managed")
    try:
        conf = cluster.data / "postgresql.conf"
        conf.rename(cluster.data / "postgresql.base.conf")
        conf.write_text("# Do not edit this file manually!\n# It will be overwritten by Patroni!\n"
                        "include 'postgresql.base.conf'\n\ncluster_name = 'demo'\n")
        subprocess.run(["chown", "postgres:postgres", str(conf)], check=True)
        cluster.stop()
        cluster.start()  # PostgreSQL runs on the file as Patroni leaves it
        before = {str(p): p.read_bytes() for p in sorted(cluster.data.glob("*.conf"))}
        extra = role_vars(cluster, "patroni", workdir / "patroni-managed" / "pki")
        done = run_playbook("role_local.yml", extra, check=False)
        assert done.returncode != 0
        assert f"15/patroni: Patroni manages it ({cluster.data}/postgresql.conf begins" in done.stdout, \
            done.stdout[-3000:]
        assert "Nothing was changed" in done.stdout
        assert {str(p): p.read_bytes() for p in sorted(cluster.data.glob("*.conf"))} == before
        assert not (cluster.data / "tls").exists() and not (cluster.data / "conf.d").exists()
        assert not (workdir / "patroni-managed" / "pki").exists()  # refused before the CA step too
        assert cluster.admin("show cluster_name").stdout.strip() == "demo"
    finally:
        cluster.stop()
