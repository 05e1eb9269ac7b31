# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters the server role and the playbooks use for fleet-level checks and summaries on the controller.

Each filter is documented in its own file next to this one: trust_problems.yml, cluster_failures.yml,
fleet_endpoints.yml, session_targets.yml, hosts_except.yml, activation_steps.yml.
"""

from __future__ import annotations

from ansible_collections.pgtls.ssl.plugins.plugin_utils._lazy import lazy_filters


class FilterModule:
    def filters(self):
        # plugin_utils/_fleet.py is imported at a filter's first call (plugin_utils/_lazy.py says why).
        return lazy_filters("_fleet", ("trust_problems", "cluster_failures", "fleet_endpoints", "session_targets",
                                       "hosts_except", "activation_steps"))
