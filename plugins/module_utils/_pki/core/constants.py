# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Names shared by argument specs and the PKI core; imports nothing, so specs load without cryptography."""

from __future__ import annotations

from urllib.parse import quote

# The public names of the key types, in the order the documentation lists them.
KEY_TYPES = ("ec-p256", "ec-p384", "rsa2048", "rsa3072", "rsa4096", "ed25519")
DEFAULT_KEY_TYPE = "ec-p256"

# CRL entry reasons (RFC 5280 CRLReason), as the crl module's option names them.
# Whether a renewal certifies a new key made on the host (cert-manager's rotationPolicy Always) or the same one.
KEY_ROTATIONS = ("on_renewal", "never")

REVOCATION_REASONS = (
    "unspecified",
    "key_compromise",
    "ca_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "certificate_hold",
    "privilege_withdrawn",
    "aa_compromise",
)

# The file names libpq looks for in ~/.postgresql/ (a client's folder): certificate, key, root.
LIBPQ_CERT_FILE, LIBPQ_KEY_FILE, LIBPQ_ROOT_FILE = "postgresql.crt", "postgresql.key", "root.crt"
LIBPQ_CRL_FILE = "root.crl"  # sslcrl: read when present in ~/.postgresql
LIBPQ_FOLDER = ".postgresql"  # the folder of a home where libpq looks for them


def folder_name(name: str) -> str:
    """The folder of a role name (any string) under a bundle folder or the issued/ archive: percent-encoded, so it
    never holds a slash, is never "." or ".." nor hidden, and two names never share one (the encoding reverses)."""
    encoded = quote(name, safe="@+=,-_")
    return "%2E" + encoded[1:] if encoded.startswith(".") else encoded
