"""The audit report's pure parts: records from validate results, the summary, the textfile and page escaping."""

from __future__ import annotations

import datetime as dt

import pytest
from pkitools import Pki, pem, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
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
    app = {"name": "app", "serial": "0A", "not_after": "2026-12-01T00:00:00+00:00", "days_left": 3}
    clients = {"certificates": [dict(app, not_before="2026-11-01T00:00:00+00:00", renews_at="2026-11-21T00:00:00+00:00")],
               "expiring": [app], "revoked": []}
    built = report.build([report.record(e) for e in entries], clients, 14, NOW)
    assert built["summary"]["failed"] == 1 and built["summary"]["clusters"] == 2
    assert built["servers"][0]["status"] == "fail" and built["servers"][1]["status"] == "ok"
    text = report.to_prometheus(built)
    assert 'pgtls_audit_success{host="db\\"1\\\\x",cluster="15/main"} 1' in text
    assert 'pgtls_client_certificate_expiry_timestamp_seconds{name="app",serial="0A"} 1796083200' in text
    assert 'pgtls_client_certificate_renewal_timestamp_seconds{name="app",serial="0A"} 1795219200' in text
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
    assert 'pgtls_certificate_not_before_timestamp_seconds{host="db1",cluster="15/main",kind="server"}' in text


def _served(result, matches=True):
    """What validate's probe adds when the cluster answers (tests/e2e prove it on a real server)."""
    return dict(result, served={"certificate": {"fingerprint_sha256": result["certificate"]["fingerprint_sha256"]},
                                "matches_file": matches, "protocol": "TLSv1.3"})


def test_renewal_timestamp_and_ready_status_per_cluster(tmp_path):
    """cert-manager's renewal timestamp and ready status: the renewal time from the host's window (the earlier of
    30 days and a third of the lifetime: 120 days before the end of a 365-day certificate), ready only when served =
    installed, in its validity period and with no failed check of the certificate itself."""
    result = _served(_result(tmp_path))
    entry = {"host": "db1", "cluster": "15/main", "port": 5432, "running": True, "result": result,
             "renewal": {"days": "30", "percent": 33}}
    now = dt.datetime.now(dt.timezone.utc)
    record = report.record(entry, now=now)
    end = dt.datetime.fromisoformat(record["installed"]["not_after"])
    renews_at = dt.datetime.fromisoformat(record["installed"]["renews_at"])
    assert 120 < (end - renews_at).total_seconds() / 86400 < 121
    assert record["ready"] is True and record["renewal"] == {"days": 30, "percent": 33}
    text = report.to_prometheus(report.build([record], None, 14, now))
    assert f'pgtls_certificate_renewal_timestamp_seconds{{host="db1",cluster="15/main",kind="server"}} ' \
           f'{int(renews_at.timestamp())}' in text
    assert 'pgtls_certificate_ready{host="db1",cluster="15/main"} 1' in text
    hostname = {"check": "hostname", "status": "fail", "message": "db9 is not in the certificate"}
    not_ready = {
        "served another": dict(entry, result=_served(result, matches=False)),
        "not running": dict(entry, running=False),
        "not probed": dict(entry, result=_result(tmp_path)),
        "wrong name": dict(entry, result=dict(result, findings=result["findings"] + [hostname])),
    }
    for why, other in not_ready.items():
        assert report.record(other, now=now)["ready"] is False, why
    assert report.record(entry, now=end)["ready"] is False  # expired
    without = report.record(dict(entry, renewal=None), now=now)
    assert without["installed"]["renews_at"] is None and without["renewal"] is None
    assert "pgtls_certificate_renewal_timestamp_seconds" not in report.to_prometheus(report.build([without], None, 14,
                                                                                                  now))


@pytest.mark.parametrize("renewal,where,problem", [
    ({"days": "x", "percent": 33}, "servers[0].renewal.days", "not a number of days"),
    ({"days": 30, "percent": 100}, "servers[0].renewal.percent", "not a percentage"),
    ({"days": 30}, "servers[0].renewal.percent", "not a percentage"),
    ("30", "servers[0].renewal", "not a dictionary"),
])
def test_a_bad_renewal_window_is_refused_naming_the_field(tmp_path, renewal, where, problem):
    entry = {"host": "db1", "cluster": "15/main", "port": 5432, "running": True, "result": _result(tmp_path),
             "renewal": renewal}
    with pytest.raises(PkiError) as failed:
        report.record(entry)
    assert failed.value.where == where and problem in str(failed.value)


def test_a_standbys_replication_certificate_is_its_own_kind(tmp_path):
    """A standby's certificate for its primary (replication_findings adds it to the validate result): in the JSON
    record and under the same metrics as the server certificate, kind="replication", with its own renewal time."""
    pki = Pki()
    _key, client = pki.leaf(name="replicator", sans=(), days=30)
    replication = validate({"certificate_path": write(tmp_path / "r.crt", pem(client, pki.int)),
                            "ca_path": write(tmp_path / "root.crt", pem(pki.root)), "purpose": "client",
                            "hostnames": [], "min_days": 0, "warn_days": 7, "fail_on_findings": False,
                            "probe_port": 5432, "probe_timeout": 1.0})
    result = dict(_served(_result(tmp_path)), replication_certificate=replication["certificate"])
    record = report.record({"host": "db2", "cluster": "15/main", "port": 5432, "running": True, "result": result,
                            "renewal": {"days": 7, "percent": 33}})
    assert record["replication"]["subject"] == "CN=replicator"
    end = dt.datetime.fromisoformat(record["replication"]["not_after"])
    assert 9.8 < (end - dt.datetime.fromisoformat(record["replication"]["renews_at"])).total_seconds() / 86400 < 10.1
    text = report.to_prometheus(report.build([record], None, 14, dt.datetime.now(dt.timezone.utc)))
    for metric in ("expiry_timestamp_seconds", "days_left", "not_before_timestamp_seconds", "renewal_timestamp_seconds"):
        assert f'pgtls_certificate_{metric}{{host="db2",cluster="15/main",kind="replication"' in text, metric
        assert f'pgtls_certificate_{metric}{{host="db2",cluster="15/main",kind="server"' in text, metric
    assert report.record({"host": "db1", "cluster": "15/main", "port": 5432, "running": True,
                          "result": _result(tmp_path)})["replication"] is None


def test_a_pgbouncer_record_is_kind_pooler_and_a_wrong_kind_is_refused(tmp_path):
    entry = {"host": "app1", "cluster": "pgbouncer:6432", "port": 6432, "running": True, "kind": "pooler",
             "result": _served(_result(tmp_path)), "renewal": {"days": 30, "percent": 33}}
    record = report.record(entry)
    assert record["kind"] == "pooler" and record["ready"] is True
    text = report.to_prometheus(report.build([record], None, 14, dt.datetime.now(dt.timezone.utc)))
    assert 'pgtls_certificate_renewal_timestamp_seconds{host="app1",cluster="pgbouncer:6432",kind="pooler"}' in text
    assert report.record(dict(entry, kind=None))["kind"] == "server"
    with pytest.raises(PkiError) as failed:
        report.record(dict(entry, kind="<x>"))
    assert failed.value.where == "servers[0].kind" and "'<x>' is not one of server, pooler" in str(failed.value)


def test_a_revoked_certificate_in_use_is_its_records_finding_and_a_metric(tmp_path):
    """audit_entries with the CA folder's revocations (lookup pgtls.ssl.revocations, in the formats validate
    reports): an installed certificate whose serial the registry revokes, or whose key it records as compromised,
    is a failed ``revoked`` finding naming it; its record is ``revoked``, not ``ready`` and fails, and
    pgtls_certificate_revoked is 1 for it, 0 for a cluster whose certificate the registry does not name."""
    from ansible_collections.pgtls.ssl.plugins.filter.audit_entries import audit_entries

    result = _served(_result(tmp_path))
    held = result["certificate"]
    now = dt.datetime.now(dt.timezone.utc)
    cluster = {"version": 15, "name": "main", "port": 5432, "running": True}
    registries = {"serial": ({"serials": {held["serial"]: "superseded"}, "keys": {}}, f"(serial {held['serial']}) is "
                             "revoked in the CA folder (superseded)"),
                  "key": ({"serials": {}, "keys": {held["public_key_fingerprint"]: "0A (db9)"}},
                          "the key in use is the key of certificate 0A (db9), revoked for key_compromise")}
    for why, (revocations, message) in registries.items():
        (entry,) = audit_entries([dict(result, __pgtls_cluster=cluster)], "db1", revocations=revocations)
        record = report.record(entry, now=now)
        assert (record["revoked"], record["ready"], record["status"]) == (True, False, "fail"), why
        failed = [f for f in record["findings"] if f["status"] == "fail"]
        assert [f["check"] for f in failed] == ["revoked"] and message in failed[0]["message"], (why, failed)
    (entry,) = audit_entries([dict(result, __pgtls_cluster=cluster)], "db2",
                             revocations={"serials": {"77": "superseded"}, "keys": {"ab12": "77 (db9)"}})
    clean = report.record(entry, now=now)
    assert (clean["revoked"], clean["ready"], clean["status"]) == (False, True, "ok")
    text = report.to_prometheus(report.build([record, clean], None, 14, now))
    assert 'pgtls_certificate_revoked{host="db1",cluster="15/main"} 1' in text
    assert 'pgtls_certificate_revoked{host="db2",cluster="15/main"} 0' in text
    assert 'pgtls_certificate_ready{host="db1",cluster="15/main"} 0' in text
