# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # When a certificate is issued again, and whether its key is replaced then.
    DOCUMENTATION = r"""
options:
  renew_before_days:
    description:
      - Issue again when fewer than this many days are left. V(0) turns the day rule off.
      - Must be less than the certificate's lifetime (else every run would issue it again).
    type: int
    default: 30
  renew_before_percent:
    description:
      - Issue again when less than this percentage of the lifetime is left (a third by default, as cert-manager and
        Let's Encrypt renew). V(0) turns it off. Either rule renews.
    type: int
    default: 33
  run_interval_hours:
    description:
      - How often the runs that renew are scheduled (an AWX schedule, a timer), in hours. A renewal window (the
        larger of O(renew_before_days) and O(renew_before_percent) of the lifetime) shorter than it is refused
        before anything is asked of the host (a certificate could expire between two runs). V(0) declares none.
    type: int
    default: 0
  key_rotation:
    description:
      - V(on_renewal) - each time a certificate of the key is issued again (renewal, new names, a new issuer), a new
        private key is made on the host first; the current key stays in place until the new certificate is
        installed with its key (a run killed in between leaves the new key as C(<key_path>.pgtls-new), reused by the
        next run), like cert-manager's rotation policy C(Always).
      - V(never) - the key is kept for every renewal (made again only when missing or of another key type).
      - A key whose certificate was revoked for C(key_compromise) in the CA folder (O(ca_folder)) is never certified
        again, whatever this says; with V(never) the task fails naming the host or client and the revoked serial.
    type: str
    choices: [on_renewal, never]
    default: on_renewal
  rekey_before:
    description:
      - Replace the key of a certificate issued before this time (ISO 8601, V(2026-12-05) or
        V(2026-12-05T10:00:00Z); not in the future), and issue its certificate again - a forced re-key that stays
        idempotent (the next run finds a certificate issued after it). Give it for one host, a group or a run.
    type: str
"""
