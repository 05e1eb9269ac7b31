# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Other shapes of a client's key and certificate, for TLS stacks other than libpq: PKCS#8 DER (the PostgreSQL
JDBC driver's ``sslkey=...pk8``) and PKCS#12 with a passphrase (Java keystores, .NET). Both are derived from the
PEM key and certificate, written with the key's owner and mode, and rewritten only when they no longer hold the
active key and chain (a PKCS#12 file is encrypted with a random salt, so it is compared by its content)."""

from __future__ import annotations

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from ..core.deps import MISSING

    serialization = pkcs12 = MISSING

from ..core.errors import PkiError
from ..core.info import fingerprint
from ..core.keys import same_public_key


def pkcs8_der(key) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# The key entry's alias (friendlyName). The PostgreSQL JDBC driver reads the entry named "user" and no other
# (PKCS12KeyManager); Java keytool and .NET take any name.
PKCS12_ALIAS = b"user"


def pkcs12_bytes(key, chain: list, passphrase: str) -> bytes:
    return pkcs12.serialize_key_and_certificates(PKCS12_ALIAS, key, chain[0], chain[1:] or None,
                                                 serialization.BestAvailableEncryption(passphrase.encode()))


def pkcs12_current(data: bytes | None, passphrase: str, key, chain: list) -> bool:
    """Does an existing PKCS#12 file open with ``passphrase`` and hold ``key`` and ``chain``?"""
    if not data:
        return False
    try:
        found_key, found_cert, found_cas = pkcs12.load_key_and_certificates(data, passphrase.encode())
    except Exception:  # wrong passphrase, damaged file, another format: rewrite it
        return False
    if found_key is None or found_cert is None or not same_public_key(found_key, key):
        return False
    return [fingerprint(c) for c in [found_cert, *(found_cas or [])]] == [fingerprint(c) for c in chain]


def is_der_or_blank(data: bytes | None) -> bool:
    """A DER output may replace a missing or blank file, or DER data (an ASN.1 SEQUENCE), never text or PEM."""
    return data is None or not data.strip() or (data[:1] == b"\x30" and b"-----BEGIN" not in data)


def ensure_formats(plan, item, key, chain: list) -> list[str]:
    """Declare the item's PKCS#8 DER and PKCS#12 files for ``key`` and ``chain`` to ``plan``; return what changes."""
    changes = []
    if item.pkcs8_path:
        changes += [f"{item.pkcs8_path}: {c}" for c in
                    plan.write(item.pkcs8_path, pkcs8_der(key), item.key_attrs, kind="pkcs8",
                               where=f"{item.where}.pkcs8_path")]
    if item.pkcs12_path:
        where = f"{item.where}.pkcs12_path"
        current = plan.read(item.pkcs12_path, where, missing_ok=True, nofollow=True)
        if not pkcs12_current(current, item.pkcs12_passphrase, key, chain):
            changes.append(f"{item.pkcs12_path}: {'written' if current is None else 'rewritten'}")
            plan.write(item.pkcs12_path, pkcs12_bytes(key, chain, item.pkcs12_passphrase), item.key_attrs,
                       kind="pkcs12", where=where, passphrase=item.pkcs12_passphrase)
        else:
            attr_changes = plan.keep(item.pkcs12_path, item.key_attrs, kind="pkcs12", where=where)
            if attr_changes:
                changes.append(f"{item.pkcs12_path}: {', '.join(attr_changes)}")
    return changes


def check_options(item) -> None:
    if item.pkcs12_path and not item.pkcs12_passphrase:
        raise PkiError("a PKCS#12 file needs a passphrase (Java and .NET refuse one without)",
                       where=f"{item.where}.pkcs12_passphrase")
