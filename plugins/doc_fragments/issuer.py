# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The signing CA, as files on the machine where the signing happens or as PEM content.
    DOCUMENTATION = r"""
options:
  issuer_cert_path:
    description:
      - Path of the issuing CA's certificate (PEM). Only the first certificate of the file is used.
      - The issuer must be a CA (C(basicConstraints CA:TRUE), C(keyCertSign) if it has a key usage) and be valid now.
      - Exactly one of O(issuer_cert_path) and O(issuer_cert_content) is needed where noted.
    type: path
  issuer_cert_content:
    description:
      - The issuing CA's certificate as PEM text, for example from a vault or an AWX credential.
    type: str
  issuer_key_path:
    description:
      - Path of the issuing CA's private key (PEM). It is read only when something must be signed, so a CA
        whose key is kept offline is not needed while existing material stays valid.
    type: path
  issuer_key_content:
    description:
      - The issuing CA's private key as PEM text (vault, AWX credential). Never logged, never returned.
    type: str
  issuer_key_passphrase:
    description:
      - Passphrase of an encrypted issuer key.
    type: str
  issuer_chain_path:
    description:
      - Certificates above the issuer, from its parent up to the root (the root may be included), PEM.
      - Needed when the issuer is an intermediate, so that chains written for leaves end at the last
        intermediate and C(root.crt) can be derived. Each certificate must have issued the one before it.
    type: path
  issuer_chain_content:
    description:
      - The same as O(issuer_chain_path), as PEM text.
    type: str
"""
