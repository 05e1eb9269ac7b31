# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Certificate profiles: which extensions each kind of certificate carries (the manual's ``v3_ca`` and friends)."""

from __future__ import annotations

from dataclasses import dataclass

try:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = ExtendedKeyUsageOID = MISSING


@dataclass(frozen=True)
class Profile:
    name: str
    ca: bool
    path_length: int | None
    key_cert_sign: bool
    eku: tuple = ()

    def key_usage(self, key_type: str) -> x509.KeyUsage:
        # CA: keyCertSign + cRLSign (+ digitalSignature). Leaf: digitalSignature, plus keyEncipherment for RSA
        # (TLS 1.2 RSA key exchange); never keyEncipherment for EC/Ed25519 keys.
        return x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=(not self.ca) and key_type.startswith("rsa"),
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=self.key_cert_sign,
            crl_sign=self.key_cert_sign,
            encipher_only=False,
            decipher_only=False,
        )

    def differences(self, cert: x509.Certificate, key_type: str) -> list[str]:
        """What in ``cert`` does not match this profile (empty when it matches)."""
        problems = []
        ext = _ext(cert, x509.BasicConstraints)
        if ext is None or ext.value.ca != self.ca or (self.ca and ext.value.path_length != self.path_length):
            problems.append("basic constraints")
        ku = _ext(cert, x509.KeyUsage)
        if ku is None or ku.value != self.key_usage(key_type) or not ku.critical:
            problems.append("key usage")
        eku = _ext(cert, x509.ExtendedKeyUsage)
        have = tuple(eku.value) if eku else ()
        if set(have) != set(self.eku):
            problems.append("extended key usage")
        if _ext(cert, x509.SubjectKeyIdentifier) is None:
            problems.append("subject key identifier")
        return problems

    def engine_differences(self, cert: x509.Certificate) -> list[str]:
        """What a certificate a PKI engine issued lacks for this profile: the engine's role decides key usage and adds
        other extended usages (server_flag, client_flag); PostgreSQL and libpq need a leaf that is no CA and carries
        this profile's extended key usage."""
        problems = []
        ext = _ext(cert, x509.BasicConstraints)
        if ext is not None and ext.value.ca != self.ca:
            problems.append("basic constraints")
        eku = _ext(cert, x509.ExtendedKeyUsage)
        if eku is not None and not set(self.eku) <= set(eku.value):
            problems.append("extended key usage")
        return problems


def _ext(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def extension(cert, cls):
    """The extension value of class ``cls`` in ``cert``, or None."""
    found = _ext(cert, cls)
    return found.value if found else None


ROOT_CA = Profile("root_ca", ca=True, path_length=None, key_cert_sign=True)
INTERMEDIATE_CA = Profile("intermediate_ca", ca=True, path_length=0, key_cert_sign=True)
SERVER = Profile("server", ca=False, path_length=None, key_cert_sign=False, eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
# A server certificate that its server also presents as a client: etcd's (its gRPC gateway dials its own server with
# it when client certificates are required, and peers dial each other with it).
SERVER_AND_CLIENT = Profile("server_and_client", ca=False, path_length=None, key_cert_sign=False,
                            eku=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH))
CLIENT = Profile("client", ca=False, path_length=None, key_cert_sign=False, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
