# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""PostgreSQL configuration rules that PostgreSQL itself only reports at reload time (or at start, fatally):
pg_hba.conf lines per server version, and ssl_ciphers strings that enable unencrypted or export ciphers."""

from __future__ import annotations

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
