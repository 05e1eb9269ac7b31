# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters the server role's audit entry point and the audit playbook use to turn validate results into rows and
the printed table.

Each filter is documented in its own file next to this one: audit_rows.yml, audit_table.yml,
replication_findings.yml.
"""

from __future__ import annotations

from ansible_collections.pgtls.ssl.plugins.plugin_utils._lazy import lazy_filters


class FilterModule:
    def filters(self):
        # plugin_utils/_audit.py is imported at a filter's first call (plugin_utils/_lazy.py says why).
        return lazy_filters("_audit", ("audit_rows", "audit_table", "replication_findings"))
