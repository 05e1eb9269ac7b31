"""The audit report on a real PostgreSQL 15: the JSON report validates against its schema and says what openssl
and the files say; the Prometheus textfile parses with Prometheus' own parser; the HTML page renders in a real
headless Chromium, shows every host and the nearest expiry (the screenshot is kept in tests/output/)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import stat
import subprocess

import jsonschema
import pytest
import yaml
from conftest import ROOT, plain_cluster, role_vars, run_playbook
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.reports.report import SCHEMA

STOPPED = {"host": "db-stopped.example", "cluster": "15/other", "port": 5999, "running": False,
           "result": {"msg": "not running"}}


def openssl(*args) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def due(certificate) -> dt.datetime:
    """When the server role's defaults renew this certificate, from openssl's dates: the earlier of
    renew_before_days before its end and renew_before_percent of its lifetime left."""
    defaults = yaml.safe_load((ROOT / "roles" / "server" / "defaults" / "main.yml").read_text())
    shown = openssl("x509", "-in", str(certificate), "-noout", "-startdate", "-enddate")
    dates = dict(line.split("=", 1) for line in shown.splitlines())
    start, end = (dt.datetime.strptime(dates[k], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.timezone.utc)
                  for k in ("notBefore", "notAfter"))
    return min(end - dt.timedelta(days=defaults["pgtls_server_renew_before_days"]),
               end - (end - start) * defaults["pgtls_server_renew_before_percent"] / 100)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("Chromium is missing: `make system-deps` installs Debian's chromium")


@pytest.fixture(scope="module")
def audited(workdir):
    cluster = plain_cluster(workdir / "report")
    pki = workdir / "report" / "pki"
    extra = role_vars(cluster, "e2e", pki)
    run_playbook("role_local.yml", extra)
    # A client certificate due in 20 days, archived by the module; a revocation in the registry.
    clients = workdir / "report" / "clients"
    clients.mkdir()
    playbook = workdir / "report" / "client.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"pgtls.ssl.client_cert": {"key_location": "controller", "dest": str(clients), "clients": [{"name": "app"}],
                                   "valid_days": 20, "renew_before_days": 5, "record_dir": f"{pki}/issued",
                                   "issuer_cert_path": f"{pki}/intermediate.crt",
                                   "issuer_key_path": f"{pki}/intermediate.key",
                                   "issuer_chain_path": f"{pki}/root.crt"}},
        {"pgtls.ssl.revocation_registry": {"path": f"{pki}/revoked.yml",
                                           "add": [{"serial_number": "0x1234", "name": "mallory"}]}}]}]))
    run_playbook(str(playbook), {})
    out = workdir / "report" / "out"
    out.mkdir()
    run_playbook("audit_report_local.yml", dict(extra, out=str(out), extra_entries=[STOPPED]))
    yield cluster, out, json.loads((out / "audit.json").read_text())
    cluster.stop()


def test_json_report_validates_and_says_what_the_files_say(audited):
    cluster, out, report = audited
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    assert not list(validator.iter_errors(report)), [e.message for e in validator.iter_errors(report)]
    (live,) = [r for r in report["servers"] if r["host"] == "localhost"]
    tls = cluster.data / "tls"
    fp = openssl("x509", "-in", str(tls / "server.crt"), "-noout", "-fingerprint", "-sha256").split("=", 1)[1].strip()
    assert live["installed"]["fingerprint_sha256"] == fp
    assert live["served"] == {"fingerprint_sha256": fp, "matches_installed": True, "protocol": live["served"]["protocol"]}
    assert live["status"] == "ok" and live["running"] is True and live["ready"] is True
    renews_at = dt.datetime.fromisoformat(live["installed"]["renews_at"])
    assert abs((renews_at - due(tls / "server.crt")).total_seconds()) <= 1, live["installed"]
    st = (tls / "server.key").stat()
    assert live["key"]["mode"] == f"{stat.S_IMODE(st.st_mode):04o}" and live["key"]["path"].endswith("server.key")
    root = openssl("x509", "-in", str(tls / "root.crt"), "-noout", "-subject", "-nameopt", "RFC2253")
    intermediate = openssl("x509", "-in", str(tls / "server.crt"), "-noout", "-issuer", "-nameopt", "RFC2253")
    assert sorted(c["issuer"] for c in live["crls"]) == sorted(
        line.split("=", 1)[1].strip() for line in (root, intermediate))
    assert all(c["next_update"] for c in live["crls"])
    (stopped,) = [r for r in report["servers"] if r["host"] == STOPPED["host"]]
    assert stopped["status"] == "fail" and stopped["running"] is False and stopped["installed"] is None
    assert stopped["ready"] is False
    assert report["summary"]["failed"] == 1 and report["summary"]["clusters"] == 2
    assert report["summary"]["nearest_expiry"]["host"] == "localhost"
    assert [c["name"] for c in report["clients"]["expiring"]] == ["app"]
    assert report["clients"]["expiring"][0]["days_left"] in (19, 20)
    assert [e["serial_number"] for e in report["clients"]["revoked"]] == ["0x1234"]


def test_metrics_parse_with_prometheus_and_match_the_report(audited):
    _cluster, out, report = audited
    families = {f.name: f for f in text_string_to_metric_families((out / "pgtls.prom").read_text())}
    (live,) = [r for r in report["servers"] if r["host"] == "localhost"]
    days = {(s.labels["host"], s.labels["cluster"]): s.value for s in families["pgtls_certificate_days_left"].samples}
    assert days == {("localhost", live["cluster"]): live["installed"]["days_left"]}
    success = {s.labels["host"]: s.value for s in families["pgtls_audit_success"].samples}
    assert success == {"localhost": 1.0, STOPPED["host"]: 0.0}
    served = {s.labels["host"]: s.value for s in families["pgtls_served_matches_installed"].samples}
    assert served == {"localhost": 1.0, STOPPED["host"]: 0.0}
    assert len(families["pgtls_crl_next_update_timestamp_seconds"].samples) == 2
    ready = {s.labels["host"]: s.value for s in families["pgtls_certificate_ready"].samples}
    assert ready == {"localhost": 1.0, STOPPED["host"]: 0.0}
    (renewal,) = families["pgtls_certificate_renewal_timestamp_seconds"].samples
    assert renewal.value == int(dt.datetime.fromisoformat(live["installed"]["renews_at"]).timestamp())
    assert [s.labels["name"] for s in families["pgtls_client_certificate_expiry_timestamp_seconds"].samples] == ["app"]
    (app,) = report["clients"]["certificates"]
    (due,) = families["pgtls_client_certificate_renewal_timestamp_seconds"].samples
    assert (due.labels["name"], due.value) == ("app", int(dt.datetime.fromisoformat(app["renews_at"]).timestamp()))
    assert families["pgtls_client_revoked_total"].samples[0].value == 1.0


def test_page_renders_in_chromium_with_every_host_and_the_nearest_expiry(audited):
    _cluster, out, report = audited
    page = out / "audit.html"
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")  # nothing to fetch
    browser = chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             f"--user-data-dir={out / 'chromium'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    nearest = report["summary"]["nearest_expiry"]
    for host in ("localhost", STOPPED["host"]):
        assert f'data-host="{host}"' in dom
    assert f"{nearest['host']} {nearest['cluster']}: {nearest['days_left']} days" in dom
    assert "<svg" in dom and "CRL of" in dom
    keep = ROOT / "tests" / "output"
    keep.mkdir(parents=True, exist_ok=True)
    shot = keep / "audit-page.png"
    shot.unlink(missing_ok=True)
    subprocess.run([browser, *flags, "--window-size=1280,900", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000, len(data)


def test_the_audit_playbook_writes_the_report_files(audited, workdir):
    cluster, _out, _report = audited
    out = workdir / "report" / "playbook"
    out.mkdir()
    extra = role_vars(cluster, "e2e", workdir / "report" / "pki")
    extra.update(pgtls_servers_group="all", pgtls_audit_json=str(out / "a.json"), pgtls_audit_metrics=str(out / "a.prom"),
                 pgtls_audit_html=str(out / "a.html"), ansible_become_method="ansible.builtin.su")
    done = run_playbook(str(ROOT / "playbooks" / "audit.yml"), extra, "--check")
    assert "cluster(s) meet the policy" in done.stdout, done.stdout[-3000:]
    report = json.loads((out / "a.json").read_text())
    assert [(r["host"], r["status"], r["ready"]) for r in report["servers"]] == [("localhost", "ok", True)]
    assert report["servers"][0]["installed"]["renews_at"]
    assert "pgtls_audit_success" in (out / "a.prom").read_text() and (out / "a.html").stat().st_size > 1000
    assert [c["name"] for c in report["clients"]["expiring"]] == ["app"]
