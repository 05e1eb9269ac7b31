"""A Patroni member's TLS in Patroni's YAML (patroni.py): the keys set, the rest of the file kept (passwords never
returned), a second run writing nothing, check mode writing nothing, and each bad input refused naming the option
and the file with the file as it was. tests/e2e/test_patroni.py runs a real Patroni and etcd on what it writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding
from pkitools import Pki, key_pem, pem, tree, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import build_crl
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.patroni import (
    etcd_addresses,
    patroni_config,
    patroni_info,
)

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
    crl = b"".join(build_crl(issuer, [], None, dt.timedelta(days=30)).public_bytes(Encoding.PEM)
                   for issuer in (pki.root_issuer, pki.issuer))
    files = {"cert_path": write(tmp_path / "server.crt", pem(cert, pki.int)),
             "key_path": write(tmp_path / "server.key", key_pem(key)),
             "ca_path": write(tmp_path / "root.crt", pem(pki.root)),
             "crl_path": write(tmp_path / "root.crl", crl)}
    ctl = {"cert_path": write(tmp_path / "patroni.crt", pem(ccert, pki.int)),
           "key_path": write(tmp_path / "patroni.key", key_pem(ckey))}
    replication = {"cert_path": write(tmp_path / "replicator.crt", pem(rcert, pki.int)),
                   "key_path": write(tmp_path / "replicator.key", key_pem(rkey))}
    for key_path in (files["key_path"], ctl["key_path"], replication["key_path"]):
        os.chmod(key_path, 0o600)
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


# reload: the engine's Patroni service (activation.Patroni), with patronictl, psql, the probe and the REST API faked ---
class Served:
    """What the member serves: ``old`` until patronictl reload ran (``stuck``: never anything else)."""

    def __init__(self, old, new, commands, stuck=False, down=False):
        self.old, self.new, self.commands, self.stuck, self.down = old, new, commands, stuck, down
        self.asked = []

    def __call__(self, host, port, direct=False, alpn="postgresql", client=None):
        if self.down:
            raise PkiError("cannot connect: [Errno 111] Connection refused", where=f"probe {host}:{port}")
        self.asked.append((host, port, direct, alpn, client))
        reloaded = any("reload" in argv for argv, _as_server in self.commands.calls)
        return {"chain": [self.new if reloaded and not self.stuck else self.old]}


QUIET = {"state": "running", "pending_restart": False, "pending_restart_parameters": []}


def _reloading(member, tmp_path, pki, stuck=False, down=False, same=False, answer=None):
    from test_activation import FakeCommands

    config = yaml.safe_load(CONFIG)
    config["postgresql"]["connect_address"] = "db1.example.com:5432"
    open(member["path"], "w").write(yaml.safe_dump(config))
    if same:
        patroni_config(member, False)
    # the files are root's in a folder only root enters: Patroni runs as root here, as far as the checks go
    member.update(reload=True, server_user="root", patronictl="/usr/bin/patronictl", wait_seconds=1)
    commands = FakeCommands()
    new = pem_leaf(member["cert_path"])
    old = new if same else pki.leaf()[1]
    served = Served(old, new, commands, stuck=stuck, down=down)
    rest = []
    kwargs = {"commands": commands, "probe": served, "sleep": lambda seconds: None,
              "rest_client": lambda *args: rest.append(args) or answer or dict(QUIET),
              "loop_wait": lambda *args: rest.append(("loop_wait",) + args) or 4}
    if same:
        # The member was reloaded through this module once (the record of what it loaded is written then).
        assert patroni_config(member, False, **kwargs)["reloaded"] is True
        commands.calls.clear()
        rest.clear()
        served.asked.clear()
    return commands, served, rest, kwargs


def reloads(commands) -> int:
    return len([argv for argv, _as_server in commands.calls if "reload" in argv])


def pem_leaf(path):
    from cryptography import x509

    return x509.load_pem_x509_certificate(open(path, "rb").read())


def test_reload_when_the_member_serves_another_certificate(tmp_path, pki, member):
    commands, served, rest, kwargs = _reloading(member, tmp_path, pki, same=True)
    served.old = pki.leaf()[1]  # the file is as wanted, the certificate was renewed under the same path
    result = patroni_config(member, False, **kwargs)
    assert result["changed_keys"] == [] and result["reload_needed"] is True and result["reloaded"] is True
    assert result["pending_restart"] is False and not result.get("warnings")
    reloads = [(argv, as_server) for argv, as_server in commands.calls if "reload" in argv]
    assert reloads == [(["/usr/bin/patronictl", "-c", member["path"], "reload", "--force", "pg", "db1"], True)]
    assert [s["step"] for s in result["steps"]][-4:] == [
        "Reload Patroni (patronictl reload: PostgreSQL and the REST API)",
        "Wait until the REST API and PostgreSQL serve the new certificate",
        "Connect with libpq, sslmode=verify-full by name",
        "The REST API answers over mTLS (the ctl certificate), verified by name"]
    # the REST API is asked with plain TLS and the ctl pair; PostgreSQL with its SSLRequest
    assert ("db1.example.com", 8008, True, None, (member["ctl"]["cert_path"], member["ctl"]["key_path"])) \
        in served.asked
    assert ("db1.example.com", 5432, False, "postgresql", None) in served.asked
    psql = next(argv for argv, _as_server in commands.calls if argv[0] == "psql")
    assert "host=db1.example.com port=5432" in psql[-1] and "sslmode=verify-full" in psql[-1]
    assert rest == [("db1.example.com", 8008, member["ca_path"],
                     (member["ctl"]["cert_path"], member["ctl"]["key_path"]))]


@pytest.mark.parametrize("parameters, which", [(["max_connections"], "(max_connections)"),
                                               ([], "(Patroni 3 does not say which parameters)")])
def test_a_restart_patroni_says_is_pending_is_reported_not_made(tmp_path, pki, member, parameters, which):
    """Patroni's REST API says a restart is pending (another parameter: the TLS settings reload): reported with a
    warning naming patronictl restart, and no restart is run."""
    answer = {"state": "running", "pending_restart": True, "pending_restart_parameters": parameters}
    commands, _served, _rest, kwargs = _reloading(member, tmp_path, pki, answer=answer)
    result = patroni_config(member, False, **kwargs)
    assert result["reloaded"] is True and result["pending_restart"] is True
    assert f"db1 has a restart pending {which}" in result["warnings"][-1]
    assert "patronictl restart pg db1" in result["warnings"][-1]
    assert not [argv for argv, _as_server in commands.calls if "restart" in argv]
    assert result["steps"][-1]["state"] == "running"


def test_no_reload_when_nothing_changed_and_the_installed_certificate_is_served(tmp_path, pki, member):
    commands, served, rest, kwargs = _reloading(member, tmp_path, pki, same=True)
    result = patroni_config(member, False, **kwargs)
    assert result["changed"] is False and result["reload_needed"] is False and result["reloaded"] is False
    assert commands.calls == [] and rest == []


def test_a_crl_written_by_the_run_reloads_a_member_that_changed_nothing_else(tmp_path, pki, member):
    """The role wrote a new CRL (a revocation): PostgreSQL reads ssl_crl_file on a reload only, so the member is
    reloaded and proven though its file and served certificate are as wanted."""
    commands, _served, rest, kwargs = _reloading(member, tmp_path, pki, same=True)
    kwargs["sleep"] = lambda seconds: rest.append(("slept", seconds))
    result = patroni_config(dict(member, crl_changed=True), False, **kwargs)
    assert result["changed_keys"] == [] and result["reload_needed"] is True and result["reloaded"] is True
    assert result["changed"] is True
    assert [argv for argv, _as_server in commands.calls if "reload" in argv] == [
        ["/usr/bin/patronictl", "-c", member["path"], "reload", "--force", "pg", "db1"]]
    # the served certificate stays: nothing shows when Patroni reloads PostgreSQL, so one cycle (loop_wait) is waited
    # for - asked of the REST API over mTLS - before the proof
    pair = (member["ctl"]["cert_path"], member["ctl"]["key_path"])
    assert rest[:2] == [("loop_wait", "db1.example.com", 8008, member["ca_path"], pair), ("slept", 5)]
    assert rest[-1] == ("db1.example.com", 8008, member["ca_path"], pair)
    cycle = next(s for s in result["steps"] if s["step"].startswith("Wait one Patroni cycle"))
    assert cycle["seconds"] == 5


def test_a_proven_reload_records_what_the_member_loaded(tmp_path, pki, member):
    """The digests of the configuration file and the CRL, written after the proof (0600, beside the certificate);
    nothing else of the files (the file holds passwords)."""
    _reloading(member, tmp_path, pki, same=True)
    record = tmp_path / ".pgtls-loaded"
    assert (record.stat().st_mode & 0o777) == 0o600
    loaded = json.loads(record.read_text())
    assert loaded == {"config": hashlib.sha256(open(member["path"], "rb").read()).hexdigest(),
                      "crl": hashlib.sha256(open(member["crl_path"], "rb").read()).hexdigest()}
    assert SECRET not in record.read_text()


@pytest.mark.parametrize("stopped_run", ["crl", "config"])
def test_what_a_stopped_run_wrote_is_reloaded_by_the_next_one(tmp_path, pki, member, stopped_run):
    """A run stopped after a write and before its reload: the patroni playbook's CRL play wrote a new CRL (the
    member's batch never came), or the file was written and the run killed before patronictl reload. The next run
    finds nothing to change and the installed certificate served, yet reloads (one Patroni cycle waited, the served
    certificate staying), proves, and records; the run after it does nothing."""
    commands, _served, rest, kwargs = _reloading(member, tmp_path, pki, same=True)
    record = (tmp_path / ".pgtls-loaded").read_bytes()
    if stopped_run == "crl":
        crl = b"".join(build_crl(issuer, [], None, dt.timedelta(days=7)).public_bytes(Encoding.PEM)
                       for issuer in (pki.root_issuer, pki.issuer))
        write(tmp_path / "root.crl", crl)
    else:
        config = yaml.safe_load(open(member["path"]))
        config["postgresql"]["parameters"]["max_connections"] = 200  # another key: kept, but the file is new
        open(member["path"], "w").write(yaml.safe_dump(config))
    result = patroni_config(member, False, **kwargs)
    assert result["changed_keys"] == [] and result["reload_needed"] is True and result["reloaded"] is True
    assert result["changed"] is True and reloads(commands) == 1
    assert any(s["step"].startswith("Wait one Patroni cycle") for s in result["steps"])
    assert (tmp_path / ".pgtls-loaded").read_bytes() != record
    commands.calls.clear()
    again = patroni_config(member, False, **kwargs)
    assert again["changed"] is False and again["reload_needed"] is False and reloads(commands) == 0


def test_a_member_without_a_record_is_reloaded_once(tmp_path, pki, member):
    """A member set up by a release before the record (or whose record was removed): nothing differs, the installed
    certificate is served, but nothing says what it loaded - reloaded and proven once, then recorded."""
    commands, _served, _rest, kwargs = _reloading(member, tmp_path, pki, same=True)
    (tmp_path / ".pgtls-loaded").unlink()
    assert patroni_config(member, False, **kwargs)["reloaded"] is True and reloads(commands) == 1
    commands.calls.clear()
    assert patroni_config(member, False, **kwargs)["reloaded"] is False and reloads(commands) == 0


def test_check_mode_says_a_reload_is_needed_and_runs_nothing(tmp_path, pki, member):
    commands, _served, rest, kwargs = _reloading(member, tmp_path, pki)
    before = open(member["path"]).read()
    result = patroni_config(member, True, **kwargs)
    assert result["reload_needed"] is True and result["reloaded"] is False
    assert commands.calls == [] and rest == [] and open(member["path"]).read() == before


def test_a_member_whose_rest_api_does_not_answer_is_not_reloaded(tmp_path, pki, member):
    commands, _served, rest, kwargs = _reloading(member, tmp_path, pki, down=True)
    result = patroni_config(member, False, **kwargs)
    assert result["changed"] is True and result["reloaded"] is False and result["reload_needed"] is False
    assert "does not answer at db1.example.com:8008" in result["warnings"][-1]
    assert not [argv for argv, _as_server in commands.calls if "reload" in argv] and rest == []
    # What it reads when it starts: recorded, so the run after its start does not reload it for nothing.
    assert json.loads((tmp_path / ".pgtls-loaded").read_text())["config"] == hashlib.sha256(
        open(member["path"], "rb").read()).hexdigest()


def test_a_member_still_serving_the_old_certificate_gets_its_file_back(tmp_path, pki, member):
    commands, _served, rest, kwargs = _reloading(member, tmp_path, pki, stuck=True)
    before = open(member["path"], "rb").read()
    with pytest.raises(PkiError, match="Patroni member db1: \"Wait until the REST API and PostgreSQL serve the new "
                                       "certificate\" failed.*previous configuration file was put back; "
                                       "Patroni was reloaded") as caught:
        patroni_config(member, False, **kwargs)
    assert caught.value.details["failed_step"] == "Wait until the REST API and PostgreSQL serve the new certificate"
    assert open(member["path"], "rb").read() == before
    assert len([argv for argv, _as_server in commands.calls if "reload" in argv]) == 2  # the reload, then the one after
    assert rest == []
    assert not (tmp_path / ".pgtls-loaded").exists()  # nothing proven: the next run reloads again


@pytest.mark.parametrize("change, match", [
    (lambda c: c["postgresql"].pop("connect_address"), "no postgresql.connect_address with a port"),
    (lambda c: c.pop("scope"), "names no scope or name"),
])
def test_reload_needs_the_addresses_and_the_names(tmp_path, pki, member, change, match):
    _commands, _served, _rest, kwargs = _reloading(member, tmp_path, pki)
    config = yaml.safe_load(open(member["path"]).read())
    change(config)
    open(member["path"], "w").write(yaml.safe_dump(config))
    before = tree(os.path.dirname(member["path"]))
    with pytest.raises(PkiError, match=match):
        patroni_config(member, False, **kwargs)
    assert tree(os.path.dirname(member["path"])) == before


def test_reload_without_ctl_is_refused(tmp_path, pki, member):
    _commands, _served, _rest, kwargs = _reloading(member, tmp_path, pki)
    member.update(ctl=None, restapi=False)
    _refused(member, "reload proves the REST API with the ctl client certificate", "ctl")


def test_two_runs_on_one_member_take_turns(member):
    """The second run waits for the first one's lock on the file (planner.host_locked) before it reads anything."""
    import threading

    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.planner import host_locked

    results = []
    with host_locked(member["path"], where="path"):
        runner = threading.Thread(target=lambda: results.append(patroni_config(member, False)))
        runner.start()
        runner.join(1.0)
        assert runner.is_alive() and results == [] and "ssl_cert_file" not in open(member["path"]).read()
    runner.join(10)
    assert results and results[0]["changed"] is True


def test_info_reads_identity_names_and_trust_and_never_a_password(tmp_path, pki, member):
    info = patroni_info({"path": member["path"]})
    assert (info["scope"], info["name"], info["dcs"]) == ("pg", "db1", "etcd3")
    assert info["connect_hosts"] == ["db1.example.com"] and info["ca_files"] == []
    patroni_config(member, False)
    other = write(tmp_path / "other-root.crt", pem(Pki().root))
    config = yaml.safe_load(open(member["path"]).read())
    config["ctl"]["cacert"] = other
    config["postgresql"]["connect_address"] = "10.0.0.1:5432"
    with open(member["path"], "w") as handle:
        yaml.safe_dump(config, handle)
    info = patroni_info({"path": member["path"]})
    assert info["connect_hosts"] == ["db1.example.com", "10.0.0.1"]
    assert info["addresses"] == {"postgresql": {"host": "10.0.0.1", "port": 5432},
                                 "restapi": {"host": "db1.example.com", "port": 8008}}
    assert [(f["file"], f["named_by"], f["exists"]) for f in info["ca_files"]] == [
        (member["ca_path"], ["postgresql.parameters.ssl_ca_file", "restapi.cafile",
                             "postgresql.authentication.replication.sslrootcert", "etcd3.cacert"], True),
        (other, ["ctl.cacert"], True)]
    assert info["ca_files"][0]["trusted_root"] == open(member["ca_path"]).read()
    assert SECRET not in str(info) and info["changed"] is False
    before = tree(tmp_path)
    patroni_info({"path": member["path"]})
    assert tree(tmp_path) == before


def test_info_refuses_what_is_not_patronis_configuration(tmp_path, member):
    link = tmp_path / "link.yml"
    link.symlink_to(member["path"])
    for path, match in ((str(link), "symbolic link"), (str(tmp_path / "none.yml"), "does not exist"),
                        (member["key_path"], "does not hold Patroni's configuration")):
        with pytest.raises(PkiError, match=match):
            patroni_info({"path": path})


@pytest.mark.parametrize("section, expected", [
    ({"hosts": "e1:2379,e2:2380"}, [("e1", 2379), ("e2", 2380)]),
    ({"hosts": ["https://e1:2379", "e2"]}, [("e1", 2379), ("e2", 2379)]),
    ({"host": "[fd00::1]:2379", "url": "https://e1:2379"}, [("fd00::1", 2379), ("e1", 2379)]),
    ({"proxy": "https://p:8080", "hosts": "e1:2379,e1:2379"}, [("e1", 2379), ("p", 8080)]),
    ({"hosts": "e1:notaport"}, []),
    ({}, []),
])
def test_etcd_addresses_as_patroni_names_them(section, expected):
    assert etcd_addresses(section) == expected


def test_info_asks_each_etcd_address_whether_its_certificate_names_it(tmp_path, pki, member):
    _key, leaf = pki.leaf()  # names db1 (the pkitools leaf), not etcd1
    asked = []

    def probe(host, port, timeout, direct, alpn):
        asked.append((host, port, direct, alpn))
        if host == "etcd2.example.com":
            raise PkiError("cannot connect: refused", where=f"probe {host}:{port}")
        return {"chain": [leaf]}

    info = patroni_info({"path": member["path"], "probe_etcd": True, "probe_timeout": 1.0}, probe=probe)
    assert asked == [("etcd1.example.com", 2379, True, None), ("etcd2.example.com", 2379, True, None)]
    assert [(e["host"], e["served"], e["names_host"]) for e in info["etcd_endpoints"]] == [
        ("etcd1.example.com", True, False), ("etcd2.example.com", False, False)]
    first, second = info["etcd_problems"]
    assert first.startswith(f"etcd at etcd1.example.com:2379 ({member['path']}) serves CN=") and \
        "do not include etcd1.example.com" in first
    assert "etcd2.example.com:2379" in second and "does not answer a TLS handshake" in second
    assert patroni_info({"path": member["path"]}, probe=probe)["etcd_problems"] == [] and len(asked) == 2
