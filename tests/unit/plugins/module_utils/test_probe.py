"""The probe against a stand-in server: SSLRequest then TLS, and direct TLS with ALPN postgresql (PostgreSQL 17+);
openssl makes the certificate, Python's ssl module plays the server."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading

import pytest

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.probe import SSL_REQUEST, served_chain


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(tmp / "k.pem"), "-out", str(tmp / "c.pem"), "-days", "2", "-subj", "/CN=db1"],
                   check=True, capture_output=True)
    return str(tmp / "c.pem"), str(tmp / "k.pem")


def _server(cert, accept_direct: bool, alpn: list[str] | None):
    """One connection: like PostgreSQL 17, a first byte 0x16 (TLS record) is direct TLS, else an SSLRequest."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    if alpn:
        context.set_alpn_protocols(alpn)

    def serve():
        conn = listener.accept()[0]
        with conn:
            first = conn.recv(1, socket.MSG_PEEK)
            if first == b"\x16":
                if not accept_direct:
                    return  # PostgreSQL 16 and older: not a startup packet, connection closed
            else:
                assert conn.recv(8) == SSL_REQUEST
                conn.sendall(b"S")
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_sslrequest_then_tls(cert):
    port = _server(cert, accept_direct=False, alpn=None)
    served = served_chain("127.0.0.1", port)
    assert served["chain"][0].subject.rfc4514_string() == "CN=db1" and served["alpn"] is None


def test_direct_tls_offers_alpn_postgresql(cert):
    port = _server(cert, accept_direct=True, alpn=["postgresql"])
    served = served_chain("127.0.0.1", port, direct=True)
    assert served["alpn"] == "postgresql" and served["protocol"] in ("TLSv1.2", "TLSv1.3")


def test_direct_tls_refused_by_an_older_server(cert):
    port = _server(cert, accept_direct=False, alpn=None)
    with pytest.raises(PkiError, match=r"direct TLS handshake \(ALPN postgresql; PostgreSQL 17\+ only\) failed"):
        served_chain("127.0.0.1", port, direct=True)


def test_direct_tls_without_the_alpn_is_refused(cert):
    port = _server(cert, accept_direct=True, alpn=None)
    with pytest.raises(PkiError, match="selected ALPN None, not 'postgresql'"):
        served_chain("127.0.0.1", port, direct=True)
