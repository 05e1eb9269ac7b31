# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Chain checks as OpenSSL (and so PostgreSQL and libpq) make them, written against cryptography 38's API."""

from __future__ import annotations

import datetime as dt

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = hashes = rsa = ExtendedKeyUsageOID = MISSING

from . import compat
from .issue import is_self_signed, signed_by
from .profiles import extension

_WEAK_HASHES = (hashes.SHA1, hashes.MD5)


def _label(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def weak_crypto(cert: x509.Certificate) -> list[str]:
    problems = []
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
        problems.append(f"{_label(cert)}: RSA key of {public.key_size} bits (at least 2048 needed)")
    algorithm = cert.signature_hash_algorithm
    if algorithm is not None and isinstance(algorithm, _WEAK_HASHES):
        problems.append(f"{_label(cert)}: signed with {algorithm.name.upper()}, which is broken")
    return problems


def build_path(chain: list[x509.Certificate], anchors: list[x509.Certificate]) -> tuple[list[x509.Certificate], str | None]:
    """Walk from ``chain[0]`` through ``chain[1:]`` to one of ``anchors``. Returns (path, problem)."""
    path = [chain[0]]
    pool = chain[1:]
    while True:
        current = path[-1]
        for anchor in anchors:
            if current == anchor:
                return path, None
            if signed_by(current, anchor):
                path.append(anchor)
                return path, None
        parent = next((c for c in pool if c not in path and signed_by(current, c)), None)
        if parent is None:
            if is_self_signed(current):
                return path, f"{_label(current)} is a self-signed certificate that is not among the trust anchors"
            return path, (f"unable to get issuer certificate: {_label(current)} was issued by "
                          f"{current.issuer.rfc4514_string()}, which is neither in the chain nor a trust anchor")
        path.append(parent)


def verify_chain(
    chain: list[x509.Certificate],
    anchors: list[x509.Certificate],
    purpose: str | None = None,
    at: dt.datetime | None = None,
) -> list[str]:
    """Problems that make OpenSSL reject ``chain`` (leaf first) against ``anchors``; empty when it verifies."""
    at = at or compat.now()
    path, problem = build_path(chain, anchors)
    problems = [problem] if problem else []
    if problem is None and not is_self_signed(path[-1]):
        problems.append(f"trust anchor {_label(path[-1])} is not a root (self-signed) certificate: OpenSSL, and so "
                        "PostgreSQL and libpq, accept only a root in ssl_ca_file/root.crt")
    wanted_eku = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}.get(purpose)
    for depth, cert in enumerate(path):
        if compat.not_after(cert) < at:
            problems.append(f"{_label(cert)} expired on {compat.not_after(cert).isoformat()}")
        if compat.not_before(cert) > at:
            problems.append(f"{_label(cert)} is not valid before {compat.not_before(cert).isoformat()}")
        eku = extension(cert, x509.ExtendedKeyUsage)
        if wanted_eku is not None and eku is not None:
            allowed = set(eku)
            if wanted_eku not in allowed and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in allowed:
                problems.append(f"{_label(cert)}: extended key usage does not allow {purpose} authentication")
        problems.extend(weak_crypto(cert))
        if depth == 0:
            continue
        constraints = extension(cert, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            problems.append(f"{_label(cert)} signs certificates but is not a CA (basicConstraints CA:TRUE missing)")
            continue
        usage = extension(cert, x509.KeyUsage)
        if usage is not None and not usage.key_cert_sign:
            problems.append(f"{_label(cert)} signs certificates but its keyUsage lacks keyCertSign")
        below = depth - 1  # CA certificates below this one, leaf excluded
        if constraints.path_length is not None and below > constraints.path_length:
            problems.append(f"{_label(cert)}: path length constraint {constraints.path_length} exceeded")
    return problems


def root_in_file(chain: list[x509.Certificate]) -> list[str]:
    """A self-signed root after the leaf: PostgreSQL works with it, but its manual says server.crt holds the leaf
    and the intermediates only (the root belongs in the clients' root.crt and in ssl_ca_file)."""
    return [f"certificate #{index + 1} ({_label(cert)}) is a self-signed root: leave it out of this file (the "
            "root belongs in root.crt / ssl_ca_file)" for index, cert in enumerate(chain)
            if index > 0 and is_self_signed(cert)]


def order_problems(chain: list[x509.Certificate]) -> list[str]:
    """Findings about the layout of a server.crt/postgresql.crt file (leaf first, each next one its issuer)."""
    problems = []
    leaf_ext = extension(chain[0], x509.BasicConstraints)
    if leaf_ext is not None and leaf_ext.ca:
        problems.append("the first certificate is a CA certificate: the leaf must come first")
    for index in range(1, len(chain)):
        if not signed_by(chain[index - 1], chain[index]):
            problems.append(f"certificate #{index + 1} ({_label(chain[index])}) did not issue certificate "
                            f"#{index} ({_label(chain[index - 1])}): order is leaf, then each issuer in turn")
    return problems
