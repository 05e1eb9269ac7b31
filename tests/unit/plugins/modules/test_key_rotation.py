"""Key rotation (specs.RENEWAL: key_rotation, rekey_before, run_interval_hours) through server_cert and client_cert as
ansible-playbook runs them (inprocess.py): a certificate issued again certifies a new key made on the host
(on_renewal) or the same one (never); rekey_before replaces older keys once; a certificate whose serial is revoked is
replaced where it is installed, and a key revoked for key_compromise is never certified again (a new key, whatever
key_rotation says); a run stopped between the new key and its certificate is finished by the next; the renewal window is
checked against the declared run interval. openssl is the oracle for what the files hold."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from inprocess import run
from pkitools import openssl

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import compromised_keys
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import serial_hex
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import public_fingerprint

NAMES = {"subject_alt_names": ["db1.example.com"]}
MORE_NAMES = {"subject_alt_names": ["db1.example.com", "db1"]}


def server(work, **extra):
    return {"key_path": str(work / "out" / "server.key"), "cert_path": str(work / "out" / "server.crt"),
            "ca_folder": str(work / "pki"), **NAMES, **extra}


def public_key(path) -> str:
    """The public key of a key or certificate file, as openssl prints it (the oracle)."""
    text = open(path, "rb").read()
    if b"CERTIFICATE" in text:
        done = openssl("x509", "-in", str(path), "-noout", "-pubkey")
    else:
        done = openssl("pkey", "-in", str(path), "-pubout")
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def serial_of(path) -> int:
    out = openssl("x509", "-in", str(path), "-noout", "-serial").stdout.decode()
    return int(out.strip().split("=", 1)[1], 16)


def ok(done: dict) -> dict:
    assert not done.get("failed"), done.get("msg")
    return done


def now_iso() -> str:
    """Now, in whole seconds as an operator writes it, after the second the last certificate was issued in."""
    time.sleep(1.1)
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_on_renewal_certifies_a_new_key_and_the_old_one_stays_until_then(work):
    ok(run("server_cert", server(work)))
    key, cert = work / "out" / "server.key", work / "out" / "server.crt"
    first = public_key(key)
    done = ok(run("server_cert", server(work, **MORE_NAMES)))
    assert done["changed"] and any("key_rotation=on_renewal" in r for r in done["reasons"]), done["reasons"]
    assert public_key(key) != first
    assert public_key(cert) == public_key(key)
    assert not os.path.exists(f"{key}.pgtls-new")
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    assert not ok(run("server_cert", server(work, **MORE_NAMES)))["changed"]


def test_never_keeps_the_key_for_every_renewal(work):
    ok(run("server_cert", server(work, key_rotation="never")))
    key = work / "out" / "server.key"
    first = public_key(key)
    done = ok(run("server_cert", server(work, key_rotation="never", **MORE_NAMES)))
    assert done["changed"] and done["issued"]
    assert public_key(key) == first == public_key(work / "out" / "server.crt")


def test_check_mode_tells_of_the_new_key_and_writes_nothing(work):
    ok(run("server_cert", server(work)))
    before = {p.name: p.read_bytes() for p in (work / "out").iterdir()}
    done = ok(run("server_cert", server(work, **MORE_NAMES), check_mode=True))
    assert done["changed"] and any("new key" in r for r in done["reasons"]), done["reasons"]
    assert {p.name: p.read_bytes() for p in (work / "out").iterdir()} == before


def test_rekey_before_replaces_an_older_key_once(work):
    ok(run("server_cert", server(work)))
    key = work / "out" / "server.key"
    first = public_key(key)
    at = now_iso()
    done = ok(run("server_cert", server(work, rekey_before=at)))
    assert done["changed"] and any("rekey_before" in r for r in done["reasons"]), done["reasons"]
    assert public_key(key) != first
    assert public_key(work / "out" / "server.crt") == public_key(key)
    # The certificate is now newer than rekey_before: the same option changes nothing (idempotent).
    assert not ok(run("server_cert", server(work, rekey_before=at)))["changed"]


def test_rekey_before_in_the_future_is_refused_before_anything_is_made(work):
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).strftime("%Y-%m-%d")
    done = run("server_cert", server(work, rekey_before=later))
    assert done.get("failed") and done["msg"].startswith("rekey_before: ") and "in the future" in done["msg"]
    assert os.listdir(work / "out") == []
    done = run("server_cert", server(work, rekey_before="yesterday"))
    assert done.get("failed") and "is not an ISO 8601 date" in done["msg"] and "rekey_before" in done["msg"]


def test_a_run_stopped_after_the_new_key_is_finished_by_the_next(work):
    """The host made the new key (its prepare stage), then the run died before the certificate: the key in place is
    the old one, the new waits as .pgtls-new and the next run certifies exactly it."""
    ok(run("server_cert", server(work)))
    key = work / "out" / "server.key"
    first = public_key(key)
    item = {"name": "server", "key_path": str(key), "cert_path": str(work / "out" / "server.crt"),
            "common_name": "db1.example.com", "subject_alt_names": ["db1.example.com"], "new_key": True}
    made = ok(run("host_material", {"stage": "prepare", "items": [item]}))
    assert made["item_results"][0]["key"]["state"] == "replaced"
    pending = public_key(f"{key}.pgtls-new")
    assert public_key(key) == first != pending
    ok(run("server_cert", server(work, **MORE_NAMES)))
    assert public_key(key) == pending == public_key(work / "out" / "server.crt")
    assert not os.path.exists(f"{key}.pgtls-new")


def revoke_serial(work, serial: int, reason="key_compromise"):
    return ok(run("revocation_registry", {"pki_dir": str(work / "pki"), "serials": [f"0x{serial:X}"],
                                          "reason": reason}))


def test_a_key_revoked_for_compromise_is_recorded_and_its_certificate_replaced_with_a_new_key(work):
    """The certificate in use is revoked for key_compromise: the next run replaces it - a new key made on the host
    (key_rotation=never keeps no compromised key), a new certificate - and the record keeps the old key out for good."""
    ok(run("server_cert", server(work, key_rotation="never")))
    key, cert = work / "out" / "server.key", work / "out" / "server.crt"
    serial, compromised, stolen = serial_of(cert), public_key(key), key.read_bytes()
    added = revoke_serial(work, serial)["added"]
    from cryptography import x509

    leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    assert added[0]["public_key_sha256"] == public_fingerprint(leaf.public_key())
    record = compromised_keys(str(work / "pki"))
    assert list(record) == [public_fingerprint(leaf.public_key())] and record[added[0]["public_key_sha256"]]
    done = ok(run("server_cert", server(work, key_rotation="never")))
    assert f"certificate {serial_hex(serial)} is revoked (key_compromise)" in done["reasons"], done["reasons"]
    assert any("revoked for key_compromise: new key (key_rotation=never" in r for r in done["reasons"]), done["reasons"]
    assert public_key(key) != compromised and public_key(cert) == public_key(key) and serial_of(cert) != serial
    assert not ok(run("server_cert", server(work, key_rotation="never")))["changed"]
    # The compromised key put back on the host (a restored backup) is replaced again, never certified.
    os.remove(cert)
    key.write_bytes(stolen)
    assert public_key(key) == compromised
    done = ok(run("server_cert", server(work, key_rotation="never")))
    assert public_key(key) != compromised and public_key(cert) == public_key(key)


def test_a_compromised_key_found_by_serial_in_the_archive_without_a_recorded_key(work):
    """An entry added before keys were recorded (or by hand): the archive names the key by its serial."""
    ok(run("server_cert", server(work, key_rotation="never")))
    serial = serial_of(work / "out" / "server.crt")
    compromised = public_key(work / "out" / "server.key")
    (work / "pki" / "revoked.yml").write_text(f"- serial_number: '0x{serial:X}'\n  reason: key_compromise\n")
    assert len(compromised_keys(str(work / "pki"))) == 1
    done = ok(run("server_cert", server(work, key_rotation="never", **MORE_NAMES)))
    assert any("revoked for key_compromise: new key" in r for r in done["reasons"]), done["reasons"]
    assert public_key(work / "out" / "server.key") != compromised


def test_other_reasons_record_no_key_and_replace_the_certificate_by_the_key_policy(work):
    ok(run("server_cert", server(work, key_rotation="never")))
    key = public_key(work / "out" / "server.key")
    serial = serial_of(work / "out" / "server.crt")
    added = revoke_serial(work, serial, reason="superseded")["added"]
    assert "public_key_sha256" not in added[0] and compromised_keys(str(work / "pki")) == {}
    done = ok(run("server_cert", server(work, key_rotation="never")))
    assert done["issued"] and f"certificate {serial_hex(serial)} is revoked (superseded)" in done["reasons"]
    assert public_key(work / "out" / "server.key") == key  # never: the same key, certified again
    revoke_serial(work, serial_of(work / "out" / "server.crt"), reason="superseded")
    ok(run("server_cert", server(work)))  # on_renewal: a new key
    assert public_key(work / "out" / "server.key") != key


def test_one_client_rekeyed_by_its_own_rekey_before(work):
    args = {"clients": [{"name": "app"}, {"name": "report"}], "dest": str(work / "out"), "key_location": "controller",
            "ca_folder": str(work / "pki")}
    ok(run("client_cert", args))
    keys = {n: public_key(work / "out" / n / "postgresql.key") for n in ("app", "report")}
    again = dict(args, clients=[{"name": "app", "rekey_before": now_iso()}, {"name": "report"}])
    done = ok(run("client_cert", again))
    assert done["changed"]
    assert public_key(work / "out" / "app" / "postgresql.key") != keys["app"]
    assert public_key(work / "out" / "report" / "postgresql.key") == keys["report"]
    assert public_key(work / "out" / "app" / "postgresql.crt") == public_key(work / "out" / "app" / "postgresql.key")
    assert not ok(run("client_cert", again))["changed"]


@pytest.mark.parametrize("valid, days, percent, interval, refused", [
    (7, 0, 33, 24, False),   # 55 hours of window, daily runs
    (7, 0, 33, 72, True),    # three-day runs could miss it
    (7, 2, 0, 48, False),    # exactly the interval
    (365, 30, 33, 24 * 121, True),
])
def test_a_window_shorter_than_the_run_interval_is_refused(work, valid, days, percent, interval, refused):
    done = run("server_cert", server(work, valid_days=valid, renew_before_days=days, renew_before_percent=percent,
                                     run_interval_hours=interval))
    if refused:
        assert done.get("failed") and done["msg"].startswith("run_interval_hours: the renewal window ")
        assert os.listdir(work / "out") == []
    else:
        ok(done)


# The intermediate rotation that starts on its own (rotate without a step) ----------------------------------------
def test_ca_min_days_is_a_leaf_lifetime_and_its_window():
    from ansible_collections.pgtls.ssl.plugins.filter.ca_min_days import FilterModule

    ca_min_days = FilterModule().filters()["ca_min_days"]
    assert ca_min_days(365, 30, 33) == 365 + 121
    assert ca_min_days(365, 200, 33) == 565
    assert ca_min_days("7", "0", "33") == 10


def test_auto_starts_a_rotation_only_when_the_intermediate_has_too_little_left(work):
    pki = str(work / "pki")
    before = (work / "pki" / "intermediate.crt").read_bytes()
    # 1825 days left: a leaf of 365 days and its window (486) fit; nothing moves.
    kept = ok(run("intermediate_rotation", {"pki_dir": pki, "step": "auto", "min_days": 486}))
    assert not kept["changed"] and not kept["started"] and kept["days_left"] >= 1820, kept
    assert not (work / "pki" / "previous").exists()
    # Less than min_days left: check mode tells, then the rotation starts, once.
    checked = ok(run("intermediate_rotation", {"pki_dir": pki, "step": "auto", "min_days": 5000}, check_mode=True))
    assert checked["changed"] and checked["started"] and not (work / "pki" / "previous").exists()
    started = ok(run("intermediate_rotation", {"pki_dir": pki, "step": "auto", "min_days": 5000}))
    assert started["changed"] and started["started"] and "rotation started" in started["msg"]
    assert (work / "pki" / "previous" / "intermediate.crt").read_bytes() == before
    again = ok(run("intermediate_rotation", {"pki_dir": pki, "step": "auto", "min_days": 5000}))
    assert not again["changed"] and not again["started"] and "in progress" in again["msg"]
    # The next issuance makes the new intermediate (G2) and leaves are re-issued by it.
    ok(run("ca_folder", {"path": pki, "root_common_name": "Option Root", "intermediate_common_name": "Option CA"}))
    assert (work / "pki" / "intermediate.crt").read_bytes() != before


def test_auto_needs_min_days(work):
    done = run("intermediate_rotation", {"pki_dir": str(work / "pki"), "step": "auto"})
    assert done.get("failed") and done["msg"].startswith("min_days: step=auto needs min_days")


def test_auto_before_the_first_rollout_changes_nothing(tmp_path):
    """The site playbook runs step=auto before its servers: on day 0 there is no CA folder, or no intermediate in it
    yet; nothing to rotate, nothing made (the first issuance makes the CA). start and retire still refuse a missing
    folder, and auto a file where the folder should be."""
    for pki in (tmp_path / "none", tmp_path / "empty"):
        if pki.name == "empty":
            pki.mkdir()
        done = ok(run("intermediate_rotation", {"pki_dir": str(pki), "step": "auto", "min_days": 486}))
        assert not done["changed"] and not done["started"] and "nothing to rotate" in done["msg"], done
    assert not (tmp_path / "none").exists() and not list((tmp_path / "empty").iterdir())
    refused = run("intermediate_rotation", {"pki_dir": str(tmp_path / "none"), "step": "start"})
    assert refused.get("failed") and "does not exist" in refused["msg"]
    (tmp_path / "file").write_text("not a folder")
    refused = run("intermediate_rotation", {"pki_dir": str(tmp_path / "file"), "step": "auto", "min_days": 486})
    assert refused.get("failed") and refused["msg"].startswith("pki_dir"), refused
    assert (tmp_path / "file").read_text() == "not a folder"


def test_client_auth_adds_client_authentication_and_turning_it_on_issues_again(work):
    """etcd's server certificate: serverAuth and clientAuth (openssl, the oracle, reads the extension)."""
    ok(run("server_cert", server(work)))
    cert = work / "out" / "server.crt"
    usage = openssl("x509", "-in", str(cert), "-noout", "-ext", "extendedKeyUsage").stdout.decode()
    assert "TLS Web Server Authentication" in usage and "Client Authentication" not in usage
    first = serial_of(cert)
    done = ok(run("server_cert", server(work, client_auth=True)))
    assert done["changed"] is True and serial_of(cert) != first
    usage = openssl("x509", "-in", str(cert), "-noout", "-ext", "extendedKeyUsage").stdout.decode()
    assert "TLS Web Server Authentication" in usage and "TLS Web Client Authentication" in usage
    assert ok(run("server_cert", server(work, client_auth=True)))["changed"] is False
    assert ok(run("server_cert", server(work)))["changed"] is True  # and back
