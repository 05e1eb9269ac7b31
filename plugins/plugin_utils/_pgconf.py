# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""PostgreSQL configuration rules that PostgreSQL itself only reports at reload time (or at start, fatally):
pg_hba.conf lines per server version, and ssl_ciphers strings that enable unencrypted or export ciphers."""

from __future__ import annotations

import ipaddress

HBA_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
INCLUDES = ("include", "include_if_exists", "include_dir")
# Cipher-string words that switch on ciphers without encryption or with broken strength.
WEAK_CIPHER_WORDS = {
    "NULL": "ciphers without encryption",
    "ENULL": "ciphers without encryption",
    "ANULL": "ciphers without authentication",
    "EXPORT": "export-grade ciphers",
    "EXP": "export-grade ciphers",
    "LOW": "low-strength ciphers",
    "DES": "single DES",
    "RC4": "RC4",
    "MD5": "MD5-based ciphers",
    "COMPLEMENTOFALL": "ciphers without encryption (it includes eNULL)",
    "COMPLEMENTOFDEFAULT": "ciphers without authentication or encryption",
}


def cipher_problems(ciphers: str, variable: str = "pgtls_ssl_ciphers") -> list[str]:
    """Words of an OpenSSL cipher string that enable NULL, export or broken ciphers (negated words are fine)."""
    problems = []
    for word in str(ciphers or "").replace(",", ":").replace(" ", ":").split(":"):
        if not word or word[0] in "!-":
            continue
        for part in word.lstrip("+").split("+"):
            what = WEAK_CIPHER_WORDS.get(part.upper())
            if what:
                problems.append(f"{variable}: {word!r} enables {what}; remove it or negate it as '!{part}'")
    return problems


def _options(rule: dict) -> dict:
    options = rule.get("options") or {}
    if isinstance(options, str):
        parsed = {}
        for item in options.split():
            key, _sep, value = item.partition("=")
            parsed[key] = value
        return parsed
    return {str(k): str(v) for k, v in options.items()}


def hba_rules(rules: list, ssl_only: bool) -> list[dict]:
    """The rules as they will be written: with ``ssl_only``, host lines become hostssl and every TCP connection
    without SSL is rejected by two hostnossl lines at the end."""
    result = []
    for given in rules or []:
        rule = dict(given)
        if ssl_only and rule.get("type") == "host":
            rule["type"] = "hostssl"
        rule["options"] = _options(rule)
        result.append(rule)
    if ssl_only:
        for address in ("0.0.0.0/0", "::/0"):
            result.append({"type": "hostnossl", "database": "all", "user": "all", "address": address,
                           "method": "reject", "options": {}})
    return result


def hba_problems(rules: list, version: int | str, ssl_only: bool = False, ident_maps: list | None = None,
                 variable: str = "pgtls_hba_rules") -> list[str]:
    """What PostgreSQL ``version`` would refuse in these rules (it then keeps the old file, or does not start)."""
    version = int(str(version).split(".", maxsplit=1)[0])
    maps = {m.get("map") for m in ident_maps or []}
    problems = []
    for index, rule in enumerate(hba_rules(rules, ssl_only)):
        where = f"{variable}[{index}]"
        kind = rule.get("type")
        if index >= len(rules or []):
            continue  # the policy's own reject lines
        if kind in INCLUDES:
            if version < 16:
                problems.append(f"{where}: '{kind}' needs PostgreSQL 16 or newer (this is {version})")
            if not rule.get("path"):
                problems.append(f"{where}: '{kind}' needs a path")
            continue
        if kind not in HBA_TYPES:
            problems.append(f"{where}: type {kind!r} is not one of {', '.join(HBA_TYPES + INCLUDES)}")
            continue
        for field in ("database", "user", "method"):
            if not rule.get(field):
                problems.append(f"{where}: {field} is missing")
        if kind == "local" and rule.get("address"):
            problems.append(f"{where}: a local line takes no address")
        if kind != "local" and not rule.get("address"):
            problems.append(f"{where}: a {kind} line needs an address")
        options, method = rule["options"], rule.get("method")
        clientcert = options.get("clientcert")
        if clientcert is not None:
            if kind != "hostssl":
                problems.append(f"{where}: clientcert is only allowed on hostssl lines (this is {kind})")
            if clientcert in ("1", "0", "no-verify") and version >= 14:
                problems.append(f"{where}: clientcert={clientcert} was removed in PostgreSQL 14; use verify-ca or "
                                "verify-full")
            elif clientcert == "verify-full" and version < 12:
                problems.append(f"{where}: clientcert=verify-full needs PostgreSQL 12 or newer")
            elif clientcert not in ("verify-ca", "verify-full", "1", "0", "no-verify"):
                problems.append(f"{where}: clientcert={clientcert} is not verify-ca or verify-full")
            if clientcert == "verify-ca" and method == "cert":
                problems.append(f"{where}: clientcert=verify-ca cannot be used with method cert (cert always "
                                "verifies the full certificate)")
        if method == "cert" and kind != "hostssl":
            problems.append(f"{where}: method cert needs a hostssl line (this is {kind})")
        if "clientname" in options:
            if version < 14:
                problems.append(f"{where}: clientname needs PostgreSQL 14 or newer")
            elif options["clientname"] not in ("CN", "DN"):
                problems.append(f"{where}: clientname must be CN or DN")
        if "map" in options and options["map"] not in maps:
            problems.append(f"{where}: map={options['map']} is not defined in pgtls_ident_maps")
    return problems


# Mozilla's server-side TLS guidelines (5.7), as sslyze's --mozilla_config checks them, in OpenSSL names.
# "intermediate": TLS 1.2 with these suites, and TLS 1.3 (whose suites PostgreSQL leaves to OpenSSL's defaults,
# all three allowed); "modern": TLS 1.3 only.
INTERMEDIATE_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
])
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
                 "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256")
# Before PostgreSQL 18, ssl_ecdh_curve: one name that OBJ_sn2nid() knows and EC_KEY_new_by_curve_name() accepts
# (an EC curve; X25519 and X448 are not, and fail with "ECDH: could not create key").
EC_CURVES = ("prime256v1", "secp384r1", "secp521r1", "secp224r1", "secp256k1", "brainpoolP256r1", "brainpoolP384r1",
             "brainpoolP512r1")
PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def _major(version) -> int:
    return int(str(version).split(".", maxsplit=1)[0])


def ssl_problems(settings: dict, version: int | str) -> list[str]:
    """What PostgreSQL ``version`` would refuse (or ignore) in the role's SSL settings, before anything is written.

    ``settings`` uses the role's variable names without the ``pgtls_`` prefix: ssl_groups, ssl_tls13_ciphers,
    ssl_profile, ssl_min_protocol_version, ssl_max_protocol_version."""
    version = _major(version)
    problems = []
    groups = str(settings.get("ssl_groups") or "")
    if groups:
        names = groups.split(":")
        if version < 18:
            if len(names) > 1:
                problems.append(f"pgtls_ssl_groups: {groups!r} is a list, but PostgreSQL {version} takes one curve "
                                f"(written as ssl_ecdh_curve; a list of groups needs PostgreSQL 18): the server would "
                                f"log \"ECDH: unrecognized curve name\" and keep its old SSL settings")
            elif groups not in EC_CURVES:
                problems.append(f"pgtls_ssl_groups: {groups!r} is not an EC curve PostgreSQL {version} accepts in "
                                f"ssl_ecdh_curve (one of {', '.join(EC_CURVES)}; X25519 needs PostgreSQL 18's "
                                "ssl_groups)")
        else:
            for name in names:
                if not name or not all(c.isalnum() or c in "_-" for c in name):
                    problems.append(f"pgtls_ssl_groups: {groups!r} is not a colon-separated list of group names")
                    break
    tls13 = str(settings.get("ssl_tls13_ciphers") or "")
    if tls13:
        if version < 18:
            problems.append(f"pgtls_ssl_tls13_ciphers: ssl_tls13_ciphers needs PostgreSQL 18 (this is {version}); "
                            "leave it empty for the server's defaults")
        for name in tls13.split(":"):
            if name not in TLS13_CIPHERS:
                problems.append(f"pgtls_ssl_tls13_ciphers: {name!r} is not a TLS 1.3 suite "
                                f"({', '.join(TLS13_CIPHERS)})")
    profile = settings.get("ssl_profile") or "intermediate"
    low, high = settings.get("ssl_min_protocol_version") or "", settings.get("ssl_max_protocol_version") or ""
    for name, value in (("ssl_min_protocol_version", low), ("ssl_max_protocol_version", high)):
        if value and value not in PROTOCOLS:
            problems.append(f"pgtls_{name}: {value!r} is not one of {', '.join(PROTOCOLS)}")
    if profile == "modern" and high and high != "TLSv1.3":
        problems.append(f"pgtls_ssl_max_protocol_version: {high} contradicts pgtls_ssl_profile=modern (TLS 1.3 only)")
    if low in PROTOCOLS and high in PROTOCOLS and PROTOCOLS.index(low) > PROTOCOLS.index(high):
        problems.append(f"pgtls_ssl_min_protocol_version {low} is above pgtls_ssl_max_protocol_version {high}")
    return problems


def ssl_settings(settings: dict, version: int | str) -> list[tuple[str, str]]:
    """The version-dependent SSL settings as (name, value) pairs, in the names this PostgreSQL version knows:
    the key exchange groups as ssl_groups on 18+ and ssl_ecdh_curve before, ssl_tls13_ciphers on 18+ only, the
    minimum protocol TLSv1.3 with the modern profile."""
    version = _major(version)
    out = []
    modern = settings.get("ssl_profile") == "modern"
    out.append(("ssl_min_protocol_version", "TLSv1.3" if modern else settings.get("ssl_min_protocol_version") or "TLSv1.2"))
    if settings.get("ssl_max_protocol_version"):
        out.append(("ssl_max_protocol_version", settings["ssl_max_protocol_version"]))
    if settings.get("ssl_groups"):
        out.append(("ssl_groups" if version >= 18 else "ssl_ecdh_curve", settings["ssl_groups"]))
    if settings.get("ssl_tls13_ciphers") and version >= 18:
        out.append(("ssl_tls13_ciphers", settings["ssl_tls13_ciphers"]))
    return out


# libpq connection settings newer than libpq 15, by the first major version that reads them. An older libpq refuses
# the whole service file at an unknown keyword ("syntax error in service file"), so they are written only when the
# host's libpq is known to read them.
LIBPQ_SINCE = {"sslcertmode": 16, "sslnegotiation": 17}
SSLCERTMODES = ("allow", "disable", "require")


def service_problems(services: list, variable: str = "pgtls_client_services", libpq_version: int | str | None = None,
                     sslcertmode: str = "") -> list[str]:
    """pg_service entries the client role would write that libpq or the server would refuse.

    ``libpq_version`` is the major version of libpq on the client host (0 or None: not known); ``sslcertmode`` the
    role's pgtls_client_sslcertmode, written into every entry: it needs a libpq known to be 16 or newer."""
    problems = []
    libpq = _major(libpq_version) if libpq_version not in (None, "", 0, "0") else None
    if sslcertmode:
        if sslcertmode not in SSLCERTMODES:
            problems.append(f"pgtls_client_sslcertmode: {sslcertmode} is not one of {', '.join(SSLCERTMODES)}")
        elif libpq is None:
            problems.append(f"pgtls_client_sslcertmode: sslcertmode={sslcertmode} is read by libpq 16 and newer only, "
                            "and an older libpq refuses the whole service file: set pgtls_client_libpq_version to the "
                            "major version of libpq on this host")
        elif libpq < LIBPQ_SINCE["sslcertmode"]:
            problems.append(f"pgtls_client_sslcertmode: sslcertmode={sslcertmode} needs libpq 16 (this host's is "
                            f"{libpq}, pgtls_client_libpq_version)")
    for index, service in enumerate(services or []):
        negotiation = service.get("sslnegotiation") or ""
        if not negotiation:
            continue
        where = f"{variable}[{index}]"
        if negotiation not in ("postgres", "direct"):
            problems.append(f"{where}: sslnegotiation={negotiation} is not postgres or direct")
            continue
        if libpq is not None and libpq < LIBPQ_SINCE["sslnegotiation"]:
            problems.append(f"{where}: sslnegotiation needs libpq 17 (this host's is {libpq}, "
                            "pgtls_client_libpq_version)")
        server = service.get("server_version")
        if negotiation == "direct" and server is not None and _major(server) < 17:
            problems.append(f"{where}: sslnegotiation=direct needs a PostgreSQL 17 server (this is {server})")
    return problems


# Server log lines worth quoting when an activation failed: PostgreSQL's own words about SSL files and settings.
_LOG_WORDS = ("ssl", "ecdh", "curve", "group", "cipher", "certificate", "private key", "hba", "ident", "not reloaded",
              "could not", "invalid", "unrecognized", "error", "fatal")


def server_log_lines(text: str, limit: int = 6) -> list[str]:
    """The last ``limit`` lines of a server log tail that explain a refused SSL configuration (e.g. "ECDH:
    unrecognized curve name" before "SSL configuration was not reloaded"); the reload's own "parameter ... changed"
    notices are left out."""
    picked = [line.strip() for line in str(text or "").splitlines()
              if 'parameter "' not in line and any(word in line.lower() for word in _LOG_WORDS)]
    return picked[-limit:]


# PgBouncer's hba (auth_hba_file), as PgBouncer 1.18's src/hba.c parses it: addresses are IP/CIDR or IP and mask
# only (no "all", host names, samehost/samenet), no options, and these methods. A line it cannot parse is skipped
# with a warning ("could not parse hba config line N") while the others load: checked here instead.
PGBOUNCER_HBA_TYPES = ("local", "host", "hostssl", "hostnossl")
PGBOUNCER_HBA_METHODS = ("trust", "reject", "md5", "password", "peer", "cert")
PGBOUNCER_HBA_DATABASE_WORDS = ("replication", "samerole", "samegroup")


def _pgbouncer_address_problem(address: str) -> str | None:
    if address == "all":
        return None
    try:
        ipaddress.ip_network(address, strict=False)
    except ValueError:
        return f"address {address!r} is not an IP address or CIDR range (PgBouncer resolves no names)"
    if "/" not in address:
        return f"address {address!r} needs a /mask (e.g. {address}/{32 if ':' not in address else 128})"
    return None


def pgbouncer_hba_problems(rules: list, variable: str = "pgtls_pgbouncer_hba_rules") -> list[str]:
    """Rules PgBouncer's hba would skip (silently but for a log line) or that it reads otherwise than PostgreSQL."""
    problems = []
    for index, rule in enumerate(rules or []):
        where = f"{variable}[{index}]"
        kind = str(rule.get("type", ""))
        if kind not in PGBOUNCER_HBA_TYPES:
            problems.append(f"{where}: type {kind!r} is not one PgBouncer reads ({', '.join(PGBOUNCER_HBA_TYPES)})")
            continue
        method = str(rule.get("method", ""))
        if method not in PGBOUNCER_HBA_METHODS:
            problems.append(f"{where}: method {method!r} is not one PgBouncer's hba reads "
                            f"({', '.join(PGBOUNCER_HBA_METHODS)})")
        if _options(rule):
            problems.append(f"{where}: PgBouncer's hba takes no options ({', '.join(sorted(_options(rule)))})")
        words = [w for w in str(rule.get("database", "")).split(",") if w in PGBOUNCER_HBA_DATABASE_WORDS]
        if words:
            problems.append(f"{where}: database {', '.join(words)} is not supported by PgBouncer")
        if any(w.startswith("+") for w in str(rule.get("user", "")).split(",")):
            problems.append(f"{where}: group names (+role) are not supported by PgBouncer")
        if kind != "local":
            problem = _pgbouncer_address_problem(str(rule.get("address", "")))
            if problem:
                problems.append(f"{where}: {problem}")
        elif method == "cert":
            problems.append(f"{where}: cert needs TLS; a local (socket) line cannot use it")
    return problems


def pgbouncer_hba_rules(rules: list, rejected_users: list | None = None) -> list[dict]:
    """PgBouncer's hba lines in order: a reject line per rejected (revoked) user first, then the rules with host lines
    as hostssl and address "all" as 0.0.0.0/0 and ::/0, then hostnossl reject lines: TCP only with TLS."""
    result = []
    for user in sorted(set(rejected_users or [])):
        for address in ("0.0.0.0/0", "::/0"):
            result.append({"type": "host", "database": "all", "user": str(user), "address": address,
                           "method": "reject"})
    for given in rules or []:
        rule = {key: str(given.get(key, "")) for key in ("type", "database", "user", "address", "method")}
        if rule["type"] == "host":
            rule["type"] = "hostssl"
        if rule["type"] == "local":
            rule["address"] = ""
            result.append(rule)
        elif rule["address"] == "all":
            result.extend(dict(rule, address=address) for address in ("0.0.0.0/0", "::/0"))
        else:
            result.append(rule)
    for address in ("0.0.0.0/0", "::/0"):
        result.append({"type": "hostnossl", "database": "all", "user": "all", "address": address, "method": "reject"})
    return result


# The server role's checks before anything changes (roles/server/tasks/assert.yml): what cluster_problems reads.
CHECK_INPUTS = ("hba_rules", "hba_ssl_only", "ident_maps", "ssl_settings", "ciphers", "passphrase_command",
                "passphrase_reload", "precheck_postmaster", "allow_restart", "root_group", "key_group")
PASSPHRASE_WITHOUT_COMMAND = "pgtls_ssl_passphrase_command_supports_reload is set but pgtls_ssl_passphrase_command is empty"


def cluster_problems(clusters: list, checks: dict) -> list[str]:
    """Everything the server role refuses about a host's clusters before anything changes, one message per cluster
    with a problem, each starting with its cluster ("15/main: ..."): the host's inputs (ciphers, passphrase command;
    named once, with the first cluster), the pg_hba rules and the SSL settings as the cluster's version takes them,
    the programs the activation would run missing from its bin_dir, a cluster Patroni manages (its files would undo
    ours), and a key group the running postmaster is not in when no restart is allowed. ``checks`` holds the role's
    variables named in CHECK_INPUTS."""
    missing_inputs = [name for name in CHECK_INPUTS if name not in checks]
    if missing_inputs:
        raise ValueError(f"cluster_problems needs {', '.join(missing_inputs)} in its checks")
    inputs = cipher_problems(checks["ciphers"])
    if checks["passphrase_reload"] and not checks["passphrase_command"]:
        inputs.append(PASSPHRASE_WITHOUT_COMMAND)
    labels = [f"{c.get('version')}/{c.get('name')}" for c in clusters or []]
    unknown = [str(label) for label in checks.get("rekey_clusters") or [] if label not in labels]
    if unknown:
        inputs.append(f"pgtls_rekey_clusters names {', '.join(unknown)}, not a cluster of this host "
                      f"({', '.join(labels) or 'none'}). Nothing was changed.")
    out = []
    for index, cluster in enumerate(clusters or []):
        where = f"{cluster.get('version')}/{cluster.get('name')}"
        problems = ["; ".join(inputs)] if inputs and index == 0 else []
        hba = hba_problems(checks["hba_rules"], cluster["version"], checks["hba_ssl_only"], checks["ident_maps"])
        if hba:
            problems.append("; ".join(hba))
        ssl = ssl_problems(checks["ssl_settings"], cluster["version"])
        if ssl:
            problems.append(f"{where}: {'; '.join(ssl)}. Nothing was changed.")
        needed = (["pg_ctl", "initdb", "postgres"] if checks["precheck_postmaster"] else []) + (
            ["pg_ctl"] if checks["allow_restart"] and not cluster.get("service") else [])
        paths = [f"{cluster.get('bin_dir')}/{name}" for name in needed]
        missing = [path for path in cluster.get("missing_programs") or [] if path in paths]
        if missing:
            problems.append(f"{where}: {', '.join(missing)} not found (bin_dir {cluster.get('bin_dir')}, from "
                            f"{cluster.get('bin_dir_source')}); set bin_dir for this cluster in pgtls_clusters. "
                            "Nothing was changed.")
        if cluster.get("managed_by") == "patroni":
            problems.append(f"{where}: Patroni manages it ({cluster.get('config_dir')}/postgresql.conf begins \"It "
                            "will be overwritten by Patroni\"): the SSL settings and pg_hba.conf this role writes "
                            "would be lost when Patroni writes its files again (on its start, a restart or a "
                            "demotion), turning TLS off on that member. Configure TLS through Patroni's own "
                            "configuration (the pgtls.ssl.patroni playbook and role, or the pgtls.ssl.patroni_config "
                            "module), or leave the cluster out of "
                            "pgtls_clusters. Nothing was changed.")
        # root_group layout: a group joined while the server runs reaches it only through a restart (a reload keeps
        # the postmaster's groups); discovery read the running postmaster's groups from /proc.
        if checks["root_group"] and cluster.get("key_group_member") is False and not checks["allow_restart"]:
            group = checks["key_group"]
            problems.append(f"the running server {where} (postmaster pid {cluster.get('pid')}) is not in group "
                            f"{group}, so it cannot read a root:{group} 0640 key; joining a group takes a restart, not "
                            "a reload. Set pgtls_allow_restart=true, restart it yourself, or use "
                            "pgtls_key_layout=owner. Nothing was changed.")
        if problems:
            msg = " ".join(problems)
            out.append(msg if msg.startswith(where) else f"{where}: {msg}")
    return out
