# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""A cluster's TLS sessions, in one query per cluster: the replication connections (walsenders, with their TLS and
client certificate: what the audit reports) and the sessions of revoked certificates. PostgreSQL checks its CRL at
the handshake only, so a session (or a standby's walsender) opened with a certificate revoked later keeps working
until it ends: with ``end_revoked``, each one the server would refuse at a handshake now is ended
(``pg_terminate_backend``), and none may be left: its serial and issuer revoked by the CRL file the server reads (one
CRL per CA), or its issuer without a CRL there (a retired intermediate). Nothing else is touched: the sessions of
other certificates, and of the same serial from another CA, stay.
"""

from __future__ import annotations

import json
import re
import time

from ..core import compat
from ..core.errors import PkiError
from ..core.files import MAX_CRL_BYTES, read_bytes
from .activation import Commands, _output, backoff, psql_argv

# OpenSSL's short names, as PostgreSQL prints a certificate's names in pg_stat_ssl (/CN=.../O=..., in order).
SHORT_NAMES = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.5": "serialNumber", "2.5.4.12": "title", "2.5.4.42": "GN", "2.5.4.4": "SN", "2.5.4.9": "street",
    "2.5.4.17": "postalCode", "1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
_SHORT = frozenset(SHORT_NAMES.values())
# Whether the cluster is in recovery (a standby), every session with a client certificate, and every walsender (with
# or without TLS), as one JSON object.
LIST_SQL = ("select json_build_object('in_recovery', pg_is_in_recovery(), 'certified', (select coalesce(json_agg("
            "json_build_object('pid', s.pid, 'user', "
            "a.usename, 'application_name', a.application_name, 'backend_type', a.backend_type, 'client_addr', "
            "host(a.client_addr), 'serial', s.client_serial::text, 'issuer', s.issuer_dn, 'subject', s.client_dn) "
            "order by s.pid), '[]') from pg_stat_ssl s join pg_stat_activity a using (pid) where s.ssl and "
            "s.client_serial is not null and s.pid <> pg_backend_pid()), 'walsenders', (select coalesce(json_agg("
            "json_build_object('pid', r.pid, 'user', r.usename, 'application_name', r.application_name, 'client_addr', "
            "host(r.client_addr), 'state', r.state, 'ssl', coalesce(s.ssl, false), 'version', s.version, 'serial', "
            "s.client_serial::text, 'issuer', s.issuer_dn, 'subject', s.client_dn) order by r.pid), '[]') "
            "from pg_stat_replication r left join pg_stat_ssl s using (pid)))")
WAIT_SECONDS = 10


def openssl_name(name) -> str:
    """A cryptography Name as PostgreSQL shows it (/CN=Example CA/O=Example), escapes left out."""
    return "".join(f"/{SHORT_NAMES.get(attr.oid.dotted_string, attr.oid.dotted_string)}={attr.value}"
                   for attr in name)


def _plain(dn: str) -> str:
    """pg_stat_ssl's DN without RFC 2253 escapes (PostgreSQL escapes ``,+"<>;\\`` and leading or trailing blanks)."""
    out, escaped = [], False
    for char in dn or "":
        if char == "\\" and not escaped:
            escaped = True
            continue
        out.append(char)
        escaped = False
    return "".join(out)


def revoked_in(crl_path: str, where: str) -> dict[str, set[int]]:
    """The revoked serials of each CA (by its name as PostgreSQL prints it) in the CRL file a server reads."""
    data = read_bytes(crl_path, where, limit=MAX_CRL_BYTES)
    try:
        crls = compat.load_crls(data, where)
    except PkiError as exc:
        raise PkiError(f"{crl_path}: {str(exc)[len(where) + 2:]}", where=where) from None
    found: dict[str, set[int]] = {}
    for crl in crls:
        found.setdefault(openssl_name(crl.issuer), set()).update(entry.serial_number for entry in crl)
    return found


def certificate_revoked(cert_path: str, crl_path: str, where: str) -> bool:
    """Does the CRL file revoke the leaf of ``cert_path`` (by its issuer's CRL)?"""
    leaf = compat.load_certificates(read_bytes(cert_path, where), where)[0]
    return leaf.serial_number in revoked_in(crl_path, where).get(openssl_name(leaf.issuer), set())


def _known_names(dn: str) -> bool:
    """Is every attribute of a /K=V/K=V name one of SHORT_NAMES (so that openssl_name spells it as PostgreSQL)?"""
    keys = re.findall(r"(?:^|/)([^/=]+)=", dn)
    return bool(keys) and all(key in _SHORT for key in keys)


def is_revoked(session: dict, revoked: dict[str, set[int]]) -> bool:
    """Would the server refuse this session's certificate at a handshake now? Its serial is in its issuer's CRL, or
    its issuer has no CRL in the file at all: with a CRL file, OpenSSL wants a CRL for every CA of the chain
    ("unknown ca"), which is how a retired intermediate's certificates are refused. The second rule applies only to
    names spelled alike on both sides (every attribute a known short name), never on a guess."""
    try:
        serial = int(session["serial"])
    except (TypeError, ValueError):
        return False
    issuer = _plain(session.get("issuer") or "")
    if issuer in revoked:
        return serial in revoked[issuer]
    return bool(revoked) and _known_names(issuer) and all(_known_names(name) for name in revoked)


class Sessions:
    """One cluster's client-certificate sessions, through psql as the server's user on its socket."""

    def __init__(self, cluster: dict, commands: Commands, sleep=time.sleep) -> None:
        self.cluster = cluster
        self.commands = commands
        self.sleep = sleep
        self.psql = psql_argv(cluster)

    def sql(self, sql: str) -> str:
        done = self.commands.run(self.psql + ["-c", sql], as_server=True, timeout=30)
        if done.returncode != 0:
            raise PkiError(f"psql on port {self.cluster['port']} failed ({done.returncode}): {_output(done)[:600]}",
                           where=self.cluster["where"])
        return done.stdout

    def listed(self) -> dict:
        text = self.sql(LIST_SQL).strip()
        try:
            found = json.loads(text)
            return {"certified": list(found["certified"]), "walsenders": list(found["walsenders"]),
                    "in_recovery": found.get("in_recovery")}
        except (ValueError, TypeError, KeyError):
            raise PkiError(f"pg_stat_ssl's sessions could not be read: {text[:200]}",
                           where=self.cluster["where"]) from None

    def revoked(self, revoked: dict[str, set[int]], listed: dict | None = None) -> list[dict]:
        return [row for row in (listed or self.listed())["certified"] if is_revoked(row, revoked)]

    def end(self, pids: list[int]) -> None:
        self.sql(f"select pg_terminate_backend(pid) from unnest(array[{','.join(str(int(p)) for p in pids)}]) pid")

    def wait_gone(self, revoked: dict[str, set[int]], seconds: float) -> list[dict]:
        """The revoked sessions still there after ``seconds`` (a backend ends moments after the signal)."""
        left = self.revoked(revoked)
        for delay in backoff(seconds):
            if not left:
                break
            self.sleep(delay)
            left = self.revoked(revoked)
        return left


def _row(session: dict) -> dict:
    serial = session.get("serial")
    return {"pid": session["pid"], "user": session.get("user"), "application_name": session.get("application_name"),
            "backend_type": session.get("backend_type"), "client_addr": session.get("client_addr") or "local",
            "serial": f"{int(serial):X}" if serial else None, "issuer": session.get("issuer"),
            "subject": session.get("subject")}


def _walsender(row: dict) -> dict:
    return dict(_row(dict(row, backend_type="walsender")), state=row.get("state"), ssl=bool(row.get("ssl")),
                version=row.get("version"))


def sessions(params: dict, check_mode: bool, run_command=None, sleep=time.sleep) -> dict:
    """Module entry (pgtls.ssl.sessions)."""
    clusters = []
    for index, cluster in enumerate(params["clusters"]):
        where = f"clusters[{index}] ({cluster.get('label') or cluster['port']})"
        if not 1 <= cluster["port"] <= 65535:
            raise PkiError(f"must be a port number (1-65535), got {cluster['port']}", where=f"{where}.port")
        if cluster.get("socket_dir") and not str(cluster["socket_dir"]).startswith("/"):
            # libpq takes a host that does not start with / for a network name: psql would leave the host.
            raise PkiError(f"must be an absolute folder (libpq reads {cluster['socket_dir']!r} as a host name)",
                           where=f"{where}.socket_dir")
        revoked = revoked_in(cluster["crl_path"], f"{where}.crl_path") if cluster.get("crl_path") else {}
        clusters.append(dict(cluster, where=where, revoked=revoked))
    if params["wait_seconds"] < 0:
        raise PkiError(f"must not be negative, got {params['wait_seconds']}", where="wait_seconds")
    commands = None
    if any(c["running"] for c in clusters):
        try:
            commands = Commands(params["server_user"], run_command)
        except PkiError as exc:
            raise PkiError(exc.msg.split(": ", 1)[-1], where="server_user") from None
    results = []
    for cluster in clusters:
        found = {"cluster": cluster.get("label") or str(cluster["port"]), "port": cluster["port"],
                 "running": cluster["running"],
                 "revoked_serials": sum(len(serials) for serials in cluster["revoked"].values()),
                 "in_recovery": None, "walsenders": [], "revoked": [], "ended": 0, "remaining": 0}
        results.append(found)
        if not cluster["running"]:
            continue
        here = Sessions(cluster, commands, sleep)
        listed = here.listed()
        found["walsenders"] = [_walsender(row) for row in listed["walsenders"]]
        found["in_recovery"] = listed["in_recovery"]
        hits = here.revoked(cluster["revoked"], listed)
        found["revoked"] = [_row(hit) for hit in hits]
        if not hits or check_mode or not params["end_revoked"]:
            found["remaining"] = len(hits)
            continue
        here.end([hit["pid"] for hit in hits])
        left = here.wait_gone(cluster["revoked"], params["wait_seconds"])
        if left:
            raise PkiError(f"{len(left)} session(s) of revoked certificates are still there after "
                           f"{params['wait_seconds']} s: " + ", ".join(
                               f"pid {row['pid']} ({row.get('user')}, serial {int(row['serial']):X})" for row in left),
                           where=cluster["where"])
        found["ended"] = len(hits)
    # Check mode tells what a run would end; without end_revoked nothing is ended, the sessions are only reported.
    would = sum(len(r["revoked"]) for r in results)
    return {"changed": bool(would) and params["end_revoked"], "clusters": results,
            "ended": sum(r["ended"] for r in results), "remaining": sum(r["remaining"] for r in results)}
