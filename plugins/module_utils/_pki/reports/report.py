# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The audit's outputs for people and machines (module pgtls.ssl.audit_report): a JSON report, a Prometheus
textfile for node_exporter's textfile collector, and a self-contained HTML page. Pure Python: the records come
from pgtls.ssl.validate on each host (via the audit entry point of the server role)."""

from __future__ import annotations

import datetime as dt
import html
import json

from ..core import compat
from ..core.checks import RenewPolicy
from ..core.errors import PkiError

SCHEMA_ID = "pgtls.ssl/audit-report/1"
# What serves a record's certificate: a PostgreSQL cluster, or a PgBouncer (cluster pgbouncer:<port>).
KINDS = ("server", "pooler", "rest_api", "etcd")

# JSON Schema (draft 2020-12) of the report; tests validate every report against it.
_FINDING = {"type": "object", "required": ["check", "status", "message"],
            "properties": {"check": {"type": "string"}, "status": {"enum": ["ok", "warn", "fail"]},
                           "message": {"type": "string"}}}
_CERT = {"type": ["object", "null"],
         "required": ["subject", "issuer", "serial", "not_after", "days_left", "fingerprint_sha256"],
         "properties": {"subject": {"type": "string"}, "issuer": {"type": "string"}, "serial": {"type": "string"},
                        "not_after": {"type": "string", "format": "date-time"}, "days_left": {"type": "integer"},
                        "not_before": {"type": ["string", "null"], "format": "date-time"},
                        "renews_at": {"type": ["string", "null"], "format": "date-time"},
                        "fingerprint_sha256": {"type": "string"}}}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pgtls.ssl audit report",
    "type": "object",
    "required": ["schema", "generated_at", "min_days", "servers", "clients", "summary"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "generated_at": {"type": "string", "format": "date-time"},
        "min_days": {"type": "integer"},
        "servers": {"type": "array", "items": {
            "type": "object",
            "required": ["host", "cluster", "port", "status", "running", "ready", "installed", "served", "chain", "crls",
                         "key", "findings"],
            "properties": {
                "host": {"type": "string"}, "cluster": {"type": "string"}, "port": {"type": "integer"},
                "status": {"enum": ["ok", "warn", "fail"]}, "running": {"type": "boolean"}, "ready": {"type": "boolean"},
                "revoked": {"type": "boolean"},
                "kind": {"enum": list(KINDS)},
                "renewal": {"type": ["object", "null"], "required": ["days", "percent"],
                            "properties": {"days": {"type": "integer"}, "percent": {"type": "integer"}}},
                "installed": _CERT,
                "replication": _CERT,
                "served": {"type": ["object", "null"], "required": ["fingerprint_sha256", "matches_installed"],
                           "properties": {"fingerprint_sha256": {"type": "string"},
                                          "matches_installed": {"type": "boolean"},
                                          "protocol": {"type": ["string", "null"]}}},
                "chain": {"type": "array", "items": _CERT},
                "crls": {"type": "array", "items": {
                    "type": "object", "required": ["issuer", "next_update"],
                    "properties": {"issuer": {"type": "string"}, "crl_number": {"type": ["integer", "null"]},
                                   "next_update": {"type": ["string", "null"]},
                                   "revoked_count": {"type": "integer"}}}},
                "key": {"type": ["object", "null"], "required": ["path", "owner", "group", "mode"],
                        "properties": {"path": {"type": "string"}, "owner": {"type": "string"},
                                       "group": {"type": "string"}, "mode": {"type": "string"}}},
                "findings": {"type": "array", "items": _FINDING},
            }}},
        "clients": {"type": "object", "required": ["certificates", "expiring", "revoked"], "properties": {
            "certificates": {"type": "array", "items": {
                "type": "object", "required": ["name", "serial", "not_before", "not_after", "days_left", "renews_at"],
                "properties": {"name": {"type": "string"}, "serial": {"type": "string"},
                               "not_before": {"type": "string", "format": "date-time"},
                               "not_after": {"type": "string", "format": "date-time"},
                               "days_left": {"type": "integer"},
                               "renews_at": {"type": "string", "format": "date-time"}}}},
            "expiring": {"type": "array", "items": {
                "type": "object", "required": ["name", "serial", "not_after", "days_left"],
                "properties": {"name": {"type": "string"}, "serial": {"type": "string"},
                               "not_after": {"type": "string"}, "days_left": {"type": "integer"}}}},
            "revoked": {"type": "array", "items": {"type": "object", "required": ["serial_number"]}}}},
        "intermediates": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "object", "required": ["clusters", "failed", "warned", "nearest_expiry"]},
    },
}


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def build(servers: list[dict], clients: dict | None, min_days: int, now: dt.datetime) -> dict:
    """The report: the server records as given (already in the schema's shape), the client side, a summary."""
    clients = clients or {"certificates": [], "expiring": [], "revoked": []}
    expiring = [(r["installed"]["days_left"], r["host"], r["cluster"], r["installed"]["not_after"])
                for r in servers if r.get("installed")]
    nearest = min(expiring) if expiring else None
    intermediates = sorted({r["installed"]["issuer"] for r in servers if r.get("installed")})
    return {
        "schema": SCHEMA_ID,
        "generated_at": now.isoformat(timespec="seconds"),
        "min_days": min_days,
        "servers": sorted(servers, key=lambda r: (r["host"], r["cluster"])),
        "clients": clients,
        "intermediates": intermediates,
        "summary": {
            "clusters": len(servers),
            "failed": sum(1 for r in servers if r["status"] == "fail"),
            "warned": sum(1 for r in servers if r["status"] == "warn"),
            "nearest_expiry": None if nearest is None else
            {"days_left": nearest[0], "host": nearest[1], "cluster": nearest[2], "not_after": nearest[3]},
        },
    }


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


# Prometheus textfile ------------------------------------------------------------------------------------------------
METRICS = {
    "pgtls_certificate_expiry_timestamp_seconds": "Not-after of a cluster's installed certificate (kind: server, "
                                                  "pooler for a PgBouncer, rest_api for Patroni's REST API, etcd "
                                                  "for an etcd member's client and peer ports, "
                                                  "replication for a standby's certificate for its primary).",
    "pgtls_certificate_days_left": "Whole days left on a cluster's installed certificate (kind: server, pooler, "
                                   "rest_api, etcd, replication).",
    "pgtls_certificate_not_before_timestamp_seconds": "Not-before of a cluster's installed certificate (kind).",
    "pgtls_certificate_renewal_timestamp_seconds": "When a cluster's installed certificate is due for renewal (the "
                                                   "host's renew_before_days and renew_before_percent; kind).",
    "pgtls_certificate_ready": "1 when the cluster serves its installed certificate and that certificate is valid "
                               "now, matches its key and names and chains to the CA, and is not revoked.",
    "pgtls_certificate_revoked": "1 when the cluster's installed certificate is revoked in the CA folder or its key "
                                 "is recorded as compromised.",
    "pgtls_ca_certificate_expiry_timestamp_seconds": "Not-after of each CA (intermediate, root) of a cluster's chain.",
    "pgtls_served_matches_installed": "1 when the cluster serves the installed certificate (proven by a handshake).",
    "pgtls_cluster_running": "1 when the cluster answered the TLS probe.",
    "pgtls_crl_next_update_timestamp_seconds": "nextUpdate of each CRL a cluster reads (ssl_crl_file).",
    "pgtls_audit_findings": "Findings of the audit per cluster and status.",
    "pgtls_audit_success": "1 when the cluster meets the policy (no failed finding).",
    "pgtls_client_certificate_expiry_timestamp_seconds": "Not-after of each client certificate (a name's newest, "
                                                         "not revoked) of the CA folder.",
    "pgtls_client_certificate_not_before_timestamp_seconds": "Not-before of each client certificate.",
    "pgtls_client_certificate_renewal_timestamp_seconds": "When each client certificate is due for renewal.",
    "pgtls_client_revoked_total": "Revocations in the CA folder's registry.",
    "pgtls_audit_last_run_timestamp_seconds": "When this audit ran.",
}


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels) -> str:
    return "{" + ",".join(f'{key}="{_label(value)}"' for key, value in labels.items()) + "}"


def to_prometheus(report: dict) -> str:
    samples: dict[str, list[str]] = {name: [] for name in METRICS}

    def add(metric, value, **labels):
        samples[metric].append(f"{metric}{_labels(**labels) if labels else ''} {value}")

    for r in report["servers"]:
        where = {"host": r["host"], "cluster": r["cluster"]}
        for kind, cert in ((r.get("kind", "server"), r["installed"]), ("replication", r.get("replication"))):
            if not cert:
                continue
            add("pgtls_certificate_expiry_timestamp_seconds", int(_parse(cert["not_after"]).timestamp()),
                **where, kind=kind, subject=cert["subject"], issuer=cert["issuer"])
            add("pgtls_certificate_days_left", cert["days_left"], **where, kind=kind)
            for metric, field in (("pgtls_certificate_not_before_timestamp_seconds", "not_before"),
                                  ("pgtls_certificate_renewal_timestamp_seconds", "renews_at")):
                if cert.get(field):
                    add(metric, int(_parse(cert[field]).timestamp()), **where, kind=kind)
        add("pgtls_certificate_ready", int(r["ready"]), **where)
        add("pgtls_certificate_revoked", int(r.get("revoked", False)), **where)
        for ca in r["chain"]:
            if ca and ca.get("not_after"):
                add("pgtls_ca_certificate_expiry_timestamp_seconds", int(_parse(ca["not_after"]).timestamp()), **where,
                    subject=ca["subject"], kind="root" if ca["subject"] == ca["issuer"] else "intermediate")
        add("pgtls_served_matches_installed", int(bool(r["served"] and r["served"]["matches_installed"])), **where)
        add("pgtls_cluster_running", int(r["running"]), **where)
        for crl in r["crls"]:
            next_update = _parse(crl.get("next_update"))
            if next_update is not None:
                add("pgtls_crl_next_update_timestamp_seconds", int(next_update.timestamp()), **where,
                    issuer=crl["issuer"])
        for status in ("fail", "warn"):
            add("pgtls_audit_findings", sum(1 for f in r["findings"] if f["status"] == status), **where,
                status=status)
        add("pgtls_audit_success", int(r["status"] != "fail"), **where)
    for c in report["clients"].get("certificates", []):
        for metric, field in (("pgtls_client_certificate_expiry_timestamp_seconds", "not_after"),
                              ("pgtls_client_certificate_not_before_timestamp_seconds", "not_before"),
                              ("pgtls_client_certificate_renewal_timestamp_seconds", "renews_at")):
            add(metric, int(_parse(c[field]).timestamp()), name=c["name"], serial=c["serial"])
    add("pgtls_client_revoked_total", len(report["clients"]["revoked"]))
    add("pgtls_audit_last_run_timestamp_seconds", int(_parse(report["generated_at"]).timestamp()))
    lines = []
    for name, text in METRICS.items():
        if samples[name]:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", *samples[name]]
    return "\n".join(lines) + "\n"


def replication_summary(findings: list) -> str:
    """The audit table's replication column: a standby's certificate, a primary's walsenders by certificate."""
    parts = []
    if any(f.get("check") == "replication_certificate" for f in findings):
        bad = any(f.get("check") == "replication_certificate" and f.get("status") != "ok" for f in findings)
        lost = any(f.get("check") == "standby" and f.get("status") != "ok" for f in findings)
        parts.append("NOT standby" if lost else "standby" + (" CERT?" if bad else ""))
    senders = [f for f in findings if f.get("check") == "walsender"]
    if senders:
        unverified = sum(1 for f in senders if f.get("status") != "ok")
        parts.append(f"{len(senders)} by cert" if not unverified else f"{unverified}/{len(senders)} NO cert")
    return ", ".join(parts) or "-"


# HTML ---------------------------------------------------------------------------------------------------------------
_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5b6475;font-size:13px}.cards{display:flex;gap:12px;margin:16px 0}
.card{border:1px solid #d8dde6;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.fail{color:#b3261e}.warn{color:#9a6700}.ok{color:#1a7f37}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{border-bottom:1px solid #e4e7ec;padding:5px 8px;
text-align:left;vertical-align:top}th{background:#f5f7fa}svg text{font-size:12px;font-family:inherit}
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _timeline(report: dict, now: dt.datetime) -> str:
    rows = report["servers"]
    ends = [now + dt.timedelta(days=30)]
    for r in rows:
        if r["installed"]:
            ends.append(_parse(r["installed"]["not_after"]))
        ends += [_parse(c["next_update"]) for c in r["crls"] if c.get("next_update")]
    horizon = max(ends)
    span = max((horizon - now).total_seconds(), 86400.0)
    left, width, row_h = 260, 820, 26
    height = 40 + row_h * max(len(rows), 1)

    def x(when: dt.datetime) -> float:
        return left + max(0.0, min(1.0, (when - now).total_seconds() / span)) * width

    parts = [f'<svg role="img" aria-label="certificate and CRL expiry per cluster" width="{left + width + 40}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="20" x2="{left}" y2="{height - 10}" stroke="#1d2330"/>',
             f'<text x="{left}" y="14">today</text>',
             f'<text x="{left + width}" y="14" text-anchor="end">{_esc(horizon.date().isoformat())}</text>']
    limit = now + dt.timedelta(days=report["min_days"])
    parts.append(f'<line x1="{x(limit):.1f}" y1="20" x2="{x(limit):.1f}" y2="{height - 10}" stroke="#b3261e" '
                 f'stroke-dasharray="4 3"><title>policy: {report["min_days"]} days</title></line>')
    for index, r in enumerate(rows):
        y = 28 + index * row_h
        colour = {"ok": "#1a7f37", "warn": "#bf8700", "fail": "#b3261e"}[r["status"]]
        parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{_esc(r["host"])} {_esc(r["cluster"])}'
                     '</text>')
        if r["installed"]:
            end = _parse(r["installed"]["not_after"])
            parts.append(f'<rect x="{left}" y="{y + 3}" width="{max(x(end) - left, 2):.1f}" height="14" rx="3" '
                         f'fill="{colour}"><title>{_esc(r["installed"]["subject"])} until {_esc(end.isoformat())} '
                         f'({_esc(r["installed"]["days_left"])} days)</title></rect>')
        for crl in r["crls"]:
            when = _parse(crl.get("next_update"))
            if when is not None:
                cx = x(when)
                parts.append(f'<path d="M{cx:.1f} {y + 1} l5 9 l-5 9 l-5 -9 z" fill="#3b5bdb"><title>CRL of '
                             f'{_esc(crl["issuer"])}: next update {_esc(when.isoformat())}</title></path>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: dict) -> str:
    now = _parse(report["generated_at"])
    summary = report["summary"]
    nearest = summary["nearest_expiry"]
    nearest_text = ("no certificate found" if nearest is None else
                    f"{nearest['host']} {nearest['cluster']}: {nearest['days_left']} days "
                    f"(until {nearest['not_after'][:10]})")
    cards = (f'<div class="cards"><div class="card">clusters<b>{summary["clusters"]}</b></div>'
             f'<div class="card">failed<b class="{"fail" if summary["failed"] else "ok"}">{summary["failed"]}</b></div>'
             f'<div class="card">warnings<b class="{"warn" if summary["warned"] else "ok"}">{summary["warned"]}</b></div>'
             f'<div class="card" id="nearest">nearest expiry<b>{_esc(nearest_text)}</b></div></div>')
    rows = []
    for r in report["servers"]:
        installed = r["installed"] or {}
        key = r["key"] or {}
        served = r["served"]
        if not r["running"]:
            serving = "not running"
        else:
            serving = "yes" if served and served["matches_installed"] else "NO"
        problems = "<br>".join(f"[{_esc(f['check'])}] {_esc(f['message'])}" for f in r["findings"]
                               if f["status"] != "ok") or "-"
        until = f"{_esc(installed.get('not_after', '-')[:10])} ({_esc(installed.get('days_left', '-'))} d)"
        key_text = f"{_esc(key['owner'])}:{_esc(key['group'])} {_esc(key['mode'])}" if key else "-"
        rows.append(
            f'<tr class="cluster" data-host="{_esc(r["host"])}"><td>{_esc(r["host"])}</td>'
            f'<td>{_esc(r["cluster"])}:{_esc(r["port"])}</td><td class="{_esc(r["status"])}">{_esc(r["status"])}</td>'
            f'<td>{until}</td>'
            f'<td>{serving}</td><td>{_esc(installed.get("issuer", "-"))}</td>'
            f"<td>{key_text}</td><td>{_esc(replication_summary(r['findings']))}</td>"
            f"<td>{problems}</td></tr>")
    clients = report["clients"]
    client_rows = "".join(f'<tr><td>{_esc(c["name"])}</td><td>{_esc(c["serial"])}</td><td>{_esc(c["not_after"][:10])}'
                          f' ({_esc(c["days_left"])} d)</td></tr>' for c in clients["expiring"]) or \
        '<tr><td colspan="3">none</td></tr>'
    revoked = ", ".join(_esc(e.get("name") or e["serial_number"]) for e in clients["revoked"]) or "none"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>PostgreSQL TLS audit</title>"
        f"<style>{_STYLE}</style></head><body>"
        f'<h1>PostgreSQL TLS audit</h1><div class="meta">generated {_esc(report["generated_at"])} · policy: at least '
        f'{report["min_days"]} days · intermediate in use: {_esc(", ".join(report["intermediates"]) or "-")}</div>'
        f"{cards}<h2>Expiry timeline</h2>{_timeline(report, now)}"
        "<h2>Clusters</h2><table><tr><th>host</th><th>cluster</th><th>status</th><th>certificate until</th>"
        "<th>served = installed</th><th>issuer</th><th>key</th><th>replication</th><th>findings</th></tr>"
        f'{"".join(rows)}</table>'
        "<h2>Client certificates expiring in the window</h2><table><tr><th>name</th><th>serial</th><th>until</th></tr>"
        f'{client_rows}</table><p>Revoked: {revoked}</p></body></html>\n'
    )


# From the audit's raw results -------------------------------------------------------------------------------------
# What comes from hosts is data: typed here, where it enters (a wrong type is an error naming the entry and field,
# never a traceback), and escaped where it leaves (HTML, the Prometheus exposition format, JSON).
def _text(value, where: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise PkiError("is missing", where=where)
        return None
    if isinstance(value, (dict, list)):
        raise PkiError(f"is a {type(value).__name__}, not text", where=where)
    return str(value)


def _integer(value, where: str, low: int | None = None, high: int | None = None, *, noun: str = "a whole number"):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PkiError(f"{str(value)[:40]!r} is not {noun}", where=where)
    text = str(value).strip()
    if not (text.isdigit() or (text.startswith("-") and text[1:].isdigit())):
        raise PkiError(f"{text[:40]!r} is not {noun}", where=where)
    number = int(text)
    if (low is not None and number < low) or (high is not None and number > high):
        raise PkiError(f"{number} is not {noun}", where=where)
    return number


def _date(value, where: str, *, required: bool = True) -> str | None:
    text = _text(value, where, required=required)
    if text is None:
        return None
    try:
        _parse(text)
    except ValueError:
        raise PkiError(f"{text[:40]!r} is not an ISO 8601 date and time", where=where) from None
    return text


def _flag(value, where: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1"):
        return True
    if str(value).lower() in ("false", "no", "0"):
        return False
    raise PkiError(f"{str(value)[:40]!r} is not true or false", where=where)


def _dict(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PkiError(f"is a {type(value).__name__}, not a dictionary", where=where)
    return value


def _list(value, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PkiError(f"is a {type(value).__name__}, not a list", where=where)
    return value


def _cert_fields(info, where: str) -> dict | None:
    if not info:
        return None
    info = _dict(info, where)
    names = ("subject", "issuer", "serial", "fingerprint_sha256")
    fields = {key: _text(info.get(key), f"{where}.{key}") for key in names}
    fields["not_after"] = _date(info.get("not_after"), f"{where}.not_after")
    fields["not_before"] = _date(info.get("not_before"), f"{where}.not_before", required=False)
    fields["days_left"] = _integer(info.get("days_left"), f"{where}.days_left")
    return fields


def _finding(raw, where: str) -> dict:
    raw = _dict(raw, where)
    status = _text(raw.get("status"), f"{where}.status")
    if status not in ("ok", "warn", "fail"):
        raise PkiError(f"{status[:20]!r} is not ok, warn or fail", where=f"{where}.status")
    return {"check": _text(raw.get("check"), f"{where}.check"), "status": status,
            "message": _text(raw.get("message"), f"{where}.message", required=False) or ""}


def _crl(raw, where: str) -> dict:
    raw = _dict(raw, where)
    return {"issuer": _text(raw.get("issuer"), f"{where}.issuer"),
            "crl_number": None if raw.get("crl_number") is None else _integer(raw["crl_number"], f"{where}.crl_number",
                                                                              0),
            "next_update": _date(raw.get("next_update"), f"{where}.next_update", required=False),
            "revoked_count": _integer(raw.get("revoked_count", 0), f"{where}.revoked_count", 0)}


# The checks of M(pgtls.ssl.validate) about the installed certificate itself: none failed (and served = installed)
# is what cert-manager calls a ready certificate.
READY_CHECKS = ("validity", "order", "chain", "key_match", "hostname", "revoked")


def _renewal(raw, where: str) -> RenewPolicy | None:
    """The host's renewal window (entry field renewal: days, percent), or None when the entry has none."""
    raw = _dict(raw, where)
    if not raw:
        return None
    return RenewPolicy(days=_integer(raw.get("days"), f"{where}.days", 0, 36500, noun="a number of days (0-36500)"),
                       percent=_integer(raw.get("percent"), f"{where}.percent", 0, 99,
                                        noun="a percentage (0-99)"))


def record(entry, allow_stopped: bool = False, where: str = "servers[0]", now: dt.datetime | None = None) -> dict:
    """One server record from the audit's entry: host, cluster, port, running, the host's renewal window and the
    validate result, each field typed. A stopped cluster is a failure, or a warning when stopped clusters are accepted
    (pgtls_allow_stopped). ``ready``: served = installed and no failed READY_CHECKS finding, valid at ``now``."""
    entry = _dict(entry, where)
    host = _text(entry.get("host"), f"{where}.host")
    kind = _text(entry.get("kind"), f"{where}.kind", required=False) or "server"
    if kind not in KINDS:
        raise PkiError(f"{kind[:20]!r} is not one of {', '.join(KINDS)}", where=f"{where}.kind")
    cluster = _text(entry.get("cluster"), f"{where}.cluster")
    port = _integer(entry.get("port"), f"{where}.port", 1, 65535, noun="a port number (1-65535)")
    result = _dict(entry.get("result"), f"{where}.result")
    found = [_finding(f, f"{where}.result.findings[{i}]")
             for i, f in enumerate(_list(result.get("findings"), f"{where}.result.findings"))]
    findings = list(found)
    if not findings and result.get("msg"):
        findings = [{"check": "audit", "status": "fail", "message": _text(result["msg"], f"{where}.result.msg")}]
    running = _flag(entry.get("running"), f"{where}.running", True)
    if not running:
        findings = [f for f in findings if f["check"] not in ("probe", "audit")]
        findings.append({"check": "running", "status": "warn" if allow_stopped else "fail",
                         "message": "PostgreSQL is not running: it serves nothing"})
    served = _dict(result.get("served"), f"{where}.result.served")
    if served:
        served = {"fingerprint_sha256": _text(_dict(served.get("certificate"), f"{where}.result.served.certificate")
                                              .get("fingerprint_sha256"),
                                              f"{where}.result.served.certificate.fingerprint_sha256"),
                  "matches_installed": _flag(served.get("matches_file"), f"{where}.result.served.matches_file", False),
                  "protocol": _text(served.get("protocol"), f"{where}.result.served.protocol", required=False)}
    key = _dict(result.get("key"), f"{where}.result.key")
    if key:
        key = {name: _text(key.get(name), f"{where}.result.key.{name}") for name in ("path", "owner", "group", "mode")}
    crls = _list(result.get("crls"), f"{where}.result.crls")
    renewal = _renewal(entry.get("renewal"), f"{where}.renewal")
    installed, replication = (_cert_fields(result.get(field), f"{where}.result.{field}")
                              for field in ("certificate", "replication_certificate"))
    for cert in (installed, replication):
        if cert is not None:
            cert["renews_at"] = None if renewal is None else renewal.renews_at(
                _parse(cert["not_before"]), _parse(cert["not_after"])).isoformat(timespec="seconds")
    now = now or compat.now()
    ready = bool(installed and served and served["matches_installed"] and running
                 and (installed["not_before"] is None or _parse(installed["not_before"]) <= now)
                 and now < _parse(installed["not_after"])
                 and not any(f["check"] in READY_CHECKS and f["status"] == "fail" for f in findings))
    status = "fail" if any(f["status"] == "fail" for f in findings) or not (found or not running) \
        else "warn" if any(f["status"] == "warn" for f in findings) else "ok"
    return {
        "host": host,
        "cluster": cluster,
        "port": port,
        "status": status,
        "running": running,
        "kind": kind,
        "ready": ready,
        # Its installed certificate is revoked in the CA folder, or its key compromised (the audit's revoked finding).
        "revoked": any(f["check"] == "revoked" and f["status"] == "fail" for f in findings),
        "renewal": None if renewal is None else {"days": renewal.days, "percent": renewal.percent},
        "installed": installed,
        "replication": replication,
        "served": served or None,
        "chain": [_cert_fields(c, f"{where}.result.chain[{i}]")
                  for i, c in enumerate(_list(result.get("chain"), f"{where}.result.chain"))],
        "crls": [_crl(c, f"{where}.result.crls[{i}]") for i, c in enumerate(crls)],
        "key": key or None,
        "findings": findings,
    }
