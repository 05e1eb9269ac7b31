# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private to the collection: one key/certificate item (specs.HOST_ITEM), for pgtls.ssl.host_material's O(items)
and pgtls.ssl.cluster_files' O(material) and O(client_material) (one block, a YAML anchor). ITEMS and MATERIAL hold
the same suboptions, written twice because ansible-test reads a doc fragment only as one string literal:
tests/unit/plugins/modules/test_docs_match_specs.py checks that they stay the same."""

from __future__ import annotations


class ModuleDocFragment:
    ITEMS = r"""
options:
  items:
    description: The key/certificate pairs, handled in one module execution.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: A label for messages and results (for example the role name).
        type: str
        required: true
      key_path:
        description: The private key file.
        type: path
        required: true
      cert_path:
        description: The certificate file (leaf first, then intermediates).
        type: path
        required: true
      root_path:
        description: Where C(root) is written (a client's C(root.crt)).
        type: path
      crl_path:
        description:
          - Where C(crl) is written (a client's C(root.crl), libpq's C(sslcrl)). Items may share it, as C(root_path).
        type: path
        version_added: 0.4.0
      csr_path:
        description: Also keep the CSR in this file (rewritten only when key, subject or SANs change).
        type: path
      key_type:
        description: Type of a new key; an existing key of another type is replaced (via a pending key).
        type: str
        default: ec-p256
        choices: [ec-p256, ec-p384, rsa2048, rsa3072, rsa4096, ed25519]
      common_name:
        description: CN of the CSR. Defaults to C(name).
        type: str
      subject_alt_names:
        description: SANs of the CSR, C(DNS:name), C(IP:address), or a bare name or address.
        type: list
        elements: str
        default: []
      owner:
        description: Owner of the files (name or uid).
        type: str
      group:
        description: Group of the files (name or gid).
        type: str
      owner_group:
        description:
          - When C(group) is not given, the files get the primary group of C(owner) on the host.
        type: bool
        default: false
        version_added: 0.3.0
      key_mode:
        description: Mode of the key file.
        type: str
        default: '0600'
      cert_mode:
        description: Mode of the certificate, CSR and root files.
        type: str
        default: '0644'
      create_dir:
        description: Create the key's folder (mode 0700, same owner) if it is missing; its parent must exist.
        type: bool
        default: false
      create_parents:
        description:
          - With C(create_dir), also create the folders above the key's folder that are missing (mode 0755, owned by
            the user the module runs as), as C(install -d) does. The server_cert action sets it from its
            O(pgtls.ssl.server_cert#module:create_dir).
        type: bool
        default: false
        version_added: 0.4.0
      base_dir:
        description:
          - Every file of the item must resolve (symbolic links and C(..) followed) to a path inside this folder, a real
            folder, or the task fails before anything is written. The client_cert action sets it to
            O(pgtls.ssl.client_cert#module:dest).
        type: path
        version_added: 0.2.0
      pkcs8_path:
        description: Also keep the key here as unencrypted PKCS#8 DER (owner and mode of the key).
        type: path
        version_added: 0.2.0
      pkcs12_path:
        description: Also keep key, certificate and intermediates here as PKCS#12 encrypted with
          C(pkcs12_passphrase) (owner and mode of the key).
        type: path
        version_added: 0.2.0
      pkcs12_passphrase:
        description: Passphrase of C(pkcs12_path). Never logged.
        type: str
        version_added: 0.2.0
      certificate:
        description: The chain to install, PEM, leaf first.
        type: str
      root:
        description: The trust anchors for C(root_path), PEM.
        type: str
      crl:
        description:
          - The CRLs for C(crl_path), PEM. Each CA of C(certificate)'s chain and each root of C(root) needs a current
            CRL it signed (libpq checks them all), else the item is refused before anything is written.
        type: str
        version_added: 0.4.0
      new_key:
        description:
          - With C(stage=prepare), replace the key by a new one, as the controller's key policy asks, written as
            C(<key_path>.pgtls-new), it takes the key's place when its certificate is installed.
        type: bool
        default: false
"""

    MATERIAL = r"""
options:
  material:
    description:
      - The server key and certificate of the cluster, handled in the same execution (set by the
        M(pgtls.ssl.cluster_tls) action, which signs on the controller). Without its C(certificate) the key is
        ensured (made here when missing) and its CSR returned in RV(material); with it, the certificate is installed.
        As M(pgtls.ssl.host_material) does for one item.
    type: dict
    suboptions: &item
      name:
        description: A label for messages and results (for example the role name).
        type: str
        required: true
      key_path:
        description: The private key file.
        type: path
        required: true
      cert_path:
        description: The certificate file (leaf first, then intermediates).
        type: path
        required: true
      root_path:
        description: Where C(root) is written (a client's C(root.crt)).
        type: path
      crl_path:
        description:
          - Where C(crl) is written (a client's C(root.crl), libpq's C(sslcrl)). Items may share it, as C(root_path).
        type: path
        version_added: 0.4.0
      csr_path:
        description: Also keep the CSR in this file (rewritten only when key, subject or SANs change).
        type: path
      key_type:
        description: Type of a new key; an existing key of another type is replaced (via a pending key).
        type: str
        default: ec-p256
        choices: [ec-p256, ec-p384, rsa2048, rsa3072, rsa4096, ed25519]
      common_name:
        description: CN of the CSR. Defaults to C(name).
        type: str
      subject_alt_names:
        description: SANs of the CSR, C(DNS:name), C(IP:address), or a bare name or address.
        type: list
        elements: str
        default: []
      owner:
        description: Owner of the files (name or uid).
        type: str
      group:
        description: Group of the files (name or gid).
        type: str
      owner_group:
        description:
          - When C(group) is not given, the files get the primary group of C(owner) on the host.
        type: bool
        default: false
        version_added: 0.3.0
      key_mode:
        description: Mode of the key file.
        type: str
        default: '0600'
      cert_mode:
        description: Mode of the certificate, CSR and root files.
        type: str
        default: '0644'
      create_dir:
        description: Create the key's folder (mode 0700, same owner) if it is missing; its parent must exist.
        type: bool
        default: false
      create_parents:
        description:
          - With C(create_dir), also create the folders above the key's folder that are missing (mode 0755, owned by
            the user the module runs as), as C(install -d) does. The server_cert action sets it from its
            O(pgtls.ssl.server_cert#module:create_dir).
        type: bool
        default: false
        version_added: 0.4.0
      base_dir:
        description:
          - Every file of the item must resolve (symbolic links and C(..) followed) to a path inside this folder, a real
            folder, or the task fails before anything is written. The client_cert action sets it to
            O(pgtls.ssl.client_cert#module:dest).
        type: path
        version_added: 0.2.0
      pkcs8_path:
        description: Also keep the key here as unencrypted PKCS#8 DER (owner and mode of the key).
        type: path
        version_added: 0.2.0
      pkcs12_path:
        description: Also keep key, certificate and intermediates here as PKCS#12 encrypted with
          C(pkcs12_passphrase) (owner and mode of the key).
        type: path
        version_added: 0.2.0
      pkcs12_passphrase:
        description: Passphrase of C(pkcs12_path). Never logged.
        type: str
        version_added: 0.2.0
      certificate:
        description: The chain to install, PEM, leaf first.
        type: str
      root:
        description: The trust anchors for C(root_path), PEM.
        type: str
      crl:
        description:
          - The CRLs for C(crl_path), PEM. Each CA of C(certificate)'s chain and each root of C(root) needs a current
            CRL it signed (libpq checks them all), else the item is refused before anything is written.
        type: str
        version_added: 0.4.0
      new_key:
        description:
          - With C(stage=prepare), replace the key by a new one, as the controller's key policy asks, written as
            C(<key_path>.pgtls-new), it takes the key's place when its certificate is installed.
        type: bool
        default: false
  client_material:
    description:
      - A client certificate the service presents to PostgreSQL (PgBouncer's), handled as O(material) in the same
        execution, plan and snapshot; its CSR or installed files in RV(client_material).
    type: dict
    suboptions: *item
"""
