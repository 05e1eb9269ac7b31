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

import csv
import io
import ipaddress
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


class PoolerClients:
    """One PgBouncer's TCP clients logged in under a revoked name, through its admin console (psql as the pooler's
    user on its socket: C(SHOW CLIENTS)). PgBouncer shows no client certificate and (1.18) has no command that ends
    one client. With certificate logins the name is the certificate's CN, and from the revoke run on PgBouncer
    refuses revoked names (the pgbouncer role's hba), so each such client is one it now refuses. Each is ended by
    destroying its TCP socket in the kernel (ss -K, SOCK_DESTROY: PgBouncer sees the connection aborted and drops
    the client), matched by both ends of the connection, so no other client is touched."""

    def __init__(self, pooler: dict, commands: Commands, sleep=time.sleep) -> None:
        self.pooler = pooler
        self.commands = commands
        self.sleep = sleep
        self.names = set(pooler.get("revoked_names") or [])
        self.psql = (["psql", "-X", "--csv"] + (["-h", pooler["socket_dir"]] if pooler.get("socket_dir") else [])
                     + ["-p", str(pooler["port"]), "-d", "pgbouncer", "-c", "SHOW CLIENTS"])

    def listed(self) -> list[dict]:
        done = self.commands.run(self.psql, as_server=True, timeout=30)
        if done.returncode != 0:
            raise PkiError(f"psql on PgBouncer's admin console (port {self.pooler['port']}) failed "
                           f"({done.returncode}): {_output(done)[:600]}", where=self.pooler["where"])
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        if rows and not {"user", "addr", "port", "local_addr", "local_port"} <= set(rows[0]):
            raise PkiError(f"SHOW CLIENTS on port {self.pooler['port']} has no user, addr, port, local_addr and "
                           f"local_port columns: {sorted(rows[0])}", where=self.pooler["where"])
        return rows

    def revoked(self, rows: list[dict] | None = None) -> list[dict]:
        rows = self.listed() if rows is None else rows
        return [row for row in rows if row.get("user") in self.names and row.get("addr") not in ("", "unix")
                and row.get("port") and row.get("local_addr") and row.get("local_port")]

    def end(self, hits: list[dict]) -> None:
        for row in hits:
            self.commands.run(["ss", "-K", "-n", "-t", "dst", _endpoint(row["addr"], row["port"]),
                               "src", _endpoint(row["local_addr"], row["local_port"])], timeout=30)

    def wait_gone(self, seconds: float) -> list[dict]:
        left = self.revoked()
        for delay in backoff(seconds):
            if not left:
                break
            self.sleep(delay)
            left = self.revoked()
        return left


def _endpoint(address: str, port: str) -> str:
    """An address and port as ss filters take them (an IPv6 address in brackets); anything else is refused."""
    try:
        parsed = ipaddress.ip_address(address)
        number = int(port)
    except ValueError:
        raise PkiError(f"SHOW CLIENTS gave {address!r} port {port!r}, not an address and a port",
                       where="poolers") from None
    return f"[{parsed}]:{number}" if parsed.version == 6 else f"{parsed}:{number}"


def _client(row: dict) -> dict:
    return {"user": row.get("user"), "database": row.get("database"), "state": row.get("state"),
            "client_addr": f"{row.get('addr')}:{row.get('port')}", "tls": row.get("tls") or None}


def _checked(entries: list[dict], kind: str) -> list[dict]:
    checked = []
    for index, entry in enumerate(entries):
        where = f"{kind}[{index}] ({entry.get('label') or entry['port']})"
        if not 1 <= entry["port"] <= 65535:
            raise PkiError(f"must be a port number (1-65535), got {entry['port']}", where=f"{where}.port")
        if entry.get("socket_dir") and not str(entry["socket_dir"]).startswith("/"):
            # libpq takes a host that does not start with / for a network name: psql would leave the host.
            raise PkiError(f"must be an absolute folder (libpq reads {entry['socket_dir']!r} as a host name)",
                           where=f"{where}.socket_dir")
        checked.append(dict(entry, where=where))
    return checked


def sessions(params: dict, check_mode: bool, run_command=None, sleep=time.sleep) -> dict:
    """Module entry (pgtls.ssl.sessions)."""
    clusters = [dict(cluster, revoked=revoked_in(cluster["crl_path"], f"{cluster['where']}.crl_path")
                     if cluster.get("crl_path") else {}) for cluster in _checked(params["clusters"], "clusters")]
    poolers = _checked(params["poolers"], "poolers")
    if params["wait_seconds"] < 0:
        raise PkiError(f"must not be negative, got {params['wait_seconds']}", where="wait_seconds")
    ending = params["end_revoked"] and not check_mode
    commands = None
    if any(c["running"] for c in clusters + poolers):
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
        if not hits or not ending:
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
    pooled = []
    for pooler in poolers:
        found = {"pooler": pooler.get("label") or str(pooler["port"]), "port": pooler["port"],
                 "running": pooler["running"], "revoked_names": sorted(set(pooler.get("revoked_names") or [])),
                 "revoked": [], "ended": 0, "remaining": 0}
        pooled.append(found)
        if not pooler["running"] or not found["revoked_names"]:
            continue
        here = PoolerClients(pooler, commands, sleep)
        hits = here.revoked()
        found["revoked"] = [_client(hit) for hit in hits]
        if not hits or not ending:
            found["remaining"] = len(hits)
            continue
        here.end(hits)
        left = here.wait_gone(params["wait_seconds"])
        if left:
            raise PkiError(f"{len(left)} client(s) of revoked names are still there after {params['wait_seconds']} s: "
                           + ", ".join(f"{row.get('user')} from {row.get('addr')}:{row.get('port')}" for row in left)
                           + " (ss -K destroys a socket only with CAP_NET_ADMIN on a kernel built with "
                           "CONFIG_INET_DIAG_DESTROY; else restart PgBouncer to end them)", where=pooler["where"])
        found["ended"] = len(hits)
    # Check mode tells what a run would end; without end_revoked nothing is ended, the sessions are only reported.
    would = sum(len(r["revoked"]) for r in results + pooled)
    return {"changed": bool(would) and params["end_revoked"], "clusters": results, "poolers": pooled,
            "ended": sum(r["ended"] for r in results + pooled),
            "remaining": sum(r["remaining"] for r in results + pooled)}
