"""`make demo`: issue a CA, an intermediate, a server and client certificates with the collection, start a
throwaway PostgreSQL 15 with them on 127.0.0.1, and show a psql session with sslmode=verify-full and a client
certificate, then the validate module's probe of the served certificate. Everything is removed at the end.
(The multi-host container fleet demo builds on this once the fleet operations land.)"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_load("pgtls_tests_conftest", ROOT / "tests" / "conftest.py")  # sets up the collection path
e2e = _load("conftest", ROOT / "tests" / "e2e" / "conftest.py")


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="pgtls-demo-", dir="/tmp"))
    base.chmod(0o755)
    pki, srv = base / "pki", base / "srv"
    for folder in (pki, srv, pki / "clients"):
        folder.mkdir()
    cluster = e2e.Cluster(base, srv)
    try:
        print("== 1. PKI with pgtls.ssl: root -> intermediate -> server (key made on the host) + clients alice, bob")
        variables = {"pki": str(pki), "srv": str(srv), "sans": ["localhost", "127.0.0.1"], "revoked": []}
        done = e2e.run_playbook("material.yml", variables)
        print("\n".join(line for line in done.stdout.splitlines() if line.startswith(("changed:", "ok:", "localhost"))))
        print("== 2. Second run: nothing to change")
        done = e2e.run_playbook("material.yml", variables)
        print([line for line in done.stdout.splitlines() if line.startswith("localhost")][-1])
        print("== 3. PostgreSQL 15 on 127.0.0.1 with ssl_cert_file, ssl_key_file, ssl_ca_file, ssl_crl_file")
        cluster.init("local all all trust\nhostssl all postgres 127.0.0.1/32 trust\n"
                     "hostssl all alice,bob 127.0.0.1/32 cert\nhostnossl all all 127.0.0.1/32 reject\n")
        cluster.start()
        cluster.admin("create role alice login")
        client = pki / "clients" / "alice"
        conninfo = (f"host=localhost user=alice sslmode=verify-full sslrootcert={client}/root.crt "
                    f"sslcert={client}/postgresql.crt sslkey={client}/postgresql.key")
        print(f"== 4. psql \"port={cluster.port} {conninfo}\"")
        session = cluster.psql(conninfo, "select current_user, s.ssl, s.version, s.cipher, s.client_dn "
                                         "from pg_stat_ssl s where s.pid = pg_backend_pid()")
        print(session.stdout.strip() or session.stderr.strip())
        print("== 5. pgtls.ssl.validate probes the server: is the certificate in the file the one served?")
        out = base / "probe.json"
        e2e.run_playbook("probe.yml", {"srv": str(srv), "port": cluster.port, "out": str(out)})
        probe = json.loads(out.read_text())
        for finding in probe["findings"]:
            print(f"  {finding['status']:4} {finding['check']:15} {finding['message']}")
        return 0 if session.returncode == 0 and probe["ok"] else 1
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
