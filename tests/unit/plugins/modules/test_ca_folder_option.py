"""The ca_folder option of server_cert and client_cert (the shared IssuingAction): the CA folder's intermediate signs
(openssl verifies the chain against the folder's root), its issued/ archive records every certificate, a second run
changes nothing; the options it stands for are refused beside it; a folder without its CA fails naming ca_folder
before anything is written; client_cert leaves out, returns and warns about the names the folder's registry revokes.
The modules run in this process (inprocess.py) on a CA folder made by pgtls.ssl.ca_folder."""

from __future__ import annotations

import os
import re
from unittest import mock

import pytest
from inprocess import run
from pkitools import openssl, tree

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import specs
from ansible_collections.pgtls.ssl.plugins.plugin_utils import _action

SERVER = {"subject_alt_names": ["db1.example.com"]}


def server_args(work, name="server", **extra):
    return {"key_path": str(work / "out" / f"{name}.key"), "cert_path": str(work / "out" / f"{name}.crt"),
            "root_cert_path": str(work / "out" / f"{name}-root.crt"), "ca_folder": str(work / "pki"), **SERVER,
            **extra}


def client_args(work, *names, **extra):
    return {"clients": [{"name": n} for n in names], "dest": str(work / "out"), "key_location": "controller",
            "ca_folder": str(work / "pki"), **extra}


def verify(work, leaf, purpose):
    """openssl, the oracle: leaf then intermediate in the file, trusted up to the CA folder's root."""
    done = openssl("verify", "-purpose", purpose, "-CAfile", str(work / "pki" / "root.crt"), "-untrusted", str(leaf),
                   str(leaf))
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def archived(work, name):
    """The serials of the archive's files of ``name`` (<SERIAL>.crt, hex), as numbers."""
    folder = work / "pki" / "issued" / name
    return sorted(int(p.name[:-len(".crt")], 16) for p in folder.iterdir()) if folder.is_dir() else []


def serial_of(path):
    """The serial of a certificate file, as openssl reads it."""
    out = openssl("x509", "-in", str(path), "-noout", "-serial").stdout.decode()
    return int(out.strip().split("=", 1)[1], 16)


# Issuing from the CA folder ------------------------------------------------------------------------------------------
def test_server_cert_signed_by_the_ca_folder_archived_then_unchanged(work):
    first = run("server_cert", server_args(work))
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] and first["issued"] and first["chain_length"] == 2
    assert first["certificate"]["issuer"] == "CN=Option CA"
    verify(work, work / "out" / "server.crt", "sslserver")
    assert (work / "out" / "server-root.crt").read_bytes() == (work / "pki" / "root.crt").read_bytes()
    assert archived(work, "db1.example.com") == [serial_of(work / "out" / "server.crt")]
    before = tree(work)
    again = run("server_cert", server_args(work))
    assert not again.get("failed"), again.get("msg")
    assert not again["changed"] and not again["issued"] and again["reasons"] == []
    assert tree(work) == before


def test_client_cert_signed_by_the_ca_folder_archived_then_unchanged(work):
    first = run("client_cert", client_args(work, "app", "report"))
    assert not first.get("failed"), first.get("msg")
    assert first["issued"] == 2 and first["revoked_names_skipped"] == []
    for name in ("app", "report"):
        verify(work, work / "out" / name / "postgresql.crt", "sslclient")
        assert archived(work, name) == [serial_of(work / "out" / name / "postgresql.crt")]
    before = tree(work)
    again = run("client_cert", client_args(work, "app", "report"))
    assert not again.get("failed"), again.get("msg")
    assert not again["changed"] and again["issued"] == 0
    assert tree(work) == before


def test_check_mode_tells_the_truth_and_writes_nothing(work):
    before = tree(work)
    checked = run("server_cert", server_args(work), check_mode=True)
    assert not checked.get("failed"), checked.get("msg")
    assert checked["changed"] and checked["issued"]
    assert tree(work) == before
    applied = run("server_cert", server_args(work))
    assert applied["changed"]
    again = run("server_cert", server_args(work), check_mode=True)
    assert not again["changed"], again["reasons"]


def test_an_offline_intermediate_key_is_needed_only_to_sign(work):
    assert not run("client_cert", client_args(work, "app")).get("failed")
    os.rename(work / "pki" / "intermediate.key", work / "intermediate.key")
    unchanged = run("client_cert", client_args(work, "app"))
    assert not unchanged.get("failed") and not unchanged["changed"], unchanged.get("msg")
    # A new client must be signed: the missing key is named in ca_folder's words.
    before = tree(work / "pki")
    refused = run("client_cert", client_args(work, "new"))
    assert refused.get("failed")
    assert refused["msg"].startswith(f"ca_folder: file {work}/pki/intermediate.key does not exist"), refused["msg"]
    assert "issuer_key_path" not in refused["msg"]
    assert tree(work / "pki") == before


# Refused beside the options it stands for ----------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["server_cert", "client_cert"])
@pytest.mark.parametrize("option", specs.CA_FOLDER_REPLACES)
def test_ca_folder_excludes_the_options_it_stands_for(work, module, option):
    args = server_args(work) if module == "server_cert" else client_args(work, "app")
    args[option] = str(work / "pki" / "issued") if option == "record_dir" else (
        "-----BEGIN CERTIFICATE-----" if option.endswith("_content") else str(work / "pki" / "intermediate.crt"))
    before = tree(work)
    done = run(module, args)
    assert done.get("failed")
    assert done["msg"] == f"parameters are mutually exclusive: ca_folder|{option}"
    assert tree(work) == before


@pytest.mark.parametrize("module", ["server_cert", "client_cert"])
def test_an_issuer_or_a_ca_folder_is_required(work, module):
    args = server_args(work) if module == "server_cert" else client_args(work, "app")
    del args["ca_folder"]
    done = run(module, args)
    assert done.get("failed")
    assert done["msg"] == "one of the following is required: issuer_cert_path, issuer_cert_content, ca_folder"


def test_the_passphrase_of_the_intermediate_key_stays_an_option(work):
    done = run("client_cert", client_args(work, "app", issuer_key_passphrase="not needed"))
    assert done.get("failed")  # the folder's key is not encrypted: the passphrase is refused by the key loader
    assert re.match(rf"ca_folder \({re.escape(str(work))}/pki/intermediate\.key\): ", done["msg"]), done["msg"]


# A folder without its CA -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["server_cert", "client_cert"])
@pytest.mark.parametrize("state, message", [
    ("missing", "no intermediate CA in ca_folder ({pki}: intermediate.crt is missing)"),
    ("empty", "no intermediate CA in ca_folder ({pki}: intermediate.crt is missing)"),
    ("no root", "no root CA in ca_folder ({pki}: root.crt is missing)"),
])
def test_a_folder_without_its_ca_fails_naming_ca_folder_before_anything_is_written(work, module, state, message):
    pki = work / "pki"
    if state == "missing":
        os.rename(pki, work / "elsewhere")
    elif state == "empty":
        for entry in pki.iterdir():
            if entry.is_file():
                entry.unlink()
    else:
        (pki / "root.crt").unlink()
    before = tree(work)
    args = server_args(work) if module == "server_cert" else client_args(work, "app")
    done = run(module, args)
    assert done.get("failed")
    assert done["msg"] == message.format(pki=pki) + (
        ": run the site playbook (pgtls.ssl.server) first, or point ca_folder at the CA folder it made")
    assert done["module_executions"] == 0  # the host was not asked
    assert tree(work) == before
    assert state != "missing" or not pki.exists()


@pytest.mark.parametrize("module", ["server_cert", "client_cert"])
def test_a_file_is_no_ca_folder(work, module):
    (work / "file").write_text("not a folder\n")
    args = server_args(work) if module == "server_cert" else client_args(work, "app")
    done = run(module, dict(args, ca_folder=str(work / "file")))
    assert done.get("failed")
    assert done["msg"] == f"ca_folder: {work}/file exists and is not a folder: the option names a CA folder"


def test_a_damaged_intermediate_is_named_in_ca_folders_words(work):
    path = work / "pki" / "intermediate.crt"
    path.write_text(path.read_text()[:200])
    done = run("server_cert", server_args(work))
    assert done.get("failed")
    assert done["msg"].startswith(f"ca_folder ({path}): "), done["msg"]
    assert "issuer_cert_path" not in done["msg"]


# Revoked names -----------------------------------------------------------------------------------------------------
def revoke(work, *names):
    done = run("revocation_registry", {"pki_dir": str(work / "pki"), "names": list(names), "reason": "key_compromise"})
    assert not done.get("failed") and done["changed"], done.get("msg")


def test_a_name_revoked_in_the_registry_is_left_out_returned_and_warned_about(work):
    assert run("client_cert", client_args(work, "mallory"))["issued"] == 1
    revoke(work, "mallory")
    # mallory's old files stay as they are; a new host (another dest) gets nothing for mallory, app is certified.
    elsewhere = work / "out" / "host2"
    elsewhere.mkdir()
    for check_mode in (True, False):
        with mock.patch.object(_action.display, "warning") as warning:
            done = run("client_cert", client_args(work, "app", "mallory", dest=str(elsewhere)), check_mode=check_mode)
        assert not done.get("failed"), done.get("msg")
        assert done["revoked_names_skipped"] == ["mallory"]
        assert [c["name"] for c in done["clients"]] == ["app"] and done["issued"] == 1
        warning.assert_called_once_with(
            f"not certified again, revoked in {work}/pki/revoked.yml: mallory. To give such a role a new certificate, "
            "remove its entries from the registry and its old key (postgresql.key) from the controller, so a new key "
            "is made.")
    assert sorted(os.listdir(elsewhere)) == ["app"]
    assert len(archived(work, "mallory")) == 1  # nothing issued to mallory since


def test_a_revoked_name_is_certified_without_ca_folder(work):
    """The registry belongs to the CA folder: with the issuer options, nothing is left out (the role uses ca_folder)."""
    assert run("client_cert", client_args(work, "mallory"))["issued"] == 1
    revoke(work, "mallory")
    pki = work / "pki"
    args = client_args(work, "mallory", dest=str(work / "out" / "host2"), issuer_cert_path=str(pki / "intermediate.crt"),
                       issuer_key_path=str(pki / "intermediate.key"), issuer_chain_path=str(pki / "root.crt"))
    del args["ca_folder"]
    (work / "out" / "host2").mkdir()
    done = run("client_cert", args)
    assert done["issued"] == 1 and done["revoked_names_skipped"] == []


def test_every_name_revoked_costs_no_host_execution(work):
    assert not run("client_cert", client_args(work, "mallory")).get("failed")
    revoke(work, "mallory")
    args = {"clients": [{"name": "mallory", "dir": str(work / "out" / "m")}], "ca_folder": str(work / "pki")}
    before = tree(work)
    with mock.patch.object(_action.display, "warning") as warning:
        done = run("client_cert", args)
    assert not done.get("failed"), done.get("msg")
    assert done["revoked_names_skipped"] == ["mallory"] and done["clients"] == [] and not done["changed"]
    assert done["module_executions"] == 0
    assert "from the host, so a new key is made" in warning.call_args.args[0]
    assert tree(work) == before


def test_no_clients_checks_the_ca_folder_and_asks_no_host(work):
    done = run("client_cert", {"clients": [], "ca_folder": str(work / "pki")})
    assert not done.get("failed") and not done["changed"] and done["module_executions"] == 0, done
    os.rename(work / "pki", work / "gone")
    done = run("client_cert", {"clients": [], "ca_folder": str(work / "pki")})
    assert done.get("failed") and done["msg"].startswith("no intermediate CA in ca_folder ("), done["msg"]


def test_a_registry_name_that_is_not_a_string_fails_naming_the_entry(work):
    (work / "pki" / "revoked.yml").write_text("- {serial_number: '0x1F', name: 123}\n")
    before = tree(work)
    done = run("client_cert", client_args(work, "app"))
    assert done.get("failed")
    assert done["msg"] == (f"ca_folder: {work}/pki/revoked.yml entry 1: name 123 is a int, not a role name (quote it "
                           "in the registry)")
    assert tree(work) == before


def test_a_registry_that_is_a_link_is_refused(work):
    (work / "revoked.yml").write_text("[]\n")
    os.symlink(work / "revoked.yml", work / "pki" / "revoked.yml")
    done = run("client_cert", client_args(work, "app"))
    assert done.get("failed")
    assert done["msg"].startswith(f"ca_folder: {work}/pki/revoked.yml is a symbolic link"), done["msg"]


def test_client_cert_and_the_lookup_read_the_registry_alike(work):
    """One reader of the registry: what client_cert leaves out (the client role) is what the lookup lists (PgBouncer)."""
    from ansible_collections.pgtls.ssl.plugins.lookup.revoked_names import LookupModule

    assert run("client_cert", client_args(work, "app", "eve", "mallory"))["issued"] == 3
    revoke(work, "mallory", "eve")
    done = run("client_cert", client_args(work, "mallory", "app", "eve"))
    assert done["revoked_names_skipped"] == ["mallory", "eve"]  # in the order of clients
    assert LookupModule().run([str(work / "pki")], {}) == ["eve", "mallory"]  # sorted


# Bundles and the CA folder ------------------------------------------------------------------------------------------
def test_bundles_go_in_the_ca_folders_clients_folder(work):
    from ansible_collections.pgtls.ssl.plugins.filter.ca_folder_layout import ca_folder_layout

    clients = ca_folder_layout(str(work / "pki"))["clients"]
    os.mkdir(clients, 0o700)
    done = run("client_cert", client_args(work, "app", dest=clients))
    assert not done.get("failed"), done.get("msg")
    verify(work, work / "pki" / "clients" / "app" / "postgresql.crt", "sslclient")


@pytest.mark.parametrize("dest, what", [
    ("pki", "the CA folder"),
    ("pki/issued", "issued, in the archive of issued certificates (issued/) of the CA folder"),
])
def test_bundles_elsewhere_in_the_ca_folder_are_refused_naming_dest(work, dest, what):
    (work / "pki" / "issued").mkdir(exist_ok=True)
    before = tree(work)
    done = run("client_cert", client_args(work, "app", dest=str(work / dest)))
    assert done.get("failed")
    assert done["msg"] == (f"dest: {work}/{dest} is {what} {work}/pki (ca_folder): bundles go in its clients/ folder "
                           "or outside it")
    assert tree(work) == before


# A client's folder by default: ~owner/.postgresql and the owner's primary group, from the host's passwd --------------
@pytest.fixture
def appuser(work, monkeypatch):
    """An OS user 'appuser' (this process's uid, so the files can be its; gid 4242; home in the test's folder) as the
    host's passwd (pwd, which ~appuser's expansion reads too) has it."""
    import pwd

    home = work / "home" / "appuser"
    home.mkdir(parents=True)
    entry = pwd.struct_passwd(("appuser", "x", os.geteuid(), 4242, "", str(home), "/bin/sh"))
    real = pwd.getpwnam
    monkeypatch.setattr(pwd, "getpwnam", lambda name: entry if name == "appuser" else real(name))
    return home


def test_client_cert_without_a_folder_uses_the_owners_home_and_group(work, appuser):
    args = {"clients": [{"name": "app", "owner": "appuser"}], "ca_folder": str(work / "pki")}
    done = run("client_cert", args)
    assert not done.get("failed"), done.get("msg")
    folder = appuser / ".postgresql"
    assert done["clients"][0]["dir"] == str(folder)
    assert (done["clients"][0]["home"], done["clients"][0]["group"], done["clients"][0]["owner"]) == (
        str(appuser), 4242, "appuser")
    verify(work, folder / "postgresql.crt", "sslclient")
    for name in ("postgresql.key", "postgresql.crt", "root.crt"):
        assert (folder / name).stat().st_gid == 4242, name
    assert oct((folder / "postgresql.key").stat().st_mode & 0o777) == "0o600"
    before = tree(work)
    again = run("client_cert", args)
    assert not again.get("failed") and not again["changed"], again
    assert tree(work) == before


def test_client_cert_owner_without_passwd_entry_or_folder_is_refused_by_name(work):
    before = tree(work)
    ghost = run("client_cert", {"clients": [{"name": "app", "owner": "pgtls-no-such-user"}],
                                "ca_folder": str(work / "pki")})
    assert ghost.get("failed")
    assert "clients[0] (app).owner: user 'pgtls-no-such-user' does not exist on this host" in ghost["msg"], ghost["msg"]
    nobody = run("client_cert", {"clients": [{"name": "app"}], "ca_folder": str(work / "pki")})
    assert nobody.get("failed")
    assert nobody["msg"].startswith("clients[0].dir: no folder: set clients[].dir, dest or owner"), nobody["msg"]
    assert tree(work) == before
