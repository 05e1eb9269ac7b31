# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Distinguished names and subject alternative names."""

from __future__ import annotations

import ipaddress
import re

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = NameOID = MISSING

from .errors import PkiError

# The subject fields the modules accept, in the order they are written into a name.
SUBJECT_FIELDS = {
    "country": NameOID.COUNTRY_NAME,
    "state": NameOID.STATE_OR_PROVINCE_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "organizational_unit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "common_name": NameOID.COMMON_NAME,
}

# RFC 5280 upper bounds (ub-common-name and friends), in characters.
UPPER_BOUNDS = {"country": 2, "state": 128, "locality": 128, "organization": 64, "organizational_unit": 64,
                "common_name": 64}

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?$")


def build_name(common_name: str, subject: dict | None = None, where: str = "subject",
               cn_where: str = "common_name") -> x509.Name:
    fields = dict(subject or {})
    fields["common_name"] = common_name
    attributes = []
    for key, oid in SUBJECT_FIELDS.items():
        value = fields.pop(key, None)
        if value in (None, ""):
            continue
        field_where = cn_where if key == "common_name" else f"{where}.{key}"
        value = str(value)
        if key == "country" and len(value) != 2:
            raise PkiError(f"country must be a two-letter code, got {value!r}", where=field_where)
        if len(value) > UPPER_BOUNDS[key]:
            raise PkiError(f"{key} is {len(value)} characters long; X.509 (RFC 5280) allows at most "
                           f"{UPPER_BOUNDS[key]}", where=field_where)
        if "\x00" in value:
            raise PkiError(f"{key} contains a NUL character", where=field_where)
        try:
            attributes.append(x509.NameAttribute(oid, value))
        except ValueError as exc:
            raise PkiError(f"{key} {value!r} is not accepted: {exc}", where=field_where) from None
    if fields:
        raise PkiError(
            f"unknown field(s) {', '.join(sorted(fields))}; allowed: {', '.join(SUBJECT_FIELDS)}", where=where
        )
    if not common_name:
        raise PkiError("a common name is required", where=cn_where)
    return x509.Name(attributes)


def common_name_of(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def parse_san(value: str, where: str) -> x509.GeneralName:
    """Turn ``DNS:name``, ``IP:addr`` or a bare name/address into a GeneralName, or fail naming ``where``."""
    text = str(value).strip()
    kind = None
    if ":" in text and text.split(":", 1)[0].upper() in ("DNS", "IP"):
        kind, text = text.split(":", 1)
        kind = kind.upper()
    if kind in (None, "IP"):
        try:
            return x509.IPAddress(ipaddress.ip_address(text))
        except ValueError:
            if kind == "IP":
                raise PkiError(f"{value!r} is not an IP address", where=where) from None
    if _DNS_NAME.match(text) and len(text) <= 253:
        if text.rstrip(".").rsplit(".", 1)[-1].isdigit():
            # 10.0.0.256 or 1.2.3: not an address, and a name whose last label is all digits is none (RFC 1123).
            raise PkiError(f"{value!r} looks like an IPv4 address but is not a valid one", where=where)
        return x509.DNSName(text.rstrip(".").lower())
    raise PkiError(f"{value!r} is neither a DNS name nor an IP address", where=where)


def parse_sans(values: list, option: str = "subject_alt_names") -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for index, value in enumerate(values or []):
        name = parse_san(value, f"{option}[{index}]")
        if name not in result:
            result.append(name)
    return result


def san_strings(names) -> list[str]:
    """Render GeneralNames as sorted ``DNS:x`` / ``IP:y`` strings (the form results and diffs show)."""
    out = []
    for name in names:
        if isinstance(name, x509.DNSName):
            out.append(f"DNS:{name.value.lower()}")
        elif isinstance(name, x509.IPAddress):
            out.append(f"IP:{name.value}")
        else:
            out.append(f"{type(name).__name__}:{name.value}")
    return sorted(out)


def cert_sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def host_matches(cert: x509.Certificate, host: str) -> bool:
    """Does ``cert`` cover ``host`` as libpq's verify-full checks it (SAN first; CN only without dNSName SANs)?"""
    sans = cert_sans(cert)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        return any(isinstance(n, x509.IPAddress) and n.value == address for n in sans)
    host = host.rstrip(".").lower()
    dns = [n.value.lower() for n in sans if isinstance(n, x509.DNSName)]
    if not dns:
        cn = common_name_of(cert.subject)
        dns = [cn.lower()] if cn else []
    for pattern in dns:
        if pattern == host:
            return True
        if pattern.startswith("*.") and "." in host:
            first, rest = host.split(".", 1)
            if first and rest == pattern[2:]:
                return True
    return False


def check_role_name(name: str, where: str) -> None:
    """A client name is a PostgreSQL role name and the certificate's CN: any string PostgreSQL allows."""
    if not name:
        raise PkiError("a role name is needed", where=where)
    if "\x00" in name:
        raise PkiError("a role name cannot contain a NUL character", where=where)
    if len(name.encode()) > 63:
        raise PkiError(f"{name[:20]}... is {len(name.encode())} bytes long; PostgreSQL role names are at most 63 "
                       "bytes (longer ones are cut, so the certificate's CN would never match)", where=where)
