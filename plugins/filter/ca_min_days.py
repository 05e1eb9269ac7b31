# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filter pgtls.ssl.ca_min_days: the least a CA must have left for its leaves."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ca_min_days
short_description: The days a CA must have left for the leaves it signs
version_added: 0.4.0
description:
  - A leaf's lifetime plus its renewal window (the larger of the days and the percentage of the lifetime) - with
    less left, an intermediate would soon be outlived by its leaves, so the audit fails it and the rotate playbook
    starts an intermediate rotation.
options:
  _input:
    description: The leaves' lifetime in days.
    type: int
    required: true
  renew_before_days:
    description: Renewal window in days.
    type: int
    required: true
  renew_before_percent:
    description: Renewal window as a percentage of the lifetime.
    type: int
    required: true
"""

EXAMPLES = r"""
- name: 365-day leaves renewed with 30 days or a third left need 486 days of their CA
  ansible.builtin.debug:
    msg: "{{ 365 | pgtls.ssl.ca_min_days(30, 33) }}"
"""

RETURN = r"""
_value:
  description: Days.
  type: int
"""


def ca_min_days(valid_days, renew_before_days, renew_before_percent):
    # Imported when called: checks.py loads cryptography, and Ansible imports every filter file of the collection in
    # each forked worker that uses any one of them.
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.checks import ca_min_days as days

    return days(valid_days, renew_before_days, renew_before_percent)


class FilterModule:
    def filters(self):
        return {"ca_min_days": ca_min_days}
