# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The audit's rows and table on the controller: one row per cluster from the server role's looped
pgtls.ssl.validate results (what the cluster serves, days left, key mode, whether it breaks the policy), and the
table the audit playbook prints from every host's rows."""

from __future__ import annotations

from collections.abc import Mapping

# The audit table's columns: host, cluster, days, served, key, protocol, direct, status, problems.
TABLE_FORMAT = "%-24s %-12s %5s %-6s %-6s %-9s %-6s %-7s %s"
TABLE_HEADER = ("host", "cluster", "days", "served", "key", "protocol", "direct", "status", "problems")


def _served(result: Mapping, key: str, default):
    served = result.get("served")
    return served.get(key, default) if isinstance(served, Mapping) and served else default


def audit_rows(results, host: str, allow_stopped: bool = False, loop_var: str = "__pgtls_cluster") -> list[dict]:
    """One row per cluster from the registered result of the audit's looped pgtls.ssl.validate task (each item
    carrying its cluster as ``loop_var``): ``host``, ``cluster`` (``<version>/<name>``, or the cluster's ``label``:
    PgBouncer's row is ``pgbouncer:<port>``), ``port``, ``subject``,
    ``days_left`` (-1 unknown), ``served_matches``, ``protocol``, ``direct_tls`` (None: not probed), ``key_ok``,
    ``running``, ``fail``, ``warn`` and ``problems`` (the messages of every finding that is not ok; a stopped
    cluster first, and validate's own message when it returned no findings). A stopped cluster is a warning when
    ``allow_stopped``, else a failure."""
    items = results.get("results", []) if isinstance(results, Mapping) else list(results or [])
    rows = []
    for item in items:
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
            "running": running,
            "fail": item.get("fail_count", 1) > 0 or bool(item.get("failed", False)) or not (running or allow_stopped),
            "warn": item.get("warn_count", 0) > 0 or not running,
            "problems": stopped + problems + ([str(item.get("msg", "validate returned no findings"))]
                                              if "findings" not in item else []),
        })
    return rows


def audit_table(rows: list, unreached: list = ()) -> list[str]:
    """The audit playbook's table: a header, one line per row of audit_rows, then one FAIL line per host that was
    not audited (unreachable, or failed before its rows)."""
    def status(row: Mapping) -> str:
        return "FAIL" if row["fail"] else "warn" if row["warn"] else "ok"

    def direct(row: Mapping) -> str:
        return "-" if row.get("direct_tls") is None else "yes" if row["direct_tls"] else "NO"

    lines = [TABLE_FORMAT % TABLE_HEADER]
    lines += [TABLE_FORMAT % (row["host"], row["cluster"], row["days_left"], "ok" if row["served_matches"] else "NO",
                              "ok" if row["key_ok"] else "BAD", row["protocol"], direct(row), status(row),
                              "; ".join(row["problems"])) for row in rows]
    lines += [TABLE_FORMAT % (host, "-", "-", "-", "-", "-", "-", "FAIL", "host not audited (unreachable or failed)")
              for host in unreached]
    return lines
