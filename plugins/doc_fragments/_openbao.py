# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private to the collection: the openbao option (specs.OPENBAO_OPTION), documented once for ca_folder, cluster_tls,
server_cert and client_cert."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  openbao:
    description:
      - The CA lives in an OpenBao (or HashiCorp Vault) PKI secrets engine; its intermediate mount's role signs the
        CSR of each key made on its host (C(<int_mount>/sign/<role>); never C(issue/<role>), which would make the key
        in the engine), and the engine's root, intermediate and CRLs are mirrored into the CA
        folder (the issuing modules' C(ca_folder), the C(path) of M(pgtls.ssl.ca_folder)), from where the hosts get
        them as with the collection's own CA.
      - Needs the CA folder (the mirror M(pgtls.ssl.ca_folder) keeps with this option); excludes the issuer's key and
        certificate options.
      - Each certificate the engine returns is checked on the controller before anything is installed - for the CSR's
        key, with exactly the names asked for, chaining to the mirrored root; a role that refuses a name, caps the
        lifetime inside the renewal window or leaves out the server or client usage fails the task naming the host
        and the setting, before any host changes.
      - Credentials are never shown in output, results or messages.
    type: dict
    version_added: 0.3.0
    suboptions:
      address:
        description:
          - The engine's address (scheme, host and port), for example V(https://openbao.example.com:8200).
          - Default from the environment - E(BAO_ADDR), then E(VAULT_ADDR).
        type: str
      role:
        description: The PKI role of O(openbao.int_mount) that signs (its allowed domains, key types and max TTL apply).
        type: str
        required: true
      int_mount:
        description: The mount of the intermediate CA that signs.
        type: str
        default: pki_int
      root_mount:
        description: The mount of the root CA (the trust anchor every host gets, and the CRL of the root).
        type: str
        default: pki
      token:
        description:
          - A token allowed to sign, read the CA and CRLs and revoke. Default from E(BAO_TOKEN), then E(VAULT_TOKEN)
            (not used when O(openbao.role_id) and O(openbao.secret_id) are given).
        type: str
      role_id:
        description: AppRole login instead of a token - the role ID (with O(openbao.secret_id)).
        type: str
      secret_id:
        description: AppRole login - the secret ID.
        type: str
      approle_mount:
        description: Where the AppRole auth method is mounted.
        type: str
        default: approle
      namespace:
        description: The namespace (Vault Enterprise, OpenBao namespaces). Default from E(BAO_NAMESPACE), then E(VAULT_NAMESPACE).
        type: str
      ca_path:
        description: The CA bundle that verifies the engine's TLS certificate. Default from E(BAO_CACERT), then E(VAULT_CACERT).
        type: path
      timeout:
        description: Seconds to wait for each answer of the engine.
        type: float
        default: 30.0
"""
