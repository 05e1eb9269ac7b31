"""A revocation of a certificate in use (issue 27): the revoke playbook records it pending, replaces the certificate on
its host (a new key for key_compromise), and publishes only then. Here the modules as ansible-playbook runs them
(inprocess.py): pending entries count for every issuance and stay out of the CRLs until published; the CA folder's own
root and intermediate are refused, naming them. openssl is the oracle for what the CRL holds."""

from __future__ import annotations

import os
import re

from inprocess import run
from pkitools import openssl

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import serial_hex


def server(work, **extra):
    return {"key_path": str(work / "out" / "server.key"), "cert_path": str(work / "out" / "server.crt"),
            "ca_folder": str(work / "pki"), "subject_alt_names": ["db1.example.com"], **extra}


def ok(done: dict) -> dict:
    assert not done.get("failed"), done.get("msg")
    return done


def serial_of(path) -> int:
    out = openssl("x509", "-in", str(path), "-noout", "-serial").stdout.decode()
    return int(out.strip().split("=", 1)[1], 16)


def crl_text(work) -> str:
    """Every CRL of the CA folder's crl.pem, as openssl reads them, after the CA folder signed them again."""
    ok(run("ca_folder", {"path": str(work / "pki"), "root_common_name": "Option Root",
                         "intermediate_common_name": "Option CA"}))
    done = openssl("storeutl", "-noout", "-text", "-crls", str(work / "pki" / "crl.pem"))
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def listed(hexed: str, text: str) -> bool:
    """openssl prints a serial in whole bytes (a leading 0 for an odd number of digits)."""
    return re.search(rf"Serial Number: 0?{hexed}\b", text) is not None


def registry(work, **params):
    return run("revocation_registry", {"pki_dir": str(work / "pki"), **params})


def test_a_pending_revocation_replaces_the_certificate_first_and_reaches_the_crl_when_published(work):
    ok(run("server_cert", server(work)))
    cert, key = work / "out" / "server.crt", work / "out" / "server.key"
    serial, old_key = serial_of(cert), key.read_bytes()
    hexed = f"{serial:X}"
    recorded = ok(registry(work, serials=[f"0x{hexed}"], reason="key_compromise", pending=True))
    assert recorded["changed"] and recorded["added"][0]["pending"] is True and recorded["pending"] == [f"0x{hexed}"]
    assert not listed(hexed, crl_text(work))  # pending: not in any CRL yet
    # The host's run replaces it at once: a new key, a new certificate, the reason names the pending revocation.
    done = ok(run("server_cert", server(work)))
    assert f"certificate {serial_hex(serial)} is revoked (key_compromise (pending: not yet in the CRLs))" in \
        done["reasons"], done["reasons"]
    assert key.read_bytes() != old_key and serial_of(cert) != serial
    # Recording it again (a revoke run resumed) changes nothing; publishing puts it in the intermediate's CRL.
    assert not ok(registry(work, serials=[f"0x{hexed}"], reason="key_compromise", pending=True))["changed"]
    published = ok(registry(work, publish=True))
    assert published["changed"] and published["published"] == [f"0x{hexed}"] and published["pending"] == []
    text = crl_text(work)
    assert listed(hexed, text) and "Key Compromise" in text
    assert not ok(registry(work, publish=True))["changed"]
    assert "pending" not in (work / "pki" / "revoked.yml").read_text()
    # The new certificate is not revoked: nothing to do on the host.
    assert not ok(run("server_cert", server(work)))["changed"]


def test_an_entry_recorded_published_stays_published(work):
    ok(registry(work, serials=["0x1F2E"], reason="superseded", allow_unknown_serials=True))
    again = ok(registry(work, serials=["0x1F2E"], reason="superseded", pending=True, allow_unknown_serials=True))
    assert not again["changed"] and again["pending"] == []
    assert listed("1F2E", crl_text(work))


def test_the_ca_folders_own_root_and_intermediate_are_refused_by_serial(work):
    before = sorted(os.listdir(work / "pki"))
    for name, words in (("root.crt", "is this CA folder's root (CN=Option Root)"),
                        ("intermediate.crt", "is this CA folder's intermediate (CN=Option CA)")):
        serial = serial_of(work / "pki" / name)
        done = registry(work, serials=[f"0x{serial:X}"], reason="ca_compromise")
        assert done.get("failed") and done["msg"].startswith(f"serials: serial {serial_hex(serial)} {words}"), done
        assert ("root rotation" if name == "root.crt" else "pgtls_rotate_intermediate=start") in done["msg"]
    assert sorted(os.listdir(work / "pki")) == before and not os.path.exists(work / "pki" / "revoked.yml")


def test_a_pending_flag_that_is_not_a_boolean_is_named(work):
    (work / "pki" / "revoked.yml").write_text("- serial_number: '0x1F'\n  pending: 'yes please'\n")
    done = registry(work, serials=["0x20"], allow_unknown_serials=True)
    assert done.get("failed") and "entry 1.pending must be true or false, got 'yes please'" in done["msg"], done
    done = run("server_cert", server(work))
    assert done.get("failed") and "entry 1.pending must be true or false" in done["msg"], done
    assert os.listdir(work / "out") == []


def test_a_name_revoked_is_refused_from_now_on_not_given_a_new_certificate(work):
    """Revocation by name (the revoke playbook's names) revokes an identity: its holder is not issued a new one."""
    ok(run("server_cert", server(work)))
    serial = serial_of(work / "out" / "server.crt")
    ok(registry(work, add=[{"serial_number": f"0x{serial:X}", "name": "db1", "reason": "superseded"}]))
    assert not ok(run("server_cert", server(work)))["changed"]


def test_a_serial_this_ca_folder_did_not_issue_is_refused_unless_allowed(work):
    """A typo or another CA's serial would be published in the CRL and revoke nothing: refused, naming it."""
    done = registry(work, serials=["0x0BADC0DE"])
    assert done.get("failed") and done["msg"].startswith("serials: serial 0B:AD:C0:DE (0x0BADC0DE) is not in "), done
    assert "another CA" in done["msg"] and "allow_unknown_serials" in done["msg"]
    assert not os.path.exists(work / "pki" / "revoked.yml")
    assert ok(registry(work, serials=["0x0BADC0DE"], allow_unknown_serials=True))["changed"]


def test_a_compromised_intermediate_is_returned_for_the_emergency_rotation_not_recorded(work):
    """With rotate_compromised_intermediate, the intermediate's serial (key_compromise or ca_compromise) is returned
    with where it is - current, previous (a rotation started), retired - and never recorded; another reason is
    refused, naming the rotation."""
    serial = serial_of(work / "pki" / "intermediate.crt")
    given = {"serials": [f"0x{serial:X}"], "rotate_compromised_intermediate": True}
    refused = registry(work, reason="superseded", **given)
    assert refused.get("failed") and "is this CA folder's intermediate (CN=Option CA)" in refused["msg"], refused
    for state in ("current", "previous", "retired"):
        done = ok(registry(work, reason="ca_compromise", **given))
        assert done["intermediate"] == [{"serial_number": serial_hex(serial), "reason": "ca_compromise",
                                         "state": state}], done
        assert not done["changed"] and not os.path.exists(work / "pki" / "revoked.yml")
        if state != "retired":
            ok(run("intermediate_rotation", {"pki_dir": str(work / "pki"),
                                             "step": "start" if state == "current" else "retire"}))
