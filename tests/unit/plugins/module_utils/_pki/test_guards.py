"""Guards of issue 8: one file per option, files of another kind kept, linear PEM parsing, the CA folder's lock
and CRL numbers, safe client folder names, pending keys completed, stale temporaries removed."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pkitools import Pki, key_pem, openssl, pem, write

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca import ensure_ca
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.crl import ensure_crl
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat, planner
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.checks import check_lifetime
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.constants import folder_name
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.files import (
    TMP_PREFIX,
    check_distinct,
    describe,
    read_bytes,
    remove_stale_temporaries,
)
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import serial_hex
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name, parse_san
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.host_material import PENDING_SUFFIX, host_material


def snapshot(folder):
    out = {}
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else None
            out[path] = (st.st_mode, st.st_uid, st.st_ino, st.st_mtime_ns, data)
    return out


# One file, one option ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("second", ["{d}/a.pem", "{d}/x/../a.pem", "{d}/link/a.pem", "{d}//a.pem", "{d}/./a.pem"])
def test_two_options_resolving_to_one_file_are_refused(tmp_path, second):
    (tmp_path / "x").mkdir()
    os.symlink(tmp_path, tmp_path / "link")
    with pytest.raises(PkiError) as err:
        check_distinct({"cert_path": f"{tmp_path}/a.pem", "key_path": second.format(d=tmp_path)})
    assert str(err.value).startswith("key_path: ") and "cert_path" in str(err.value)


def test_distinct_files_pass(tmp_path):
    check_distinct({"cert_path": f"{tmp_path}/a.pem", "key_path": f"{tmp_path}/b.pem", "csr_path": None})


# What a file holds ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "kind", "ok"), [
    (None, "crl", True),
    (b"", "crl", True),
    (b"  \n", "certificate", True),
    (b"-----BEGIN X509 CRL-----\ngarbage", "crl", True),  # a damaged CRL may be repaired
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "crl", False),
    (b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n", "certificate", False),
    (b"-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n", "certificate", False),
    (b"hello world\n", "key", False),
    (b"\x30\x82\x01\x0a\x02", "crl", False),
    (b"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n", "report_html", False),
    (b"<!DOCTYPE html>\n<html><head><title>PostgreSQL TLS audit</title>", "report_html", True),
    (b"<!DOCTYPE html>\n<html><head><title>My page</title>", "report_html", False),
    (b'{"schema": "pgtls.ssl/audit-report/1"}', "report_json", True),
    (b'{"schema": "other"}', "report_json", False),
    (b"# HELP pgtls_x y\n# TYPE pgtls_x gauge\npgtls_x{a=\"b\"} 1\n", "report_metrics", True),
    (b"node_load1 0.5\n", "report_metrics", False),
    (b"port = 5432\n", "file", True),
    (b"-----BEGIN EC PRIVATE KEY-----\nMIIB\n-----END EC PRIVATE KEY-----\n", "file", False),
    (b"- serial_number: 1\n", "registry", True),
    (b"serial: [1\n", "registry", False),
])
def test_only_a_file_of_the_same_kind_is_replaceable(data, kind, ok):
    assert planner.replaceable(kind, data) is ok


def test_describe_names_the_kind_never_the_bytes():
    assert describe(b"-----BEGIN PRIVATE KEY-----\nSECRETBYTES\n-----END PRIVATE KEY-----\n") == "a private key"
    assert describe(b"\x30\x82\x05") == "binary data (DER?)"
    assert describe(b"hello") == "text that is not PEM"


def test_pem_parsing_is_linear_and_big_files_are_refused(tmp_path):
    blob = b"-----BEGIN CERTIFICATE-----\n" * 70000  # ~2 MB, no END line
    started = time.monotonic()
    assert compat.pem_blocks(blob) == []
    assert time.monotonic() - started < 2.0
    path = write(tmp_path / "big.pem", blob)
    with pytest.raises(PkiError, match=r"issuer_cert_path: .*big.pem is 1.9 MiB, more than the 1.0 MiB"):
        read_bytes(path, "issuer_cert_path")


def test_parser_errors_hide_the_library_internals():
    pki = Pki()
    der = pki.int.public_bytes(Encoding.PEM)
    broken = der.replace(der.splitlines()[3], b"AAAA" * 16)
    with pytest.raises(PkiError) as err:
        compat.load_certificates(broken, "issuer_cert_path (x.pem)")
    assert "ParseError" not in str(err.value) and "issuer_cert_path (x.pem): certificate #1 is malformed" in str(
        err.value)


# Values ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("days", "before", "percent", "option"), [
    (0, 0, 0, "valid_days"), (-1, 0, 0, "valid_days"), (99999, 0, 0, "valid_days"),
    (30, 30, 0, "renew_before_days"), (30, 31, 0, "renew_before_days"), (30, -1, 0, "renew_before_days"),
    (365, 30, 100, "renew_before_percent"), (365, 30, -5, "renew_before_percent"),
])
def test_lifetimes_that_make_no_sense_are_refused(days, before, percent, option):
    with pytest.raises(PkiError, match=f"^{option}: "):
        check_lifetime(days, before, percent)


@pytest.mark.parametrize("value", ["10.0.0.256", "1.2.3", "300.1.1.1", "IP:10.0.0.256", "db1.123"])
def test_sans_that_look_like_broken_addresses_are_refused(value):
    with pytest.raises(PkiError, match="subject_alt_names"):
        parse_san(value, "subject_alt_names[0]")


def test_long_subject_fields_name_the_option():
    with pytest.raises(PkiError, match=r"^clients\[2\].name: common_name is 65"):
        build_name("x" * 65, cn_where="clients[2].name")
    with pytest.raises(PkiError, match=r"^subject.organization: "):
        build_name("ok", {"organization": "o" * 65})


# Client folders ----------------------------------------------------------------------------------------------------
NAMES = ["app", "..", ".", "../escape", "app/x", "app%2Fx", ".hidden", "a/../b", "ünï", "x y", "%", "%2E", "-", "~"]


def test_client_folder_names_stay_inside_and_never_collide():
    folders = [folder_name(n) for n in NAMES]
    assert len(set(folders)) == len(NAMES)
    for folder in folders:
        assert "/" not in folder and folder not in (".", "..") and not folder.startswith(".")
        assert os.path.normpath(os.path.join("/dest", folder)).startswith("/dest/")
    assert folder_name("app") == "app" and folder_name("report_2.v1") == "report_2.v1"


# CA folder: lock and CRL numbers -----------------------------------------------------------------------------------
def _hold_lock(folder, seconds, ready):
    with planner.locked(folder, 5):
        ready.set()
        time.sleep(seconds)


def test_the_lock_times_out_naming_the_folder_and_the_holder(tmp_path):
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), 3, ready))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(PkiError) as err, planner.locked(str(tmp_path), 0.3):
            pass
        assert f"lock on the CA folder {tmp_path}" in str(err.value) and f"process {holder.pid}" in str(err.value)
    finally:
        holder.join()
    with planner.locked(str(tmp_path), 1):  # released by the holder's exit
        pass


def _crl_params(tmp_path, pki, revoked=(), **extra):
    write(tmp_path / "int.crt", pem(pki.int))
    write(tmp_path / "int.key", key_pem(pki.int_key))
    params = {"path": str(tmp_path / "int.crl"), "revoked": list(revoked), "next_update_days": 30,
              "renew_before_days": 7, "combined_path": None, "combine_with": [], "mode": "0644", "owner": None,
              "group": None, "issuer_cert_path": str(tmp_path / "int.crt"), "issuer_key_path": str(tmp_path / "int.key"),
              "revoked_mode": "add", "lock_timeout": 10}
    params.update(extra)
    return params


def _crl_number(path):
    crl = x509.load_pem_x509_crl(open(path, "rb").read())
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crl_numbers_never_go_back_when_the_file_is_lost(tmp_path):
    pki = Pki()
    ensure_crl(_crl_params(tmp_path, pki), False)
    ensure_crl(_crl_params(tmp_path, pki, [{"serial_number": "7"}]), False)
    assert _crl_number(tmp_path / "int.crl") == 2
    os.unlink(tmp_path / "int.crl")
    result = ensure_crl(_crl_params(tmp_path, pki, [{"serial_number": "7"}]), False)
    assert result["crl"]["crl_number"] == 3 == _crl_number(tmp_path / "int.crl")
    done = openssl("crl", "-in", tmp_path / "int.crl", "-noout", "-CAfile", tmp_path / "int.crt")
    assert done.returncode == 0, done.stderr


def test_add_mode_keeps_earlier_revocations_and_exact_mode_removes(tmp_path):
    pki = Pki()
    ensure_crl(_crl_params(tmp_path, pki, [{"serial_number": "7"}]), False)
    result = ensure_crl(_crl_params(tmp_path, pki, [{"serial_number": "8"}]), False)
    assert result["crl"]["revoked_serials"] == ["07", "08"]
    assert ensure_crl(_crl_params(tmp_path, pki, [{"serial_number": "8"}]), False)["changed"] is False
    result = ensure_crl(_crl_params(tmp_path, pki, [{"serial_number": "8"}], revoked_mode="exact"), False)
    assert result["crl"]["revoked_serials"] == ["08"] and result["crl"]["crl_number"] == 3


@pytest.mark.parametrize("serial", ["0", "-5", str(2 ** 159), "0x" + "F" * 41])
def test_impossible_serials_name_the_entry(tmp_path, serial):
    pki = Pki()
    params = _crl_params(tmp_path, pki, [{"serial_number": "9"}, {"serial_number": serial}])
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match=r"^revoked\[1\].serial_number: "):
        ensure_crl(params, False)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("other", ["garbage", "der", "missing", "cert"])
def test_a_bad_combine_with_changes_nothing(tmp_path, other):
    pki = Pki()
    target = tmp_path / "other.crl"
    if other == "garbage":
        target.write_bytes(b"not a crl\n")
    elif other == "der":
        target.write_bytes(pki.int.public_bytes(Encoding.DER))
    elif other == "cert":
        target.write_bytes(pem(pki.root))
    params = _crl_params(tmp_path, pki, combined_path=str(tmp_path / "crl.pem"), combine_with=[str(target)])
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match=r"combine_with\[0\]"):
        ensure_crl(params, False)
    assert snapshot(tmp_path) == before


def test_an_existing_file_of_another_kind_is_not_overwritten(tmp_path):
    pki = Pki()
    params = _crl_params(tmp_path, pki, path=str(tmp_path / "victim.pem"))
    write(tmp_path / "victim.pem", pem(pki.root))
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match=r"^path: .*victim.pem already exists and holds a certificate, not a CRL"):
        ensure_crl(params, False)
    assert snapshot(tmp_path) == before


# CA ---------------------------------------------------------------------------------------------------------------
def _ca_params(tmp_path, **extra):
    params = {"cert_path": str(tmp_path / "ca.crt"), "key_path": str(tmp_path / "ca.key"), "key_type": "ec-p256",
              "key_passphrase": None, "common_name": "CA", "subject": {}, "valid_days": None, "path_length": None,
              "key_mode": "0600", "cert_mode": "0644", "force": False, "owner": None, "group": None,
              "lock_timeout": 10}
    params.update(extra)
    return params


def test_ca_refuses_an_issuer_of_path_length_0_and_the_issuers_own_key(tmp_path):
    pki = Pki()
    write(tmp_path / "int.crt", pem(pki.int))
    write(tmp_path / "int.key", key_pem(pki.int_key))
    write(tmp_path / "root.crt", pem(pki.root))
    write(tmp_path / "root.key", key_pem(pki.root_key))
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match=r"^issuer_cert_path \(.*int.crt\): the issuer CN=Test Intermediate has path length 0"):
        ensure_ca(_ca_params(tmp_path, issuer_cert_path=str(tmp_path / "int.crt"),
                             issuer_key_path=str(tmp_path / "int.key")), False)
    write(tmp_path / "copy.key", key_pem(pki.root_key))
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match="^key_path: .*copy.key holds the issuer's own key"):
        ensure_ca(_ca_params(tmp_path, key_path=str(tmp_path / "copy.key"), issuer_cert_path=str(tmp_path / "root.crt"),
                             issuer_key_path=str(tmp_path / "root.key")), False)
    assert snapshot(tmp_path) == before


def test_ca_refuses_a_symlinked_key_and_a_missing_certificate_folder(tmp_path):
    os.symlink(tmp_path / "elsewhere.key", tmp_path / "ca.key")
    with pytest.raises(PkiError, match="^key_path: .*is a symbolic link"):
        ensure_ca(_ca_params(tmp_path), False)
    os.unlink(tmp_path / "ca.key")
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match="^cert_path: folder .*/nope does not exist"):
        ensure_ca(_ca_params(tmp_path, cert_path=str(tmp_path / "nope" / "ca.crt")), False)
    assert snapshot(tmp_path) == before


# Host: pending activation and temporaries -------------------------------------------------------------------------
def test_a_stop_between_install_and_activation_is_completed(tmp_path):
    from pkitools import host_item as _item  # noqa: PLC0415
    from pkitools import sign_csr as _sign

    pki = Pki()
    item = _item(tmp_path)
    prepared = host_material({"stage": "prepare", "items": [item]}, False)["item_results"][0]
    cert = _sign(pki, prepared["csr"])
    # What an interrupted install leaves: the certificate written, the key still pending.
    write(tmp_path / "server.crt", pem(cert))
    assert os.path.exists(item["key_path"] + PENDING_SUFFIX) and not os.path.exists(item["key_path"])
    again = host_material({"stage": "prepare", "items": [item]}, False)["item_results"][0]
    assert any("pending key activated" in c for c in again["changes"])
    assert not os.path.exists(item["key_path"] + PENDING_SUFFIX)
    key = compat.load_csr(again["csr"].encode(), "csr").public_key()
    assert key.public_numbers() == cert.public_key().public_numbers()


def test_temporaries_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess_pid()
    (tmp_path / f"{TMP_PREFIX}{dead}-abc123").write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    (tmp_path / f"{TMP_PREFIX}{os.getpid()}-def456").write_bytes(b"live")
    (tmp_path / "keep.pgtls-new").write_bytes(b"pending key")
    assert remove_stale_temporaries(str(tmp_path)) == [f"{TMP_PREFIX}{dead}-abc123"]
    assert sorted(os.listdir(tmp_path)) == sorted([f"{TMP_PREFIX}{os.getpid()}-def456", "keep.pgtls-new"])


def subprocess_pid() -> int:
    proc = multiprocessing.Process(target=int)
    proc.start()
    proc.join()
    return proc.pid


def test_host_refuses_a_symlinked_key_and_two_items_on_one_file(tmp_path):
    from pkitools import host_item as _item  # noqa: PLC0415

    other = tmp_path / "other.key"
    other.write_bytes(b"x")
    os.symlink(other, tmp_path / "server.key")
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match=r"key_path: .*server.key is a symbolic link"):
        host_material({"stage": "prepare", "items": [_item(tmp_path)]}, False)
    os.unlink(tmp_path / "server.key")
    (tmp_path / "sub").mkdir()
    items = [_item(tmp_path / "sub", name="a"), _item(tmp_path, name="b", cert_path=str(tmp_path / "sub" / "x/../server.crt"))]
    (tmp_path / "sub" / "x").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match="is also used by"):
        host_material({"stage": "prepare", "items": items}, False)
    assert snapshot(tmp_path) == before


def test_host_checks_every_folder_before_the_first_write(tmp_path):
    from pkitools import host_item as _item  # noqa: PLC0415

    items = [_item(tmp_path, name="a"), _item(tmp_path / "missing", name="b")]
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match="folder .*missing does not exist"):
        host_material({"stage": "prepare", "items": items}, False)
    assert snapshot(tmp_path) == before


# The revocation registry ------------------------------------------------------------------------------------------
def _registry_params(**given):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import REVOCATION_REGISTRY  # noqa: PLC0415

    return dict({name: entry.get("default") for name, entry in REVOCATION_REGISTRY.items()}, **given)


def _add_entry(path, serial):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries  # noqa: PLC0415

    ensure_entries(_registry_params(path=path, add=[{"serial_number": serial, "name": None, "reason": "key_compromise",
                                                     "revocation_date": None}], lock_timeout=30), False)


def _archive(folder, name, pki, count=1):
    """Certificates issued by the folder's intermediate, archived as issued/<name>/<SERIAL>.crt."""
    write(folder / "intermediate.crt", pem(pki.int))
    archive = folder / "issued" / folder_name(name)
    archive.mkdir(parents=True, exist_ok=True)
    serials = []
    for _index in range(count):
        _key, leaf = pki.client(name)
        (archive / f"{leaf.serial_number:X}.crt").write_bytes(pem(leaf))
        serials.append(leaf.serial_number)
    return archive, sorted(serials)


def test_names_are_revoked_from_the_ca_folders_archive(tmp_path):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries  # noqa: PLC0415

    archive, serials = _archive(tmp_path, "app/x", Pki(), 2)
    done = ensure_entries(_registry_params(pki_dir=str(tmp_path), names=["app/x"], serials=["17"],
                                           reason="key_compromise", revocation_date="2026-11-28T00:00:00+00:00",
                                           allow_unknown_serials=True),
                          False)
    assert done["path"] == str(tmp_path / "revoked.yml") and done["changed"]
    assert done["issued"] == {"app/x": sorted(str(archive / f"{s:X}.crt") for s in serials)}
    assert sorted((e["serial_number"], e.get("name"), e["reason"]) for e in done["added"]) == sorted(
        [(f"0x{s:X}", "app/x", "key_compromise") for s in serials] + [("17", None, "key_compromise")])
    again = ensure_entries(_registry_params(pki_dir=str(tmp_path), names=["app/x"], reason="key_compromise"), False)
    assert not again["changed"] and len(again["entries"]) == 3


def test_a_retired_intermediates_certificates_are_named_apart(tmp_path):
    """After an intermediate rotation is retired, a name's older certificates were issued by a retired intermediate
    (refused through it: the root's CRL revokes it); the revoke playbook proves only the others against the CRLs."""
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries  # noqa: PLC0415

    old, current = Pki(), Pki()
    archive, old_serials = _archive(tmp_path, "app", old, 1)
    (tmp_path / "retired").mkdir()
    (tmp_path / "retired" / "1.crt").write_bytes(pem(old.int))
    _archive_again, serials = _archive(tmp_path, "app", current, 1)  # the current intermediate now
    done = ensure_entries(_registry_params(pki_dir=str(tmp_path), names=["app"], reason="key_compromise"), False)
    assert done["issued"] == {"app": sorted(str(archive / f"{s:X}.crt") for s in old_serials + serials)}
    assert done["issued_by_retired"] == {"app": [str(archive / f"{old_serials[0]:X}.crt")]}


def test_a_name_without_archived_certificates_is_refused_and_nothing_written(tmp_path):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries  # noqa: PLC0415

    _archive(tmp_path, "app", Pki())
    with pytest.raises(PkiError, match=rf"names: no certificate issued to nobody in {tmp_path}/issued"):
        ensure_entries(_registry_params(pki_dir=str(tmp_path), names=["app", "nobody"]), False)
    assert not (tmp_path / "revoked.yml").exists()


@pytest.mark.parametrize("case", ["misnamed", "another serial", "not a certificate", "other CA", "link", "folder",
                                  "name link"])
def test_the_archive_is_read_by_content(tmp_path, case):
    """A file in issued/ whose name, content or issuer is not what the collection archived is named, and nothing is
    revoked: a file named for another serial never revokes that serial."""
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries  # noqa: PLC0415

    pki = Pki()
    archive, (serial,) = _archive(tmp_path, "app", pki)
    _key, other = pki.client("app")
    if case == "misnamed":
        (archive / "backup copy.crt").write_bytes(pem(other))
        expected = "backup copy.crt is not named <SERIAL>.crt"
    elif case == "another serial":
        (archive / "0A.crt").write_bytes(pem(other))
        expected = "0A.crt holds serial .*, not the serial its name says"
    elif case == "not a certificate":
        (archive / "0B.crt").write_text("archived")
        expected = "0B.crt: contains no PEM certificate"
    elif case == "other CA":
        _key, foreign = Pki().client("app")
        (archive / f"{foreign.serial_number:X}.crt").write_bytes(pem(foreign))
        expected = "holds a certificate issued by CN=Test Intermediate, not by this CA folder's intermediate"
    elif case == "link":
        os.symlink(archive / f"{serial:X}.crt", archive / f"{other.serial_number:X}.crt")
        expected = "is a symbolic link .* inside the CA folder"
    elif case == "folder":
        (archive / "0C.crt").mkdir()
        expected = "0C.crt is not a regular file"
    else:
        os.rename(archive, tmp_path / "elsewhere")
        os.symlink(tmp_path / "elsewhere", archive)
        expected = "issued/app is a symbolic link .* inside the CA folder"
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match=rf"^(names|pki_dir): .*{expected}"):
        ensure_entries(_registry_params(pki_dir=str(tmp_path), names=["app"]), False)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("revocation_date", "yesterday", "is not an ISO 8601 date"),
    ("revocation_date", "31/12/2024", "is not an ISO 8601 date"),
    ("revocation_date", "2999-01-01T00:00:00Z", "is in the future"),
    ("lock_timeout", -1, "must not be negative"),
])
def test_registry_input_is_refused_where_it_enters(tmp_path, field, value, expected):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries  # noqa: PLC0415

    with pytest.raises(PkiError, match=rf"^{field}: .*{expected}"):
        ensure_entries(_registry_params(path=str(tmp_path / "revoked.yml"), serials=["17"], **{field: value}), False)
    assert not (tmp_path / "revoked.yml").exists()


def test_one_serial_with_two_reasons_is_refused(tmp_path):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries  # noqa: PLC0415

    path = str(tmp_path / "revoked.yml")
    add = [{"serial_number": "0x11", "name": None, "reason": "superseded", "revocation_date": None}]
    with pytest.raises(PkiError, match="serial 11 is given twice, with reasons superseded and key_compromise"):
        ensure_entries(_registry_params(path=path, add=add, serials=["17"], reason="key_compromise"), False)
    ensure_entries(_registry_params(path=path, serials=["17"], reason="superseded"), False)
    before = snapshot(tmp_path)
    with pytest.raises(PkiError, match="^reason: serial 11 is already revoked .* with reason superseded"):
        ensure_entries(_registry_params(path=path, serials=["0x11"], reason="key_compromise"), False)
    assert snapshot(tmp_path) == before
    assert not ensure_entries(_registry_params(path=path, serials=["17"], reason="superseded"), False)["changed"]


def test_registry_runs_at_once_keep_every_entry(tmp_path):
    import yaml  # noqa: PLC0415

    path = str(tmp_path / "revoked.yml")
    procs = [multiprocessing.Process(target=_add_entry, args=(path, f"0x{n:X}")) for n in range(10, 18)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    entries = yaml.safe_load(open(path))
    assert sorted(e["serial_number"] for e in entries) == sorted(f"0x{n:X}" for n in range(10, 18))
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


# Intermediate rotation ----------------------------------------------------------------------------------------------
def _rotate(folder, step, check_mode=False):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.intermediate_rotation import rotate  # noqa: PLC0415

    return rotate({"pki_dir": str(folder), "step": step, "lock_timeout": 10}, check_mode)


def _ca_folder(folder):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca_folder import ensure_folder  # noqa: PLC0415
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CA_FOLDER  # noqa: PLC0415

    params = {name: entry.get("default") for name, entry in CA_FOLDER.items()}
    params.update(path=str(folder), root_common_name="Test Root", intermediate_common_name="Test CA")
    return ensure_folder(params, False)


def test_rotation_start_is_resumable_and_never_counts_twice(tmp_path):
    _ca_folder(tmp_path)
    # A start killed after its first move (previous/ is made with its marker, then the generation, then the key).
    (tmp_path / "previous").mkdir()
    (tmp_path / "previous" / "generation").write_text("2\n")
    (tmp_path / "intermediate.generation").write_text("2\n")
    os.rename(tmp_path / "intermediate.key", tmp_path / "previous" / "intermediate.key")
    result = _rotate(tmp_path, "start")
    assert result["changed"] and result["generation"] == 2
    moved = ["generation", "intermediate.crl", "intermediate.crt", "intermediate.key"]
    assert sorted(os.listdir(tmp_path / "previous")) == moved
    assert (tmp_path / "intermediate.generation").read_text() == "2\n"
    assert _rotate(tmp_path, "start")["changed"] is False  # done: a second start changes nothing
    _ca_folder(tmp_path)  # the site playbook made the next intermediate
    with pytest.raises(PkiError, match="^step: a previous intermediate .* is still trusted: retire it first"):
        _rotate(tmp_path, "start")


def test_a_start_killed_before_the_generation_is_written_counts_once(tmp_path):
    _ca_folder(tmp_path)
    (tmp_path / "previous").mkdir()
    (tmp_path / "previous" / "generation").write_text("2\n")  # previous/ appears with its marker, at once
    assert _rotate(tmp_path, "start")["generation"] == 2
    assert (tmp_path / "intermediate.generation").read_text() == "2\n"


def test_rotation_start_then_retire(tmp_path):
    _ca_folder(tmp_path)
    crt = (tmp_path / "intermediate.crt").read_bytes()
    assert _rotate(tmp_path, "start", check_mode=True)["generation"] == 2
    assert not (tmp_path / "previous").exists()  # check mode: said, not done
    assert _rotate(tmp_path, "start")["generation"] == 2
    assert not (tmp_path / "intermediate.key").exists()
    result = _rotate(tmp_path, "retire")
    assert result["changed"] and not (tmp_path / "previous").exists()
    (archived,) = os.listdir(tmp_path / "retired")
    serial = compat.load_certificates(crt, "crt")[0].serial_number
    assert archived == f"intermediate-{serial_hex(serial).replace(':', '')}.crt"
    assert (tmp_path / "retired" / archived).read_bytes() == crt
    for check_mode in (True, False):  # a second retire: nothing to do, said so
        again = _rotate(tmp_path, "retire", check_mode)
        assert not again["changed"] and again["actions"] == []
    with pytest.raises(PkiError, match="^pki_dir: no intermediate CA in"):
        _rotate(tmp_path, "start")


@pytest.mark.parametrize("case", ["previous link", "retired link", "previous file", "previous holds a folder",
                                  "retired taken"])
def test_rotation_refuses_what_would_move_keys_out_or_replace_a_retired_one(tmp_path, case):
    _ca_folder(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    step = "start"
    if case == "previous link":
        os.symlink(outside, tmp_path / "previous")
        expected = "previous is a symbolic link"
    elif case == "previous file":
        (tmp_path / "previous").write_text("x")
        expected = "previous exists and is not a folder"
    else:
        _rotate(tmp_path, "start")
        step = "retire"
        if case == "retired link":
            os.symlink(outside, tmp_path / "retired")
            expected = "retired is a symbolic link"
        elif case == "previous holds a folder":
            (tmp_path / "previous" / "keep").mkdir()
            expected = "previous/keep is not an intermediate's file"
        else:
            crt = compat.load_certificates((tmp_path / "previous" / "intermediate.crt").read_bytes(), "c")[0]
            (tmp_path / "retired").mkdir()
            name = f"intermediate-{serial_hex(crt.serial_number).replace(':', '')}.crt"
            (tmp_path / "retired" / name).write_bytes(pem(Pki().int))
            expected = "already exists and holds another certificate"
    before = snapshot(tmp_path)
    outside_before = snapshot(outside)
    with pytest.raises(PkiError, match=expected):
        _rotate(tmp_path, step)
    assert snapshot(tmp_path) == before and snapshot(outside) == outside_before
