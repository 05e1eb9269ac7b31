# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the server role uses to check and render PostgreSQL configuration before writing it."""

from __future__ import annotations

from ansible_collections.pgtls.ssl.plugins.plugin_utils._pgconf import (
    cipher_problems,
    hba_problems,
    hba_rules,
    server_log_lines,
    service_problems,
    ssl_problems,
    ssl_settings,
)

DOCUMENTATION = r"""
name: pgconf
short_description: Check and render pg_hba.conf rules and ssl_ciphers for a PostgreSQL version
version_added: 0.1.0
description:
  - C(pgtls.ssl.hba_problems) lists what a PostgreSQL version would refuse in a list of pg_hba rules.
  - C(pgtls.ssl.hba_rules) returns the rules as written, with the SSL-only policy applied.
  - C(pgtls.ssl.cipher_problems) lists words of an OpenSSL cipher string that enable NULL or export ciphers.
  - C(pgtls.ssl.ssl_problems) lists what a PostgreSQL version would refuse in the role's SSL settings (one curve
    before 18, a list of groups from 18; C(ssl_tls13_ciphers) from 18; protocol bounds and the profile).
  - C(pgtls.ssl.ssl_settings) returns the version-dependent SSL settings as name/value pairs in that version's names.
  - C(pgtls.ssl.server_log_lines) picks the lines of a server log tail that explain a refused SSL configuration.
  - C(pgtls.ssl.service_problems) lists pg_service entries with an C(sslnegotiation) libpq or the server refuses.
author:
  - pgtls.ssl maintainers (@pgtls)
"""


class FilterModule:
    def filters(self):
        return {
            "hba_problems": hba_problems,
            "hba_rules": hba_rules,
            "cipher_problems": cipher_problems,
            "ssl_problems": ssl_problems,
            "ssl_settings": ssl_settings,
            "service_problems": service_problems,
            "server_log_lines": server_log_lines,
        }
