"""Helpers for end-to-end tests: run the collection's playbooks (no deprecation warning allowed), start a throwaway
PostgreSQL as postgres."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from pgtls_harness import assert_no_deprecation, run_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# Modules run on "targets" with this interpreter: Debian's python3 with python3-cryptography 38.0.4 when present.
TARGET_PYTHON = os.environ.get("PGTLS_TARGET_PYTHON", "/usr/bin/python3")
PG_BIN = Path(os.environ.get("PGTLS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def collections_path() -> str:
    return os.environ["PGTLS_COLLECTIONS_PATH"]  # set by tests/conftest.py


def ansible_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path(),
        ANSIBLE_PYTHON_INTERPRETER=TARGET_PYTHON,
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        **run_env(),
    )
    env.update(extra)
    return env


def run_playbook(name: str, extra_vars: dict, *args: str, check: bool = True, **env) -> subprocess.CompletedProcess:
    playbook = str(HERE / "playbooks" / name) if not os.path.isabs(name) else name
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", json.dumps(extra_vars), *args, playbook]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(**env), check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}")
    assert_no_deprecation(cmd, done.stdout, done.stderr)
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_postgres(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


class Cluster:
    """A throwaway PostgreSQL 15 cluster run as the postgres OS user, on 127.0.0.1 and a free port."""

    def __init__(self, base: Path, srv: Path):
        self.base, self.srv = base, srv
        self.data = base / "data"
        self.port = free_port()
        self.log = base / "server.log"
        self.sockets = base / "sockets"

    def init(self, hba: str) -> None:
        for folder in (self.data, self.sockets):
            folder.mkdir(mode=0o700)
            shutil.chown(folder, "postgres", "postgres")
        as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        conf = self.data / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.sockets}'\n"
                f"ssl = on\nssl_cert_file = '{self.srv}/server.crt'\nssl_key_file = '{self.srv}/server.key'\n"
                f"ssl_ca_file = '{self.srv}/root.crt'\nssl_crl_file = '{self.srv}/root.crl'\n"
            )
        (self.data / "pg_hba.conf").write_text(hba)
        shutil.chown(self.data / "pg_hba.conf", "postgres", "postgres")

    def start(self) -> None:
        self.log.touch()
        shutil.chown(self.log, "postgres", "postgres")
        done = as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "start", check=False)
        if done.returncode != 0:
            raise AssertionError(f"PostgreSQL did not start:\n{self.log.read_text()[-3000:]}")

    def reload(self) -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "reload")
        time.sleep(1.0)  # SIGHUP is asynchronous; the postmaster re-reads the files shortly after

    def stop(self) -> None:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False)

    def admin(self, sql: str) -> subprocess.CompletedProcess:
        """Run SQL as postgres over the Unix socket (no TLS involved)."""
        done = as_postgres("psql", "-X", "-At", "-h", str(self.sockets), "-p", str(self.port), "-d", "postgres", "-c", sql)
        return done

    def psql(self, conninfo: str, sql: str = "select current_user") -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HOME"] = str(self.base)  # no ~/.postgresql of the test runner's
        return subprocess.run(["psql", "-X", "-At", "-c", sql, f"port={self.port} dbname=postgres {conninfo}"],
                              capture_output=True, text=True, env=env, check=False)


def plain_cluster(base: Path) -> Cluster:
    """A started cluster without SSL and trusting local connections: what the server role starts from."""
    base.mkdir(mode=0o755)
    cluster = Cluster(base, base / "unused")
    cluster.init("local all all trust\n")
    conf = cluster.data / "postgresql.conf"
    conf.write_text("".join(line for line in conf.read_text().splitlines(True) if not line.startswith("ssl")))
    cluster.start()
    return cluster


def role_vars(cluster: Cluster, name: str, pki: Path) -> dict:
    """Server role variables for a throw-away cluster: no service manager, its private socket folder, TLS-only TCP."""
    return {
        "pgtls_pki_dir": str(pki),
        "pgtls_clusters": [{"version": 15, "name": name, "port": cluster.port, "config_dir": str(cluster.data),
                            "data_dir": str(cluster.data), "service": "", "socket_dir": str(cluster.sockets),
                            "log_file": str(cluster.log)}],
        "pgtls_hba_rules": [
            {"type": "local", "database": "all", "user": "postgres", "method": "peer"},
            {"type": "hostssl", "database": "all", "user": "postgres", "address": "127.0.0.1/32", "method": "trust"},
        ],
    }


@pytest.fixture(scope="module")
def workdir():
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("the postgres OS user is missing: install postgresql-15 (.ci/run does)")
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"{PG_BIN}/initdb is missing: install postgresql-15 (.ci/run does)")
    base = Path(tempfile.mkdtemp(prefix="pgtls-e2e-", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)
