# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the client role: the OS users of its certificates, where each role's files go, the bundles' entries and
the ~/.pg_service.conf files (logic in plugin_utils/_client.py).

Each filter is documented in its own file next to this one: client_users.yml, client_entries.yml,
client_bundle_entries.yml, client_service_files.yml.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _filter(name: str):
    """plugin_utils/_client.py's ``name``, imported at the first call (plugin_utils/_lazy.py says why)."""

    def run(*args, **kwargs):
        from ansible_collections.pgtls.ssl.plugins.plugin_utils import _client

        try:
            return getattr(_client, name)(*args, **kwargs)
        except _client.ClientError as exc:
            raise AnsibleFilterError(str(exc)) from None

    run.__name__ = run.__qualname__ = name
    return run


class FilterModule:
    def filters(self):
        return {name: _filter(name) for name in
                ("client_users", "client_entries", "client_bundle_entries", "client_service_files")}
