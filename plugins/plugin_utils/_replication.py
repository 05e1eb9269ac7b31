# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Streaming replication as the server role sets it up, decided on the controller from the inventory: which hosts are
members of a replicated set, what each standby connects to (a name its primary's certificate carries), and every
input that cannot work refused before any host changes. The filters of plugins/filter/replication.py; no I/O."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError

# The first PostgreSQL version that reloads primary_conninfo (before it, a change needs a restart).
RELOADABLE_CONNINFO = 13
PRIMARY = "pgtls_primary_host"
# The replication role as pg_hba.conf and primary_conninfo take it unquoted.
PLAIN_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def server_names(inventory_name: str, host_names: Mapping | None, ansible_host: str | None, extra: list | None) -> list:
    """The names of a database host's certificate, in the server role's order: the inventory name, the fqdn and
    hostname discovery found (as setup reports them), ansible_host, then pgtls_server_extra_sans; blanks and
    repeats left out."""
    found = host_names if isinstance(host_names, Mapping) else {}
    out: list[str] = []
    for name in [inventory_name, found.get("fqdn"), found.get("hostname"), ansible_host] + list(extra or []):
        if name and str(name) not in out:
            out.append(str(name))
    return out


def _names_match(address: str, names: list[str]) -> bool:
    """Would libpq's verify-full accept a certificate with ``names`` for ``host=address``? (DNS names compare
    case-insensitively, addresses as addresses; no wildcards in the role's certificates.)"""
    try:
        wanted = ipaddress.ip_address(address)
    except ValueError:
        return address.lower().rstrip(".") in {n.lower().rstrip(".") for n in names}
    for name in names:
        try:
            if ipaddress.ip_address(name) == wanted:
                return True
        except ValueError:
            continue
    return False


def _chain(host: str, primary: str, hostvars: Mapping) -> list[str]:
    """host, its primary, that one's primary ... until a host without one (or the first repeat: a cycle)."""
    chain = [host, primary]
    while chain[-1] not in chain[:-1]:
        following = (hostvars.get(chain[-1]) or {}).get(PRIMARY) or ""
        if not following or following not in hostvars:
            return chain
        chain.append(following)
    return chain


def shared_names(host: str, hostvars: Mapping) -> list[str]:
    """The names a standby's certificate keeps from its primaries (so that after a switchover clients verify-full
    the new primary by the names they used): the pgtls_server_extra_sans of its primary, that one's primary, and so
    on, in order, without repeats; [] for a host that is no standby (or an unknown primary, or a cycle: refused by
    replication's checks)."""
    names: list[str] = []
    seen = {host}
    primary = (hostvars.get(host) or {}).get(PRIMARY)
    while isinstance(primary, str) and primary and primary not in seen and primary in hostvars:
        seen.add(primary)
        found = hostvars[primary] or {}
        for name in found.get("pgtls_server_extra_sans") or []:
            if name and str(name) not in names:
                names.append(str(name))
        primary = found.get(PRIMARY)
    return names


def standby_map(hosts: list, hostvars: Mapping) -> dict[str, list[str]]:
    """Each host that a host of ``hosts`` names as its pgtls_primary_host, with those standbys in order: every
    host's variables looked up once (a lookup per host and host grew with the square of the inventory)."""
    found: dict[str, list[str]] = {}
    for name in hosts or []:
        primary = (hostvars.get(name) or {}).get(PRIMARY)
        if isinstance(primary, str) and primary and primary != name:
            found.setdefault(primary, []).append(name)
    return found


def replication(host: str, primary: str, standbys: list, clusters: list, hostvars: Mapping, user: str,
                address: str = "") -> dict:
    """This host's part in streaming replication, from its own pgtls_primary_host (``primary``), the hosts that
    name it (``standbys``, standby_map) and its discovered ``clusters``; ``hostvars`` is read only for its primary
    and that one's primaries.

    ``member``: it is a standby or a primary, so its pg_hba.conf gets the replication role's certificate rules.
    ``standby``: for each of its clusters (``15/main``) the primary's ``host`` (``address``, else the primary's
    ansible_host, else its inventory name) and ``port`` (the same cluster on the primary, as its discovery found
    it). ``problems``: each input that cannot work, naming this host and the variable; nothing is decided from it."""
    primary = primary or ""
    result = {"member": bool(primary or standbys), "standbys": list(standbys or []), "standby": {},
              "primary": primary, "problems": []}
    problems = result["problems"]

    def refuse(variable: str, message: str) -> None:
        problems.append(f"{host}: {variable}: {message}. Nothing was changed.")

    if result["member"]:
        # Imported for a member only: names.py loads cryptography, which the role's other tasks never need (and
        # Ansible loads this file in every forked worker that uses one of the collection's filters).
        from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import check_role_name

        try:
            check_role_name(user, "pgtls_replication_user")
            if not PLAIN_ROLE.match(user):
                raise PkiError(f"{user!r} is not a plain role name (letters, digits, _ and $, not starting with a "
                               "digit): pg_hba.conf and primary_conninfo take it unquoted", where="x")
        except PkiError as exc:
            refuse("pgtls_replication_user", str(exc).split(": ", 1)[-1])
    if not primary:
        return result
    if not isinstance(primary, str) or primary not in hostvars:
        refuse(PRIMARY, f"{primary!r} is not a host of the inventory")
        return result
    chain = _chain(host, primary, hostvars)
    if chain[-1] in chain[:-1]:
        refuse(PRIMARY, f"the standbys form a cycle ({' -> '.join(chain)}): one of them must be a primary")
        return result
    found = hostvars[primary]
    names = server_names(primary, found.get("__pgtls_host_names"), found.get("ansible_host"),
                         found.get("pgtls_server_extra_sans"))
    target = address or found.get("ansible_host") or primary
    if not _names_match(str(target), names):
        refuse("pgtls_primary_address", f"{target} is not a name of {primary}'s certificate ({', '.join(names)}), so "
               "verify-full would refuse it; use one of them, or add it to pgtls_server_extra_sans on " + primary)
    theirs = found.get("__pgtls_clusters")
    if theirs is None:
        refuse(PRIMARY, f"{primary}'s clusters are unknown (it is not in this play): run the role on it too")
        return result
    by_label = {f"{c.get('version')}/{c.get('name')}": c for c in theirs}
    for cluster in clusters or []:
        label = f"{cluster.get('version')}/{cluster.get('name')}"
        if label not in by_label:
            refuse(PRIMARY, f"{primary} has no cluster {label} to follow (it has {', '.join(sorted(by_label)) or 'none'})")
            continue
        if int(cluster.get("version") or 0) < RELOADABLE_CONNINFO:
            refuse(PRIMARY, f"{label} is PostgreSQL {cluster.get('version')}: primary_conninfo takes a restart before "
                   f"PostgreSQL {RELOADABLE_CONNINFO}, which the role does not do for it")
            continue
        result["standby"][label] = {"host": str(target), "port": by_label[label].get("port")}
    return result


def replication_hba(user: str, addresses: list) -> list[dict]:
    """The pg_hba.conf lines of a replicated set's member, before the others (the first match wins): the
    replication role only with its certificate over TLS - streaming replication and pg_rewind's connection to the
    postgres database - and rejected on every other path."""
    rules = []
    for address in addresses:
        rules += [{"type": "hostssl", "database": "replication", "user": user, "address": address, "method": "cert"},
                  {"type": "hostssl", "database": "postgres", "user": user, "address": address, "method": "cert"}]
    return rules + [
        {"type": "host", "database": "replication", "user": user, "address": "all", "method": "reject"},
        {"type": "host", "database": "all", "user": user, "address": "all", "method": "reject"},
        {"type": "local", "database": "replication", "user": user, "method": "reject"},
        {"type": "local", "database": "all", "user": user, "method": "reject"},
    ]


def conninfo(settings: Mapping) -> str:
    """A libpq connection string of ``settings`` in their order, a value quoted as libpq parses it when it holds a
    space, a quote or a backslash; empty and null settings left out."""
    words = []
    for key, value in settings.items():
        if value is None or value == "":
            continue
        text = str(value)
        if any(ch in text for ch in " '\\\t\n"):
            text = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        words.append(f"{key}={text}")
    return " ".join(words)
