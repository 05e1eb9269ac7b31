"""Benchmark for pgtls.ssl: prints figures, asserts nothing (speed belongs here, never in a timed test).

Every figure comes with a baseline measured in the same run, on the same machine:
- a playbook with one no-op module task (ansible.builtin.stat) for the per-task cost of Ansible itself;
- the same keys and certificates made in-process with cryptography alone, for the cost of the crypto.
Module executions on the "host" are counted by a logging interpreter, not taken from our own result.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_PYTHON = os.environ.get("PGTLS_TARGET_PYTHON", "/usr/bin/python3")
CLIENTS = int(os.environ.get("PGTLS_BENCH_CLIENTS", "1000"))


def _collections() -> str:
    spec = importlib.util.spec_from_file_location("pgtls_tests_conftest", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.COLLECTIONS


COLLECTIONS = _collections()
sys.path.insert(0, COLLECTIONS)

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
{tasks}
"""

ISSUER = """
        issuer_cert_path: {pki}/int.crt
        issuer_key_path: {pki}/int.key
        issuer_chain_path: {pki}/root.crt"""


def run(work: Path, name: str, tasks: str, interpreter: str, extra_vars: dict | None = None) -> dict:
    """Run a one-play playbook; return wall seconds, peak RSS (MiB) of the process tree and the last result."""
    book = work / f"{name}.yml"
    book.write_text(PLAY.format(tasks=tasks))
    out = work / f"{name}.json"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_PYTHON_INTERPRETER=interpreter,
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree", ANSIBLE_CALLBACK_TREE_DIR=str(work / f"{name}.tree"))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(book)]
    if extra_vars:
        cmd[1:1] = ["-e", json.dumps(extra_vars)]
    # A fresh Python parent per run, so RUSAGE_CHILDREN covers exactly this playbook's process tree.
    probe = ("import os, resource, subprocess, sys, time\n"
             "t = time.perf_counter()\n"
             "with open(os.environ['PGTLS_BENCH_OUT'], 'w') as out:\n"
             "    rc = subprocess.run(sys.argv[1:], stdout=out, check=False).returncode\n"
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)\n")
    env["PGTLS_BENCH_OUT"] = str(out)
    done = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, env=env, check=True)
    wall, rss_kib, rc = done.stdout.split()
    if int(rc) != 0:
        raise SystemExit(f"{name} failed:\n{out.read_text()[-3000:]}\n{done.stderr[-2000:]}")
    # The tree callback keeps each host's last task result.
    result = json.loads((work / f"{name}.tree" / "localhost").read_text())
    return {"wall": float(wall), "rss_mib": int(rss_kib) / 1024, "result": result}


def logging_interpreter(work: Path) -> tuple[str, Path]:
    log = work / "executions.log"
    wrapper = work / "python-logging"
    wrapper.write_text(f'#!/bin/sh\necho "$$" >> {log}\nexec {TARGET_PYTHON} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return str(wrapper), log


def counted(log: Path, work: Path, name: str, tasks: str, interpreter: str) -> dict:
    log.write_text("")
    figures = run(work, name, tasks, interpreter)
    figures["executions"] = len(log.read_text().splitlines())
    return figures


def crypto_baseline(count: int) -> float:
    """The same work with cryptography alone: key, CSR, signature, PEM, for ``count`` clients."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import Issuer, issue_certificate, make_csr
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key, private_key_pem
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import CLIENT, ROOT_CA

    ca_key = generate_key("ec-p256")
    ca = issue_certificate(subject=build_name("Bench CA"), public_key=ca_key.public_key(), profile=ROOT_CA,
                           valid_days=30, self_signing_key=ca_key)
    issuer = Issuer(cert=ca, chain=[], where="issuer", key_loader=lambda: ca_key)
    start = time.perf_counter()
    for index in range(count):
        key = generate_key("ec-p256")
        private_key_pem(key)
        csr = make_csr(key, build_name(f"role{index}"), [])
        cert = issue_certificate(subject=csr.subject, public_key=csr.public_key(), profile=CLIENT, valid_days=30,
                                 issuer=issuer)
        cert.public_bytes(Encoding.PEM)
    return time.perf_counter() - start


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pgtls-bench-"))
    pki = work / "pki"
    pki.mkdir()
    (work / "srv").mkdir()
    (work / "clients").mkdir()
    (work / "bundles").mkdir()
    interpreter, log = logging_interpreter(work)
    issuer = ISSUER.format(pki=pki)
    run(work, "ca", f"""
    - pgtls.ssl.ca: {{cert_path: {pki}/root.crt, key_path: {pki}/root.key, common_name: Bench Root}}
    - pgtls.ssl.ca:
        cert_path: {pki}/int.crt
        key_path: {pki}/int.key
        common_name: Bench Intermediate
        issuer_cert_path: {pki}/root.crt
        issuer_key_path: {pki}/root.key""", TARGET_PYTHON)

    noop = counted(log, work, "noop", f"    - ansible.builtin.stat: {{path: {pki}/root.crt}}", interpreter)
    server = f"""    - pgtls.ssl.server_cert:
        key_path: {work}/srv/server.key
        cert_path: {work}/srv/server.crt
        subject_alt_names: [db1.example.test, 10.0.0.5]{issuer}"""
    first = counted(log, work, "server-first", server, interpreter)
    again = counted(log, work, "server-again", server, interpreter)

    clients = "[" + ", ".join(f"{{name: role{i}}}" for i in range(CLIENTS)) + "]"
    many = f"""    - pgtls.ssl.client_cert:
        dest: {work}/clients
        clients: {clients}{issuer}"""
    bundles = many.replace(f"dest: {work}/clients", f"dest: {work}/bundles\n        key_location: controller")
    c_first = counted(log, work, "clients-first", many, interpreter)
    c_again = counted(log, work, "clients-again", many, interpreter)
    c_ctrl = counted(log, work, "clients-controller", bundles, interpreter)
    baseline = crypto_baseline(CLIENTS)

    rows = [
        ("baseline: one no-op module task (ansible.builtin.stat)", noop, None),
        ("server_cert, first issue", first, noop["wall"]),
        ("server_cert, unchanged re-run", again, noop["wall"]),
        (f"client_cert, {CLIENTS} clients, keys on target, first issue", c_first, noop["wall"]),
        (f"client_cert, {CLIENTS} clients, unchanged re-run", c_again, noop["wall"]),
        (f"client_cert, {CLIENTS} clients, bundles on the controller", c_ctrl, noop["wall"]),
    ]
    print(f"pgtls.ssl benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, target python "
          f"{TARGET_PYTHON})")
    print(f"{'figure':62} {'wall s':>8} {'x no-op':>8} {'host execs':>10} {'peak RSS MiB':>12}")
    for label, fig, base in rows:
        ratio = f"{fig['wall'] / base:8.2f}" if base else f"{'1.00':>8}"
        print(f"{label:62} {fig['wall']:8.2f} {ratio} {fig['executions']:10d} {fig['rss_mib']:12.1f}")
    print(f"{'baseline: ' + str(CLIENTS) + ' keys+CSRs+certs with cryptography alone, in-process':62} {baseline:8.2f}")
    print(f"client_cert {CLIENTS} first issue / in-process crypto: {c_first['wall'] / baseline:.2f}x; "
          f"per client {1000 * c_first['wall'] / CLIENTS:.1f} ms (crypto alone {1000 * baseline / CLIENTS:.1f} ms)")
    print(f"module_executions reported by the actions: server first={first['result'].get('module_executions')}, "
          f"unchanged={again['result'].get('module_executions')}; clients first="
          f"{c_first['result'].get('module_executions')}, unchanged={c_again['result'].get('module_executions')}")


if __name__ == "__main__":
    main()
