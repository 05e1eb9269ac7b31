"""The CA folder in one call (pgtls.ssl.ca_folder): created whole, unchanged the second time, the registry's and
the retired intermediates' revocations on the right CRLs (openssl, the oracle, reads crl.pem), the generation's
name, content material, check mode, and bad state named."""

from __future__ import annotations

import os
import stat

import pytest
from pkitools import openssl

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca_folder import ensure_folder
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import entries
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError

try:
    from cryptography import x509
except ImportError:  # pragma: no cover - the unit venvs have it
    x509 = None


def params(folder, **extra):
    base = {"path": str(folder), "key_type": "ec-p256", "root_common_name": "Test Root",
            "intermediate_common_name": "Test PostgreSQL CA", "root_key_passphrase": None, "root_cert_content": None,
            "root_key_content": None, "intermediate_cert_content": None, "intermediate_key_content": None,
            "crl": True, "revoked": [], "crl_next_update_days": 30, "crl_renew_before_days": 7, "lock_timeout": 10}
    base.update(extra)
    return base


def crls(folder):
    data = (folder / "crl.pem").read_bytes()
    return [x509.load_pem_x509_crl(b"-----BEGIN X509 CRL-----" + part) for part in
            data.split(b"-----BEGIN X509 CRL-----")[1:]]


def cert(path):
    return compat.load_certificates(path.read_bytes(), str(path))[0]


def test_created_whole_then_unchanged(tmp_path):
    folder = tmp_path / "pki"
    first = ensure_folder(params(folder), False)
    assert first["changed"] and not first["exists"] and first["generation"] == 1
    for name in ("root.crt", "root.key", "root.crl", "intermediate.crt", "intermediate.key", "intermediate.crl",
                 "crl.pem"):
        assert (folder / name).is_file(), name
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "intermediate.key").stat().st_mode) == 0o600
    assert cert(folder / "intermediate.crt").subject.rfc4514_string() == "CN=Test PostgreSQL CA"
    # openssl: the intermediate chains to the root, and crl.pem holds both CAs' CRLs.
    done = openssl("verify", "-CAfile", str(folder / "root.crt"), str(folder / "intermediate.crt"))
    assert done.returncode == 0, done.stderr
    assert {c.issuer.rfc4514_string() for c in crls(folder)} == {"CN=Test Root", "CN=Test PostgreSQL CA"}
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = ensure_folder(params(folder), False)
    assert not again["changed"] and again["changes"] == [] and again["exists"]
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_registry_and_given_revocations_and_retired_intermediates(tmp_path):
    folder = tmp_path / "pki"
    ensure_folder(params(folder), False)
    (folder / "revoked.yml").write_text("- serial_number: '0x1F'\n  reason: key_compromise\n  name: mallory\n")
    (folder / "retired").mkdir()
    (folder / "retired" / "1.crt").write_bytes((folder / "intermediate.crt").read_bytes())
    done = ensure_folder(params(folder, revoked=[{"serial_number": "42"}]), False)
    assert done["changed"]
    by_issuer = {c.issuer.rfc4514_string(): c for c in crls(folder)}
    assert set(entries(by_issuer["CN=Test PostgreSQL CA"])) == {0x1F, 42}
    assert set(entries(by_issuer["CN=Test Root"])) == {cert(folder / "intermediate.crt").serial_number}


def test_generation_names_the_intermediate(tmp_path):
    folder = tmp_path / "pki"
    folder.mkdir(mode=0o700)
    (folder / "intermediate.generation").write_text("2\n")
    done = ensure_folder(params(folder), False)
    assert done["generation"] == 2
    assert cert(folder / "intermediate.crt").subject.rfc4514_string() == "CN=Test PostgreSQL CA G2"


def test_content_is_written_first_and_kept(tmp_path):
    source = tmp_path / "source"
    ensure_folder(params(source, crl=False), False)
    given = {f"{who}_{what}_content": (source / f"{who}.{ext}").read_text()
             for who in ("root", "intermediate") for what, ext in (("cert", "crt"), ("key", "key"))}
    folder = tmp_path / "pki"
    done = ensure_folder(params(folder, **given), False)
    assert (folder / "intermediate.crt").read_bytes() == (source / "intermediate.crt").read_bytes()
    assert any("written from intermediate_key_content" in c for c in done["changes"])
    assert not any("CA created" in c for c in done["changes"])
    assert not ensure_folder(params(folder, **given), False)["changed"]


def test_check_mode_writes_nothing(tmp_path):
    folder = tmp_path / "pki"
    planned = ensure_folder(params(folder), True)
    assert planned["changed"] and not planned["exists"] and not folder.exists()
    folder.mkdir(mode=0o700)
    planned = ensure_folder(params(folder), True)
    assert planned["changed"] and list(folder.iterdir()) == []


def test_check_mode_before_the_first_run_says_that_everything_would_be_created(tmp_path):
    folder = tmp_path / "pki"
    warned = ensure_folder(params(folder), True)["warnings"]
    assert warned == [f"check mode: the CA in {folder} does not exist yet, so every certificate, key and setting that "
                      "depends on it would be created; run without --check once to compare against real material"]
    ensure_folder(params(folder), False)
    assert ensure_folder(params(folder), True)["warnings"] == []
    assert ensure_folder(params(folder), False)["warnings"] == []


def test_bad_state_is_named(tmp_path):
    folder = tmp_path / "pki"
    ensure_folder(params(folder), False)
    (folder / "revoked.yml").write_text("{not: [a list\n")
    with pytest.raises(PkiError, match="revoked.yml is not valid YAML"):
        ensure_folder(params(folder), False)
    (folder / "revoked.yml").unlink()
    (folder / "intermediate.generation").write_text("two\n")
    with pytest.raises(PkiError, match="intermediate.generation holds 'two', not a generation number"):
        ensure_folder(params(folder), False)
    os.unlink(folder / "intermediate.generation")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PkiError, match="is not a folder"):
        ensure_folder(params(tmp_path / "file"), False)
