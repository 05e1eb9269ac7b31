"""The probe against a stand-in server: SSLRequest then TLS, and direct TLS with ALPN postgresql (PostgreSQL 17+);
openssl makes the certificate, Python's ssl module plays the server."""

from __future__ import annotations

import pytest
from pkitools import openssl_server_cert, stand_in_server

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.probe import served_chain


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return openssl_server_cert(tmp_path_factory.mktemp("probe"))


def test_sslrequest_then_tls(cert):
    port = stand_in_server(cert, accept_direct=False, alpn=None)
    served = served_chain("127.0.0.1", port)
    assert served["chain"][0].subject.rfc4514_string() == "CN=db1" and served["alpn"] is None


def test_direct_tls_offers_alpn_postgresql(cert):
    port = stand_in_server(cert, accept_direct=True, alpn=["postgresql"])
    served = served_chain("127.0.0.1", port, direct=True)
    assert served["alpn"] == "postgresql" and served["protocol"] in ("TLSv1.2", "TLSv1.3")


def test_direct_tls_refused_by_an_olderstand_in_server(cert):
    port = stand_in_server(cert, accept_direct=False, alpn=None)
    with pytest.raises(PkiError, match=r"direct TLS handshake \(ALPN postgresql; PostgreSQL 17\+ only\) failed"):
        served_chain("127.0.0.1", port, direct=True)


def test_direct_tls_without_the_alpn_is_refused(cert):
    port = stand_in_server(cert, accept_direct=True, alpn=None)
    with pytest.raises(PkiError, match="selected ALPN None, not 'postgresql'"):
        served_chain("127.0.0.1", port, direct=True)
