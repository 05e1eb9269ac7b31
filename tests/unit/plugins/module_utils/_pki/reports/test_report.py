"""The audit report's pure parts: records from validate results, the summary, the textfile and page escaping."""

from __future__ import annotations

import datetime as dt

from pkitools import Pki, pem, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.validate import validate
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.reports import report

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.timezone.utc)


def _result(tmp_path):
    pki = Pki()
    _key, leaf = pki.leaf()
    params = {"certificate_path": write(tmp_path / "s.crt", pem(leaf, pki.int)), "ca_path": write(tmp_path / "r.crt",
              pem(pki.root)), "purpose": "server", "hostnames": [], "min_days": 0, "warn_days": 30,
              "fail_on_findings": False, "probe_port": 5432, "probe_timeout": 1.0}
    return validate(params)


def test_records_summary_and_metrics_with_hostile_labels(tmp_path):
    entries = [{"host": 'db"1\\x', "cluster": "15/main", "port": 5432, "running": True, "result": _result(tmp_path)},
               {"host": "<db2>", "cluster": "15/main", "port": 5432, "running": False, "result": {"msg": "down"}}]
    built = report.build([report.record(e) for e in entries], {"expiring": [{"name": "app", "serial": "0A",
                         "not_after": "2026-12-01T00:00:00+00:00", "days_left": 3}], "revoked": []}, 14, NOW)
    assert built["summary"]["failed"] == 1 and built["summary"]["clusters"] == 2
    assert built["servers"][0]["status"] == "fail" and built["servers"][1]["status"] == "ok"
    text = report.to_prometheus(built)
    assert 'pgtls_audit_success{host="db\\"1\\\\x",cluster="15/main"} 1' in text
    assert 'pgtls_client_certificate_expiry_timestamp_seconds{name="app",serial="0A"}' in text
    page = report.to_html(built)
    assert "<db2>" not in page and "&lt;db2&gt;" in page


def test_the_page_has_the_audit_tables_replication_column(tmp_path):
    """A primary's walsenders and a standby's replication certificate, as the audit table shows them."""
    walsender = {"check": "walsender", "status": "ok", "message": "walsender db2 over TLSv1.3, certificate ..."}
    unverified = {"check": "walsender", "status": "fail", "message": "walsender db3 without a certificate"}
    standby = {"check": "replication_certificate", "status": "ok", "message": "replication certificate ..."}
    entries = []
    for host, extra in (("primary", [walsender, unverified]), ("standby", [standby]), ("alone", [])):
        result = _result(tmp_path)
        result["findings"] = result["findings"] + extra
        entries.append({"host": host, "cluster": "15/main", "port": 5432, "running": True, "result": result})
    page = report.to_html(report.build([report.record(e) for e in entries], {"expiring": [], "revoked": []}, 14,
                                       NOW))
    assert "<th>replication</th>" in page
    hosts = ("primary", "standby", "alone")
    cells = {host: page.split(f'data-host="{host}"', 1)[1].split("</tr>", 1)[0] for host in hosts}
    assert "<td>1/2 NO cert</td>" in cells["primary"]
    assert "<td>standby</td>" in cells["standby"]
    assert "<td>-</td>" in cells["alone"]


def test_a_ca_with_less_than_a_leaf_lifetime_and_window_left_fails_and_every_ca_is_a_metric(tmp_path):
    """CloudNativePG's outage: leaves outliving their CA. An intermediate of 400 days, leaves of 365 renewed with 121
    left: ca_min_days=486 fails it, naming it; the metrics carry each CA's expiry and the leaf's not-before."""
    pki = Pki(int_days=400)
    _key, leaf = pki.leaf(days=90)
    params = {"certificate_path": write(tmp_path / "s.crt", pem(leaf, pki.int)), "ca_path": write(tmp_path / "r.crt",
              pem(pki.root)), "purpose": "server", "hostnames": [], "min_days": 0, "warn_days": 30,
              "fail_on_findings": False, "probe_port": 5432, "probe_timeout": 1.0}
    short = validate(dict(params, ca_min_days=486))
    found = [f for f in short["findings"] if f["check"] == "ca_validity"]
    assert [f["status"] for f in found] == ["fail"] and not short["ok"]
    assert found[0]["message"].startswith("CN=Test Intermediate has 399 days left, fewer than ca_min_days=486")
    assert [f["status"] for f in validate(dict(params, ca_min_days=399))["findings"] if f["check"] == "ca_validity"
            ] == ["ok"]
    assert not [f for f in validate(params)["findings"] if f["check"] == "ca_validity"]  # 0: not checked
    built = report.build([report.record({"host": "db1", "cluster": "15/main", "port": 5432, "running": True,
                                         "result": short})], None, 14, NOW)
    assert built["servers"][0]["status"] == "fail"
    text = report.to_prometheus(built)
    assert 'pgtls_ca_certificate_expiry_timestamp_seconds{host="db1",cluster="15/main",subject="CN=Test Intermediate",' \
           'kind="intermediate"}' in text
    assert 'kind="root"}' in text
    assert 'pgtls_certificate_not_before_timestamp_seconds{host="db1",cluster="15/main"}' in text
