# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the server role for streaming replication (logic in plugin_utils/_replication.py).

Each filter is documented in its own file next to this one: conninfo.yml, replication.yml, replication_hba.yml,
server_names.yml, shared_names.yml, standby_map.yml.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.pgtls.ssl.plugins.plugin_utils._lazy import lazy, lazy_filters

# plugin_utils/_replication.py is imported at a filter's first call (plugin_utils/_lazy.py says why).
replication = lazy("_replication", "replication")


def _replication(host, primary, standbys, clusters, hostvars, user, address=""):
    try:
        return replication(host, primary, standbys, clusters, hostvars, user, address)
    except (TypeError, ValueError, AttributeError) as exc:
        raise AnsibleFilterError(f"replication: {exc}") from None


class FilterModule:
    def filters(self):
        return dict(lazy_filters("_replication", ("replication_hba", "server_names", "shared_names", "standby_map",
                                                  "conninfo")), replication=_replication)
