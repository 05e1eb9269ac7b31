# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Private keys: the supported types, generation, loading with passphrases, serialisation, fingerprints."""

from __future__ import annotations

import hashlib

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    hashes = serialization = ec = ed25519 = padding = rsa = MISSING

from .compat import parser_message
from .constants import KEY_TYPES
from .errors import PkiError

_CURVES = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1}
_CURVE_NAMES = {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}


def generate_key(key_type: str):
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise PkiError(f"unsupported key type {key_type!r}; supported: {', '.join(KEY_TYPES)}", where="key_type")


def key_type_of(key) -> str:
    """Name the type of a private or public key as in KEY_TYPES (or a descriptive name if unsupported)."""
    public = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(public, ec.EllipticCurvePublicKey):
        return _CURVE_NAMES.get(public.curve.name, f"ec-{public.curve.name}")
    if isinstance(public, rsa.RSAPublicKey):
        return f"rsa{public.key_size}"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    return type(public).__name__


def load_private_key(data: bytes, passphrase: str | None, where: str):
    """Load a PEM private key; every failure names ``where`` and says what is wrong."""
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        raise PkiError("is not a PEM private key (no -----BEGIN ... PRIVATE KEY----- block)", where=where)
    password = passphrase.encode() if passphrase else None
    try:
        return serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:
        if password is None:
            raise PkiError("the private key is encrypted but no passphrase was given", where=where) from None
        if "not encrypted" in str(exc):
            raise PkiError("a passphrase was given but the private key is not encrypted", where=where) from None
        raise PkiError(f"cannot load the private key: {parser_message(exc)}", where=where) from None
    except ValueError as exc:
        if password is not None:
            raise PkiError("wrong passphrase for the private key (or the key is malformed)", where=where) from None
        raise PkiError(f"the private key is malformed: {parser_message(exc)}", where=where) from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for unknown key types
        raise PkiError(f"cannot load the private key: {type(exc).__name__}", where=where) from None


def private_key_pem(key, passphrase: str | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_key_der(key) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") and not _is_public(key) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _is_public(key) -> bool:
    return isinstance(
        key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)
    )


def public_fingerprint(key) -> str:
    """SHA-256 of the SubjectPublicKeyInfo, hex with colons: safe to print, identifies the key pair."""
    return colon_hex(hashlib.sha256(public_key_der(key)).digest())


def same_public_key(a, b) -> bool:
    return public_key_der(a) == public_key_der(b)


def signing_hash(key):
    """The digest to sign with: SHA-384 for P-384, none for Ed25519, SHA-256 otherwise."""
    kind = key_type_of(key)
    if kind == "ed25519":
        return None
    if kind == "ec-p384":
        return hashes.SHA384()
    return hashes.SHA256()


def verify_signature(public_key, signature: bytes, data: bytes, hash_algorithm) -> bool:
    """Verify a PKCS#1 v1.5 / ECDSA / Ed25519 signature (what X.509 objects carry here)."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except Exception:  # InvalidSignature, or an algorithm this key cannot verify
        return False
    return True


def colon_hex(raw: bytes) -> str:
    return ":".join(f"{b:02X}" for b in raw)
