# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private to the collection: the flow attributes of the modules whose code is an action plugin on the controller
(ca_folder, client_cert, cluster_tls, server_cert, intermediate_rotation), documented once; each module also
extends ansible.builtin.action_common_attributes.flow, which describes them."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
"""
