"""The probe against a stand-in server: SSLRequest then TLS, and direct TLS with ALPN postgresql (PostgreSQL 17+);
openssl makes the certificate, Python's ssl module plays the server."""

from __future__ import annotations

import socket

import pytest
from pkitools import https_stand_in, openssl_server_cert, stand_in_server

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.probe import refuses_anonymous, served_chain
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.validate import check


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


@pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3-after-the-handshake", "tls1.2-in-the-handshake"])
def test_an_https_service_requiring_client_certificates_refuses_an_anonymous_client(cert, tls12):
    assert refuses_anonymous("127.0.0.1", https_stand_in(cert, require_client=True, tls12=tls12)) is True


def test_an_https_service_answering_anyone_is_seen(cert):
    assert refuses_anonymous("127.0.0.1", https_stand_in(cert, require_client=False)) is False


def test_plain_tls_without_alpn_reads_an_https_services_chain(cert):
    served = served_chain("127.0.0.1", https_stand_in(cert, require_client=False), direct=True, alpn=None)
    assert served["chain"][0].subject.rfc4514_string() == "CN=db1" and served["alpn"] is None


def test_nothing_listening_is_an_error_not_a_refusal():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: the connection is refused
        with pytest.raises(PkiError, match="cannot connect"):
            refuses_anonymous("127.0.0.1", port)


@pytest.mark.parametrize("require_client, status", [(True, "ok"), (False, "fail")])
def test_validate_reads_an_https_service_and_says_whether_it_requires_client_certificates(cert, require_client,
                                                                                          status):
    port = https_stand_in(cert, require_client=require_client, connections=2)
    result = check(certificate_path=cert[0], probe_host="127.0.0.1", probe_port=port, probe_negotiation="tls",
                   probe_client_auth=True, fail_on_findings=False)
    assert result["served"]["matches_file"] is True and result["served"]["negotiation"] == "tls"
    assert result["served"]["client_auth"] is require_client
    assert [f["status"] for f in result["findings"] if f["check"] == "client_auth"] == [status]


def test_validate_refuses_client_auth_for_postgresql(cert):
    with pytest.raises(PkiError, match="probe_client_auth asks an HTTPS service"):
        check(certificate_path=cert[0], probe_host="127.0.0.1", probe_port=1, probe_client_auth=True)
