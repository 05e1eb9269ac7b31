# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Keep the version in line with plugins/module_utils/_pki/core/deps.py MINIMUM_CRYPTOGRAPHY_VERSION.
    DOCUMENTATION = r"""
options: {}
requirements:
  - cryptography >= 3.3 on the host where the module runs - the distributions' own C(python3-cryptography) is
    enough (Debian 11 3.3.2, Ubuntu 22.04 3.4.8, RHEL 9 36, Debian 12 38.0.4, Ubuntu 24.04 41, Debian 13 43).
"""
