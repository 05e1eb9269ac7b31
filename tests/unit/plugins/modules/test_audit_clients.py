"""The audit report's client side from a real CA folder (client_cert, then revocation_registry, then audit_report,
in process): every client certificate with its not-before and renewal time, those expiring in the window, revoked
ones left out; openssl reads the dates (the oracle)."""

from __future__ import annotations

import datetime as dt
import json

from inprocess import run
from pkitools import openssl


def ok(done: dict) -> dict:
    assert not done.get("failed"), done.get("msg")
    return done


def dates(path) -> tuple[dt.datetime, dt.datetime]:
    shown = openssl("x509", "-in", str(path), "-noout", "-startdate", "-enddate").stdout.decode()
    found = dict(line.split("=", 1) for line in shown.splitlines())
    return tuple(dt.datetime.strptime(found[k], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.timezone.utc)
                 for k in ("notBefore", "notAfter"))


def test_every_client_certificate_with_its_renewal_time(work):
    common = {"dest": str(work / "out"), "key_location": "controller", "ca_folder": str(work / "pki")}
    ok(run("client_cert", dict(common, clients=[{"name": "app"}], valid_days=20, renew_before_days=5)))
    ok(run("client_cert", dict(common, clients=[{"name": "report"}, {"name": "mallory"}])))
    serial = openssl("x509", "-in", str(work / "out" / "mallory" / "postgresql.crt"), "-noout", "-serial")
    ok(run("revocation_registry", {"pki_dir": str(work / "pki"), "reason": "key_compromise",
                                   "serials": [f"0x{serial.stdout.decode().strip().split('=', 1)[1]}"]}))
    out = work / "report"
    out.mkdir()
    ok(run("audit_report", {"servers": [], "pki_dir": str(work / "pki"), "window_days": 30,
                            "client_renew_before_days": 5, "client_renew_before_percent": 33,
                            "json_path": str(out / "a.json"), "metrics_path": str(out / "a.prom")}))
    clients = json.loads((out / "a.json").read_text())["clients"]
    certificates = {c["name"]: c for c in clients["certificates"]}
    assert sorted(certificates) == ["app", "report"]  # mallory's is revoked
    assert [c["name"] for c in clients["expiring"]] == ["app"]
    metrics = (out / "a.prom").read_text()
    for name, days in (("app", 5), ("report", 5)):
        start, end = dates(work / "out" / name / "postgresql.crt")
        due = min(end - dt.timedelta(days=days), end - (end - start) * 33 / 100)
        found = certificates[name]
        assert abs((dt.datetime.fromisoformat(found["renews_at"]) - due).total_seconds()) <= 1, found
        assert dt.datetime.fromisoformat(found["not_before"]) == start
        assert (f'pgtls_client_certificate_renewal_timestamp_seconds{{name="{name}",serial="{found["serial"]}"}} '
                f'{int(dt.datetime.fromisoformat(found["renews_at"]).timestamp())}') in metrics
        assert f'pgtls_client_certificate_expiry_timestamp_seconds{{name="{name}",' in metrics


def test_a_client_renewal_window_that_cannot_be_is_refused_naming_it(work):
    for option, value in (("client_renew_before_percent", 100), ("client_renew_before_percent", -1),
                          ("client_renew_before_days", -1)):
        done = run("audit_report", {"servers": [], "pki_dir": str(work / "pki"), option: value,
                                    "json_path": str(work / "out" / "a.json")})
        assert done.get("failed") and done["msg"].startswith(f"{option}: "), done
        assert not (work / "out" / "a.json").exists()
