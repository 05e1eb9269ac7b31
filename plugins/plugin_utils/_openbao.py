# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""A small client for the PKI secrets engine of OpenBao (or Vault), on the controller: sign a host's CSR with
``sign/<role>``, read the root, the intermediate's chain and the CRLs of both mounts, revoke a serial, ask for the
server's health. Only CSRs are sent: the host's key never leaves it, and ``issue/<role>`` (the engine makes the key
and returns it) is never called.

It speaks HTTP through ansible-core's own ``ansible.module_utils.urls.open_url``, not hvac: the controller and the
execution environment need nothing beyond ansible-core (and cryptography, which the collection needs anyway).
Every failure is a PkiError whose ``where`` names the setting to fix; no message, result or record holds the token
or the AppRole secret ID."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.error import HTTPError, URLError

from ansible.module_utils.urls import open_url

try:
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError:  # deps.py keeps the error; the actions fail with it through deps.require_cryptography()
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.deps import MISSING

    Encoding = MISSING

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.chain import order_problems
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import parse_serial
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import serial_hex
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import is_self_signed
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import same_public_key
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import (
    cert_sans,
    common_name_of,
    parse_sans,
    san_strings,
)

# The environment variables the bao and vault CLIs read, OpenBao's first: the fallback of each setting, in one place.
ENVIRONMENT = {
    "address": ("BAO_ADDR", "VAULT_ADDR"),
    "token": ("BAO_TOKEN", "VAULT_TOKEN"),
    "namespace": ("BAO_NAMESPACE", "VAULT_NAMESPACE"),
    "ca_path": ("BAO_CACERT", "VAULT_CACERT"),
}
SETTINGS = ("address", "role", "int_mount", "root_mount", "token", "role_id", "secret_id", "approle_mount",
            "namespace", "ca_path", "timeout")
DEFAULT_TIMEOUT = 30.0
# A mount path (may hold slashes: team/pki) and a role name, as OpenBao accepts them in a URL without escaping.
_MOUNT = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")
_ROLE = re.compile(r"^[A-Za-z0-9_.@-]+$")
_NO_ISSUER = "no default issuer currently configured"
_MAX_ERROR = 300  # characters of the server's own error text quoted in a message


@dataclass(frozen=True)
class BaoSettings:
    """Where the PKI engine is and how to log in. ``prefix`` is put before every setting's name in ``where`` (the
    roles' variables are ``pgtls_openbao_<setting>``); ``sources`` names the environment variable a value came
    from."""

    address: str
    role: str
    int_mount: str = "pki_int"
    root_mount: str = "pki"
    token: str | None = field(default=None, repr=False)
    role_id: str | None = field(default=None, repr=False)
    secret_id: str | None = field(default=None, repr=False)
    approle_mount: str = "approle"
    namespace: str | None = None
    ca_path: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    prefix: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping, prefix: str = "", environ: Mapping[str, str] | None = None) -> BaoSettings:
        """Settings from ``params`` (keys named as the fields), each missing one of ENVIRONMENT from the environment
        (BAO_* before VAULT_*). AppRole (role_id and secret_id) given in ``params`` wins over a token from the
        environment; a token and AppRole both given in ``params`` is an error."""
        environ = os.environ if environ is None else environ
        values = {name: params.get(name) for name in SETTINGS}
        sources = {}
        approle = bool(values["role_id"] or values["secret_id"])
        for name, variables in ENVIRONMENT.items():
            if values[name] or (name == "token" and approle):
                continue
            variable = next((v for v in variables if environ.get(v)), None)
            if variable is not None:
                values[name], sources[name] = environ[variable], variable
        if isinstance(values["timeout"], str):
            try:
                values["timeout"] = float(values["timeout"])
            except ValueError:
                raise PkiError(f"{values['timeout'][:40]!r} is not a number of seconds", where=f"{prefix}timeout") from None
        for name in ("address", "role"):
            if not values[name]:
                hint = f" (or {' / '.join(ENVIRONMENT[name])})" if name in ENVIRONMENT else ""
                raise PkiError(f"is required{hint}", where=f"{prefix}{name}")
        return cls(**{k: v for k, v in values.items() if v not in (None, "")}, prefix=prefix, sources=sources)

    def __post_init__(self) -> None:
        self.check()

    def where(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def label(self, name: str) -> str:
        """The setting's name and, when the environment gave it, where from: ``address (from BAO_ADDR)``."""
        source = self.sources.get(name)
        return f"{self.where(name)} (from {source})" if source else self.where(name)

    @property
    def approle(self) -> bool:
        return bool(self.role_id or self.secret_id)

    def check(self) -> None:
        """Fail on a setting that cannot work, naming it, before anything is sent."""
        if not re.match(r"^https?://[^/\s@]+/?$", self.address):
            raise PkiError(f"{self.address[:80]!r} is not an address like https://openbao.example.com:8200 (scheme, "
                           "host and port; no path, no user)", where=self.label("address"))
        for name in ("int_mount", "root_mount", "approle_mount"):
            if not _MOUNT.match(getattr(self, name)) or {".", ".."} & set(getattr(self, name).split("/")):
                raise PkiError(f"{getattr(self, name)[:80]!r} is not a mount path (letters, digits, _ . - and /; "
                               "no . or .. part)", where=self.where(name))
        if self.int_mount == self.root_mount:
            raise PkiError(f"the intermediate and the root need their own mounts (both are {self.int_mount!r})",
                           where=self.where("int_mount"))
        if not _ROLE.match(self.role) or self.role in (".", ".."):
            raise PkiError(f"{self.role[:80]!r} is not a PKI role name", where=self.where("role"))
        if self.approle:
            if self.token:
                raise PkiError("give a token or an AppRole (role_id and secret_id), not both", where=self.where("token"))
            for name in ("role_id", "secret_id"):
                if not getattr(self, name):
                    raise PkiError("AppRole needs both role_id and secret_id", where=self.where(name))
        elif not self.token:
            raise PkiError(f"no credentials: give a token (or {' / '.join(ENVIRONMENT['token'])}) or an AppRole "
                           "(role_id and secret_id)", where=self.where("token"))
        if self.ca_path and not os.path.isfile(self.ca_path):
            raise PkiError(f"{self.ca_path} is not a file (the CA bundle that verifies the server's certificate)",
                           where=self.label("ca_path"))
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise PkiError(f"{self.timeout!r} is not a positive number of seconds", where=self.where("timeout"))


@dataclass(frozen=True)
class Signed:
    """A certificate the engine signed: the leaf, the chain it returned (intermediate first; without the root
    when the intermediate was imported with set-signed), the serial as OpenBao prints it and as a number, and the
    engine's warnings (a TTL cut to the role's max_ttl is one)."""

    certificate: str
    chain: list[str]
    serial: str
    serial_number: int
    warnings: list[str]


@dataclass(frozen=True)
class Health:
    version: str
    initialized: bool
    sealed: bool
    standby: bool


class BaoClient:
    """The PKI engine's calls this collection makes. AppRole logs in on the first call that needs a token."""

    def __init__(self, settings: BaoSettings, opener: Callable = open_url) -> None:
        self.settings = settings
        self._open = opener
        self._token = None if settings.approle else settings.token

    # ---- the calls -------------------------------------------------------------------------------------------------

    def health(self) -> Health:
        """sys/health (no token): a sealed or uninitialized server is an error naming the address."""
        answer = self._call("GET", "sys/health?standbyok=true&perfstandbyok=true", auth=False)
        try:
            health = Health(version=str(answer["version"]), initialized=bool(answer["initialized"]),
                            sealed=bool(answer["sealed"]), standby=bool(answer.get("standby", False)))
        except (KeyError, TypeError):
            raise self._unexpected("sys/health", "no version, initialized and sealed fields") from None
        if not health.initialized:
            raise PkiError(f"OpenBao at {self.settings.address} is not initialized (bao operator init)",
                           where=self.settings.label("address"))
        return health

    def authenticate(self) -> None:
        """Prove the credentials before anything else is asked (the CA and CRL reads need none, so a wrong token would
        otherwise show only when something must be signed): AppRole logs in; a token looks itself up
        (auth/token/lookup-self, which every token's default policy allows)."""
        if self.settings.approle:
            self.login()
        else:
            self._call("GET", "auth/token/lookup-self")

    def sign(self, csr_pem: str, common_name: str, dns_sans: list[str], ip_sans: list[str], ttl_days: int,
             where: str) -> Signed:
        """Have the intermediate mount's role sign ``csr_pem`` (sign/<role>, never issue/<role>), then check here
        that the certificate is for the CSR's key, carries exactly the names asked for and comes with its issuer."""
        csr = compat.load_csr(csr_pem.encode(), where)
        wanted = san_strings(parse_sans([*dns_sans, *ip_sans], f"{where}: subject_alt_names"))
        if not isinstance(ttl_days, int) or ttl_days < 1:
            raise PkiError(f"{ttl_days!r} is not a number of days (1 or more)", where=f"{where}: valid_days")
        # exclude_cn_from_sans: the engine would add the CN as a DNS name (a client certificate's role name too);
        # the certificate carries exactly the names asked for.
        body = {"csr": csr_pem, "common_name": common_name, "alt_names": ",".join(dns_sans),
                "ip_sans": ",".join(ip_sans), "ttl": f"{ttl_days * 24}h", "format": "pem",
                "exclude_cn_from_sans": True}
        path = f"{self.settings.int_mount}/sign/{self.settings.role}"
        answer = self._call("POST", path, body, names=f"{common_name} ({', '.join(wanted) or 'no SAN'})")
        data = self._data(answer, path, "certificate", "serial_number")
        leaf = self._certificates(data["certificate"], path)[0]
        chain_pem = data.get("ca_chain") or [data.get("issuing_ca") or ""]
        chain_pem = chain_pem if isinstance(chain_pem, list) else [chain_pem]
        chain = [c for pem in chain_pem for c in self._certificates(pem, path)]
        if not same_public_key(leaf.public_key(), csr.public_key()):
            raise PkiError(f"{path} returned a certificate for another public key than the CSR's: refused",
                           where=where)
        got_cn, got = common_name_of(leaf.subject), san_strings(cert_sans(leaf))
        if got_cn != common_name or got != wanted:
            raise PkiError(f"{path} returned a certificate for CN={got_cn} {', '.join(got) or 'no SAN'}, not for the "
                           f"names asked for (CN={common_name} {', '.join(wanted) or 'no SAN'}): the role "
                           f"{self.settings.role!r} takes the names from the CSR (use_csr_common_name, use_csr_sans) "
                           "or changes them; refused", where=where)
        problems = order_problems([leaf, *chain])
        if problems:
            raise PkiError(f"{path} returned a chain that does not hold the leaf's issuer: {'; '.join(problems)}",
                           where=self.settings.where("int_mount"))
        serial = str(data["serial_number"])
        number = parse_serial(serial, f"{path}: serial_number")
        if number != leaf.serial_number:
            raise self._unexpected(path, f"serial_number {serial} is not the certificate's serial")
        warnings = answer.get("warnings") or []
        warnings = [str(w) for w in warnings] if isinstance(warnings, list) else [str(warnings)]
        # A role that takes the names from the CSR (use_csr_common_name, use_csr_sans: OpenBao's default) warns that
        # the request named them too; the names were checked above, so that one is left out (a cut TTL is kept).
        warnings = [w for w in warnings if "use_csr_" not in w]
        return Signed(certificate=_pem(leaf), chain=[_pem(c) for c in chain], serial=serial, serial_number=number,
                      warnings=warnings)

    def root(self) -> str:
        """The root mount's CA certificate (PEM): the trust anchor, checked to be self-signed."""
        path = f"{self.settings.root_mount}/cert/ca"
        data = self._data(self._call("GET", path, mount="root_mount"), path, "certificate")
        cert = self._certificates(data["certificate"], path)[0]
        if not is_self_signed(cert):
            raise PkiError(f"{path} is {cert.subject.rfc4514_string()}, issued by {cert.issuer.rfc4514_string()}: "
                           "not a root (self-signed) certificate; name the mount that holds the root",
                           where=self.settings.where("root_mount"))
        return _pem(cert)

    def chain(self) -> list[str]:
        """The intermediate mount's CA chain (PEMs, its own certificate first)."""
        path = f"{self.settings.int_mount}/cert/ca_chain"
        data = self._data(self._call("GET", path, mount="int_mount"), path, "ca_chain")
        pems = data["ca_chain"] if isinstance(data["ca_chain"], list) else [data["ca_chain"]]
        return [_pem(c) for pem in pems for c in self._certificates(pem, path)]

    def crls(self) -> list[str]:
        """The CRL (PEM) of the intermediate mount, then of the root mount: PostgreSQL needs both in ssl_crl_file."""
        found = []
        for mount in ("int_mount", "root_mount"):
            path = f"{getattr(self.settings, mount)}/cert/crl"
            data = self._data(self._call("GET", path, mount=mount), path, "certificate")
            text = str(data["certificate"] or "")
            crls = compat.load_crls(text.encode(), path) if text.strip() else []
            if len(crls) != 1:
                raise PkiError(f"{path} returned {len(crls)} CRLs, not one", where=self.settings.where(mount))
            found.append(text if text.endswith("\n") else text + "\n")
        return found

    def rotate_crl(self, mount: str) -> None:
        """Have the engine sign its CRL again now (``<mount>/crl/rotate``): ``mount`` is "int_mount" or
        "root_mount"."""
        path = f"{getattr(self.settings, mount)}/crl/rotate"
        self._call("GET", path, mount=mount)

    def revoke(self, serial: int | str, where: str = "serial") -> dict:
        """Revoke a certificate of the intermediate mount by serial (an int, 0x-hex or colon hex). Returns the
        serial as OpenBao prints it and the revocation time (seconds since the epoch)."""
        number = parse_serial(serial, where)
        text = serial_hex(number).lower()
        path = f"{self.settings.int_mount}/revoke"
        data = self._data(self._call("POST", path, {"serial_number": text}, serial=(text, where)), path, "revocation_time")
        return {"serial": text, "serial_number": number, "revocation_time": int(data["revocation_time"])}

    # ---- HTTP ------------------------------------------------------------------------------------------------------

    def login(self) -> None:
        """AppRole login at auth/<approle_mount>/login; keeps the client token for the next calls."""
        path = f"auth/{self.settings.approle_mount}/login"
        answer = self._call("POST", path, {"role_id": self.settings.role_id, "secret_id": self.settings.secret_id},
                            auth=False, login=True)
        token = (answer.get("auth") or {}).get("client_token") if isinstance(answer.get("auth"), dict) else None
        if not isinstance(token, str) or not token:
            raise self._unexpected(path, "no auth.client_token")
        self._token = token

    def _call(self, method: str, path: str, body: dict | None = None, *, auth: bool = True, login: bool = False,
              mount: str = "int_mount", names: str | None = None, serial: tuple[str, str] | None = None) -> dict:
        if auth and self._token is None:
            self.login()
        url = f"{self.settings.address.rstrip('/')}/v1/{path}"
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["X-Vault-Token"] = self._token
        if self.settings.namespace:
            headers["X-Vault-Namespace"] = self.settings.namespace
        data = json.dumps(body).encode() if body is not None else None
        try:
            response = self._open(url, data=data, headers=headers, method=method, timeout=self.settings.timeout,
                                  validate_certs=True, ca_path=self.settings.ca_path, http_agent="pgtls.ssl",
                                  use_netrc=False)
            status, raw = response.getcode(), response.read()
        except HTTPError as exc:
            status, raw = exc.code, _read(exc)
            if status < 200 or status >= 300:
                raise self._http_error(method, path, status, raw, login=login, mount=mount, names=names,
                                       serial=serial) from None
        except (URLError, OSError, ssl.SSLError) as exc:  # socket.timeout and ConnectionError are OSErrors
            raise self._network_error(exc) from None
        if not raw:
            raise self._unexpected(path, f"an empty answer (HTTP {status})")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise self._unexpected(path, f"an answer that is not JSON (HTTP {status}, {len(raw)} bytes)") from None
        if not isinstance(answer, dict):
            raise self._unexpected(path, f"JSON that is not an object (HTTP {status})")
        return answer

    def _http_error(self, method: str, path: str, status: int, raw: bytes, *, login: bool, mount: str,
                    names: str | None, serial: tuple[str, str] | None) -> PkiError:
        errors = _errors(raw)
        text = self._scrub("; ".join(errors)[:_MAX_ERROR]) or f"HTTP {status} without an error text"
        address, s = self.settings.address, self.settings
        if status == 503 and ("sealed" in text.lower() or b'"sealed":true' in raw.replace(b" ", b"")):
            return PkiError(f"OpenBao at {address} is sealed (HTTP 503 on {path}): unseal it (bao operator unseal) "
                            "and run again", where=s.label("address"))
        if _NO_ISSUER in text:
            return self._no_issuer(path, mount, text)
        return (self._auth_error(method, path, status, text, login)
                or self._request_error(method, path, status, text, mount=mount, names=names, serial=serial))

    def _auth_error(self, method: str, path: str, status: int, text: str, login: bool) -> PkiError | None:
        """A refused login or a refused token (403), naming the credential to fix; None for other failures."""
        s = self.settings
        if login and (status == 400 or "invalid role or secret id" in text.lower()):
            return PkiError(f"AppRole login at {path} refused (HTTP {status}: {text}): role_id or secret_id is wrong, "
                            "or the secret ID expired or ran out of uses", where=s.where("secret_id"))
        if login and status in (403, 404):
            # OpenBao answers a login at a path without an auth method with 403 "permission denied".
            return PkiError(f"AppRole login at {path} refused (HTTP {status}: {text}): no AppRole auth method is "
                            f"mounted at auth/{s.approle_mount} (or it is not reachable without a token)",
                            where=s.where("approle_mount"))
        if status != 403:
            return None
        if s.approle:
            how, where = (f"the token of the AppRole login (auth/{s.approle_mount}) has a policy that does not "
                          "allow it, or it expired"), s.where("role_id")
        else:
            how, where = "the token is wrong or expired, or its policy does not allow it", s.label("token")
        return PkiError(f"permission denied for {method} {path} at {s.address} (HTTP 403): {how}", where=where)

    def _request_error(self, method: str, path: str, status: int, text: str, *, mount: str, names: str | None,
                       serial: tuple[str, str] | None) -> PkiError:
        s = self.settings
        if status == 400 and "not allowed by this role" in text:
            return PkiError(f"the role {s.role!r} of mount {s.int_mount!r} refused to sign for {names}: {text}; allow "
                            "the name in the role (allowed_domains, allow_subdomains, allow_ip_sans) or leave it out "
                            "of the host's names", where=s.where("role"))
        if status == 400 and "unknown role" in text:
            return PkiError(f"mount {s.int_mount!r} has no role {s.role!r} ({text})", where=s.where("role"))
        if status == 400 and serial is not None and "not found" in text:
            return PkiError(f"mount {s.int_mount!r} has issued no certificate with serial {serial[0]} ({text})",
                            where=serial[1])
        if status == 404 and "no handler for route" in text:
            return PkiError(f"{s.address} has no PKI mount for {path} (HTTP 404): check the mount's path",
                            where=s.where(mount))
        return PkiError(f"{method} {path} at {s.address} failed with HTTP {status}: {text}", where=s.label("address"))

    def _network_error(self, exc: BaseException) -> PkiError:
        reason = exc.reason if isinstance(exc, URLError) and not isinstance(exc, HTTPError) else exc
        address, s = self.settings.address, self.settings
        if isinstance(reason, ssl.SSLCertVerificationError):
            cause = self._scrub(str(reason.verify_message or reason))
            if s.ca_path:
                hint = f"{s.ca_path} does not hold the CA that signed the server's certificate"
            else:
                hint = "set ca_path to the CA bundle that signed the server's certificate"
            return PkiError(f"TLS verification of {address} failed ({cause}): {hint}", where=s.label("ca_path"))
        if isinstance(reason, ssl.SSLError):
            return PkiError(f"TLS with {address} failed ({reason.reason or reason}): is it an https listener?",
                            where=s.label("address"))
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return PkiError(f"OpenBao at {address} did not answer within {s.timeout:g} s", where=s.label("address"))
        if isinstance(reason, ConnectionRefusedError):
            return PkiError(f"cannot reach OpenBao at {address}: connection refused (is the server running, and is "
                            "this its address and port?)", where=s.label("address"))
        detail = self._scrub(str(getattr(reason, "strerror", None) or reason))[:_MAX_ERROR]
        return PkiError(f"cannot reach OpenBao at {address}: {detail}", where=s.label("address"))

    def _no_issuer(self, path: str, mount: str, text: str = _NO_ISSUER) -> PkiError:
        name = getattr(self.settings, mount)
        return PkiError(f"mount {name!r} has no CA ({path}: {text}): generate or import its issuer first",
                        where=self.settings.where(mount))

    def _unexpected(self, path: str, what: str) -> PkiError:
        return PkiError(f"{path} at {self.settings.address} answered {what}: is this an OpenBao (or Vault) server "
                        "with the PKI engine?", where=self.settings.label("address"))

    def _data(self, answer: dict, path: str, *keys: str) -> dict:
        data = answer.get("data")
        if not isinstance(data, dict) or any(key not in data for key in keys):
            raise self._unexpected(path, f"no {', '.join(f'data.{k}' for k in keys)}")
        return data

    def _certificates(self, pem: str, path: str) -> list:
        if not isinstance(pem, str) or not pem.strip():
            raise self._unexpected(path, "an empty certificate")
        return compat.load_certificates(pem.encode(), path)

    def _scrub(self, text: str) -> str:
        """The last line of defence: no credential in any message, even if a server or library echoes it."""
        for secret in (self.settings.token, self.settings.secret_id, self._token):
            if secret:
                text = text.replace(secret, "***")
        return text


def _pem(cert) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def _read(exc: HTTPError) -> bytes:
    try:
        return exc.read() or b""
    except Exception:  # a closed or broken body: the status alone is the answer
        return b""


def _errors(raw: bytes) -> list[str]:
    """OpenBao's {"errors": [...]} as strings; [] when the body is not that."""
    try:
        answer = json.loads(raw)
    except ValueError:
        return []
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return [" ".join(str(e).split()) for e in errors] if isinstance(errors, list) else []
