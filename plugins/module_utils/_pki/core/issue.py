# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Issuing: the signing CA (loaded lazily from files or PEM content), CSRs and certificates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

try:
    from cryptography import x509
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = MISSING

from . import compat
from .errors import PkiError
from .files import read_bytes
from .keys import key_type_of, load_private_key, same_public_key, signing_hash, verify_signature
from .profiles import Profile, extension

# Certificates start this long before "now" so a host whose clock is slightly behind accepts them.
BACKDATE = dt.timedelta(minutes=5)


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and signed_by(cert, cert)


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``issuer``'s key verifies ``cert``'s signature and the names chain."""
    if cert.issuer != issuer.subject:
        return False
    return verify_signature(issuer.public_key(), cert.signature, cert.tbs_certificate_bytes,
                            cert.signature_hash_algorithm)


def ca_problem(cert: x509.Certificate, at: dt.datetime | None = None) -> str | None:
    """Why ``cert`` cannot sign certificates now (None if it can)."""
    at = at or compat.now()
    constraints = extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        return f"{cert.subject.rfc4514_string()} is not a CA certificate (basicConstraints CA:TRUE missing)"
    usage = extension(cert, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        return f"{cert.subject.rfc4514_string()} has keyUsage without keyCertSign"
    if compat.not_after(cert) < at:
        return f"CA certificate {cert.subject.rfc4514_string()} expired on {compat.not_after(cert).isoformat()}"
    if compat.not_before(cert) > at:
        return f"CA certificate {cert.subject.rfc4514_string()} is not valid before {compat.not_before(cert).isoformat()}"
    return None


@dataclass
class Issuer:
    """A signing CA. The key is loaded only when something must be signed (a root kept offline is never needed
    to check or keep existing material)."""

    cert: x509.Certificate
    chain: list[x509.Certificate]
    where: str
    key_loader: Callable[[], object] | None = None
    source: str = ""  # the certificate option and its file, for messages
    key_source: str = ""
    _key: object = field(default=None, repr=False)
    # Other roots every trust file carries during a root rotation (the CA folder's next-root/ or previous-root/).
    also_trusted: list = field(default_factory=list)
    # A PKI engine that signs for this CA (its certificate is the engine's intermediate, mirrored; no key here):
    # called with the host's CSR and the request, returns the leaf it checked (plugin_utils/_issuance.EngineSigner).
    signer: Callable | None = None

    def key(self):
        if self._key is None:
            if self.key_loader is None:
                raise PkiError("a private key is needed to sign but none was given", where=f"{self.where}_key_path")
            key = self.key_loader()
            if not same_public_key(key, self.cert.public_key()):
                raise PkiError(f"the CA private key does not match the CA certificate ({self.source})",
                               where=self.key_source or f"{self.where}_key_path")
            self._key = key
        return self._key

    @cached_property
    def intermediates(self) -> list[x509.Certificate]:
        """What follows a leaf in server.crt/postgresql.crt: the issuer and its chain, roots left out."""
        return [c for c in [self.cert, *self.chain] if not is_self_signed(c)]

    @cached_property
    def root(self) -> x509.Certificate | None:
        for cert in [self.cert, *self.chain]:
            if is_self_signed(cert):
                return cert
        return None

    @property
    def trusted(self) -> list[x509.Certificate]:
        """What a root.crt, ssl_ca_file or sslrootcert holds: the root, and during a root rotation the other root."""
        return [self.root, *self.also_trusted] if self.root is not None else []


def load_issuer(params: dict, prefix: str = "issuer", *, require_valid: bool = True, read=read_bytes) -> Issuer | None:
    """Build an Issuer from ``<prefix>_cert_path|content``, ``_chain_path|content``, ``_key_path|content`` and
    ``_key_passphrase``. Returns None when no issuer certificate is given. ``read``: how files are read (a write
    plan's read sees what the run will have written)."""
    cert_data, cert_where = _material(params, f"{prefix}_cert", read)
    if cert_data is None:
        return None
    cert = compat.load_certificates(cert_data, cert_where)[0]
    if require_valid:
        problem = ca_problem(cert)
        if problem:
            raise PkiError(problem, where=cert_where)
    chain_data, chain_where = _material(params, f"{prefix}_chain", read)
    chain = compat.load_certificates(chain_data, chain_where) if chain_data is not None else []
    previous = cert
    for index, parent in enumerate(chain):
        if not signed_by(previous, parent):
            raise PkiError(
                f"certificate #{index + 1} ({parent.subject.rfc4514_string()}) did not issue "
                f"{previous.subject.rfc4514_string()}; list the chain from the issuer's parent up to the root",
                where=chain_where,
            )
        previous = parent

    key_path = params.get(f"{prefix}_key_path")
    key_content = params.get(f"{prefix}_key_content")
    passphrase = params.get(f"{prefix}_key_passphrase")
    loader = None
    if key_content:
        def loader():
            return load_private_key(key_content.encode(), passphrase, f"{prefix}_key_content")
    elif key_path:
        def loader():
            return load_private_key(read(key_path, f"{prefix}_key_path"), passphrase,
                                    f"{prefix}_key_path ({key_path})")
    key_source = (f"{prefix}_key_content" if key_content else f"{prefix}_key_path ({key_path})" if key_path
                  else f"{prefix}_key_path")
    also = [compat.load_certificates(read(path, f"{prefix}_also_trusted", nofollow=True), path)[0]
            for path in params.get(f"{prefix}_also_trusted") or []]
    return Issuer(cert=cert, chain=chain, where=prefix, key_loader=loader, source=cert_where, key_source=key_source,
                  also_trusted=also)


def _material(params: dict, stem: str, read=read_bytes) -> tuple[bytes | None, str]:
    content = params.get(f"{stem}_content")
    if content:
        return content.encode(), f"{stem}_content"
    path = params.get(f"{stem}_path")
    if path:
        return read(path, f"{stem}_path"), f"{stem}_path ({path})"
    return None, stem


def make_csr(key, subject: x509.Name, sans: list[x509.GeneralName]) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, signing_hash(key))


def issue_certificate(
    *,
    subject: x509.Name,
    public_key,
    profile: Profile,
    valid_days: int,
    issuer: Issuer | None = None,
    self_signing_key=None,
    sans: list[x509.GeneralName] | None = None,
    at: dt.datetime | None = None,
) -> x509.Certificate:
    """Sign a certificate for ``public_key`` with ``profile``'s extensions, by ``issuer`` (or self-signed with
    ``self_signing_key``). The end date never passes the issuer's own end date."""
    at = at or compat.now()
    not_after = at + dt.timedelta(days=valid_days)
    if issuer is not None:
        signer = issuer.key()
        issuer_name = issuer.cert.subject
        issuer_public = issuer.cert.public_key()
        issuer_ski = extension(issuer.cert, x509.SubjectKeyIdentifier)
        not_after = min(not_after, compat.not_after(issuer.cert))
    else:
        signer = self_signing_key
        issuer_name = subject
        issuer_public = public_key
        issuer_ski = None
    key_type = key_type_of(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=profile.ca, path_length=profile.path_length if profile.ca else None),
                       critical=True)
        .add_extension(profile.key_usage(key_type), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_ski is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False
        )
    else:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public),
                                        critical=False)
    if profile.eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(profile.eku)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, signing_hash(signer))
