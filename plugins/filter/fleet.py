# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the server role uses for fleet-level checks on the controller before anything changes."""

from __future__ import annotations

from ansible_collections.pgtls.ssl.plugins.plugin_utils._fleet import clusters_with_state, trust_problems

DOCUMENTATION = r"""
name: fleet
short_description: Fleet-level checks of the server role (trust anchor, running clusters)
version_added: 0.1.0
description:
  - C(pgtls.ssl.trust_problems) refuses a run that would replace the root the clusters trust now with another
    one (or with a new root, when the CA folder has none yet), naming both roots and the CA folder.
  - C(pgtls.ssl.clusters_with_state) adds C(running) to each cluster from the exit codes of C(pg_isready).
author:
  - pgtls.ssl maintainers (@pgtls)
"""


class FilterModule:
    def filters(self):
        return {
            "trust_problems": trust_problems,
            "clusters_with_state": clusters_with_state,
        }
