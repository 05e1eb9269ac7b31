"""A Patroni member's TLS in Patroni's YAML (patroni.py): the keys set, the rest of the file kept (passwords never
returned), a second run writing nothing, check mode writing nothing, and each bad input refused naming the option
and the file with the file as it was. tests/e2e/test_patroni.py runs a real Patroni and etcd on what it writes."""

from __future__ import annotations

import datetime as dt
import os

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding
from pkitools import Pki, key_pem, pem, tree, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import build_crl
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.patroni import patroni_config

SECRET = "s3cret-replication-password"
CONFIG = f"""# Patroni member db1
scope: pg
name: db1
restapi:
  listen: 0.0.0.0:8008
  connect_address: db1.example.com:8008
etcd3:
  hosts: etcd1.example.com:2379,etcd2.example.com:2379
postgresql:
  listen: 0.0.0.0:5432
  connect_address: db1.example.com:5432
  data_dir: /var/lib/postgresql/15/main
  authentication:
    replication: {{username: replicator, password: {SECRET}}}
    superuser: {{username: postgres, password: {SECRET}}}
  parameters:
    max_connections: 100
"""


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture
def member(tmp_path, pki):
    key, cert = pki.leaf()
    ckey, ccert = pki.client("patroni")
    rkey, rcert = pki.client("replicator")
    crl = build_crl(pki.issuer, [], None, dt.timedelta(days=30)).public_bytes(Encoding.PEM)
    files = {"cert_path": write(tmp_path / "server.crt", pem(cert, pki.int)),
             "key_path": write(tmp_path / "server.key", key_pem(key)),
             "ca_path": write(tmp_path / "root.crt", pem(pki.root)),
             "crl_path": write(tmp_path / "root.crl", crl)}
    ctl = {"cert_path": write(tmp_path / "patroni.crt", pem(ccert, pki.int)),
           "key_path": write(tmp_path / "patroni.key", key_pem(ckey))}
    replication = {"cert_path": write(tmp_path / "replicator.crt", pem(rcert, pki.int)),
                   "key_path": write(tmp_path / "replicator.key", key_pem(rkey))}
    path = tmp_path / "patroni.yml"
    path.write_text(CONFIG)
    os.chmod(path, 0o600)
    params = {"path": str(path), **files, "min_protocol_version": "TLSv1.2", "restapi": True, "ctl": ctl,
              "etcd": dict(ctl), "replication": replication}
    return params


def test_sets_the_tls_keys_and_keeps_the_rest(member):
    result = patroni_config(member, False)
    assert result["changed"] is True
    written = yaml.safe_load(open(member["path"]).read())
    params = written["postgresql"]["parameters"]
    assert params == {"max_connections": 100, "ssl": "on", "ssl_cert_file": member["cert_path"],
                      "ssl_key_file": member["key_path"], "ssl_ca_file": member["ca_path"],
                      "ssl_min_protocol_version": "TLSv1.2", "ssl_crl_file": member["crl_path"]}
    repl = written["postgresql"]["authentication"]["replication"]
    assert repl == {"username": "replicator", "password": SECRET, "sslmode": "verify-full",
                    "sslrootcert": member["ca_path"], "sslcert": member["replication"]["cert_path"],
                    "sslkey": member["replication"]["key_path"], "sslcrl": member["crl_path"]}
    assert written["postgresql"]["use_unix_socket_repl"] is True  # the certificate does not name localhost
    assert written["restapi"] == {"listen": "0.0.0.0:8008", "connect_address": "db1.example.com:8008",
                                  "certfile": member["cert_path"], "keyfile": member["key_path"],
                                  "cafile": member["ca_path"], "verify_client": "required"}
    assert written["ctl"] == {"certfile": member["ctl"]["cert_path"], "keyfile": member["ctl"]["key_path"],
                              "cacert": member["ca_path"]}
    assert written["etcd3"] == {"hosts": "etcd1.example.com:2379,etcd2.example.com:2379", "protocol": "https",
                                "cacert": member["ca_path"], "cert": member["etcd"]["cert_path"],
                                "key": member["etcd"]["key_path"]}
    assert written["postgresql"]["authentication"]["superuser"]["password"] == SECRET
    assert list(written)[:3] == ["scope", "name", "restapi"]  # the order of the file is kept
    assert oct(os.stat(member["path"]).st_mode & 0o777) == "0o600"
    assert SECRET not in repr(result)
    assert result["dcs"] == "etcd3"
    assert "comments in it are gone" in result["warnings"][0]
    assert "restapi.verify_client: required" in result["diff"]["after"]
    assert "restapi.verify_client: None" in result["diff"]["before"]


def test_a_second_run_and_check_mode_write_nothing(member):
    before = open(member["path"]).read()
    checked = patroni_config(member, True)
    assert checked["changed"] is True and "postgresql.parameters.ssl" in checked["changed_keys"]
    assert open(member["path"]).read() == before
    patroni_config(member, False)
    stat_before = os.stat(member["path"])
    again = patroni_config(member, False)
    assert again["changed"] is False and again["changed_keys"] == []
    assert os.stat(member["path"]).st_ino == stat_before.st_ino
    assert os.stat(member["path"]).st_mtime_ns == stat_before.st_mtime_ns


def test_a_localhost_certificate_keeps_tcp_replication(tmp_path, pki, member):
    key, cert = pki.leaf(sans=("db1.example.com", "localhost"))
    write(tmp_path / "server.crt", pem(cert, pki.int))
    write(tmp_path / "server.key", key_pem(key))
    patroni_config(member, False)
    assert "use_unix_socket_repl" not in yaml.safe_load(open(member["path"]).read())["postgresql"]


def _refused(member, match, where=None):
    folder = os.path.dirname(member["path"])
    before = tree(folder)
    with pytest.raises(PkiError, match=match) as caught:
        patroni_config(member, False)
    assert tree(folder) == before
    if where:
        assert caught.value.where == where
    return caught.value


def test_a_key_of_another_certificate_is_refused(tmp_path, member):
    member["key_path"] = member["ctl"]["key_path"]
    _refused(member, "does not match the certificate", "key_path")


def test_a_certificate_of_another_ca_is_refused(tmp_path, member):
    other = Pki(int_name="Other Intermediate")
    key, cert = other.leaf()
    write(tmp_path / "server.crt", pem(cert, other.int))
    write(tmp_path / "server.key", key_pem(key))
    _refused(member, "does not verify against ca_path", "cert_path")


def test_the_server_pair_as_the_ctl_pair_is_refused(member):
    member["ctl"] = {"cert_path": member["cert_path"], "key_path": member["key_path"]}
    _refused(member, "extended key usage does not allow client", "ctl.cert_path")


def test_a_server_certificate_for_a_client_purpose_is_refused(tmp_path, pki, member):
    key, cert = pki.leaf(name="patroni", sans=("patroni",))
    write(tmp_path / "patroni.crt", pem(cert, pki.int))
    write(tmp_path / "patroni.key", key_pem(key))
    _refused(member, "extended key usage does not allow client", "ctl.cert_path")


def test_a_certificate_without_the_rest_api_name_is_refused(tmp_path, pki, member):
    key, cert = pki.leaf(name="db9.example.com", sans=("db9.example.com",))
    write(tmp_path / "server.crt", pem(cert, pki.int))
    write(tmp_path / "server.key", key_pem(key))
    error = _refused(member, r"does not name db1\.example\.com \(restapi\.connect_address", "cert_path")
    assert member["path"] in str(error)


def test_restapi_without_ctl_is_refused(member):
    member["ctl"] = None
    _refused(member, "members themselves present ctl", "ctl")


@pytest.mark.parametrize("section, value", [("hosts", "http://etcd1:2379,etcd2:2379"), ("url", "http://etcd1:2379"),
                                            ("hosts", ["http://etcd1:2379"])])
def test_etcd_over_plain_http_is_refused(member, section, value):
    config = yaml.safe_load(CONFIG)
    config["etcd3"] = {section: value}
    open(member["path"], "w").write(yaml.safe_dump(config))
    _refused(member, "names etcd over plain http", "etcd")


@pytest.mark.parametrize("change, match", [
    (lambda c: c.pop("etcd3"), "no etcd3 or etcd section"),
    (lambda c: c.update(etcd={"host": "e:2379"}), "both an etcd3 and an etcd section"),
    (lambda c: c.pop("postgresql"), "no 'postgresql' section"),
    (lambda c: c["restapi"].pop("connect_address"), "no restapi.connect_address"),
    (lambda c: c.update(ctl="yes"), "ctl is not a mapping"),
])
def test_a_configuration_that_cannot_work_is_refused(member, change, match):
    config = yaml.safe_load(CONFIG)
    change(config)
    open(member["path"], "w").write(yaml.safe_dump(config))
    error = _refused(member, match)
    assert SECRET not in str(error)


@pytest.mark.parametrize("content", ["scope: [unclosed\n", "- a list\n", "", "\x00\x01"])
def test_a_file_that_is_not_patronis_configuration_is_refused(member, content):
    open(member["path"], "w").write(content)
    _refused(member, "YAML|Patroni's configuration|postgresql", "path")


def test_a_symbolic_link_at_the_configuration_is_refused(tmp_path, member):
    real = tmp_path / "real.yml"
    os.rename(member["path"], real)
    os.symlink(real, member["path"])
    _refused(member, "symbolic link", "path")
    assert member["path"] and yaml.safe_load(real.read_text())["postgresql"]["parameters"] == {"max_connections": 100}


def test_a_config_path_through_dotdot_naming_an_input_is_refused(tmp_path, member):
    member["path"] = str(tmp_path / "sub" / ".." / "server.crt")
    (tmp_path / "sub").mkdir()
    _refused(member, "same file")
