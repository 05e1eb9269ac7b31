"""The audit's rows and table: one row per cluster from the server role's looped validate results, whether it breaks
the policy, and the fixed-width table the audit playbook prints (the e2e audit test reads it with a regex)."""

from __future__ import annotations

import re

import pytest

from ansible_collections.pgtls.ssl.plugins.plugin_utils._audit import audit_rows, audit_table, replication_findings

MAIN = {"version": 15, "name": "main", "port": 5432, "running": True}
OK = [{"check": "chain", "status": "ok", "message": "chains to root.crt"},
      {"check": "key_permissions", "status": "ok", "message": "postgres 0600"}]


def item(cluster: dict | None = None, **result) -> dict:
    """One item of the registered loop, as pgtls.ssl.validate returns it with the loop variable (MAIN by default)."""
    base = {"findings": OK, "fail_count": 0, "warn_count": 0, "days_left": 364, "failed": False,
            "certificate": {"subject": "CN=db1"},
            "served": {"matches_file": True, "protocol": "TLSv1.3", "direct_tls": None}}
    return dict(base, __pgtls_cluster=cluster or MAIN, **result)


def row(**changed) -> dict:
    base = {"host": "db1", "cluster": "15/main", "port": 5432, "subject": "CN=db1", "days_left": 364,
            "served_matches": True, "protocol": "TLSv1.3", "direct_tls": None, "key_ok": True, "replication": "-",
            "running": True,
            "fail": False, "warn": False, "problems": []}
    return dict(base, **changed)


STOPPED = dict(MAIN, running=False)
NOT_RUNNING = "PostgreSQL is not running (pg_isready: no answer on port 5432): it serves nothing"
BAD_KEY = [OK[0], {"check": "key_permissions", "status": "fail", "message": "server.key: group or world access"}]

ROWS = [
    ("healthy", item(), False, row()),
    ("direct TLS on 17", item(cluster=dict(MAIN, version=17), served={"matches_file": True, "protocol": "TLSv1.3",
                                                                      "direct_tls": True}),
     False, row(cluster="17/main", direct_tls=True)),
    ("stale certificate served", item(served={"matches_file": False, "protocol": "TLSv1.2"}, fail_count=1,
                                      findings=OK + [{"check": "served", "status": "fail",
                                                      "message": "serves another certificate"}]),
     False, row(served_matches=False, protocol="TLSv1.2", fail=True, problems=["serves another certificate"])),
    ("bad key mode", item(findings=BAD_KEY, fail_count=1), False,
     row(key_ok=False, fail=True, problems=["server.key: group or world access"])),
    ("no key check at all is not ok", item(findings=OK[:1]), False, row(key_ok=False)),
    ("expiring soon warns", item(days_left=10, warn_count=1,
                                 findings=OK + [{"check": "validity", "status": "warn", "message": "10 days left"}]),
     False, row(days_left=10, warn=True, problems=["10 days left"])),
    ("stopped fails", item(cluster=STOPPED, served=None), False,
     row(served_matches=False, protocol="-", running=False, fail=True, warn=True, problems=[NOT_RUNNING])),
    ("stopped accepted warns", item(cluster=STOPPED, served=None), True,
     row(served_matches=False, protocol="-", running=False, warn=True,
         problems=[NOT_RUNNING + " (accepted: pgtls_allow_stopped)"])),
    ("validate itself failed", {"__pgtls_cluster": MAIN, "failed": True, "msg": "server.crt: no such file"}, False,
     row(subject="-", days_left=-1, served_matches=False, protocol="-", key_ok=False, fail=True,
         problems=["server.crt: no such file"])),
]


@pytest.mark.parametrize("result, allow_stopped, expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_one_row_per_cluster(result, allow_stopped, expected):
    # The registered result of the loop, and its results list alone, give the same rows.
    assert audit_rows({"results": [result]}, "db1", allow_stopped) == [expected]
    assert audit_rows([result], "db1", allow_stopped) == [expected]


def test_rows_keep_the_loop_order_and_read_another_loop_var():
    second = dict(MAIN, name="b", port=5433)
    results = {"results": [{**item(), "c": MAIN}, {**item(), "c": second}]}
    assert [r["cluster"] for r in audit_rows(results, "db1", loop_var="c")] == ["15/main", "15/b"]
    assert [r["port"] for r in audit_rows(results, "db1", loop_var="c")] == [5432, 5433]


def test_a_labelled_service_is_named_by_its_label():
    """The pgbouncer role's one validate result: its row is pgbouncer:<port>, as the audit playbook prints it."""
    result = {**item(), "b": {"label": "pgbouncer:6432", "port": 6432}}
    (found,) = audit_rows([result], "pooler", loop_var="b")
    assert (found["cluster"], found["port"], found["running"]) == ("pgbouncer:6432", 6432, True)


def test_table_columns_and_unreached_hosts():
    rows = [row(), row(host="db2", cluster="16/main", days_left=3, served_matches=False, key_ok=False,
                       protocol="TLSv1.2", direct_tls=False, fail=True, problems=["a", "b"]),
            row(host="db3", warn=True, direct_tls=True, replication="2 by cert")]
    assert audit_table(rows, ["db4"]) == [
        "host                     cluster       days served key    protocol  direct replication   status  problems",
        "db1                      15/main        364 ok     ok     TLSv1.3   -      -             ok      ",
        "db2                      16/main          3 NO     BAD    TLSv1.2   NO     -             FAIL    a; b",
        "db3                      15/main        364 ok     ok     TLSv1.3   yes    2 by cert     warn    ",
        "db4                      -                - -      -      -         -      -             FAIL    "
        "host not audited (unreachable or failed)",
    ]
    assert audit_table([]) == [audit_table(rows)[0]]


def test_a_stopped_cluster_reads_as_the_audit_playbook_reports_it():
    """tests/e2e/test_fleet_faults.py finds the stopped cluster's line with this pattern in the playbook's output."""
    [line] = audit_table(audit_rows([item(cluster=STOPPED, served=None)], "db2"))[1:]
    assert re.search(r"db2 +15/main .*FAIL +PostgreSQL is not running", line), line


# Replication in the audit: walsenders, sessions of revoked certificates, a standby's replication certificate.
WALSENDER = {"pid": 7, "user": "replicator", "application_name": "db2", "client_addr": "10.0.0.7", "state": "streaming",
             "ssl": True, "version": "TLSv1.3", "serial": "1D52", "issuer": "/CN=CA", "subject": "/CN=replicator"}


def sessions_of(**cluster) -> dict:
    return {"changed": False, "clusters": [dict({"cluster": "15/main", "port": 5432, "running": True,
                                                 "walsenders": [], "revoked": []}, **cluster)]}


def test_a_walsender_by_certificate_is_ok_and_shown():
    merged = replication_findings({"results": [item()]}, sessions_of(walsenders=[WALSENDER]))
    (found,) = audit_rows(merged, "db1")
    assert found["replication"] == "1 by cert" and not found["fail"] and found["problems"] == []
    assert merged[0]["findings"][-1] == {"check": "walsender", "status": "ok", "message":
                                         "walsender db2 (10.0.0.7, replicator) over TLSv1.3, certificate /CN=replicator "
                                         "serial 1D52"}


@pytest.mark.parametrize(("sender", "problem"), [
    (dict(WALSENDER, ssl=False, version=None, serial=None, subject=None, client_addr=None),
     "walsender db2 (local, replicator) without TLS: neither side is authenticated by certificate"),
    (dict(WALSENDER, serial=None, subject=None),
     "walsender db2 (10.0.0.7, replicator) over TLSv1.3 without a client certificate: not verified"),
])
def test_a_standby_replicating_without_a_verified_certificate_is_a_failure(sender, problem):
    merged = replication_findings([item()], sessions_of(walsenders=[WALSENDER, sender]))
    (found,) = audit_rows(merged, "db1")
    assert found["fail"] and found["problems"] == [problem] and found["replication"] == "1/2 NO cert"
    assert merged[0]["fail_count"] == 1


def test_a_session_of_a_revoked_certificate_is_a_failure():
    hit = {"pid": 9, "user": "app", "client_addr": "10.0.0.9", "serial": "5B", "subject": "/CN=mallory"}
    (found,) = audit_rows(replication_findings([item()], sessions_of(revoked=[hit])), "db1")
    assert found["fail"] and found["problems"] == [
        "a session of revoked certificate /CN=mallory (serial 5B) is open: pid 9, app from 10.0.0.9 (the revoke "
        "playbook ends it)"]


def test_a_standby_row_carries_its_replication_certificate():
    cert = {"__pgtls_cluster": MAIN, "findings": [{"check": "validity", "status": "warn", "message": "9 days left"}],
            "days_left": 9, "certificate": {"subject": "CN=replicator"}}
    skipped = {"__pgtls_cluster": dict(MAIN, name="other"), "skipped": True}
    merged = replication_findings([item()], None, {"results": [cert, skipped]})
    (found,) = audit_rows(merged, "db1")
    assert found["replication"] == "standby CERT?" and found["warn"] and not found["fail"]
    assert found["problems"] == ["replication certificate: 9 days left"]
    # The audit report's replication certificate (kind="replication" in its metrics).
    assert merged[0]["replication_certificate"] == {"subject": "CN=replicator"}
    assert "replication_certificate" not in replication_findings([item()], None, {"results": [skipped]})[0]


def test_sessions_not_read_fail_every_running_cluster_and_nothing_else_changes():
    stopped = item(cluster=STOPPED, served=None)
    merged = replication_findings([item(), stopped], {"failed": True, "msg": "psql on port 5432 failed"})
    assert [r["fail"] for r in audit_rows(merged, "db1", allow_stopped=True)] == [True, False]
    assert replication_findings([item()], {"skipped": True}, None) == [item()]


@pytest.mark.parametrize(("in_recovery", "column", "fails"), [
    (True, "standby", False), (None, "standby", False), (False, "NOT standby", True)])
def test_a_declared_standby_not_in_recovery_is_a_failure(in_recovery, column, fails):
    """The server role skips its streaming step for a declared standby that is not in recovery (not built yet, or
    promoted): the audit is where that shows. Unknown (a stopped cluster: null) is not a finding."""
    cert = {"__pgtls_cluster": MAIN, "findings": [], "days_left": 300, "certificate": {"subject": "CN=replicator"}}
    (found,) = audit_rows(replication_findings([item()], sessions_of(in_recovery=in_recovery), {"results": [cert]}),
                          "db3")
    assert found["replication"] == column and bool(found["fail"]) is fails
    if fails:
        assert found["problems"] == ["declared a standby (pgtls_primary_host) but not in recovery: not built yet "
                                     "(pg_basebackup over its primary_conninfo) or promoted (update the inventory)"]


def test_audit_entries_for_clusters_and_for_a_pgbouncer():
    from ansible_collections.pgtls.ssl.plugins.filter.audit_entries import audit_entries

    validated = {"findings": [], "certificate": {"subject": "CN=db1"}, "invocation": {"module_args": {}}}
    (entry,) = audit_entries({"results": [dict(validated, __pgtls_cluster=MAIN)]}, "db1", {"days": 30, "percent": 33})
    assert entry == {"host": "db1", "cluster": f"{MAIN['version']}/{MAIN['name']}", "port": MAIN.get("port", 5432),
                     "running": MAIN.get("running", True), "kind": "server", "renewal": {"days": 30, "percent": 33},
                     "result": {"findings": [], "certificate": {"subject": "CN=db1"}}}
    pooler = dict(validated, __pgtls_pgbouncer={"label": "pgbouncer:6432", "port": 6432})
    (entry,) = audit_entries([pooler], "app1", None, kind="pooler", loop_var="__pgtls_pgbouncer")
    assert (entry["cluster"], entry["port"], entry["kind"], entry["renewal"]) == ("pgbouncer:6432", 6432, "pooler", None)


def test_a_certificate_the_ca_folder_revokes_or_a_compromised_key_fails_its_row():
    """The registry (lookup pgtls.ssl.revocations) is newer than the host's CRL: its revoked serial and its record of
    compromised keys fail the row of a cluster that holds them, each named; other certificates stay healthy."""
    held = item(certificate={"subject": "CN=db1", "serial": "5F:93", "public_key_fingerprint": "ab12"})
    revocations = {"serials": {"5F:93": "key_compromise (pending)"}, "keys": {"ab12": "5F:93 (db1)"}}
    found = audit_rows([held], "db1", revocations=revocations)[0]
    assert found["fail"] and found["problems"] == [
        "the certificate in use (serial 5F:93) is revoked in the CA folder (key_compromise (pending)): run the revoke "
        "playbook with that serial (it replaces the certificate first)",
        "the key in use is the key of certificate 5F:93 (db1), revoked for key_compromise: a new key is needed (the "
        "revoke playbook, or site, replaces it)"]
    other = item(certificate={"subject": "CN=db1", "serial": "77", "public_key_fingerprint": "cd34"})
    assert audit_rows([other], "db1", revocations=revocations) == [row()]
    assert audit_rows([held], "db1", revocations={"serials": {}, "keys": {}}) == [row()]
    assert audit_rows([held], "db1") == [row()]  # no CA folder on this controller
    # A standby's replication certificate (the item replication_findings made) is checked the same way.
    standby = dict(other, replication_certificate={"serial": "5F:93", "public_key_fingerprint": "ef56"})
    found = audit_rows([standby], "db1", revocations=revocations)[0]
    assert found["fail"] and found["problems"] == [
        "replication certificate: the certificate in use (serial 5F:93) is revoked in the CA folder (key_compromise "
        "(pending)): run the revoke playbook with that serial (it replaces the certificate first)"]
