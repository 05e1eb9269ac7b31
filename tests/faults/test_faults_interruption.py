"""Issue 8, "Done means" 2: a 2,000-client ``client_cert`` run (keys on the target, localhost) killed with SIGKILL
(every process of the run: ansible-playbook, its workers and the module processes) at random points several
times, then run to completion. Afterwards every key matches its certificate, every certificate verifies with
``openssl verify``, no temporary file of ours is left, and one more run changes nothing.

The kill points are drawn from a seeded generator (PGTLS_FAULTS_SEED, default 8) between 0.3 s and the duration of
an uninterrupted run of the same size, measured first on a separate folder; they are printed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from faults_conftest import (
    ansible_env,
    build_material,
    playbook_cmd,
    pubkey_of_cert,
    pubkey_of_key,
    recording_playbook,
    run_playbook,
    write_base,
)
from pgtls_harness import kill_tree, process_tree

CLIENTS = int(os.environ.get("PGTLS_FAULTS_CLIENTS", "2000"))
KILLS = 4
SEED = int(os.environ.get("PGTLS_FAULTS_SEED", "8"))
PENDING_SUFFIX = ".pgtls-new"  # documented: a new key waiting for its certificate (plugins/modules/server_cert.py)


def _task(pki: Path, dest: Path) -> dict:
    return {"pgtls.ssl.client_cert": {
        "dest": str(dest), "clients": [{"name": f"role{i:04d}"} for i in range(CLIENTS)],
        "issuer_cert_path": str(pki / "int.crt"), "issuer_key_path": str(pki / "int.key"),
        "issuer_chain_path": str(pki / "root.crt")}}


def _book(top: Path, label: str, pki: Path, dest: Path) -> tuple[Path, Path]:
    results = top / f"{label}.json"
    return recording_playbook(top / f"{label}.yml", [("clients", _task(pki, dest))], results), results


def _ours(name: str) -> bool:
    return name.startswith(".pgtls-") or ".pgtls-" in name


@pytest.mark.slow
def test_killed_client_run_converges(faultdir):
    material = build_material()
    pki = faultdir / "pki"
    write_base(pki, material)
    rng = random.Random(SEED)

    # The duration of one uninterrupted run of this size, and of a run with nothing to do, on a folder of its own.
    (faultdir / "measure").mkdir()
    book, results = _book(faultdir, "measure", pki, faultdir / "measure")
    start = time.monotonic()
    run_playbook(book, timeout=900, check=True)
    duration = time.monotonic() - start
    start = time.monotonic()
    run_playbook(book, timeout=900, check=True)
    idle = time.monotonic() - start
    assert json.loads(results.read_text())["clients"].get("changed") is False
    print(f"\n{CLIENTS} clients: an uninterrupted first run takes {duration:.1f} s, an unchanged one {idle:.1f} s")

    dest = faultdir / "dest"
    dest.mkdir()
    book, results = _book(faultdir, "run", pki, dest)
    kills = []
    for attempt in range(KILLS):
        # A point inside the run: between 0.3 s and the first run's duration, scaled to the clients still to do
        # (each killed run leaves less to do, so the next run is shorter). Kill i falls in the i-th quarter of
        # that span, so the kills reach from key generation to the installation of certificates.
        waiting = sum(1 for d in dest.iterdir() if (d / f"postgresql.key{PENDING_SUFFIX}").exists())
        todo = CLIENTS - _finished(dest) - waiting / 2  # a pending key is about half the work of a client
        upper = max(0.4, 0.9 * (idle + (duration - idle) * todo / CLIENTS))
        span = (upper - 0.3) / KILLS
        delay = rng.uniform(0.3 + attempt * span, 0.3 + (attempt + 1) * span)
        proc = subprocess.Popen(playbook_cmd(book), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=ansible_env(), start_new_session=True)
        time.sleep(delay)
        finished = proc.poll() is not None
        killed = 0 if finished else kill_tree(proc)
        proc.wait()
        kills.append((round(delay, 2), killed, finished))
        ours = [n for _root, _dirs, files in os.walk(dest) for n in files if _ours(n)]
        pending = sum(1 for n in ours if n.endswith(PENDING_SUFFIX))
        print(f"kill {attempt + 1}: after {delay:.2f} s (drawn in 0.3-{upper:.1f} s), {killed} processes killed"
              f"{' (the run had already finished)' if finished else ''}; {_finished(dest)} clients finished, "
              f"{pending} pending keys, {len(ours) - pending} other .pgtls-* files")
    assert sum(1 for k in kills if k[1]) >= KILLS // 2, f"most runs finished before their kill: {kills}"
    print(f"seed {SEED}, kill times {[k[0] for k in kills]}")
    leftovers = {pid for pid in process_tree(os.getpid()) if pid != os.getpid()}
    assert not [p for p in leftovers if Path(f"/proc/{p}").exists() and "ansible" in _cmdline(p)], leftovers

    temporaries = sorted(str(Path(d) / n) for d, _dirs, files in os.walk(faultdir) for n in files if _ours(n))
    print(f"after the kills: {len(temporaries)} files of ours named .pgtls-* "
          f"({sum(1 for t in temporaries if t.endswith(PENDING_SUFFIX))} pending keys)")

    # Run to completion.
    start = time.monotonic()
    done = run_playbook(book, timeout=900)
    print(f"completing run: {time.monotonic() - start:.1f} s, rc {done.returncode}")
    assert done.returncode == 0 and results.exists(), done.stdout[-4000:]
    final = json.loads(results.read_text())["clients"]
    assert not final.get("failed"), final.get("msg")

    # Every client: three files that parse, the key matches the certificate, the CN is the role.
    root_pem, int_pem = pki / "root.crt", pki / "int.crt"
    folders = sorted(p for p in dest.iterdir())
    assert len(folders) == CLIENTS, f"{len(folders)} entries in dest for {CLIENTS} clients"
    mismatched, names = [], []
    for folder in folders:
        cert = x509.load_pem_x509_certificate((folder / "postgresql.crt").read_bytes())
        key = serialization.load_pem_private_key((folder / "postgresql.key").read_bytes(), None)
        x509.load_pem_x509_certificate((folder / "root.crt").read_bytes())
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
            mismatched.append(folder.name)
        names.append(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    assert not mismatched, f"keys that do not match their certificate: {mismatched[:20]}"
    assert sorted(names) == [f"role{i:04d}" for i in range(CLIENTS)]
    # openssl, the oracle: a sample of key/certificate pairs, and every certificate verified.
    for folder in rng.sample(folders, min(40, len(folders))):
        assert pubkey_of_cert(folder / "postgresql.crt") == pubkey_of_key(folder / "postgresql.key"), folder
    failures = []
    for chunk in range(0, len(folders), 400):
        files = [str(f / "postgresql.crt") for f in folders[chunk:chunk + 400]]
        check = subprocess.run(["openssl", "verify", "-CAfile", str(root_pem), "-untrusted", str(int_pem), *files],
                               capture_output=True, text=True, check=False)
        ok = {line[: -len(": OK")] for line in check.stdout.splitlines() if line.endswith(": OK")}
        failures += [f for f in files if f not in ok]
        if check.returncode != 0:
            failures.append(check.stderr[-500:])
    assert not failures, f"openssl verify failed for {failures[:10]}"

    # No temporaries of ours anywhere (documented pending keys are counted apart).
    temporaries = sorted(str(Path(d) / n) for d, _dirs, files in os.walk(faultdir) for n in files if _ours(n))
    pending = [t for t in temporaries if t.endswith(PENDING_SUFFIX)]
    others = [t for t in temporaries if not t.endswith(PENDING_SUFFIX)]
    print(f"after the completing run: {len(others)} temporaries, {len(pending)} pending keys")
    assert not others, f"temporaries left: {others[:20]}"

    # And a further run changes nothing.
    again = run_playbook(book, timeout=900, check=True)
    second = json.loads(results.read_text())["clients"]
    assert again.returncode == 0
    assert second.get("changed") is False, [c for c in second.get("clients", []) if c.get("changed")][:5]
    assert second.get("issued") == 0


def _finished(dest: Path) -> int:
    """Clients whose key and certificate are in place with no pending key."""
    return sum(1 for d in dest.iterdir() if (d / "postgresql.crt").exists() and (d / "postgresql.key").exists()
               and not (d / f"postgresql.key{PENDING_SUFFIX}").exists())


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
