"""Issue 19: the CA folder's writers killed with SIGKILL at each write step, and every pair of them run at once.

A run is killed (in a forked process, by its own SIGKILL) just before its n-th step is applied, and again in the
middle of its n-th file write (the temporary written, not yet renamed), for every n. The next run must succeed, the
CA folder must be whole (every key matches its certificate, every CRL is signed by its CA, the generation counted
once, every revocation kept), a run after that must change nothing, and no private key may lie anywhere but in the
layout's key files. Then every pair of writers runs at once, several rounds: nothing either wrote is lost.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pkitools import Pki, pem

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca_folder import ensure_folder
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.crl import ensure_crl
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.intermediate_rotation import rotate
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.root_rotation import rotate_root
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import files, planner
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import crl_signed_by
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import signed_by
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CA_FOLDER, CRL, REVOCATION_REGISTRY

FORK = multiprocessing.get_context("fork")
REVOKED = {"serial_number": "0x77", "certificate_path": None, "certificate_content": None, "reason": "superseded",
           "revocation_date": None}
KEY_FILES = {"root.key", "intermediate.key", os.path.join("previous", "intermediate.key"),
             os.path.join("next-root", "root.key"), os.path.join("previous-root", "root.key"),
             os.path.join("previous-root", "intermediate.key")}


def defaults(spec: dict, **given) -> dict:
    return dict({name: entry.get("default") for name, entry in spec.items()}, **given)


def folder(path, **given):
    return ensure_folder(defaults(CA_FOLDER, path=str(path), root_common_name="Root", intermediate_common_name="CA",
                                  **given), False)


def registry(path, serial):
    return ensure_entries(defaults(REVOCATION_REGISTRY, pki_dir=str(path), serials=[serial], reason="superseded",
                                   lock_timeout=60, allow_unknown_serials=True), False)


def crl(path, serial):
    return ensure_crl(defaults(CRL, path=str(path / "intermediate.crl"), issuer_cert_path=str(path / "intermediate.crt"),
                               issuer_key_path=str(path / "intermediate.key"), lock_timeout=60,
                               revoked=[defaults(CRL["revoked"]["options"], serial_number=serial)]), False)


def start(path):
    return rotate({"pki_dir": str(path), "step": "start", "lock_timeout": 60}, False)


def retire(path):
    return rotate({"pki_dir": str(path), "step": "retire", "lock_timeout": 60}, False)


def root_step(name):
    def step(path):
        return rotate_root({"pki_dir": str(path), "step": name, "root_common_name": "Root", "key_type": "ec-p256",
                            "lock_timeout": 60}, False)
    return step


# The operations a run may be killed in, each from the state its setup makes.
def _fresh(_path):
    pass


def _made(path):
    folder(path)


def _started(path):
    folder(path)
    start(path)
    folder(path)


def _published(path):
    folder(path)
    root_step("start")(path)
    folder(path)


def _switched(path):
    _published(path)
    root_step("switch")(path)
    folder(path)


OPERATIONS = {
    "ca_folder (a new folder)": (_fresh, folder),
    "ca_folder (a revocation signed in)": (_made, lambda p: folder(p, revoked=[REVOKED])),
    "revocation_registry": (_made, lambda p: registry(p, "0x4242")),
    "intermediate_rotation start": (_made, start),
    "intermediate_rotation retire": (_started, retire),
    "root_rotation start": (_made, root_step("start")),
    "root_rotation switch": (_published, root_step("switch")),
    "root_rotation retire": (_switched, root_step("retire")),
}


def _killed(path, operation, at, inside):
    """Run ``operation`` and SIGKILL this process before its ``at``-th step (or inside its ``at``-th file write: its
    temporary written, not renamed; the plan stages every file before its first rename)."""
    count = [0]
    if inside:
        def dying(write):
            def dying_write(target, data, attrs, where):
                count[0] += 1
                if count[0] == at:
                    tmp = os.path.join(os.path.dirname(os.path.abspath(target)),
                                       f"{files.TMP_PREFIX}{os.getpid()}-dead")
                    with open(tmp, "wb") as handle:
                        handle.write(data)
                    os.kill(os.getpid(), signal.SIGKILL)
                return write(target, data, attrs, where)
            return dying_write
        planner.write_atomic, planner.stage_file = dying(files.write_atomic), dying(files.stage_file)
    else:
        apply = planner.Plan._apply

        def dying_apply(self, step, *rest):
            count[0] += 1
            if count[0] == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return apply(self, step, *rest)
        planner.Plan._apply = dying_apply
    operation(path)
    os._exit(0)


def _steps(setup, operation, tmp_path) -> tuple[int, int]:
    """How many steps and file writes an uninterrupted run makes (counted in a fork, on a copy)."""
    path = tmp_path / "count"
    setup(path)
    queue = FORK.Queue()

    def count():
        steps, writes = [0], [0]
        apply = planner.Plan._apply

        def counting_apply(self, step, *rest):
            steps[0] += 1
            return apply(self, step, *rest)

        def counting(write):
            def counting_write(*args):
                writes[0] += 1
                return write(*args)
            return counting_write
        planner.Plan._apply = counting_apply
        planner.write_atomic, planner.stage_file = counting(files.write_atomic), counting(files.stage_file)
        operation(path)
        queue.put((steps[0], writes[0]))
    child = FORK.Process(target=count)
    child.start()
    child.join()
    assert child.exitcode == 0
    return queue.get()


def check_whole(path) -> None:
    """The CA folder's invariants: each key matches its certificate, each CRL is signed by its CA, and no private key
    lies anywhere but in the layout's key files."""
    for stem in ("root", "intermediate", os.path.join("previous", "intermediate"), os.path.join("next-root", "root"),
                 os.path.join("previous-root", "root"), os.path.join("previous-root", "intermediate")):
        crt, key = path / f"{stem}.crt", path / f"{stem}.key"
        if not crt.exists():
            continue
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        assert key.exists(), f"{crt} has no key"
        private = serialization.load_pem_private_key(key.read_bytes(), None)
        assert private.public_key().public_numbers() == cert.public_key().public_numbers(), stem
        crl_file = path / f"{stem}.crl"
        if crl_file.exists():
            assert crl_signed_by(x509.load_pem_x509_crl(crl_file.read_bytes()), cert), f"{crl_file}"
    root = x509.load_pem_x509_certificate((path / "root.crt").read_bytes())
    if (path / "intermediate.crt").exists():
        assert signed_by(x509.load_pem_x509_certificate((path / "intermediate.crt").read_bytes()), root)
    for base, _dirs, names in os.walk(path):
        for name in names:
            relative = os.path.relpath(os.path.join(base, name), path)
            data = open(os.path.join(base, name), "rb").read()
            assert relative in KEY_FILES or b"PRIVATE KEY" not in data, f"stray key material in {relative}"
            assert not name.startswith(files.TMP_PREFIX), f"a temporary was left: {relative}"


# An intermediate retire writes no file (it moves, removes and makes folders): it is killed between steps only.
KILLS = [(name, inside) for name in sorted(OPERATIONS) for inside in (False, True)
         if not (inside and name == "intermediate_rotation retire")]


@pytest.mark.parametrize(("name", "inside"), KILLS,
                         ids=[f"{n}-{'inside a write' if i else 'between steps'}" for n, i in KILLS])
def test_a_run_killed_at_any_step_converges(tmp_path, name, inside):
    setup, operation = OPERATIONS[name]
    steps, writes = _steps(setup, operation, tmp_path)
    total = writes if inside else steps
    assert total >= 1
    reference = tmp_path / "reference"
    setup(reference)
    operation(reference)
    for at in range(1, total + 1):
        path = tmp_path / f"killed-{at}"
        setup(path)
        child = FORK.Process(target=_killed, args=(path, operation, at, inside))
        child.start()
        child.join()
        assert child.exitcode == -signal.SIGKILL, f"{name}: the run was not killed at {at} of {total}"
        operation(path)  # the next run of the same step finishes the work
        if name.startswith("ca_folder"):
            again = folder(path, revoked=[REVOKED]) if "revocation" in name else folder(path)
            assert not again["changed"], again["changes"]
        if name == "intermediate_rotation start":
            assert (path / "intermediate.generation").read_text() == "2\n", f"killed at {at}: generation"
            assert not start(path)["changed"]
            moved = ["generation", "intermediate.crl", "intermediate.crt", "intermediate.key"]
            assert sorted(os.listdir(path / "previous")) == moved
        if name == "intermediate_rotation retire":
            assert not (path / "previous").exists() and len(os.listdir(path / "retired")) == 1
            assert not retire(path)["changed"]
        if name == "revocation_registry":
            serials = [e["serial_number"] for e in yaml.safe_load((path / "revoked.yml").read_text())]
            assert serials.count("0x4242") == 1
        if name.startswith("root_rotation"):
            assert not root_step(name.split()[1])(path)["changed"], f"killed at {at}: not finished"
            assert sorted(os.listdir(path)) == sorted(os.listdir(reference)), f"killed at {at}"
            for sub in ("next-root", "previous-root"):
                if (reference / sub).exists():
                    assert sorted(os.listdir(path / sub)) == sorted(os.listdir(reference / sub)), f"killed at {at}"
            for number in ("root.generation", "intermediate.generation"):
                if (reference / number).exists():
                    assert (path / number).read_text() == (reference / number).read_text(), f"killed at {at}"
        check_whole(path)
        folder(path)  # the folder stays usable: the site playbook's next run works on it
        check_whole(path)
        shutil.rmtree(path)


# Every pair of CA folder writers at once ----------------------------------------------------------------------------
def _record(path, tag):
    from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import record

    _key, leaf = Pki().client(f"client-{tag}")
    record(str(path / "issued"), f"client-{tag}", leaf, str(path))


def _crl_of_the_intermediate(path, tag):
    """The crl module on the CA folder's intermediate; refused (and nothing written) while a rotation has moved it
    to previous/ and the site playbook has not made the next one yet."""
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError

    try:
        done = crl(path, f"0x{tag}")
    except PkiError as exc:
        if "intermediate.crt does not exist" not in str(exc):
            raise
        return False
    return done["crl"]["issuer"]


def _rotation(path, _tag):
    (retire if (path / "previous").exists() else start)(path)


WRITERS = {
    "ca_folder": lambda p, tag: folder(p, revoked=[dict(REVOKED, serial_number=f"0x{tag}")]),
    "revocation_registry": lambda p, tag: registry(p, f"0x{tag}"),
    "crl": _crl_of_the_intermediate,
    "intermediate_rotation": _rotation,
    "archive": _record,
}


def _run(name, path, tag, barrier, wrote):
    barrier.wait(30)
    done = WRITERS[name](path, tag)
    wrote.put(done is not False)
    wrote.put(done if isinstance(done, str) else "")


PAIRS = [(a, b) for i, a in enumerate(sorted(WRITERS)) for b in sorted(WRITERS)[i:]]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_two_writers_at_once_lose_nothing(tmp_path, first, second):
    path = tmp_path / "pki"
    folder(path)
    tags = []
    for round_ in range(3):
        barrier = FORK.Barrier(2)
        jobs = []
        for index, name in enumerate((first, second)):
            tag = f"{round_ + 1}{index + 1}A{len(tags)}"
            wrote = FORK.Queue()
            tags.append((name, tag, wrote))
            jobs.append(FORK.Process(target=_run, args=(name, path, tag, barrier, wrote)))
        for job in jobs:
            job.start()
        for job in jobs:
            job.join(120)
            assert job.exitcode == 0, f"{first}+{second}: a writer failed"
        if first == "intermediate_rotation" or second == "intermediate_rotation":
            folder(path)  # the site playbook between the rotate playbook's steps
    folder(path)  # the site playbook runs next: the registry's revocations reach the CRL
    check_whole(path)
    revoked = {r.serial_number for r in x509.load_pem_x509_crl((path / "intermediate.crl").read_bytes())}
    previous = path / "previous" / "intermediate.crl"
    if previous.exists():
        revoked |= {r.serial_number for r in x509.load_pem_x509_crl(previous.read_bytes())}
    retired = {x509.load_pem_x509_certificate((path / "retired" / n).read_bytes()).subject.rfc4514_string()
               for n in (os.listdir(path / "retired") if (path / "retired").exists() else [])}
    for name, tag, wrote in tags:
        written, issuer = wrote.get(timeout=5), wrote.get(timeout=5)
        if not written or issuer in retired:
            continue  # refused, or its intermediate was retired since (the root's CRL revokes it as a whole)
        if name == "revocation_registry":
            listed = [e["serial_number"] for e in yaml.safe_load((path / "revoked.yml").read_text())]
            assert f"0x{tag}" in listed, f"{tag} lost from the registry"
            assert int(tag, 16) in revoked, f"{tag} is not in the CRLs"
        if name == "crl":
            assert int(tag, 16) in revoked, f"{tag} lost from the CRL"
        if name == "archive":
            assert os.listdir(path / "issued" / f"client-{tag}"), f"{tag}'s certificate was not archived"
        if name == "intermediate_rotation":  # two starts at once count one generation
            assert int((path / "intermediate.generation").read_text()) <= 3
    numbers = yaml.safe_load((path / "state.json").read_text())["crl_numbers"]
    for crl_file in ("root.crl", "intermediate.crl"):
        data = x509.load_pem_x509_crl((path / crl_file).read_bytes())
        number = data.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        assert number <= max(numbers.values()), f"{crl_file}: CRL number {number} above the state's"


def test_the_copies_the_test_makes_are_real_material(tmp_path):
    """The invariant checker itself: it refuses a key left where no key belongs."""
    path = tmp_path / "pki"
    folder(path)
    (path / "issued").mkdir(exist_ok=True)
    (path / "issued" / "leak.crt").write_bytes((path / "intermediate.key").read_bytes())
    with pytest.raises(AssertionError, match="stray key material"):
        check_whole(path)
    (path / "issued" / "leak.crt").write_bytes(pem(Pki().root))
    check_whole(path)
