"""The one place that knows how each driver program of this folder is started, and what a login looks like.

Used on the controller by tests/e2e/test_drivers.py (imported) and inside the Molecule fleet's application host
(extensions/molecule/fleet), where it runs with Debian's python3: the cases as a JSON list in the first argument,
each {driver, host, port, user, dir}, the results as a JSON list on stdout, each {ok, seen, out} where ``seen`` is
"<current_user> <client certificate serial>" as the server reports them (pg_stat_ssl) and ``ok`` means the program
logged in. Options: --classes (the compiled PgtlsJdbc), --node-path (node_modules holding pg), --passphrase (of
postgresql.p12), --jobs (programs run at once)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
DRIVERS = ["libpq", "psycopg", "asyncpg", "node-pg", "jdbc-pk8", "jdbc-p12"]
JDBC_JAR = "/usr/share/java/postgresql.jar"
# The same statement as the programs': the session user and the serial of the certificate the server verified.
SQL = "select current_user || ' ' || client_serial from pg_stat_ssl where pid = pg_backend_pid()"


def command(driver: str, host: str, port: int | str, user: str, folder: str, *, classes: str, passphrase: str = "",
            psql: str = "psql", python: str = "/usr/bin/python3", jdbc_jar: str = JDBC_JAR) -> list[str]:
    """The command line that connects with sslmode=verify-full (or the driver's equivalent) to host:port as user,
    with the client files of folder (postgresql.crt/.key/.pk8/.p12 and root.crt, and root.crl when the folder has
    one: libpq's sslcrl, Python's and Node's CRL options; the JDBC driver has none)."""
    if driver == "libpq":
        crl = f" sslcrl={folder}/root.crl" if os.path.exists(f"{folder}/root.crl") else ""
        return [psql, "-X", "-At", "-c", SQL,
                f"host={host} port={port} dbname=postgres user={user} sslmode=verify-full connect_timeout=10 "
                f"sslrootcert={folder}/root.crt sslcert={folder}/postgresql.crt sslkey={folder}/postgresql.key{crl}"]
    if driver in ("psycopg", "asyncpg"):
        return [python, str(HERE / "pgtls_python.py"), driver, host, str(port), user, folder]
    if driver == "node-pg":
        return ["node", str(HERE / "pgtls_node.js"), host, str(port), user, folder]
    if driver in ("jdbc-pk8", "jdbc-p12"):
        cmd = ["java", "-cp", f"{jdbc_jar}:{classes}", "PgtlsJdbc", host, str(port), user, folder]
        return cmd + [passphrase] if driver == "jdbc-p12" else cmd
    raise ValueError(f"unknown driver {driver!r}; known: {', '.join(DRIVERS)}")


def environment(node_path: str, home: str | None = None) -> dict:
    """The environment of the programs: no PG* variable of the caller's (libpq would read them), node-postgres found,
    and optionally another HOME (no ~/.postgresql of the caller's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["NODE_PATH"] = node_path
    if home:
        env["HOME"] = home
    return env


def run(cmd: list[str], env: dict, timeout: int = 60) -> dict:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "seen": "", "out": f"timed out after {timeout} s"}
    out = (done.stdout + done.stderr).strip()
    last = out.splitlines()[-1] if out else ""
    return {"ok": done.returncode == 0 and not last.startswith("FAILED"), "seen": last if done.returncode == 0 else "",
            "out": out}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", help="JSON list of {driver, host, port, user, dir}")
    parser.add_argument("--classes", default=str(HERE))
    parser.add_argument("--node-path", default=str(HERE / "node_modules"))
    parser.add_argument("--passphrase", default="")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    env = environment(args.node_path)
    cases = json.loads(args.cases)
    commands = [command(c["driver"], c["host"], c["port"], c["user"], c["dir"], classes=args.classes,
                        passphrase=args.passphrase) for c in cases]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda cmd: run(cmd, env), commands))
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
