#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: audit_report
short_description: Write the TLS audit as JSON, a Prometheus textfile and a self-contained HTML page
version_added: 0.2.0
description:
  - Turns the audit's per-cluster results (from M(pgtls.ssl.validate) on each database host, collected by the
    C(audit) entry point of the server role) into one record per host and cluster - served and installed
    fingerprints, not-after and days left, issuer and chain, CRL next update per CA, key owner and mode, findings,
    status - and adds the client side from the CA folder - every client certificate of the C(issued/) archive (a
    name's newest certificate only; revoked ones left out) with its dates and renewal time, those that expire within
    O(window_days), and the registry of revocations.
  - Writes, where paths are given, the JSON report (schema C(pgtls.ssl/audit-report/1)), a Prometheus textfile for
    node_exporter's textfile collector (C(pgtls_certificate_expiry_timestamp_seconds),
    C(pgtls_certificate_days_left), C(pgtls_certificate_not_before_timestamp_seconds),
    C(pgtls_certificate_renewal_timestamp_seconds), C(pgtls_certificate_ready),
    C(pgtls_ca_certificate_expiry_timestamp_seconds), C(pgtls_served_matches_installed), C(pgtls_cluster_running),
    C(pgtls_crl_next_update_timestamp_seconds), C(pgtls_audit_findings), C(pgtls_audit_success),
    C(pgtls_client_certificate_expiry_timestamp_seconds), C(pgtls_client_certificate_not_before_timestamp_seconds),
    C(pgtls_client_certificate_renewal_timestamp_seconds), C(pgtls_client_revoked_total),
    C(pgtls_audit_last_run_timestamp_seconds)), and an HTML page that needs no network to view - a timeline of
    certificate and CRL expiry per cluster, the findings, the intermediate in use.
  - Every value that comes from the hosts is typed where it enters (a port, a number of days, a date, a status that is
    not one is refused naming C(servers[i].field)) and escaped where it leaves (HTML, Prometheus label values, JSON).
  - Each output replaces only a report of its own kind (or a missing or empty file) - never a key, a certificate, a
    CRL, another file, a file in a CA folder, or another of its outputs (write planner). Nothing is written when any
    of them is refused.
  - Runs where the files go (normally the controller). Reads no key.
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Builds everything, writes nothing, reports which files would change.
  diff_mode:
    support: none
options:
  servers:
    description:
      - One entry per cluster - C(host), C(cluster) (C(<version>/<name>)), C(port), C(running) (false when the
        cluster did not answer), C(renewal) (optional - the host's renewal window, C(days) and C(percent), which gives
        each certificate its renewal time), and C(result), the registered result of M(pgtls.ssl.validate) for it.
      - A record is C(ready) (cert-manager's ready status) when the cluster serves its installed certificate, that
        certificate is in its validity period, and none of its own checks failed (dates, chain, order, key, names).
    type: list
    elements: dict
    required: true
  pki_dir:
    description: The CA folder; its C(issued/) archive and C(revoked.yml) give the client side of the report.
    type: path
  window_days:
    description: Client certificates with fewer days left than this are listed as expiring.
    type: int
    default: 30
  client_renew_before_days:
    description:
      - The client certificates' renewal window in days (the client role's C(pgtls_client_renew_before_days)),
        from which each client certificate's renewal time is given (C(renews_at),
        C(pgtls_client_certificate_renewal_timestamp_seconds)).
    type: int
    default: 30
  client_renew_before_percent:
    description:
      - The client certificates' renewal window as a percentage of their lifetime (the client role's
        C(pgtls_client_renew_before_percent)); 0 to 99.
    type: int
    default: 33
  min_days:
    description: The policy the audit applies (fewest days a server certificate may have left), shown in the page.
    type: int
    default: 14
  allow_stopped:
    description: A cluster that is not running is a warning rather than a failure (the role's C(pgtls_allow_stopped)).
    type: bool
    default: false
  json_path:
    description: Where to write the JSON report.
    type: path
  metrics_path:
    description: Where to write the Prometheus textfile (for example C(/var/lib/node_exporter/textfile/pgtls.prom)).
    type: path
  html_path:
    description: Where to write the HTML page.
    type: path
notes:
  - "An alert rule for the textfile - C(pgtls_certificate_days_left < 14 or pgtls_served_matches_installed == 0 or
    pgtls_audit_success == 0), and for CRLs C(pgtls_crl_next_update_timestamp_seconds - time() < 3 * 86400)."
"""

EXAMPLES = r"""
- name: Audit outputs on the controller
  pgtls.ssl.audit_report:
    servers: "{{ audit_entries }}"
    pki_dir: "{{ pki_dir }}"
    json_path: /var/www/audit/pgtls.json
    metrics_path: /var/lib/node_exporter/textfile/pgtls.prom
    html_path: /var/www/audit/index.html
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
summary:
  description: Clusters, failed, warned, and the nearest server certificate expiry.
  returned: success
  type: dict
servers:
  description: The records, one per host and cluster, as in the JSON report.
  returned: success
  type: list
  elements: dict
clients:
  description: Every client certificate (C(certificates)), those expiring within the window (C(expiring)), and the
    registry of revocations (C(revoked)).
  returned: success
  type: dict
intermediates:
  description: The issuers of the installed server certificates.
  returned: success
  type: list
  elements: str
written:
  description: The files written (or that would be, in check mode).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import AUDIT_REPORT

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.reports.audit_report import audit_report
except ImportError:  # cryptography missing: run() reports it
    audit_report = None


def main() -> None:
    module = AnsibleModule(argument_spec=AUDIT_REPORT, supports_check_mode=True)
    run(module, audit_report)


if __name__ == "__main__":
    main()
