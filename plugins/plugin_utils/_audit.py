# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The audit's rows and table on the controller: one row per cluster from the server role's looped
pgtls.ssl.validate results (what the cluster serves, days left, key mode, whether it breaks the policy), and the
table the audit playbook prints from every host's rows."""

from __future__ import annotations

from collections.abc import Mapping

# The audit table's columns: host, cluster, days, served, key, protocol, direct, replication, status, problems.
TABLE_FORMAT = "%-24s %-12s %5s %-6s %-6s %-9s %-6s %-13s %-7s %s"
TABLE_HEADER = ("host", "cluster", "days", "served", "key", "protocol", "direct", "replication", "status", "problems")


def _served(result: Mapping, key: str, default):
    served = result.get("served")
    return served.get(key, default) if isinstance(served, Mapping) and served else default


def revocation_problems(certificate, revocations) -> list[str]:
    """What the CA folder's registry says of the certificate a cluster holds (and serves, when it matches): its serial
    revoked, or its key compromised (lookup pgtls.ssl.revocations) - even when the host's CRL is older."""
    if not isinstance(certificate, Mapping) or not isinstance(revocations, Mapping):
        return []
    problems = []
    reason = (revocations.get("serials") or {}).get(certificate.get("serial"))
    if reason:
        problems.append(f"the certificate in use (serial {certificate.get('serial')}) is revoked in the CA folder "
                        f"({reason}): run the revoke playbook with that serial (it replaces the certificate first)")
    compromised = (revocations.get("keys") or {}).get(certificate.get("public_key_fingerprint"))
    if compromised:
        problems.append(f"the key in use is the key of certificate {compromised}, revoked for key_compromise: a new "
                        "key is needed (the revoke playbook, or site, replaces it)")
    return problems


def revocation_findings(items: list, revocations: Mapping | None) -> list:
    """The audit's validate results (one item per cluster), each with a failed finding per problem
    revocation_problems finds in the certificate it holds (``revoked``: the report's record is then ``revoked`` and
    not ``ready``) and in a standby's replication certificate (``replication_certificate``; the item's, from
    replication_findings): the table's row, the report's record and its metrics all read them there."""
    merged = []
    for item in items:
        extra = [{"check": "revoked", "status": "fail", "message": message}
                 for message in revocation_problems(item.get("certificate"), revocations)]
        extra += [{"check": "replication_certificate", "status": "fail", "message": f"replication certificate: {message}"}
                  for message in revocation_problems(item.get("replication_certificate"), revocations)]
        merged.append(dict(item, findings=list(item.get("findings") or []) + extra,
                           fail_count=item.get("fail_count", 0) + len(extra)) if extra else item)
    return merged


def audit_rows(results, host: str, allow_stopped: bool = False, loop_var: str = "__pgtls_cluster",
               revocations: Mapping | None = None) -> list[dict]:
    """One row per cluster from the registered result of the audit's looped pgtls.ssl.validate task (each item
    carrying its cluster as ``loop_var``): ``host``, ``cluster`` (``<version>/<name>``, or the cluster's ``label``:
    PgBouncer's row is ``pgbouncer:<port>``), ``port``, ``subject``,
    ``days_left`` (-1 unknown), ``served_matches``, ``protocol``, ``direct_tls`` (None: not probed), ``key_ok``,
    ``running``, ``fail``, ``warn`` and ``problems`` (the messages of every finding that is not ok; a stopped
    cluster first, and validate's own message when it returned no findings). A stopped cluster is a warning when
    ``allow_stopped``, else a failure. ``revocations`` (lookup pgtls.ssl.revocations): a certificate in use whose
    serial the CA folder revokes, or whose key it records as compromised, fails its row."""
    items = results.get("results", []) if isinstance(results, Mapping) else list(results or [])
    rows = []
    for item in revocation_findings(items, revocations):
        cluster = item.get(loop_var) or {}
        findings = item.get("findings") or []
        problems = [f.get("message", "") for f in findings if f.get("status") != "ok"]
        perms = [f for f in findings if f.get("check") == "key_permissions"]
        running = bool(cluster.get("running", True))
        stopped = [] if running else [
            f"PostgreSQL is not running (pg_isready: no answer on port {cluster.get('port')}): it serves nothing"
            + (" (accepted: pgtls_allow_stopped)" if allow_stopped else "")]
        certificate = item.get("certificate")
        rows.append({
            "host": host,
            "cluster": cluster.get("label") or f"{cluster.get('version')}/{cluster.get('name')}",
            "port": cluster.get("port"),
            "subject": certificate.get("subject", "-") if isinstance(certificate, Mapping) else "-",
            "days_left": item.get("days_left", -1),
            "served_matches": bool(_served(item, "matches_file", False)),
            "protocol": _served(item, "protocol", "-"),
            "direct_tls": _served(item, "direct_tls", None),
            "key_ok": bool(perms) and all(f.get("status") == "ok" for f in perms),
            "replication": _replication_summary(findings),
            "running": running,
            "fail": item.get("fail_count", 1) > 0 or bool(item.get("failed", False)) or not (running or allow_stopped),
            "warn": item.get("warn_count", 0) > 0 or not running,
            "problems": stopped + problems + ([str(item.get("msg", "validate returned no findings"))]
                                              if "findings" not in item else []),
        })
    return rows


def _replication_summary(findings: list) -> str:
    # Imported when a row is made: the report (and cryptography with it) is not loaded by every task that only
    # loads this collection's filter files - Ansible imports all of them in each forked worker that uses one.
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.reports.report import replication_summary

    return replication_summary(findings)


def audit_table(rows: list, unreached: list = ()) -> list[str]:
    """The audit playbook's table: a header, one line per row of audit_rows, then one FAIL line per host that was
    not audited (unreachable, or failed before its rows)."""
    def status(row: Mapping) -> str:
        return "FAIL" if row["fail"] else "warn" if row["warn"] else "ok"

    def direct(row: Mapping) -> str:
        return "-" if row.get("direct_tls") is None else "yes" if row["direct_tls"] else "NO"

    lines = [TABLE_FORMAT % TABLE_HEADER]
    lines += [TABLE_FORMAT % (row["host"], row["cluster"], row["days_left"], "ok" if row["served_matches"] else "NO",
                              "ok" if row["key_ok"] else "BAD", row["protocol"], direct(row),
                              row.get("replication", "-"), status(row), "; ".join(row["problems"])) for row in rows]
    lines += [TABLE_FORMAT % (host, "-", "-", "-", "-", "-", "-", "-", "FAIL",
                              "host not audited (unreachable or failed)")
              for host in unreached]
    return lines


def _items(results) -> list:
    if isinstance(results, Mapping):
        return list(results.get("results", [])) if "results" in results else [results]
    return list(results or [])


def _walsender_finding(sender: Mapping) -> dict:
    who = f"walsender {sender.get('application_name') or '-'} ({sender.get('client_addr') or 'local'}, " \
          f"{sender.get('user')})"
    if not sender.get("ssl"):
        return {"check": "walsender", "status": "fail",
                "message": f"{who} without TLS: neither side is authenticated by certificate"}
    if not sender.get("serial"):
        return {"check": "walsender", "status": "fail",
                "message": f"{who} over {sender.get('version')} without a client certificate: not verified"}
    return {"check": "walsender", "status": "ok", "message": f"{who} over {sender.get('version')}, certificate "
            f"{sender.get('subject')} serial {sender.get('serial')}"}


def replication_findings(results, sessions=None, replication=None, loop_var: str = "__pgtls_cluster") -> list[dict]:
    """The audit's validate results (one item per cluster), each with the findings of its replication: every
    walsender (ok over TLS with a client certificate, else a failure), every session a revoked certificate still
    holds (a failure), and on a standby its replication certificate (validate's findings, prefixed; its details as
    ``replication_certificate``, for the report). ``sessions``
    is pgtls.ssl.sessions' result for the host's clusters (by label <version>/<name>), ``replication`` the looped
    validate results of the standbys' replication certificates."""
    by_label = {}
    session_error = None
    if isinstance(sessions, Mapping) and not sessions.get("skipped"):
        if sessions.get("failed"):
            session_error = str(sessions.get("msg", "pgtls.ssl.sessions failed"))
        for found in sessions.get("clusters") or []:
            by_label[found.get("cluster")] = found
    certs = {}
    for item in _items(replication):
        cluster = item.get(loop_var) or {}
        if not item.get("skipped"):
            certs[f"{cluster.get('version')}/{cluster.get('name')}"] = item
    merged = []
    for item in _items(results):
        cluster = item.get(loop_var) or {}
        label = cluster.get("label") or f"{cluster.get('version')}/{cluster.get('name')}"
        extra = []
        found = by_label.get(label)
        if session_error and cluster.get("running", True):
            extra.append({"check": "sessions", "status": "fail", "message": f"sessions not read: {session_error}"})
        if found:
            extra += [_walsender_finding(sender) for sender in found.get("walsenders") or []]
            extra += [{"check": "revoked_session", "status": "fail",
                       "message": f"a session of revoked certificate {hit.get('subject')} (serial {hit.get('serial')})"
                                  f" is open: pid {hit.get('pid')}, {hit.get('user')} from {hit.get('client_addr')} "
                                  "(the revoke playbook ends it)"} for hit in found.get("revoked") or []]
        cert = certs.get(label)
        if cert is not None and found and found.get("in_recovery") is False:
            extra.append({"check": "standby", "status": "fail",
                          "message": "declared a standby (pgtls_primary_host) but not in recovery: not built yet "
                                     "(pg_basebackup over its primary_conninfo) or promoted (update the inventory)"})
        if cert is not None:
            own = cert.get("findings")
            if own is None:
                extra.append({"check": "replication_certificate", "status": "fail",
                              "message": f"replication certificate: {cert.get('msg', 'not checked')}"})
            else:
                extra.append({"check": "replication_certificate", "status": "ok",
                              "message": f"replication certificate {(cert.get('certificate') or {}).get('subject')}: "
                                         f"{cert.get('days_left', '-')} days left"})
                extra += [{"check": "replication_certificate", "status": f.get("status"),
                           "message": f"replication certificate: {f.get('message', '')}"}
                          for f in own if f.get("status") != "ok"]
        # The report's replication certificate (kind replication in its metrics).
        checked = dict(item, replication_certificate=cert["certificate"]) if cert and cert.get("certificate") else item
        if not extra:
            merged.append(checked)
            continue
        fails = sum(1 for f in extra if f["status"] == "fail")
        warns = sum(1 for f in extra if f["status"] == "warn")
        merged.append(dict(checked, findings=list(item.get("findings") or []) + extra,
                           fail_count=item.get("fail_count", 0) + fails, warn_count=item.get("warn_count", 0) + warns))
    return merged
