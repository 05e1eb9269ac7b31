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

from ansible_collections.pgtls.ssl.plugins.plugin_utils import _client


def _filter(function):
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except _client.ClientError as exc:
            raise AnsibleFilterError(str(exc)) from None

    run.__name__ = function.__name__
    run.__doc__ = function.__doc__
    return run


class FilterModule:
    def filters(self):
        return {name: _filter(getattr(_client, name)) for name in
                ("client_users", "client_entries", "client_bundle_entries", "client_service_files")}
