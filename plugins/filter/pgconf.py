# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters the server role uses to check and render PostgreSQL configuration before writing it.

Each filter is documented in its own file next to this one: cluster_problems.yml, hba_problems.yml, hba_rules.yml,
cipher_problems.yml, ssl_problems.yml, ssl_settings.yml, service_problems.yml, pgbouncer_hba_problems.yml,
pgbouncer_hba_rules.yml.
"""

from __future__ import annotations

from ansible_collections.pgtls.ssl.plugins.plugin_utils._lazy import lazy_filters


class FilterModule:
    def filters(self):
        # plugin_utils/_pgconf.py is imported at a filter's first call (plugin_utils/_lazy.py says why).
        return lazy_filters("_pgconf", ("hba_problems", "hba_rules", "cipher_problems", "cluster_problems",
                                        "ssl_problems", "ssl_settings", "service_problems", "pgbouncer_hba_problems",
                                        "pgbouncer_hba_rules"))
