"""Issue 8, "Done means" 4: parallel runs on one CA folder.

crl: four runs start together from the same CRL, each adding its own serial to the same starting list (the
default ``revoked_mode``, as a user writes it). With the CA folder's lock every run must succeed, each signing
its own CRL number (no two alike, each above the starting one), the numbers seen in the file while they run never
go back, and a fifth run with the union finds every revocation already there (nothing to sign).

client_cert: four runs at once, different clients, same ``dest``, same issuer, ``record_dir`` in the CA folder:
every run succeeds, serials are unique, every file parses (no torn file), every key matches its certificate.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from faults_conftest import (
    ansible_env,
    assert_no_deprecation,
    build_material,
    playbook_cmd,
    pubkey_of_cert,
    pubkey_of_key,
    recording_playbook,
    run_playbook,
    write_base,
)

ROUNDS = 3
START = [100]


def _crl_task(pki: Path, serials) -> dict:
    return {"pgtls.ssl.crl": {"path": str(pki / "int.crl"), "issuer_cert_path": str(pki / "int.crt"),
                              "issuer_key_path": str(pki / "int.key"),
                              "revoked": [{"serial_number": str(s)} for s in serials]}}


def _parallel(books: list[Path]) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(playbook_cmd(b), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ansible_env(), start_new_session=True) for b in books]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert_no_deprecation(proc.args, out, err)
    return [subprocess.CompletedProcess(p.args, p.returncode, o, e) for p, (o, e) in zip(procs, outs)]


def _crl_number(path: Path) -> tuple[int, frozenset] | None:
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError):
        return None
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return number, frozenset(r.serial_number for r in crl)


def test_parallel_crl_runs_keep_every_revocation(faultdir):
    material = build_material()
    pki = faultdir / "pki"
    write_base(pki, material)
    (pki / "int.crl").unlink()
    first = faultdir / "first.json"
    run_playbook(recording_playbook(faultdir / "first.yml", [("first", _crl_task(pki, START))], first),
                 timeout=120, check=True)
    number = json.loads(first.read_text())["first"]["crl"]["crl_number"]
    union = set(START)
    for round_ in range(ROUNDS):
        own = [1000 * (round_ + 1) + i for i in range(4)]
        books, results = [], []
        for i, serial in enumerate(own):
            results.append(faultdir / f"r{round_}-{i}.json")
            books.append(recording_playbook(faultdir / f"r{round_}-{i}.yml",
                                            [("crl", _crl_task(pki, sorted(union) + [serial]))], results[-1]))
        seen, stop = [], threading.Event()

        def watch(seen, stop):
            while not stop.is_set():
                found = _crl_number(pki / "int.crl")
                if found and (not seen or seen[-1] != found):
                    seen.append(found)
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, args=(seen, stop))
        watcher.start()
        try:
            runs = _parallel(books)
        finally:
            stop.set()
            watcher.join()
        for run, result in zip(runs, results):
            assert run.returncode == 0 and result.exists(), run.stdout[-3000:]
        answers = [json.loads(r.read_text())["crl"] for r in results]
        failed = [a.get("msg") for a in answers if a.get("failed")]
        assert not failed, f"round {round_ + 1}: runs failed under the lock: {failed}"
        numbers = [a["crl"]["crl_number"] for a in answers]
        print(f"\nround {round_ + 1}: starting CRL number {number}, the four runs signed {numbers}; numbers seen "
              f"in the file: {[n for n, _at in seen]}")
        assert len(set(numbers)) == 4, f"two runs signed the same CRL number: {numbers}"
        assert min(numbers) > number, f"a run signed a number not above the starting {number}: {numbers}"
        observed = [n for n, _at in seen]
        assert observed == sorted(observed), f"the CRL number in the file went back: {observed}"
        final = _crl_number(pki / "int.crl")
        assert final[0] == max(numbers), f"the file carries {final[0]}, the runs signed {numbers}"
        union |= set(own)
        missing = union - set(final[1])
        assert not missing, f"round {round_ + 1}: revocations lost: {sorted(missing)}"
        text = subprocess.run(["openssl", "crl", "-noout", "-text", "-in", str(pki / "int.crl")],
                              capture_output=True, text=True, check=True).stdout
        for serial in union:
            assert f"Serial Number: {serial:02X}" in text or f"Serial Number: {serial:04X}" in text, serial
        number = final[0]

    fifth = faultdir / "fifth.json"
    run_playbook(recording_playbook(faultdir / "fifth.yml", [("crl", _crl_task(pki, sorted(union)))], fifth),
                 timeout=120, check=True)
    answer = json.loads(fifth.read_text())["crl"]
    present = {int(s.replace(":", ""), 16) for s in answer["crl"]["revoked_serials"]}
    assert present == union, f"the union run reports {sorted(present)}, wanted {sorted(union)}"
    assert answer["changed"] is False, f"the union was not already on the CRL: {answer.get('reasons')}"


def test_parallel_client_runs_unique_serials_no_torn_files(faultdir):
    material = build_material()
    pki = faultdir / "pki"
    write_base(pki, material)
    dest = faultdir / "dest"
    dest.mkdir()
    per_run = 25
    books, results = [], []
    for run in range(4):
        task = {"pgtls.ssl.client_cert": {
            "dest": str(dest), "clients": [{"name": f"r{run}c{i:02d}"} for i in range(per_run)],
            "issuer_cert_path": str(pki / "int.crt"), "issuer_key_path": str(pki / "int.key"),
            "issuer_chain_path": str(pki / "root.crt"), "record_dir": str(pki / "issued")}}
        results.append(faultdir / f"c{run}.json")
        books.append(recording_playbook(faultdir / f"c{run}.yml", [("clients", task)], results[-1]))
    runs = _parallel(books)
    for run, result in zip(runs, results):
        assert run.returncode == 0 and result.exists(), run.stdout[-3000:]
    answers = [json.loads(r.read_text())["clients"] for r in results]
    assert not [a.get("msg") for a in answers if a.get("failed")]

    serials, files = [], 0
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    for folder in sorted(dest.iterdir()):
        cert = x509.load_pem_x509_certificate((folder / "postgresql.crt").read_bytes())
        key = serialization.load_pem_private_key((folder / "postgresql.key").read_bytes(), None)
        x509.load_pem_x509_certificate((folder / "root.crt").read_bytes())
        files += 3
        assert cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki), folder
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == folder.name
        serials.append(cert.serial_number)
    assert len(serials) == 4 * per_run
    assert len(set(serials)) == len(serials), "two client certificates share a serial"
    for folder in sorted(dest.iterdir())[:: per_run // 5]:
        assert pubkey_of_cert(folder / "postgresql.crt") == pubkey_of_key(folder / "postgresql.key")
    archived = list((pki / "issued").rglob("*.crt"))
    for path in archived:
        x509.load_pem_x509_certificate(path.read_bytes())  # every archived certificate parses (none torn)
    assert len(archived) == 4 * per_run, f"{len(archived)} archived certificates for {4 * per_run} issued"
    leftovers = [str(Path(d) / n) for d, _dirs, names in os.walk(faultdir) for n in names if n.startswith(".pgtls-")
                 and not n.endswith(".lock")]
    assert not leftovers, f"temporaries left: {leftovers[:10]}"
    print(f"\n4 parallel client runs: {len(serials)} certificates, {files} files parsed, {len(archived)} archived")
