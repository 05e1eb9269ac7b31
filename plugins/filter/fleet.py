# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters the server role uses for fleet-level checks on the controller before anything changes.

Each filter is documented in its own file next to this one: trust_problems.yml, clusters_with_state.yml.
"""

from __future__ import annotations

from ansible_collections.pgtls.ssl.plugins.plugin_utils._fleet import clusters_with_state, trust_problems


class FilterModule:
    def filters(self):
        return {
            "trust_problems": trust_problems,
            "clusters_with_state": clusters_with_state,
        }
