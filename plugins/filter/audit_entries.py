# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter pgtls.ssl.audit_entries: the audit's registered validate results as entries for pgtls.ssl.audit_report."""

from __future__ import annotations

from ansible_collections.pgtls.ssl.plugins.plugin_utils._lazy import lazy

# plugin_utils/_audit.py is imported at the first call (plugin_utils/_lazy.py says why).
revocation_findings = lazy("_audit", "revocation_findings")

DOCUMENTATION = r"""
name: audit_entries
short_description: Turn the audit's per-cluster validate results into entries for pgtls.ssl.audit_report
version_added: 0.2.0
description:
  - Takes the registered result of the audit's looped M(pgtls.ssl.validate) task (each item carrying the cluster it
    checked as C(__pgtls_cluster)) and returns one entry per cluster - C(host), C(cluster) (C(<version>/<name>)),
    C(port), C(running), C(renewal) and C(result) - as M(pgtls.ssl.audit_report) takes them.
options:
  _input:
    description: The registered loop result (or its C(results) list).
    type: raw
    required: true
  host:
    description: The inventory name of the host the results are from.
    type: str
    required: true
  renewal:
    description:
      - The host's renewal window, C(days) and C(percent) (its C(renew_before_days) and C(renew_before_percent)), from
        which the report gives each certificate's renewal time. Without it the report has none.
    type: dict
  kind:
    description:
      - What serves the certificates - a PostgreSQL cluster, a PgBouncer, Patroni's REST API or an etcd member (the
        metrics' C(kind) label). An item whose O(loop_var) holds a C(kind) has that one instead (the patroni role's
        two endpoints, the etcd role's client and peer ports).
    type: str
    choices: [server, pooler, rest_api, etcd]
    default: server
  loop_var:
    description:
      - The key of each item that holds what was checked - C(version) and C(name), or a C(label) (as
        C(pgbouncer:6432)), C(port), C(running).
    type: str
    default: __pgtls_cluster
  revocations:
    description:
      - What the CA folder revokes (P(pgtls.ssl.revocations#lookup)). An installed certificate whose serial it revokes,
        or whose key it records as compromised, gets a failed C(revoked) finding naming it (the report's record is
        C(revoked), not C(ready), and its metric C(pgtls_certificate_revoked) is 1); a standby's replication
        certificate a failed C(replication_certificate) one.
    type: dict
    version_added: 0.4.0
"""

EXAMPLES = r"""
- name: Entries for the report
  ansible.builtin.set_fact:
    pgtls_audit_entries: "{{ checks | pgtls.ssl.audit_entries(inventory_hostname, {'days': 30, 'percent': 33}) }}"
"""

RETURN = r"""
_value:
  description: One entry per cluster.
  type: list
  elements: dict
"""


def audit_entries(results, host: str, renewal: dict | None = None, kind: str = "server",
                  loop_var: str = "__pgtls_cluster", revocations: dict | None = None) -> list[dict]:
    items = results.get("results", []) if isinstance(results, dict) else list(results or [])
    entries = []
    for item in revocation_findings(items, revocations):
        cluster = item.get(loop_var) or {}
        result = {k: v for k, v in item.items() if not k.startswith("_") and k not in ("item", "invocation")}
        entries.append({"host": host, "cluster": cluster.get("label") or f"{cluster.get('version')}/{cluster.get('name')}",
                        "port": cluster.get("port", 5432), "running": bool(cluster.get("running", True)),
                        "kind": cluster.get("kind") or kind, "renewal": renewal, "result": result})
    return entries


class FilterModule:
    def filters(self):
        return {"audit_entries": audit_entries}
