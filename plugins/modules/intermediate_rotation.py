#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: intermediate_rotation
short_description: Start or retire an intermediate CA rotation in the CA folder, under the CA folder's lock
version_added: 0.2.0
description:
  - O(step=start) moves the current intermediate (C(intermediate.crt), C(.key), C(.crl)) to C(previous/), where it
    stays trusted and its CRL stays on the servers, and raises the generation number in C(intermediate.generation),
    so the next intermediate the server role makes has a name of its own (C(... G<n>)). C(previous/) appears at once
    with C(previous/generation), the generation it starts. A second start while a previous intermediate is still
    trusted is refused.
  - O(step=retire) moves the previous intermediate's certificate to C(retired/intermediate-<SERIAL>.crt) (the
    root's CRL then revokes it; a file already there is never replaced), destroys its key and CRL, and removes
    C(previous/). With no rotation in progress it changes nothing.
  - C(previous/) and C(retired/) must be real folders inside the CA folder; a symbolic link, a file, or anything
    in C(previous/) other than an intermediate's files is refused before anything moves. Every move and deletion
    goes through the write planner.
  - Both steps run under the CA folder's lock (C(.pgtls.lock), shared with M(pgtls.ssl.ca) and M(pgtls.ssl.crl)) and
    are resumable - a run killed halfway is finished by the next run of the same step; the generation is never
    counted twice.
  - The playbook C(pgtls.ssl.rotate) calls it with C(pgtls_rotate_intermediate=start|retire), and with O(step=auto)
    otherwise; the playbook C(pgtls.ssl.site) with O(step=auto) before its servers.
  - Runs in the controller's own process (an action plugin with no module), like M(pgtls.ssl.ca_folder), since the
    CA folder is on the controller; the step site takes on every run costs no module execution.
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - pgtls.ssl._controller_action
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Reports the moves it would make.
  diff_mode:
    support: none
options:
  pki_dir:
    description: The CA folder.
    type: path
    required: true
  step:
    description:
      - V(start) a rotation, or V(retire) the previous intermediate.
      - V(auto) starts a rotation when none is in progress and the intermediate has fewer than O(min_days) left;
        else it changes nothing, also before the first rollout (no CA folder, or no intermediate in it, yet). The
        C(pgtls.ssl.rotate) playbook without a step and the C(pgtls.ssl.site) playbook run it unless
        C(pgtls_rotate_auto=false).
    type: str
    required: true
    choices: [start, retire, auto]
  min_days:
    description: With O(step=auto), the days the intermediate must have left - a leaf's lifetime and its renewal window.
    type: int
    default: 0
  lock_timeout:
    description: Seconds to wait for the CA folder's lock.
    type: int
    default: 120
"""

EXAMPLES = r"""
- name: Start a rotation (then run the site and clients playbooks)
  pgtls.ssl.intermediate_rotation:
    pki_dir: "{{ pki_dir }}"
    step: start
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
step:
  description: The step run.
  returned: success
  type: str
generation:
  description: The generation number of the next (or current) intermediate.
  returned: success
  type: int
actions:
  description: What was moved or destroyed (or would be, in check mode).
  returned: success
  type: list
  elements: str
msg:
  description: Why nothing was done (a retire with no rotation in progress), or what O(step=auto) decided.
  returned: O(step=retire) and no C(previous/), or O(step=auto)
  type: str
started:
  description: Whether O(step=auto) started a rotation.
  returned: O(step=auto)
  type: bool
days_left:
  description: The days the intermediate had left (O(step=auto), when no rotation was in progress).
  returned: O(step=auto)
  type: int
"""
