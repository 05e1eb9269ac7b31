"""An etcd member's TLS in its environment file (etcd.py): the variables set in place, every other line kept, the CRL
file written with the member's issuer's CRL first, a second run writing nothing, check mode writing nothing, each
bad input refused naming the option and the file with the file as it was; the engine's etcd service (restart only
when the file changed or the trust did, the wait, /health over mTLS, the file put back on failure) with its commands,
probe and health client faked. tests/e2e/test_patroni.py runs three real etcd members on what it writes."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pkitools import Pki, key_pem, pem, tree, write
from test_activation import FakeCommands

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import build_crl
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import SERVER, SERVER_AND_CLIENT
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.etcd import etcd_config, etcd_info, parse

ENV = """# etcd on etcd1 (the operator's comment stays)
ETCD_NAME="etcd1"
ETCD_DATA_DIR=/var/lib/etcd/default
ETCD_LISTEN_CLIENT_URLS="https://0.0.0.0:2379"
ETCD_ADVERTISE_CLIENT_URLS="https://etcd1.example.com:2379"
ETCD_LISTEN_PEER_URLS="https://0.0.0.0:2380"
ETCD_INITIAL_ADVERTISE_PEER_URLS="https://etcd1.example.com:2380"
ETCD_INITIAL_CLUSTER="etcd1=https://etcd1.example.com:2380,etcd2=https://etcd2.example.com:2380"
ETCD_CERT_FILE="/old/server.crt"
"""
HEALTH = "etcd answers /health over mTLS (its own certificate as the client), verified by name"
RESTART = "Restart etcd (it reads its environment file and its trusted CA file only when it starts)"


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture
def member(tmp_path, pki):
    key, cert = pki.leaf(name="etcd1.example.com", sans=("etcd1.example.com",), profile=SERVER_AND_CLIENT)
    # the CA folder's bundle: the root's CRL first, then the intermediate's
    bundle = b"".join(build_crl(issuer, [], None, dt.timedelta(days=30)).public_bytes(Encoding.PEM)
                      for issuer in (pki.root_issuer, pki.issuer))
    params = {"path": write(tmp_path / "etcd.env", ENV.encode()),
              "cert_path": write(tmp_path / "server.crt", pem(cert, pki.int)),
              "key_path": write(tmp_path / "server.key", key_pem(key)),
              "ca_path": write(tmp_path / "root.crt", pem(pki.root)),
              "crl_bundle": write(tmp_path / "root.crl", bundle), "crl_path": str(tmp_path / "etcd.crl"),
              "activate": False, "trusted_before": None, "restart_command": ["systemctl", "restart", "etcd"],
              "server_user": "root", "wait_seconds": 1}
    os.chmod(params["key_path"], 0o600)
    return params


def _crl_issuers(path):
    data = open(path, "rb").read()
    blocks = [b + b"-----END X509 CRL-----\n" for b in data.split(b"-----END X509 CRL-----")[:-1]]
    return [x509.load_pem_x509_crl(block.strip() + b"\n").issuer.rfc4514_string() for block in blocks]


def test_sets_the_tls_variables_in_place_and_keeps_every_other_line(member):
    result = etcd_config(member, False)
    assert result["changed"] is True and result["name"] == "etcd1"
    assert result["hosts"] == ["etcd1.example.com"]
    lines = open(member["path"]).read().splitlines()
    assert lines[0] == "# etcd on etcd1 (the operator's comment stays)"
    assert lines[2] == "ETCD_DATA_DIR=/var/lib/etcd/default"  # untouched, unquoted as written
    assert lines[8] == f'ETCD_CERT_FILE="{member["cert_path"]}"'  # in its place
    _lines, values = parse(open(member["path"], "rb").read(), member["path"])
    assert values["ETCD_PEER_CLIENT_CERT_AUTH"] == values["ETCD_CLIENT_CERT_AUTH"] == "true"
    assert values["ETCD_PEER_CERT_FILE"] == member["cert_path"] and values["ETCD_TRUSTED_CA_FILE"] == member["ca_path"]
    assert values["ETCD_CLIENT_CRL_FILE"] == values["ETCD_PEER_CRL_FILE"] == member["crl_path"]
    # etcd reads the first CRL only: the member's issuer's comes first
    assert _crl_issuers(member["crl_path"]) == ["CN=Test Intermediate", "CN=Test Root"]
    again = etcd_config(member, False)
    assert again["changed"] is False and again["changed_keys"] == [] and again["crl_changed"] is False


def test_check_mode_says_what_would_change_and_writes_nothing(member, tmp_path):
    before = tree(tmp_path)
    result = etcd_config(member, True)
    assert result["changed"] is True and "ETCD_KEY_FILE" in result["changed_keys"]
    assert "ETCD_CERT_FILE=/old/server.crt" in result["diff"]["before"]
    assert tree(tmp_path) == before


def _refused(member, match, where=None, tmp_path=None):
    before = open(member["path"], "rb").read()
    with pytest.raises(PkiError, match=match) as caught:
        etcd_config(member, False)
    assert open(member["path"], "rb").read() == before and not os.path.exists(member["crl_path"])
    if where:
        assert caught.value.where == where
    return caught.value


@pytest.mark.parametrize("old, new, match", [
    ('ETCD_ADVERTISE_CLIENT_URLS="https://etcd1', 'ETCD_ADVERTISE_CLIENT_URLS="http://etcd1',
     "plain http .*ETCD_ADVERTISE_CLIENT_URLS: http://etcd1.example.com:2379"),
    ("etcd2=https://", "etcd2=http://", "ETCD_INITIAL_CLUSTER: http://etcd2"),
    ("https://etcd1.example.com:2379", "https://etcd9.example.com:2379", "does not name etcd9.example.com"),
    ("https://etcd1.example.com:2380\"\n", "https://peer1.example.com:2380\"\n", "does not name peer1.example.com"),
    ('ETCD_ADVERTISE_CLIENT_URLS="https://etcd1.example.com:2379"\n', "", "no ETCD_ADVERTISE_CLIENT_URLS"),
    ("ETCD_DATA_DIR=/var/lib/etcd/default", "this line is not a variable", "line 3 is not VARIABLE=value"),
])
def test_a_file_etcd_could_not_use_is_refused_as_it_was(member, old, new, match):
    text = open(member["path"]).read()
    assert old in text
    open(member["path"], "w").write(text.replace(old, new))
    _refused(member, match)


def test_a_file_of_something_else_is_refused(member):
    open(member["path"], "w").write("PATH=/usr/bin\n")
    _refused(member, "sets no ETCD_ variable", "path")
    open(member["path"], "wb").write(b"\xff\xfe garbage")
    _refused(member, "not UTF-8", "path")


def test_a_server_only_certificate_is_refused_peers_present_it_as_clients(member, pki):
    key, cert = pki.leaf(name="etcd1.example.com", sans=("etcd1.example.com",), profile=SERVER)
    write_pair = (pem(cert, pki.int), key_pem(key))
    open(member["cert_path"], "wb").write(write_pair[0])
    open(member["key_path"], "wb").write(write_pair[1])
    error = _refused(member, "as a client certificate .*issue it with client_auth", "cert_path")
    assert member["cert_path"] in str(error)


def test_a_key_of_another_certificate_and_another_cas_certificate_are_refused(member, pki):
    other_key, _cert = pki.leaf(name="etcd1.example.com", sans=("etcd1.example.com",), profile=SERVER_AND_CLIENT)
    open(member["key_path"], "wb").write(key_pem(other_key))
    _refused(member, "does not match the certificate", "key_path")
    other = Pki(int_name="Other Intermediate")
    key, cert = other.leaf(name="etcd1.example.com", sans=("etcd1.example.com",), profile=SERVER_AND_CLIENT)
    open(member["cert_path"], "wb").write(pem(cert, other.int))
    open(member["key_path"], "wb").write(key_pem(key))
    _refused(member, "does not verify against ca_path", "cert_path")


def test_a_crl_bundle_without_the_issuers_crl_is_refused(member):
    other = Pki(int_name="Other Intermediate")
    open(member["crl_bundle"], "wb").write(build_crl(other.issuer, [], None, dt.timedelta(days=30))
                                           .public_bytes(Encoding.PEM))
    _refused(member, "holds no CRL of CN=Test Intermediate", "crl_bundle")


@pytest.mark.parametrize("option", ["cert_path", "crl_path"])
def test_a_path_a_shell_and_systemd_would_read_differently_is_refused(member, option):
    member[option] = member[option].replace("server.crt", "my server.crt").replace("etcd.crl", "etcd$x.crl")
    if option == "cert_path":
        os.link(member["cert_path"].replace("my server.crt", "server.crt"), member[option])
    _refused(member, "quote, \\$, backslash or blank", option)


def test_the_same_file_twice_is_refused(member):
    member["crl_path"] = member["path"]
    before = open(member["path"], "rb").read()
    with pytest.raises(PkiError):
        etcd_config(member, False)
    assert open(member["path"], "rb").read() == before


def test_info_reads_names_urls_and_trust_and_writes_nothing(member, tmp_path):
    etcd_config(member, False)
    before = tree(tmp_path)
    info = etcd_info({"path": member["path"]})
    assert info["name"] == "etcd1" and info["hosts"] == ["etcd1.example.com"]
    assert info["client_address"] == {"host": "etcd1.example.com", "port": 2379}
    assert info["peer_address"] == {"host": "etcd1.example.com", "port": 2380}
    assert info["plain_urls"] == [] and info["tls"]["ETCD_CLIENT_CERT_AUTH"] == "true"
    assert info["ca_files"] == [{"file": member["ca_path"], "named_by": ["ETCD_TRUSTED_CA_FILE",
                                                                         "ETCD_PEER_TRUSTED_CA_FILE"],
                                 "exists": True, "trusted_root": open(member["ca_path"]).read()}]
    assert tree(tmp_path) == before
    link = tmp_path / "link.env"
    link.symlink_to(member["path"])
    with pytest.raises(PkiError):
        etcd_info({"path": str(link)})


# activate: the engine's etcd service, with the restart command, the probe and the health client faked --------------
class Served:
    """What the member serves: ``old`` until the restart command ran (``stuck``: never anything else)."""

    def __init__(self, old, new, commands, stuck=False, down=False):
        self.old, self.new, self.commands, self.stuck, self.down = old, new, commands, stuck, down
        self.asked = []

    def __call__(self, host, port, direct=False, alpn="postgresql", client=None):
        if self.down:
            raise PkiError("cannot connect: [Errno 111] Connection refused", where=f"probe {host}:{port}")
        self.asked.append((host, port, direct, alpn, client))
        restarted = any("restart" in argv for argv, _as_server in self.commands.calls)
        return {"chain": [self.new if (restarted or self.old is None) and not self.stuck else self.old]}


def _activating(member, pki, same=False, old=None, stuck=False, down=False, health="true"):
    if same:
        etcd_config(member, False)
    member.update(activate=True)
    commands = FakeCommands()
    new = x509.load_pem_x509_certificate(open(member["cert_path"], "rb").read())
    served = Served(new if old is None else old, new, commands, stuck=stuck, down=down)
    asked = []
    kwargs = {"commands": commands, "probe": served, "sleep": lambda seconds: None,
              "health_client": lambda *args: asked.append(args) or health}
    return commands, served, asked, kwargs


def test_a_changed_file_restarts_the_member_and_proves_it_healthy(member, pki):
    commands, served, asked, kwargs = _activating(member, pki, old=pki.leaf()[1])
    result = etcd_config(member, False, **kwargs)
    assert result["restart_needed"] is True and result["restarted"] is True
    assert [argv for argv, _as_server in commands.calls] == [["systemctl", "restart", "etcd"]]
    assert [s["step"] for s in result["steps"]][1:] == [RESTART, "Wait until etcd serves the new certificate to "
                                                        "clients and peers", HEALTH]
    # plain TLS on the client and the peer port, the member's own pair as the client
    pair = (member["cert_path"], member["key_path"])
    assert ("etcd1.example.com", 2379, True, None, pair) in served.asked
    assert ("etcd1.example.com", 2380, True, None, pair) in served.asked
    assert asked == [("etcd1.example.com", 2379, member["ca_path"], pair)]


def test_a_renewal_under_the_same_paths_restarts_nothing_and_a_new_root_does(member, pki):
    commands, _served, asked, kwargs = _activating(member, pki, same=True)
    result = etcd_config(member, False, **kwargs)
    assert result["changed"] is False and result["restarted"] is False and commands.calls == []
    assert [s["step"] for s in result["steps"]] == [HEALTH] and len(asked) == 1
    member["trusted_before"] = open(member["ca_path"]).read() + "\n"  # the same roots: nothing to restart
    assert etcd_config(member, False, **kwargs)["restarted"] is False and commands.calls == []
    member["trusted_before"] = pem(Pki().root).decode()  # another root before this run: etcd must read the new one
    result = etcd_config(member, False, **kwargs)
    assert result["restarted"] is True and [argv for argv, _as_server in commands.calls] == [["systemctl", "restart", "etcd"]]


def test_check_mode_restarts_nothing(member, pki):
    commands, _served, asked, kwargs = _activating(member, pki, old=pki.leaf()[1])
    result = etcd_config(member, True, **kwargs)
    assert result["restart_needed"] is True and result["restarted"] is False
    assert commands.calls == [] and asked == [] and "ETCD_CERT_FILE=\"/old/server.crt\"" in open(member["path"]).read()


def test_a_member_that_does_not_answer_is_not_restarted(member, pki):
    commands, _served, asked, kwargs = _activating(member, pki, down=True)
    result = etcd_config(member, False, **kwargs)
    assert result["changed"] is True and result["restarted"] is False and commands.calls == [] and asked == []
    assert "etcd does not answer at etcd1.example.com:2379" in result["warnings"][-1]


def test_an_unhealthy_member_gets_its_file_back_and_is_restarted_again(member, pki):
    commands, _served, asked, kwargs = _activating(member, pki, old=pki.leaf()[1], health="false")
    before = open(member["path"], "rb").read()
    with pytest.raises(PkiError, match="etcd member etcd1: .*health false.*previous environment file was put back; "
                                       "etcd was restarted with it") as caught:
        etcd_config(member, False, **kwargs)
    assert caught.value.details["failed_step"] == HEALTH
    assert open(member["path"], "rb").read() == before
    assert [argv for argv, _as_server in commands.calls] == [["systemctl", "restart", "etcd"]] * 2


def test_an_unhealthy_member_stops_the_run_even_when_nothing_changed(member, pki):
    commands, _served, _asked, kwargs = _activating(member, pki, same=True, health="false")
    with pytest.raises(PkiError, match="etcd member etcd1: .*Nothing was restarted"):
        etcd_config(member, False, **kwargs)
    assert commands.calls == []
