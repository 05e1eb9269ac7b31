"""Root rotation (pgtls.ssl.root_rotation) in a CA folder the site playbook made, with ca_folder (the site playbook's
CA step) between the steps as the playbooks run it, and server_cert as the server role issues: start publishes a new
root that every trust file carries next to the old one and that signs nothing; switch makes it the signing root (the
old root and intermediate stay trusted, their CRLs in crl.pem) and leaves are re-issued under it; retire archives the
old root and drops it from every trust file and from crl.pem. openssl is the oracle for what verifies."""

from __future__ import annotations

import os
import subprocess

import pytest
from inprocess import run

FOLDER = {"root_common_name": "Option Root", "intermediate_common_name": "Option CA"}
NAMES = {"subject_alt_names": ["db1.example.com"]}


def ok(done: dict) -> dict:
    assert not done.get("failed"), done.get("msg")
    return done


def step(work, name: str, check_mode: bool = False, **extra) -> dict:
    return run("root_rotation", {"pki_dir": str(work / "pki"), "step": name, "root_common_name": "Option Root",
                                 **extra}, check_mode=check_mode)


def site(work) -> dict:
    """The site playbook's CA step, then the server role's issuance for db1 (root.crt is its ssl_ca_file)."""
    folder = ok(run("ca_folder", {"path": str(work / "pki"), **FOLDER}))
    ok(run("server_cert", {"key_path": str(work / "out" / "server.key"), "cert_path": str(work / "out" / "server.crt"),
                           "root_cert_path": str(work / "out" / "root.crt"), "ca_folder": str(work / "pki"), **NAMES}))
    return folder


def subjects(path) -> list[str]:
    text = open(path).read()
    out = []
    for block in text.split("-----END CERTIFICATE-----")[:-1]:
        done = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                              input=block + "-----END CERTIFICATE-----\n", capture_output=True, text=True, check=True)
        out.append(done.stdout.strip().removeprefix("subject="))
    return out


def verifies(work, cert, roots) -> bool:
    """openssl verify of a server.crt (leaf, then its intermediate) against a trust file, with the CRL of every CA."""
    leaf, _sep, rest = open(cert).read().partition("-----END CERTIFICATE-----\n")
    (work / "leaf.pem").write_text(leaf + "-----END CERTIFICATE-----\n")
    (work / "untrusted.pem").write_text(rest)
    done = subprocess.run(["openssl", "verify", "-crl_check_all", "-CRLfile", str(work / "pki" / "crl.pem"),
                           "-CAfile", str(roots), "-untrusted", str(work / "untrusted.pem"), str(work / "leaf.pem")],
                          capture_output=True, text=True, check=False)
    return done.returncode == 0


def crl_issuers(work) -> list[str]:
    text = (work / "pki" / "crl.pem").read_text()
    out = []
    for block in text.split("-----END X509 CRL-----")[:-1]:
        done = subprocess.run(["openssl", "crl", "-noout", "-issuer", "-nameopt", "RFC2253"],
                              input=block + "-----END X509 CRL-----\n", capture_output=True, text=True, check=True)
        out.append(done.stdout.strip().removeprefix("issuer="))
    return sorted(out)


def test_start_switch_retire_keep_every_certificate_verifiable(work):
    site(work)
    old_server = (work / "out" / "server.crt").read_text()
    (work / "old-root.crt").write_text((work / "pki" / "root.crt").read_text())
    # start: a new root (EC P-384, R2) in next-root/, nothing else moves; once more changes nothing.
    checked = ok(step(work, "start", check_mode=True, key_type="ec-p384"))
    assert checked["changed"] and not (work / "pki" / "next-root").exists()
    started = ok(step(work, "start", key_type="ec-p384"))
    assert started["changed"] and started["root"]["subject"] == "CN=Option Root R2", started
    assert not ok(step(work, "start", key_type="ec-p384"))["changed"]
    site(work)
    # Every trust file now holds both roots; crl.pem the new root's CRL too; the server certificate is the same.
    assert subjects(work / "out" / "root.crt") == ["CN=Option Root", "CN=Option Root R2"]
    assert crl_issuers(work) == ["CN=Option CA", "CN=Option Root", "CN=Option Root R2"]
    assert (work / "out" / "server.crt").read_text() == old_server
    published = work / "pki" / "next-root" / "root.crt"
    text = subprocess.run(["openssl", "x509", "-in", str(published), "-noout", "-text"], capture_output=True, text=True,
                          check=True).stdout
    assert "ASN1 OID: secp384r1" in text
    # switch: the new root signs (its intermediate is G2), the old root and intermediate wait in previous-root/.
    checked = ok(step(work, "switch", check_mode=True))
    assert checked["changed"] and "next-root/root.crt -> root.crt" in checked["actions"]
    assert (work / "pki" / "next-root" / "root.crt").exists()
    switched = ok(step(work, "switch"))
    assert "root.crt -> previous-root/root.crt" in switched["actions"], switched
    assert not ok(step(work, "switch"))["changed"]
    assert sorted(os.listdir(work / "pki" / "previous-root")) == [
        "generation", "intermediate.crl", "intermediate.crt", "intermediate.key", "root.crl", "root.crt", "root.key"]
    done = site(work)
    assert not done.get("warnings"), done["warnings"]  # the new root's name is its generation's (R2), as the folder asks
    assert subjects(work / "pki" / "intermediate.crt") == ["CN=Option CA G2"]
    new_server = (work / "out" / "server.crt").read_text()
    assert new_server != old_server and subjects(work / "out" / "root.crt") == ["CN=Option Root R2",
                                                                                "CN=Option Root"]
    assert crl_issuers(work) == ["CN=Option CA", "CN=Option CA G2", "CN=Option Root", "CN=Option Root R2"]
    # During the overlap both generations verify against the trust file a client holds, with every CRL.
    (work / "old.crt").write_text(old_server)
    assert verifies(work, work / "old.crt", work / "out" / "root.crt")
    assert verifies(work, work / "out" / "server.crt", work / "out" / "root.crt")
    # ... and a client that kept the old root only still verifies the old certificate, not the new one.
    assert verifies(work, work / "old.crt", work / "old-root.crt")
    assert not verifies(work, work / "out" / "server.crt", work / "old-root.crt")
    assert not ok(run("ca_folder", {"path": str(work / "pki"), **FOLDER}))["changed"]
    # retire: the old root is archived (with its intermediate), its keys destroyed; trust files hold the new root.
    retired = ok(step(work, "retire"))
    assert "previous-root/root.key destroyed" in retired["actions"], retired
    assert not ok(step(work, "retire"))["changed"]
    site(work)
    assert subjects(work / "out" / "root.crt") == ["CN=Option Root R2"]
    assert crl_issuers(work) == ["CN=Option CA G2", "CN=Option Root R2"]
    archived = [n for n in os.listdir(work / "pki" / "retired") if n.startswith("root-")]
    assert len(archived) == 1 and subjects(work / "pki" / "retired" / archived[0]) == ["CN=Option Root",
                                                                                       "CN=Option CA"]
    assert not verifies(work, work / "old.crt", work / "out" / "root.crt")
    assert verifies(work, work / "out" / "server.crt", work / "out" / "root.crt")
    assert not ok(run("ca_folder", {"path": str(work / "pki"), **FOLDER}))["changed"]
    # Revocation by name still reads the whole archive: certificates of the retired root's intermediate count as
    # retired (refused through their issuer), the current one is revoked.
    done = ok(run("revocation_registry", {"pki_dir": str(work / "pki"), "names": ["db1.example.com"],
                                          "reason": "superseded"}))
    assert len(done["issued_by_retired"]["db1.example.com"]) == 1 and len(done["added"]) == 2, done
    # A second rotation counts on: R3 (its name and key type the current root's), and the intermediate it signs G3.
    again = ok(run("root_rotation", {"pki_dir": str(work / "pki"), "step": "start"}))
    assert again["root"]["subject"] == "CN=Option Root R3" and again["root"]["key_type"] == "ec-p384", again["root"]
    ok(step(work, "switch"))
    site(work)
    assert subjects(work / "pki" / "intermediate.crt") == ["CN=Option CA G3"]


def test_an_intermediate_rotation_and_a_root_rotation_do_not_overlap(work):
    site(work)
    ok(run("intermediate_rotation", {"pki_dir": str(work / "pki"), "step": "start"}))
    site(work)
    ok(step(work, "start"))  # publishing a root during an intermediate rotation is fine
    refused = step(work, "switch")
    assert refused.get("failed") and refused["msg"].startswith("step: an intermediate rotation is in progress")
    assert (work / "pki" / "next-root" / "root.crt").exists() and (work / "pki" / "root.crt").exists()
    auto = ok(run("intermediate_rotation", {"pki_dir": str(work / "pki"), "step": "auto", "min_days": 99999}))
    assert not auto["changed"] and "in progress" in auto["msg"]
    ok(run("intermediate_rotation", {"pki_dir": str(work / "pki"), "step": "retire"}))
    ok(step(work, "switch"))
    refused = run("intermediate_rotation", {"pki_dir": str(work / "pki"), "step": "start"})
    assert refused.get("failed") and "a root rotation is switching" in refused["msg"], refused
    refused = step(work, "start")
    assert refused.get("failed") and refused["msg"].startswith("step: a previous root"), refused
    auto = ok(run("intermediate_rotation", {"pki_dir": str(work / "pki"), "step": "auto", "min_days": 99999}))
    assert not auto["changed"] and "root rotation" in auto["msg"]


@pytest.mark.parametrize("case", ["switch first", "retire first", "blank name", "link", "stranger", "same root",
                                  "passphrase"])
def test_refusals_name_the_problem_and_change_nothing(work, case):
    site(work)
    pki = work / "pki"
    if case in ("link", "stranger", "same root"):
        ok(step(work, "start"))
    if case == "link":
        os.rename(pki / "next-root", work / "elsewhere")
        os.symlink(work / "elsewhere", pki / "next-root")
    if case == "stranger":
        (pki / "next-root" / "notes.txt").write_text("mine")
    if case == "passphrase":  # a root key encrypted as pgtls_root_ca_key_passphrase leaves it
        done = subprocess.run(["openssl", "pkey", "-in", str(pki / "root.key"), "-aes256", "-passout", "pass:secret"],
                              capture_output=True, check=True)
        (pki / "root.key").write_bytes(done.stdout)
    if case == "same root":
        for name in ("root.crt", "root.key"):
            (pki / "next-root" / name).write_bytes((pki / name).read_bytes())
    before = {str(p): p.read_bytes() for p in pki.rglob("*") if p.is_file() and not p.is_symlink()}
    done = {"switch first": lambda: step(work, "switch"), "retire first": lambda: step(work, "retire"),
            "blank name": lambda: step(work, "start", root_common_name=" "),
            "passphrase": lambda: run("root_rotation", {"pki_dir": str(pki), "step": "start"}),
            "link": lambda: step(work, "switch"), "stranger": lambda: step(work, "switch"),
            "same root": lambda: step(work, "start")}[case]()
    expected = {"switch first": "step: no new root is published", "retire first": None,
                "blank name": "root_common_name: must name the root",
                "passphrase": "root_key_passphrase: the current root's key",
                "link": "is a symbolic link", "stranger": "notes.txt is not a file of a root rotation",
                "same root": "next-root/root.crt is the current root"}[case]
    if expected is None:
        assert not done.get("failed") and not done["changed"] and "no root rotation" in done["msg"]
    else:
        assert done.get("failed") and expected in done["msg"], done
    after = {str(p): p.read_bytes() for p in pki.rglob("*") if p.is_file() and not p.is_symlink()}
    assert after == before
