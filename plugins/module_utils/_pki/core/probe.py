# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""Ask a running PostgreSQL server which certificate chain it really serves: SSLRequest, then TLS; or, PostgreSQL
17+, direct TLS (no SSLRequest, ALPN ``postgresql``, as libpq's sslnegotiation=direct). Plain TLS services (Patroni's
REST API) are asked with ``direct`` and no ALPN, presenting a client certificate when they require one."""

from __future__ import annotations

import ipaddress
import socket
import ssl

try:
    from cryptography import x509
except ImportError:  # deps.py keeps the error; modules fail with it through deps.require_cryptography()
    from .deps import MISSING

    x509 = MISSING

from .errors import PkiError

SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
ALPN = "postgresql"


def served_chain(host: str, port: int, server_name: str | None = None, timeout: float = 5.0,
                 direct: bool = False, alpn: str | None = ALPN, client: tuple[str, str] | None = None) -> dict:
    """Return ``{'chain': [Certificate, ...], 'protocol': ..., 'cipher': ..., 'alpn': ...}`` as served by
    ``host:port``. With ``direct``, the TLS handshake starts at once and offers ALPN ``postgresql`` (the server
    must select it: PostgreSQL 17+ refuses direct TLS without it).

    No verification happens here: the caller compares what is served with what is installed.
    """
    where = f"probe {host}:{port}"
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as exc:
        raise PkiError(f"cannot connect: {exc}", where=where) from None
    try:
        # Small messages both ways (SSLRequest, handshake, close_notify): without it the close_notify exchange
        # waits ~40 ms on a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not direct:
            sock.sendall(SSL_REQUEST)
            answer = sock.recv(1)
            if answer == b"N":
                raise PkiError("the server answered the SSLRequest with N: SSL is off", where=where)
            if answer != b"S":
                raise PkiError(f"unexpected answer {answer!r} to the SSLRequest: is this PostgreSQL?", where=where)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if direct and alpn:
            context.set_alpn_protocols([alpn])
        if client:
            try:
                context.load_cert_chain(*client)
            except (ssl.SSLError, OSError) as exc:
                raise PkiError(f"cannot load the client certificate {client[0]}: {exc}", where=where) from None
        sni = server_name or host
        try:
            ipaddress.ip_address(sni)
            sni = None
        except ValueError:
            pass
        try:
            tls = context.wrap_socket(sock, server_hostname=sni)
        except (ssl.SSLError, OSError) as exc:
            how = "direct TLS handshake (ALPN postgresql; PostgreSQL 17+ only)" if direct and alpn else "TLS handshake"
            raise PkiError(f"{how} failed: {exc}", where=where) from None
        with tls:
            if direct and alpn and tls.selected_alpn_protocol() != alpn:
                raise PkiError(f"direct TLS: the server selected ALPN {tls.selected_alpn_protocol()!r}, not "
                               f"{alpn!r}", where=where)
            ders = _chain_der(tls)
            answer = {
                "chain": [x509.load_der_x509_certificate(der) for der in ders],
                "protocol": tls.version(),
                "cipher": (tls.cipher() or (None,))[0],
                "alpn": tls.selected_alpn_protocol(),
            }
            # Leave politely: a TLS close_notify (reading the session tickets the server sent), so the server
            # sees a clean end of stream rather than a reset it would log.
            try:
                tls.unwrap()
            except (ssl.SSLError, OSError):
                pass
            return answer
    finally:
        sock.close()


def refuses_anonymous(host: str, port: int, server_name: str | None = None, timeout: float = 5.0) -> bool:
    """Whether a plain TLS service (an HTTPS API: Patroni's REST API, etcd) refuses a client that presents no
    certificate. Under TLS 1.2 the handshake fails; under TLS 1.3 the server checks the client's certificate after
    the client's side of the handshake ended, so a first request is sent: an alert, a reset or the end of the stream
    is a refusal, any answer an acceptance."""
    where = f"probe {host}:{port}"
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as exc:
        raise PkiError(f"cannot connect: {exc}", where=where) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        try:
            tls = context.wrap_socket(sock, server_hostname=None)
        except ssl.SSLError:
            return True
        except OSError as exc:
            raise PkiError(f"TLS handshake failed: {exc}", where=where) from None
        with tls:
            try:
                tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return tls.recv(1) == b""
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                return True
            except OSError as exc:  # a timeout: neither an answer nor a refusal
                raise PkiError(f"no answer without a client certificate: {exc}", where=where) from None
    finally:
        sock.close()


def _chain_der(tls: ssl.SSLSocket) -> list[bytes]:
    # Python 3.13 has SSLSocket.get_unverified_chain(); 3.10-3.12 have it on the private _sslobj.
    getter = getattr(tls, "get_unverified_chain", None) or getattr(getattr(tls, "_sslobj", None),
                                                                   "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter()
        except Exception:  # pragma: no cover - private API changed; fall back to the leaf
            chain = None
        if chain:
            return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]
    return [tls.getpeercert(binary_form=True)]
