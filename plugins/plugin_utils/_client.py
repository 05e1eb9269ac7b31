# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""What the client role decides on the controller, from its variables and the hosts' passwd entries: the OS users
whose entries it needs, where each role's files go (pgtls.ssl.client_cert's ``clients``), the bundles' entries, and
the ~/.pg_service.conf files with their entries. The filters of plugins/filter/client.py; no I/O here."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.constants import (
    LIBPQ_CERT_FILE,
    LIBPQ_FOLDER,
    LIBPQ_KEY_FILE,
    LIBPQ_ROOT_FILE,
)

# getent passwd's fields after the name: password, uid, gid, gecos, home, shell.
GID, HOME = 2, 4
SERVICE_FILE = ".pg_service.conf"  # the per-user service file libpq reads
DEFAULT_PORT = 5432


class ClientError(ValueError):
    """A variable of the client role that cannot be used; the message names it (the filter turns it into
    AnsibleFilterError)."""


def _entries(certs, variable: str) -> list[Mapping]:
    if not isinstance(certs, list):
        raise ClientError(f"{variable} must be a list, got {type(certs).__name__}")
    for index, entry in enumerate(certs):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ClientError(f"{variable}[{index}] needs a name (the database role), got {entry!r}")
    return certs


def _user(entry: Mapping) -> str:
    """The OS user that owns a role's files: its ``user``, else the role name."""
    return entry.get("user") or entry["name"]


def _passwd_entry(passwd: Mapping, user: str, where: str) -> list:
    fields = passwd.get(user) if isinstance(passwd, Mapping) else None
    if not isinstance(fields, (list, tuple)) or len(fields) <= HOME:
        raise ClientError(f"{where}: no passwd entry for the OS user {user!r} (getent passwd {user})")
    return list(fields)


def client_users(certs: list) -> list[str]:
    """The OS users of pgtls_client_certs (each entry's ``user``, else its ``name``), each once, in order: the keys
    to look up in passwd."""
    users: list[str] = []
    for entry in _entries(certs, "pgtls_client_certs"):
        if _user(entry) not in users:
            users.append(_user(entry))
    return users


def client_entries(certs: list, passwd: Mapping | None = None) -> list[dict]:
    """Each entry of pgtls_client_certs as pgtls.ssl.client_cert's ``clients`` take it: ``name``, ``owner`` (the OS
    user), ``group`` and ``dir`` (the entry's). Without ``passwd``, an entry without ``dir`` has ``dir`` null (the
    module makes it ~owner/.postgresql on the host, where libpq looks, and gives the files the owner's primary
    group: the host's passwd, no lookup first). With ``passwd`` (getent's passwd database, user -> [password, uid,
    gid, gecos, home, shell]) both are filled in from it: ``group`` the user's primary group id, ``dir`` the home's
    .postgresql (the revoked entries the role exports, whose files the module does not touch)."""
    out = []
    for index, entry in enumerate(_entries(certs, "pgtls_client_certs")):
        user = _user(entry)
        if passwd is None:
            out.append({"name": entry["name"], "owner": user, "group": None, "dir": entry.get("dir") or None,
                        "rekey_before": entry.get("rekey_before") or None})
            continue
        fields = _passwd_entry(passwd, user, f"pgtls_client_certs[{index}] ({entry['name']})")
        try:
            group = int(fields[GID])
        except (TypeError, ValueError):
            raise ClientError(f"pgtls_client_certs[{index}] ({entry['name']}): the passwd entry of {user!r} has "
                              f"group id {fields[GID]!r}, not a number") from None
        out.append({"name": entry["name"], "owner": user, "group": group,
                    "dir": entry.get("dir") or f"{fields[HOME]}/{LIBPQ_FOLDER}"})
    return out


def client_bundle_entries(names: list) -> list[dict]:
    """pgtls_client_bundles (role names) as pgtls.ssl.client_cert's ``clients`` take them: one ``{name}`` each."""
    if not isinstance(names, list):
        raise ClientError(f"pgtls_client_bundles must be a list of role names, got {type(names).__name__}")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ClientError(f"pgtls_client_bundles[{index}] must be a role name, got {name!r}")
    return [{"name": name} for name in names]


def client_service_files(clients: list, services: list) -> list[dict]:
    """The ~/.pg_service.conf of each OS user that owns a role a service names, in the order of ``clients``:
    ``owner``, ``group``, ``path`` and ``services`` - that user's entries, in the order of pgtls_client_services,
    each with ``name``, ``host``, ``port`` (5432), ``dbname`` (the role), ``user`` (the role), ``sslcert``, ``sslkey``
    and ``sslrootcert`` (the role's files, as pgtls.ssl.client_cert names them in its folder), ``sslcrl`` (its CRL
    file, "" without one) and ``sslnegotiation`` ("" when not set). ``clients``: pgtls.ssl.client_cert's ``clients``
    (name, dir, owner, group, home and crl, as the host has them), so without the revoked roles (a service of a
    revoked role is left out: its certificate is refused)."""
    if not isinstance(services, list):
        raise ClientError(f"pgtls_client_services must be a list, got {type(services).__name__}")
    services = [s for s in services if isinstance(s, Mapping)]
    by_name: dict[str, Mapping] = {}
    for client in clients:
        by_name.setdefault(client["name"], client)
    named = {service.get("role") for service in services}
    files: dict[str, dict] = {}
    for client in clients:
        if client["name"] in named and client["owner"] not in files:
            if not client.get("home"):
                raise ClientError(f"pgtls_client_certs ({client['name']}): no home folder for the OS user "
                                  f"{client['owner']!r} on this host (its ~/{SERVICE_FILE})")
            files[client["owner"]] = {"owner": client["owner"], "group": client["group"],
                                      "path": f"{client['home']}/{SERVICE_FILE}", "services": []}
    for service in services:
        client = by_name.get(service.get("role"))
        if client is not None:
            port = service.get("port")
            files[client["owner"]]["services"].append({
                "name": service.get("name"), "host": service.get("host"),
                "port": DEFAULT_PORT if port is None else port, "dbname": service.get("dbname") or client["name"],
                "user": client["name"], "sslcert": f"{client['dir']}/{LIBPQ_CERT_FILE}",
                "sslkey": f"{client['dir']}/{LIBPQ_KEY_FILE}", "sslrootcert": f"{client['dir']}/{LIBPQ_ROOT_FILE}",
                "sslcrl": client.get("crl") or "",
                "sslnegotiation": service.get("sslnegotiation") or ""})
    return list(files.values())
