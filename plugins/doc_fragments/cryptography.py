# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Keep the version in line with plugins/module_utils/_pki/deps.py MINIMUM_CRYPTOGRAPHY_VERSION.
    DOCUMENTATION = r"""
options: {}
requirements:
  - cryptography >= 38.0.0 (Debian 12's C(python3-cryptography) 38.0.4 is enough) on the host where the
    module runs.
"""
