#!/usr/bin/python
# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: validate
short_description: Check PostgreSQL TLS material where it is installed, and what a server really serves
version_added: 0.1.0
description:
  - Checks a certificate file (leaf first, then intermediates) and returns structured findings. Fails, by default,
    with a message that lists every failed check and names the file.
  - The checks are those PostgreSQL and libpq make, and the mistakes the manual's procedure invites - the key
    matches the certificate; the file is in order; the chain builds to the given root with C(CA:TRUE) and
    C(keyCertSign) on every CA and the right extended key usage along the chain; days left against thresholds;
    names covered as libpq's C(verify-full) checks them (with a warning that libpq before 15 ignores IP address
    SANs); the key's owner and mode pass PostgreSQL's rule and the server's user can read it; a current CRL signed
    by every CA of the chain (C(ssl_crl_file)); weak crypto (RSA under 2048 bits, SHA-1 or MD5 signatures); a
    self-signed root inside the certificate file (a warning - PostgreSQL works with it, but the root belongs in
    C(root.crt) and C(ssl_ca_file) only).
  - With O(probe_host), connects to a running server, sends PostgreSQL's SSLRequest, completes a TLS handshake
    without verifying, and compares the served chain with the file. Only this tells whether a reload took
    effect, since PostgreSQL keeps serving the old certificate when new files are bad.
  - Changes nothing.
author:
  - pgtls.ssl maintainers (@pgtls)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pgtls.ssl.cryptography
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Runs every check; it never changes anything anyway.
  diff_mode:
    support: none
options:
  certificate_path:
    description: The certificate file, leaf first (C(server.crt) or C(postgresql.crt)). This or O(certificate_content).
    type: path
  certificate_content:
    description: The same as PEM text.
    type: str
  key_path:
    description: The private key to match against the leaf and check for owner and mode.
    type: path
  key_passphrase:
    description: Passphrase of an encrypted key.
    type: str
  ca_path:
    description: Trust anchors (the root, as in C(ssl_ca_file) or C(root.crt)). Without it the chain is not verified.
    type: path
  ca_content:
    description: The same as PEM text.
    type: str
  crl_path:
    description: The CRL file (as in C(ssl_crl_file)); checks a current CRL for every CA and that nothing is revoked.
    type: path
  purpose:
    description: The extended key usage the chain must allow.
    type: str
    default: server
    choices: [server, client, any]
  hostnames:
    description: Names and addresses clients use with C(sslmode=verify-full); each must be covered.
    type: list
    elements: str
    default: []
  min_days:
    description: Fail when fewer days than this are left on any certificate of the chain.
    type: int
    default: 0
  warn_days:
    description: Warn when fewer days than this are left.
    type: int
    default: 30
  ca_min_days:
    description:
      - Fail (finding C(ca_validity)) when a CA of the chain (an intermediate, the root from O(ca_path)) has fewer days
        left than this - set it to a leaf's lifetime plus its renewal window, so the intermediate rotation starts
        before leaves would outlive their CA. V(0) turns the check off.
    type: int
    default: 0
  server_user:
    description: OS user the server runs as (for example V(postgres)); checks it can read the key.
    type: str
  probe_host:
    description: Address of a running PostgreSQL server to probe. Only hosts you manage.
    type: str
  probe_port:
    description: Port to probe.
    type: int
    default: 5432
  probe_server_name:
    description: Server name (SNI) to send; defaults to O(probe_host) when it is a name.
    type: str
  probe_timeout:
    description: Seconds to wait for the connection and handshake.
    type: float
    default: 5.0
  probe_negotiation:
    description:
      - How the probe starts TLS. V(postgres) sends the SSLRequest first; V(direct) starts the TLS handshake at
        once and offers ALPN C(postgresql), as libpq's C(sslnegotiation=direct) (PostgreSQL 17 and newer); V(tls)
        starts it at once with no ALPN, for HTTPS services (Patroni's REST API, etcd).
    type: str
    default: postgres
    choices: [postgres, direct, tls]
    version_added: 0.2.0
  probe_client_auth:
    description:
      - Also connect without a client certificate and expect the server to refuse it (O(probe_negotiation=tls)
        only - an HTTPS service answering a first request is an acceptance); an acceptance fails (finding
        C(client_auth)), the result is in RV(served.client_auth).
    type: bool
    default: false
    version_added: 0.3.0
  probe_direct_tls:
    description:
      - Also try a direct TLS handshake (ALPN C(postgresql)) and report in RV(served.direct_tls) whether the server
        accepts it; a refusal is a warning (finding C(direct_tls)). PostgreSQL 17 and newer accept it.
    type: bool
    default: false
    version_added: 0.2.0
  fail_on_findings:
    description: Fail the task when any check fails. With V(false), return the findings and let the play decide.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Validate the installed server material as the server will see it
  pgtls.ssl.validate:
    certificate_path: /etc/postgresql/15/main/server.crt
    key_path: /etc/postgresql/15/main/server.key
    ca_path: /etc/postgresql/15/main/root.crt
    crl_path: /etc/postgresql/15/main/root.crl
    hostnames: ["{{ inventory_hostname }}", "{{ ansible_facts['fqdn'] }}"]
    server_user: postgres
    warn_days: 30

- name: Prove the running server serves the new certificate
  pgtls.ssl.validate:
    certificate_path: /etc/postgresql/15/main/server.crt
    probe_host: 127.0.0.1
    probe_port: 5432
    fail_on_findings: false
  register: served
"""

RETURN = r"""
ok:
  description: True when no check failed.
  returned: always
  type: bool
msg:
  description: Summary; on failure every failed check with its message.
  returned: always
  type: str
findings:
  description: One entry per check result.
  returned: success
  type: list
  elements: dict
  contains:
    check:
      description: V(order), V(root_in_file), V(key_match), V(key_permissions), V(chain), V(weak_crypto),
        V(validity), V(hostname), V(crl), V(probe), V(direct_tls) or V(client_auth).
      type: str
      returned: success
    status: {description: "V(ok), V(warn) or V(fail).", type: str, returned: success}
    message: {description: "What was found, naming the file or host.", type: str, returned: success}
fail_count:
  description: Number of failed checks.
  returned: success
  type: int
warn_count:
  description: Number of warnings.
  returned: success
  type: int
days_left:
  description: Fewest whole days left on any certificate of the chain.
  returned: success
  type: int
certificate:
  description: Facts about the leaf (subject, issuer, serial, validity, SANs, fingerprints), as the ca module returns them.
  returned: success
  type: dict
chain:
  description: Facts about the certificates above the leaf, up to the trust anchor when O(ca_path) is given.
  returned: success
  type: list
  elements: dict
crls:
  description: The CRLs of O(crl_path) (issuer, CRL number, next update, number of revoked serials).
  returned: success
  type: list
  elements: dict
  version_added: 0.2.0
key:
  description: The key file's path, owner, group and mode (never its content).
  returned: when O(key_path) is set and the key could be read
  type: dict
  version_added: 0.2.0
served:
  description: What the probe saw (leaf facts, chain fingerprints, protocol, cipher, RV(served.matches_file)).
  returned: when O(probe_host) is set and the handshake succeeded
  type: dict
  contains:
    matches_file: {description: "Whether the served leaf is the leaf in the file.", type: bool, returned: success}
    protocol: {description: "TLS version negotiated.", type: str, returned: success}
    cipher: {description: "Cipher negotiated.", type: str, returned: success}
    negotiation: {description: "V(postgres), V(direct) or V(tls), as O(probe_negotiation).", type: str, returned: success}
    client_auth:
      description: "Whether the server refused a client without a certificate (null unless O(probe_client_auth))."
      type: bool
      returned: success
    direct_tls:
      description: "Whether a direct TLS handshake succeeded (null unless O(probe_direct_tls))."
      type: bool
      returned: success
    chain_fingerprints: {description: "SHA-256 of each served certificate.", type: list, elements: str, returned: success}
    certificate: {description: "Facts about the served leaf.", type: dict, returned: success}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.runner import run
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import VALIDATE

try:
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.validate import validate
except ImportError:  # cryptography missing: run() reports it
    validate = None


def main() -> None:
    module = AnsibleModule(
        argument_spec=VALIDATE,
        mutually_exclusive=[("certificate_path", "certificate_content"), ("ca_path", "ca_content")],
        required_one_of=[("certificate_path", "certificate_content")],
        supports_check_mode=True,
    )
    run(module, lambda params, check_mode: validate(params))


if __name__ == "__main__":
    main()
