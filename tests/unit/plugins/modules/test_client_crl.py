"""client_cert's crl: the CA folder's CRLs written as root.crl beside root.crt (libpq's sslcrl), so a client refuses a
server whose certificate the CA revoked. Rewritten when the folder signs new CRLs, unchanged otherwise; refused
before anything is written when the folder has none, when one has expired, or when a CA the client trusts has no CRL
(libpq would refuse every server: openssl, the oracle, says so too); a warning when fewer than 7 days are left.
The modules run in this process (inprocess.py) on a CA folder made by pgtls.ssl.ca_folder."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from inprocess import run
from pkitools import openssl, tree

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.plugin_utils import _action


def client_args(work, *names, **extra):
    return {"clients": [{"name": n} for n in names], "dest": str(work / "out"), "key_location": "controller",
            "ca_folder": str(work / "pki"), "crl": True, **extra}


def server_cert(work, name="db1.example.com"):
    done = run("server_cert", {"key_path": str(work / "srv" / "server.key"), "cert_path": str(work / "srv" / "server.crt"),
                               "subject_alt_names": [name], "ca_folder": str(work / "pki"), "create_dir": True})
    assert not done.get("failed"), done.get("msg")
    return done["certificate"]["serial"]


def verify_server(work, client: str):
    """openssl as libpq checks a server with sslcrl: CRL_CHECK_ALL against the client's root.crt and root.crl."""
    folder = work / "out" / client
    return openssl("verify", "-crl_check_all", "-CAfile", str(folder / "root.crt"), "-CRLfile", str(folder / "root.crl"),
                   "-untrusted", str(work / "srv" / "server.crt"), str(work / "srv" / "server.crt"))


def test_root_crl_is_the_ca_folders_crls_then_unchanged_then_rewritten_with_a_revocation(work):
    serial = server_cert(work)
    first = run("client_cert", client_args(work, "app", "report"))
    assert not first.get("failed"), first.get("msg")
    for name in ("app", "report"):
        assert (work / "out" / name / "root.crl").read_bytes() == (work / "pki" / "crl.pem").read_bytes()
    assert [c["crl"] for c in first["clients"]] == [str(work / "out" / n / "root.crl") for n in ("app", "report")]
    assert dt.datetime.fromisoformat(first["crl_next_update"]) > compat.now() + dt.timedelta(days=20)
    ok = verify_server(work, "app")
    assert ok.returncode == 0, (ok.stdout + ok.stderr).decode()
    before = tree(work)
    again = run("client_cert", client_args(work, "app", "report"))
    assert not again["changed"] and tree(work) == before
    # The server's certificate revoked and the CRLs signed again: the clients' root.crl follows, and refuses it.
    done = run("revocation_registry", {"pki_dir": str(work / "pki"), "serials": [serial], "reason": "key_compromise"})
    assert not done.get("failed"), done.get("msg")
    assert run("ca_folder", {"path": str(work / "pki"), "root_common_name": "Option Root",
                             "intermediate_common_name": "Option CA"})["changed"]
    third = run("client_cert", client_args(work, "app", "report"))
    assert third["changed"] and third["issued"] == 0
    assert [c["reasons"] for c in third["clients"]] == [
        ["CRL file differs", f"{work}/out/{n}/root.crl: content changed"] for n in ("app", "report")]
    assert (work / "out" / "app" / "root.crl").read_bytes() == (work / "pki" / "crl.pem").read_bytes()
    refused = verify_server(work, "app")
    assert refused.returncode != 0 and b"certificate revoked" in refused.stdout + refused.stderr


def test_without_crl_no_root_crl_is_written(work):
    done = run("client_cert", client_args(work, "app", crl=False))
    assert not done.get("failed"), done.get("msg")
    assert not (work / "out" / "app" / "root.crl").exists() and done["clients"][0]["crl"] is None
    assert done["crl_next_update"] is None


def test_crl_needs_the_ca_folder(work):
    args = client_args(work, "app")
    del args["ca_folder"]
    args.update(issuer_cert_path=str(work / "pki" / "intermediate.crt"),
                issuer_key_path=str(work / "pki" / "intermediate.key"), issuer_chain_path=str(work / "pki" / "root.crt"))
    done = run("client_cert", args)
    assert done.get("failed") and done["msg"] == "crl: crl needs ca_folder: the CRLs come from its crl.pem"
    assert list((work / "out").iterdir()) == []


def expired_crl(work):
    """The intermediate's CRL in crl.pem replaced by one that expired yesterday (signed by the intermediate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = serialization.load_pem_private_key((work / "pki" / "intermediate.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((work / "pki" / "intermediate.crt").read_bytes())
    now = compat.now()
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(now - dt.timedelta(days=31))
           .next_update(now - dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (work / "pki" / "root.crl").read_bytes() + crl.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("state, message", [
    ("missing", "crl: ca_folder ({pki}/crl.pem): no CRLs, so libpq would refuse every server: run the site playbook "
                "(pgtls.ssl.server) with CRLs on (pgtls_crl_enabled), or set crl to false"),
    ("root only", "crl: ca_folder ({pki}/crl.pem): no CRL signed by CN=Option CA: PostgreSQL fails with 'unable to "
                  "get certificate CRL'; libpq would refuse every server with these CRLs: run the site playbook "
                  "(pgtls.ssl.server) to sign new ones, then this again"),
    ("expired", "crl: ca_folder ({pki}/crl.pem): the CRL of CN=Option CA has expired (nextUpdate passed); libpq would "
                "refuse every server with these CRLs"),
    ("garbage", "ca_folder ({pki}/crl.pem): "),
])
def test_crls_libpq_would_refuse_every_server_with_are_refused_before_anything_is_written(work, state, message):
    crl_pem = work / "pki" / "crl.pem"
    if state == "missing":
        crl_pem.unlink()
    elif state == "root only":
        crl_pem.write_bytes((work / "pki" / "root.crl").read_bytes())
    elif state == "expired":
        crl_pem.write_bytes(expired_crl(work))
    else:
        crl_pem.write_bytes(b"not a CRL\n")
    done = run("client_cert", client_args(work, "app"))
    assert done.get("failed") and message.format(pki=work / "pki") in done["msg"], done["msg"]
    assert list((work / "out").iterdir()) == []
    # The oracle: openssl, checking as libpq does with sslcrl, refuses a server with these CRLs too (with no CRL of the
    # intermediate: what a client whose root.crl predates a new intermediate meets during a rotation).
    oracle = {"root only": b"unable to get certificate CRL", "expired": b"CRL has expired"}
    if state in oracle:
        server_cert(work)
        (work / "out" / "app").mkdir()
        (work / "out" / "app" / "root.crt").write_bytes((work / "pki" / "root.crt").read_bytes())
        (work / "out" / "app" / "root.crl").write_bytes(crl_pem.read_bytes())
        refused = verify_server(work, "app")
        assert refused.returncode != 0 and oracle[state] in refused.stdout + refused.stderr, refused


def test_crls_with_a_few_days_left_are_installed_with_a_warning(work):
    run("client_cert", client_args(work, "app"))
    soon = compat.now() + dt.timedelta(days=27)
    with mock.patch.object(compat, "now", return_value=soon), \
            mock.patch.object(_action.display, "warning") as warning:
        done = run("client_cert", client_args(work, "app"))
    assert not done.get("failed"), done.get("msg")
    text = warning.call_args.args[0]
    assert text.startswith("the CRLs installed for the clients expire on ") and "run the site playbook" in text


def test_host_material_refuses_crls_of_another_ca_naming_the_item(work, tmp_path_factory):
    first = run("client_cert", client_args(work, "app"))
    assert not first.get("failed"), first.get("msg")
    other = tmp_path_factory.mktemp("other") / "pki"
    run("ca_folder", {"path": str(other), "root_common_name": "Other Root", "intermediate_common_name": "Other CA"})
    folder = work / "out" / "app"
    before = tree(work)
    done = run("host_material", {"stage": "install", "items": [{
        "name": "app", "key_path": str(folder / "postgresql.key"), "cert_path": str(folder / "postgresql.crt"),
        "root_path": str(folder / "root.crt"), "crl_path": str(folder / "root.crl"),
        "certificate": (folder / "postgresql.crt").read_text(), "root": (folder / "root.crt").read_text(),
        "crl": (other / "crl.pem").read_text()}]})
    assert done.get("failed") and done["msg"].startswith("items[0] (app).crl: no CRL signed by CN=Option CA"), done
    assert tree(work) == before


def test_crl_only_refreshes_root_crl_where_a_certificate_is_and_issues_nothing(work):
    """What the playbooks run before the servers present a certificate of a new CA: root.crl follows the CA folder,
    and nothing else changes - no certificate renewed, no key made for a client not set up yet (reissue would be due:
    the intermediate is new)."""
    first = run("client_cert", client_args(work, "app"))
    assert not first.get("failed"), first.get("msg")
    crt = (work / "out" / "app" / "postgresql.crt").read_bytes()
    # A rotation: the old intermediate to previous/, a new one made with its CRL (crl.pem holds both).
    assert not run("intermediate_rotation", {"pki_dir": str(work / "pki"), "step": "start"}).get("failed")
    assert run("ca_folder", {"path": str(work / "pki"), "root_common_name": "Option Root",
                             "intermediate_common_name": "Option CA"})["changed"]
    before = tree(work / "out")
    done = run("client_cert", client_args(work, "app", "newcomer", crl_only=True))
    assert not done.get("failed"), done.get("msg")
    assert done["issued"] == 0 and done["changed"]
    assert [(c["name"], c["changed"]) for c in done["clients"]] == [("app", True), ("newcomer", False)]
    assert (work / "out" / "app" / "root.crl").read_bytes() == (work / "pki" / "crl.pem").read_bytes()
    assert (work / "out" / "app" / "postgresql.crt").read_bytes() == crt
    assert not (work / "out" / "newcomer").exists()
    after = tree(work / "out")
    # Only root.crl is new (its folder's entry changes with it).
    assert {k for k in set(after) | set(before) if after.get(k) != before.get(k)} - {"app"} == {"app/root.crl"}
    again = run("client_cert", client_args(work, "app", "newcomer", crl_only=True))
    assert not again["changed"] and tree(work / "out") == after


def test_crl_only_needs_crl(work):
    done = run("client_cert", client_args(work, "app", crl=False, crl_only=True))
    assert done.get("failed") and done["msg"] == "crl_only: crl_only needs crl (the CRL files are all it writes)"
    assert list((work / "out").iterdir()) == []
