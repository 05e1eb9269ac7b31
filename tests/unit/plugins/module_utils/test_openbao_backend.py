"""The OpenBao/Vault backend without an engine: the CA folder as the mirror of a PKI engine (cafolder/mirror.py) fed
by FakeEngine, a small CA held in memory (root, one intermediate, the CRLs each signs, revoke() recorded); and the
engine's signer (plugin_utils/_issuance.EngineSigner) fed by a fake client, with reissue_reasons for engine leaves.

Every refusal is checked for the option it names and for the folder it leaves: byte for byte (inode and mtime too)
what it was, and the engine asked to revoke nothing."""

from __future__ import annotations

import copy
import datetime as dt
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pkitools import Pki, pem, tree

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.mirror import OWN_CA_OPTIONS, ensure_mirror
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import compat
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.checks import RenewPolicy, Wanted, reissue_reasons
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.crls import entries
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.info import serial_hex
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.issue import Issuer, issue_certificate, make_csr
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.keys import generate_key
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.names import build_name, parse_sans
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.profiles import CLIENT, INTERMEDIATE_CA, SERVER
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.specs import CA_FOLDER
from ansible_collections.pgtls.ssl.plugins.plugin_utils._issuance import (
    EngineSigner,
    Request,
    decide_material,
    use_openbao,
)
from ansible_collections.pgtls.ssl.plugins.plugin_utils._openbao import Signed

SERVER_AUTH, CLIENT_AUTH = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
MIRROR = ("root.crt", "intermediate.crt", "intermediate.crl", "root.crl", "crl.pem")
LOCK = ".pgtls.lock"
OPENBAO = {"address": "https://bao.example.com:8200", "role": "pg-server", "token": "s.test", "int_mount": "pki_int",
           "root_mount": "pki"}


# ---- the fake engine --------------------------------------------------------------------------------------------


def crl_pem(ca_cert, ca_key, serials=(), issuer_name=None, age=dt.timedelta(minutes=1),
            lifetime=dt.timedelta(days=30)) -> str:
    """A CRL of ``ca_cert``'s name (or ``issuer_name``) signed by ``ca_key``, listing ``serials``, signed ``age`` ago
    and valid for ``lifetime`` from then."""
    at = compat.now()
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer_name or ca_cert.subject)
               .last_update(at - age).next_update(at - age + lifetime)
               .add_extension(x509.CRLNumber(len(serials) + 1), critical=False))
    for serial in sorted(serials):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at - dt.timedelta(minutes=1)).build())
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


class FakeEngine:
    """An OpenBao PKI engine held in memory: the root mount's root, the intermediate mount's chain (intermediate,
    then root, as ca_chain gives it) and a CRL of each, signed once and kept until a revoke() adds a serial to the
    intermediate's. Every call is recorded in ``calls``, every revoke() in ``revocations``."""

    def __init__(self, pki: Pki | None = None) -> None:
        self.pki = pki or Pki(int_name="Engine Intermediate")
        self.calls: list[str] = []
        self.revocations: list[tuple[int, str]] = []
        self.revoked: set[int] = set()
        self.auth_error: PkiError | None = None
        self.root_pem = pem(self.pki.root).decode()
        self.chain_pems = [pem(self.pki.int).decode(), self.root_pem]
        self.crl_override: list[str] | None = None
        self._int_crl: str | None = None
        self._root_crl: str | None = None
        # How old each CRL is when signed and how long it lasts (the mount's config/crl expiry); crl/rotate signs a
        # fresh one unless ``rotate_works`` is false.
        self.crl_age = dt.timedelta(minutes=1)
        self.crl_lifetime = dt.timedelta(days=30)
        self.rotate_works = True
        self.rotated: list[str] = []

    def revoked_before(self, *serials: int) -> None:
        """Serials the engine had revoked before the run (its next CRL lists them)."""
        self.revoked.update(serials)
        self._int_crl = None

    def authenticate(self) -> None:
        self.calls.append("authenticate")
        if self.auth_error is not None:
            raise self.auth_error

    def root(self) -> str:
        self.calls.append("root")
        return self.root_pem

    def chain(self) -> list[str]:
        self.calls.append("chain")
        return list(self.chain_pems)

    def crls(self) -> list[str]:
        self.calls.append("crls")
        if self.crl_override is not None:
            return list(self.crl_override)
        if self._int_crl is None:
            self._int_crl = crl_pem(self.pki.int, self.pki.int_key, self.revoked, age=self.crl_age,
                                    lifetime=self.crl_lifetime)
        if self._root_crl is None:
            self._root_crl = crl_pem(self.pki.root, self.pki.root_key, age=self.crl_age, lifetime=self.crl_lifetime)
        return [self._int_crl, self._root_crl]

    def rotate_crl(self, mount: str) -> None:
        self.calls.append("rotate_crl")
        self.rotated.append(mount)
        if self.rotate_works:
            self.crl_age = dt.timedelta(minutes=1)
            if mount == "int_mount":
                self._int_crl = None
            else:
                self._root_crl = None

    def revoke(self, serial: int, where: str) -> dict:
        assert isinstance(serial, int), serial
        self.calls.append("revoke")
        self.revocations.append((serial, where))
        self.revoked.add(serial)
        self._int_crl = None  # the intermediate's CRL is signed again; the root's stays as it was
        return {"serial": serial_hex(serial).lower(), "serial_number": serial, "revocation_time": 1}


def params(folder, **extra) -> dict:
    """ca_folder's params as the action gets them: the spec's defaults, the folder, the names and openbao."""
    base = {name: copy.deepcopy(spec.get("default")) for name, spec in CA_FOLDER.items()}
    base.update(path=str(folder), root_common_name="Engine Root", intermediate_common_name="Engine Intermediate",
                openbao=dict(OPENBAO), lock_timeout=10)
    base.update(extra)
    return base


def files(folder) -> dict[str, bytes]:
    """The folder's files (the lock file left out) and their bytes."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if name != LOCK}


def crl_serials(path) -> set[int]:
    return set(entries(compat.load_crls(path.read_bytes(), str(path))[0]))


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def mirrored(tmp_path, engine):
    """A folder the engine's mirror was written in once (the engine's calls forgotten since)."""
    folder = tmp_path / "pki"
    ensure_mirror(params(folder), False, engine)
    engine.calls.clear()
    return folder


def refused(folder, engine, where, check_mode=False, **extra) -> PkiError:
    """Run the mirror expecting a refusal naming ``where``: the folder is left as it was, nothing revoked."""
    before = tree(folder) if os.path.lexists(folder) else None
    with pytest.raises(PkiError) as caught:
        ensure_mirror(params(folder, **extra), check_mode, engine)
    assert caught.value.where == where, str(caught.value)
    assert (tree(folder) if os.path.lexists(folder) else None) == before
    assert engine.revocations == []
    return caught.value


# ---- the mirror ---------------------------------------------------------------------------------------------------


def test_first_mirror_writes_the_five_files_with_the_engine_bytes_and_no_key(tmp_path, engine):
    folder = tmp_path / "pki"
    done = ensure_mirror(params(folder), False, engine)
    assert done["changed"] and done["backend"] == "openbao"
    assert engine.calls[0] == "authenticate" and "revoke" not in engine.calls
    written = files(folder)
    assert sorted(written) == sorted(MIRROR)
    inter_crl, root_crl = engine.crls()
    assert written["root.crt"] == engine.root_pem.encode()
    assert written["intermediate.crt"] == pem(engine.pki.int)
    assert written["intermediate.crl"] == inter_crl.encode()
    assert written["root.crl"] == root_crl.encode()
    assert written["crl.pem"] == (inter_crl + root_crl).encode()
    assert not any(name.endswith(".key") for name in os.listdir(folder))
    assert {c.split(":")[0] for c in done["changes"]} >= set(MIRROR)
    # crl.pem holds the intermediate's CRL, then the root's, each signed by its CA's key.
    in_bundle = compat.load_crls(written["crl.pem"], "crl.pem")
    assert [c.issuer for c in in_bundle] == [engine.pki.int.subject, engine.pki.root.subject]
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    assert all(oct((folder / name).stat().st_mode & 0o777) == oct(0o644) for name in MIRROR)


def test_a_chain_without_the_root_is_mirrored_the_same(tmp_path, engine):
    """An intermediate imported with set-signed: ca_chain may hold it alone."""
    engine.chain_pems = [pem(engine.pki.int).decode()]
    folder = tmp_path / "pki"
    ensure_mirror(params(folder), False, engine)
    assert files(folder)["intermediate.crt"] == pem(engine.pki.int)


def test_second_run_is_unchanged_and_writes_nothing(mirrored, engine):
    before = tree(mirrored)
    again = ensure_mirror(params(mirrored), False, engine)
    assert not again["changed"] and again["changes"] == []
    assert tree(mirrored) == before
    assert "revoke" not in engine.calls


def test_check_mode_on_a_new_folder_writes_nothing(tmp_path, engine):
    folder = tmp_path / "pki"
    done = ensure_mirror(params(folder, revoked=[{"serial_number": "0x2A"}]), True, engine)
    assert done["changed"]
    assert any("2A" in c for c in done["changes"]), done["changes"]
    assert not folder.exists()
    assert engine.revocations == [] and "revoke" not in engine.calls


def test_check_mode_never_revokes_nor_writes(mirrored, engine):
    (mirrored / "revoked.yml").write_text("- serial_number: '0x1F'\n  reason: unspecified\n")
    before = tree(mirrored)
    done = ensure_mirror(params(mirrored, revoked=[{"serial_number": "42"}]), True, engine)
    assert done["changed"]
    assert sorted(c for c in done["changes"] if c.startswith("revoked")) == [
        "revoked in the engine: 1F", "revoked in the engine: 2A"]
    assert engine.revocations == [] and engine.revoked == set()
    assert tree(mirrored) == before


@pytest.mark.parametrize("option", OWN_CA_OPTIONS)
def test_own_ca_options_are_refused_before_the_engine_is_asked(mirrored, engine, option):
    refused(mirrored, engine, option, **{option: "anything"})
    assert engine.calls == []


@pytest.mark.parametrize("option", OWN_CA_OPTIONS)
def test_own_ca_options_are_refused_on_a_new_folder(tmp_path, engine, option):
    folder = tmp_path / "pki"
    refused(folder, engine, option, **{option: "anything"})
    assert not folder.exists() and engine.calls == []


@pytest.mark.parametrize("name", ["root.key", "intermediate.key"])
def test_a_folder_holding_a_ca_key_is_refused(mirrored, engine, name):
    (mirrored / name).write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot read\n-----END PRIVATE KEY-----\n")
    error = refused(mirrored, engine, "path")
    assert name in str(error)
    assert engine.calls == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_another_root_is_refused(mirrored, check_mode):
    other = FakeEngine()  # a root of the same name, another key
    error = refused(mirrored, other, "openbao.root_mount", check_mode, revoked=[{"serial_number": "42"}])
    assert "another root" in str(error)
    assert "crls" not in other.calls


def test_a_damaged_root_file_is_repaired(mirrored, engine):
    (mirrored / "root.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nZGFtYWdlZA==\n-----END CERTIFICATE-----\n")
    done = ensure_mirror(params(mirrored), False, engine)
    assert done["changed"] and files(mirrored)["root.crt"] == engine.root_pem.encode()


@pytest.mark.parametrize("case", ["no intermediate", "two intermediates", "intermediate of another root"])
def test_the_chain_must_hold_one_intermediate_of_the_root(mirrored, engine, case):
    foreign = Pki(int_name="Engine Intermediate")  # same names, other keys: only the signature tells them apart
    engine.chain_pems = {
        "no intermediate": [engine.root_pem],
        "two intermediates": [pem(engine.pki.int).decode(), pem(foreign.int).decode(), engine.root_pem],
        "intermediate of another root": [pem(foreign.int).decode(), engine.root_pem],
    }[case]
    refused(mirrored, engine, "openbao.int_mount", revoked=[{"serial_number": "42"}])


@pytest.mark.parametrize("case", ["no intermediate", "two intermediates", "intermediate of another root"])
def test_a_bad_chain_on_a_new_folder_writes_nothing(tmp_path, engine, case):
    foreign = Pki(int_name="Engine Intermediate")
    engine.chain_pems = {
        "no intermediate": [engine.root_pem],
        "two intermediates": [pem(engine.pki.int).decode(), pem(foreign.int).decode()],
        "intermediate of another root": [pem(foreign.int).decode()],
    }[case]
    folder = tmp_path / "pki"
    refused(folder, engine, "openbao.int_mount")
    assert not folder.exists()


@pytest.mark.parametrize("mount", ["int_mount", "root_mount"])
def test_a_crl_not_signed_by_its_ca_is_refused(mirrored, engine, mount):
    good_int, good_root = engine.crls()
    stranger = generate_key("ec-p256")
    if mount == "int_mount":  # the intermediate's name, another key
        engine.crl_override = [crl_pem(engine.pki.int, stranger), good_root]
    else:  # the root's CRL signed by the intermediate
        engine.crl_override = [good_int, crl_pem(engine.pki.root, engine.pki.int_key)]
    refused(mirrored, engine, f"openbao.{mount}")


def test_crls_swapped_are_refused(mirrored, engine):
    good_int, good_root = engine.crls()
    engine.crl_override = [good_root, good_int]
    refused(mirrored, engine, "openbao.int_mount")


@pytest.mark.parametrize("option", ["certificate_content", "certificate_path"])
def test_a_revoked_certificate_not_issued_by_the_engine_is_refused_before_any_revocation(
        mirrored, engine, tmp_path, option):
    foreign = Pki(int_name="Engine Intermediate")
    _key, leaf = foreign.leaf()
    value = pem(leaf).decode()
    if option == "certificate_path":
        (tmp_path / "leaf.crt").write_text(value)
        value = str(tmp_path / "leaf.crt")
    refused(mirrored, engine, f"revoked[1].{option}", revoked=[{"serial_number": "42"}, {option: value}])
    assert "revoke" not in engine.calls


def test_authenticate_failing_leaves_a_new_folder_unwritten(tmp_path, engine):
    engine.auth_error = PkiError("permission denied", where="openbao.token")
    folder = tmp_path / "pki"
    refused(folder, engine, "openbao.token", revoked=[{"serial_number": "42"}])
    assert not folder.exists()
    assert engine.calls == ["authenticate"]


def test_authenticate_failing_leaves_the_mirror_unchanged(mirrored, engine):
    engine.auth_error = PkiError("permission denied", where="openbao.token")
    (mirrored / "revoked.yml").write_text("- serial_number: '0x1F'\n")
    refused(mirrored, engine, "openbao.token", revoked=[{"serial_number": "42"}])
    assert engine.calls == ["authenticate"]


def test_revocations_are_made_in_the_engine_then_mirrored(mirrored, engine):
    _key, leaf = engine.pki.leaf()
    before = files(mirrored)
    done = ensure_mirror(params(mirrored, revoked=[{"serial_number": "42"}, {"certificate_content": pem(leaf).decode()}]),
                         False, engine)
    assert sorted(engine.revocations) == sorted([(42, "revoked (2A)"),
                                                 (leaf.serial_number, f"revoked ({serial_hex(leaf.serial_number)})")])
    assert done["changed"] and done["warnings"] == []
    assert f"revoked in the engine: {serial_hex(leaf.serial_number)}" in done["changes"]
    # The CRLs are read again after the revocations: the mirror holds the new one.
    assert crl_serials(mirrored / "intermediate.crl") == {42, leaf.serial_number}
    after = files(mirrored)
    assert after["root.crt"] == before["root.crt"] and after["root.crl"] == before["root.crl"]
    assert after["crl.pem"] == after["intermediate.crl"] + after["root.crl"]
    assert after["intermediate.crl"] == engine.crls()[0].encode()
    # The next run finds both in the engine's CRL: nothing is sent again, nothing changes.
    engine.revocations.clear()
    snapshot = tree(mirrored)
    again = ensure_mirror(params(mirrored, revoked=[{"serial_number": "42"}, {"certificate_content": pem(leaf).decode()}]),
                          False, engine)
    assert engine.revocations == []
    assert not again["changed"] and again["changes"] == []
    assert tree(mirrored) == snapshot


def test_a_serial_already_in_the_crl_is_not_revoked_again(tmp_path, engine):
    engine.revoked_before(42)
    folder = tmp_path / "pki"
    done = ensure_mirror(params(folder, revoked=[{"serial_number": "0x2A", "reason": "key_compromise"}]), False, engine)
    assert engine.revocations == [] and "revoke" not in engine.calls
    assert not any(c.startswith("revoked") for c in done["changes"])
    assert done["warnings"] == []
    assert crl_serials(folder / "intermediate.crl") == {42}


def test_a_serial_in_the_crl_is_not_revoked_again_while_another_is(mirrored, engine):
    engine.revoked_before(42)
    ensure_mirror(params(mirrored, revoked=[{"serial_number": "42"}, {"serial_number": "43"}]), False, engine)
    assert engine.revocations == [(43, "revoked (2B)")]
    assert crl_serials(mirrored / "intermediate.crl") == {42, 43}


def test_the_registry_published_entries_are_revoked_and_pending_ones_are_not(mirrored, engine):
    (mirrored / "revoked.yml").write_text(
        "- serial_number: '0x1F'\n  reason: key_compromise\n  name: mallory\n  revocation_date: '2024-01-02T03:04:05+00:00'\n"
        "- serial_number: '0x20'\n  reason: superseded\n  pending: true\n"
        "- serial_number: '33'\n"
        "- serial_number: '0x22'\n  pending: false\n")
    done = ensure_mirror(params(mirrored), False, engine)
    assert sorted(serial for serial, _where in engine.revocations) == [0x1F, 33, 0x22]
    assert 0x20 not in engine.revoked
    assert crl_serials(mirrored / "intermediate.crl") == {0x1F, 33, 0x22}
    # key_compromise cannot be said to the engine: a warning names the serials sent.
    assert len(done["warnings"]) == 1 and "1F" in done["warnings"][0]
    engine.revocations.clear()
    again = ensure_mirror(params(mirrored), False, engine)
    assert engine.revocations == [] and not again["changed"]


def test_the_registry_entries_already_in_the_crl_are_not_sent(mirrored, engine):
    engine.revoked_before(0x1F)
    (mirrored / "revoked.yml").write_text("- serial_number: '0x1F'\n  reason: key_compromise\n")
    done = ensure_mirror(params(mirrored), False, engine)
    assert engine.revocations == [] and done["warnings"] == []


def test_without_crls_the_certificates_only(tmp_path, engine):
    folder = tmp_path / "pki"
    ensure_mirror(params(folder, crl=False), False, engine)
    assert sorted(files(folder)) == ["intermediate.crt", "root.crt"]
    assert "crls" not in engine.calls


def test_without_crls_a_revocation_is_sent_once(tmp_path, engine):
    """crl=false (the CAs only) still revokes in the engine; a serial the engine revoked already is not sent again on
    every run (the engine's CRL says it is there), and the second run changes nothing."""
    folder = tmp_path / "pki"
    first = ensure_mirror(params(folder, crl=False, revoked=[{"serial_number": "42"}]), False, engine)
    assert first["changed"] and engine.revocations == [(42, "revoked (2A)")]
    engine.revocations.clear()
    again = ensure_mirror(params(folder, crl=False, revoked=[{"serial_number": "42"}]), False, engine)
    assert engine.revocations == []
    assert not again["changed"], again["changes"]


def test_a_folder_the_mirror_may_not_write_is_refused_before_anything_is_revoked(mirrored, engine):
    """A mirror file the planner will not replace (text where a CRL belongs): the run fails before the engine is asked
    to revoke anything, and the folder stays as it was."""
    (mirrored / "intermediate.crl").write_text("not a CRL\n")
    before = files(mirrored)
    with pytest.raises(PkiError):
        ensure_mirror(params(mirrored, revoked=[{"serial_number": "42"}]), False, engine)
    assert engine.revocations == []
    assert files(mirrored) == before


# ---- the engine's signer ------------------------------------------------------------------------------------------


class FakeSettings:
    role = "pg-server"

    @staticmethod
    def where(name: str) -> str:
        return "openbao." + name


class FakeClient:
    """BaoClient's sign(): ``make(public_key)`` gives the leaf the engine returns; every call is recorded."""

    def __init__(self, make, warnings=()) -> None:
        self.settings = FakeSettings()
        self.make = make
        self.warnings = list(warnings)
        self.calls: list[tuple] = []

    def sign(self, csr_pem, common_name, dns_sans, ip_sans, ttl_days, where):
        self.calls.append((common_name, dns_sans, ip_sans, ttl_days, where))
        leaf = self.make(compat.load_csr(csr_pem.encode(), where).public_key())
        return Signed(certificate=pem(leaf).decode(), chain=[], serial=serial_hex(leaf.serial_number).lower(),
                      serial_number=leaf.serial_number, warnings=list(self.warnings))


ALL_USAGE = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                          data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False)


def engine_leaf(ca_cert, ca_key, public_key, cn="db1.example.com", sans=("db1.example.com", "10.0.0.5"),
                eku=(SERVER_AUTH, CLIENT_AUTH), days=365, ca=False, organization="Engine Org"):
    """A leaf as an OpenBao role writes it: its own subject fields, key usage (not critical, key agreement too), both
    extended usages (server_flag and client_flag), no subject key identifier."""
    at = compat.now()
    names = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if organization:
        names.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    builder = (x509.CertificateBuilder().subject_name(x509.Name(names)).issuer_name(ca_cert.subject)
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(at - dt.timedelta(seconds=30)).not_valid_after(at + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(ALL_USAGE, critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(parse_sans(list(sans))), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def server_request(cn="db1.example.com", sans=("db1.example.com", "10.0.0.5"), profile=SERVER, valid_days=365):
    item = {"name": "server", "common_name": cn, "subject_alt_names": list(sans), "cert_path": "/srv/server.crt"}
    return Request(item=item, wanted=Wanted(build_name(cn), tuple(parse_sans(list(sans))), profile),
                   valid_days=valid_days)


def mirrored_issuer(pki: Pki, signer=None) -> Issuer:
    """The mirror's intermediate as the issuing actions load it: no key."""
    return Issuer(cert=pki.int, chain=[pki.root], where="issuer", signer=signer)


def csr_for(cn="db1.example.com"):
    key = generate_key("ec-p256")
    csr = make_csr(key, build_name(cn), parse_sans([cn]))
    return key, csr.public_bytes(Encoding.PEM).decode()


@pytest.fixture
def pki() -> Pki:
    return Pki(int_name="Engine Intermediate")


def test_the_signer_returns_the_engines_leaf_and_keeps_its_warnings(pki):
    client = FakeClient(lambda public: engine_leaf(pki.int, pki.int_key, public), warnings=["TTL of 8760h cut to 720h"])
    signer = EngineSigner(client, mirrored_issuer(pki), "web1")
    key, csr = csr_for()
    leaf = signer(csr, server_request(), RenewPolicy(days=30, percent=0))
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    assert client.calls == [("db1.example.com", ["db1.example.com"], ["10.0.0.5"], 365, "web1: db1.example.com")]
    assert signer.warnings == ["web1: db1.example.com: OpenBao: TTL of 8760h cut to 720h"]


def test_a_leaf_of_another_issuer_is_refused(pki):
    foreign = Pki(int_name="Engine Intermediate")  # same name: only the signature tells them apart
    client = FakeClient(lambda public: engine_leaf(foreign.int, foreign.int_key, public))
    signer = EngineSigner(client, mirrored_issuer(pki), "web1")
    with pytest.raises(PkiError) as caught:
        signer(csr_for()[1], server_request(), RenewPolicy())
    assert caught.value.where == "openbao.int_mount"


@pytest.mark.parametrize(("profile", "eku", "flag"), [
    (SERVER, (CLIENT_AUTH,), "server_flag=true"),
    (CLIENT, (SERVER_AUTH,), "client_flag=true"),
    (SERVER, (ExtendedKeyUsageOID.CODE_SIGNING,), "server_flag=true"),
])
def test_a_leaf_without_the_profiles_usage_is_refused(pki, profile, eku, flag):
    client = FakeClient(lambda public: engine_leaf(pki.int, pki.int_key, public, eku=eku))
    signer = EngineSigner(client, mirrored_issuer(pki), "web1")
    with pytest.raises(PkiError) as caught:
        signer(csr_for()[1], server_request(profile=profile), RenewPolicy())
    assert caught.value.where == "openbao.role"
    assert flag in str(caught.value) and "extended key usage" in str(caught.value)


def test_a_ca_leaf_is_refused(pki):
    client = FakeClient(lambda public: engine_leaf(pki.int, pki.int_key, public, ca=True))
    signer = EngineSigner(client, mirrored_issuer(pki), "web1")
    with pytest.raises(PkiError) as caught:
        signer(csr_for()[1], server_request(), RenewPolicy())
    assert caught.value.where == "openbao.role" and "basic constraints" in str(caught.value)


@pytest.mark.parametrize("case", ["lifetime cut below renew_before_days", "most of its lifetime gone"])
def test_a_leaf_inside_the_renewal_window_is_refused(pki, case):
    """A role whose max_ttl cuts the lifetime below the window (or an engine whose clock runs far ahead): signing again
    would give the same on every run."""
    if case.startswith("lifetime"):
        policy = RenewPolicy(days=30, percent=0)
        client = FakeClient(lambda public: engine_leaf(pki.int, pki.int_key, public, days=20), warnings=["TTL cut"])
    else:
        policy = RenewPolicy(days=0, percent=33)
        client = FakeClient(lambda public: _aged_leaf(pki, public, 100), warnings=["TTL cut"])
    signer = EngineSigner(client, mirrored_issuer(pki), "web1")
    with pytest.raises(PkiError) as caught:
        signer(csr_for()[1], server_request(valid_days=365), policy)
    assert caught.value.where == "openbao.role"
    assert "every run would sign again" in str(caught.value)
    assert signer.warnings == ["web1: db1.example.com: OpenBao: TTL cut"]


def _aged_leaf(pki, public, days):
    """A leaf whose notBefore lies most of its lifetime in the past (an engine clock far ahead of ours)."""
    at = compat.now()
    return (x509.CertificateBuilder().subject_name(build_name("db1.example.com")).issuer_name(pki.int.subject)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(at - dt.timedelta(days=days * 0.9)).not_valid_after(at + dt.timedelta(days=days * 0.1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(parse_sans(["db1.example.com", "10.0.0.5"])), critical=False)
            .sign(pki.int_key, hashes.SHA256()))


def test_a_leaf_outside_the_window_is_taken_with_the_default_policy(pki):
    client = FakeClient(lambda public: engine_leaf(pki.int, pki.int_key, public, days=90))
    signer = EngineSigner(client, mirrored_issuer(pki), "db1.example.com")
    leaf = signer(csr_for()[1], server_request(valid_days=90), RenewPolicy(days=30, percent=33))
    assert compat.not_after(leaf) - compat.now() > dt.timedelta(days=89)
    assert client.calls[0][-1] == "db1.example.com"  # the host named once when it is the CN


def test_decide_material_signs_through_the_engine_then_keeps_its_leaf(pki):
    """The issuing flow with the signer: the first decision signs through the engine (no CA key is read), the next
    one, given that leaf with the engine's own extensions, keeps it."""
    client = FakeClient(lambda public: engine_leaf(pki.int, pki.int_key, public))
    issuer = mirrored_issuer(pki)
    issuer.signer = EngineSigner(client, issuer, "web1")
    renew = RenewPolicy(days=30, percent=33, key_rotation="on_renewal")
    _key, csr = csr_for()
    request = server_request()
    first = {"changes": [], "csr": csr, "certificate": None, "key": {"state": "present"}}
    assert decide_material(request, first, issuer, renew) == []
    assert request.install and request.issued and len(client.calls) == 1
    leaf = request.chain[0]
    assert [c.serial_number for c in request.chain] == [leaf.serial_number, pki.int.serial_number]
    kept = server_request()
    second = {"changes": [], "csr": csr, "certificate": pem(leaf, pki.int).decode(), "key": {"state": "present"}}
    assert decide_material(kept, second, issuer, renew) == []
    assert not kept.install and kept.reasons == [] and len(client.calls) == 1


# ---- reissue_reasons for an engine's leaf ---------------------------------------------------------------------------


def _engine_issuer(pki):
    return mirrored_issuer(pki, signer=lambda *args: pytest.fail("not to be signed here"))


def test_an_engine_leaf_with_its_own_extensions_is_kept(pki):
    key = generate_key("ec-p256")
    leaf = engine_leaf(pki.int, pki.int_key, key.public_key())
    wanted = server_request().wanted
    assert reissue_reasons(leaf, key.public_key(), wanted, _engine_issuer(pki), RenewPolicy()) == []
    # The same leaf judged as the collection's own CA's: its subject and profile are not ours (the test's control).
    own = reissue_reasons(leaf, key.public_key(), wanted, mirrored_issuer(pki), RenewPolicy())
    assert any(r.startswith("profile changed") for r in own) and any(r.startswith("subject changed") for r in own)


def test_an_engine_client_leaf_with_server_usage_too_is_kept(pki):
    key = generate_key("ec-p256")
    leaf = engine_leaf(pki.int, pki.int_key, key.public_key(), cn="app", sans=())
    wanted = Wanted(build_name("app"), (), CLIENT)
    assert reissue_reasons(leaf, key.public_key(), wanted, _engine_issuer(pki), RenewPolicy()) == []


@pytest.mark.parametrize(("change", "expected"), [
    ({"cn": "db2.example.com", "sans": ("db1.example.com", "10.0.0.5")}, "subject changed"),
    ({"cn": "db1.example.com", "sans": ("db1.example.com", "10.0.0.5", "db1b.example.com")},
     "subject alternative names changed (+DNS:db1b.example.com)"),
    ({"cn": "db1.example.com", "sans": ("db1.example.com",)}, "subject alternative names changed (-IP:10.0.0.5)"),
])
def test_an_engine_leaf_is_reissued_for_a_changed_name(pki, change, expected):
    key = generate_key("ec-p256")
    leaf = engine_leaf(pki.int, pki.int_key, key.public_key())
    wanted = server_request(**change).wanted
    reasons = reissue_reasons(leaf, key.public_key(), wanted, _engine_issuer(pki), RenewPolicy())
    assert any(r.startswith(expected) for r in reasons), reasons


def test_an_engine_leaf_without_the_usage_is_reissued(pki):
    key = generate_key("ec-p256")
    leaf = engine_leaf(pki.int, pki.int_key, key.public_key(), eku=(CLIENT_AUTH,))
    reasons = reissue_reasons(leaf, key.public_key(), server_request().wanted, _engine_issuer(pki), RenewPolicy())
    assert reasons == ["profile changed (extended key usage)"]


def test_an_engine_leaf_of_another_intermediate_is_reissued(pki):
    foreign = Pki(int_name="Engine Intermediate")
    key = generate_key("ec-p256")
    leaf = engine_leaf(foreign.int, foreign.int_key, key.public_key())
    reasons = reissue_reasons(leaf, key.public_key(), server_request().wanted, _engine_issuer(pki), RenewPolicy())
    assert any(r.startswith("issuer changed") for r in reasons), reasons


# ---- use_openbao ----------------------------------------------------------------------------------------------------


def test_use_openbao_needs_the_mirrors_folder(pki, tmp_path):
    issuer = mirrored_issuer(pki)
    assert use_openbao({"openbao": None}, issuer, "web1") is None and issuer.signer is None
    with pytest.raises(PkiError) as caught:
        use_openbao({"openbao": dict(OPENBAO), "ca_folder": None}, issuer, "web1")
    assert caught.value.where == "openbao"
    folder = tmp_path / "pki"
    folder.mkdir()
    (folder / "intermediate.key").write_bytes(b"x")
    with pytest.raises(PkiError) as caught:
        use_openbao({"openbao": dict(OPENBAO), "ca_folder": str(folder)}, issuer, "web1")
    assert caught.value.where == "ca_folder" and issuer.signer is None


def test_use_openbao_sets_the_signer(pki, tmp_path):
    issuer = mirrored_issuer(pki)
    folder = tmp_path / "pki"
    folder.mkdir()
    signer = use_openbao({"openbao": dict(OPENBAO), "ca_folder": str(folder)}, issuer, "web1")
    assert isinstance(signer, EngineSigner) and issuer.signer is signer
    assert signer.client.settings.where("role") == "openbao.role"


# ---- CRLs the engine must sign again ---------------------------------------------------------------------------


def test_a_crl_near_its_next_update_is_signed_again_in_the_engine(tmp_path, engine):
    """29 of 30 days gone (inside crl_renew_before_days=7): the engine signs both CRLs again (crl/rotate) before they
    are mirrored; the mirror holds the fresh ones and no warning is given."""
    engine.crl_age = dt.timedelta(days=29)
    done = ensure_mirror(params(tmp_path / "pki"), False, engine)
    assert sorted(engine.rotated) == ["int_mount", "root_mount"]
    crl = compat.load_crls((tmp_path / "pki" / "intermediate.crl").read_bytes(), "crl")[0]
    assert compat.crl_next_update(crl) - compat.now() > dt.timedelta(days=29)
    assert done["warnings"] == []


def test_a_short_crl_lifetime_is_warned_about_and_rotated_only_in_its_last_third(tmp_path, engine):
    """OpenBao's default CRL expiry (72 hours) is shorter than the renewal window: a warning naming the mount's
    config/crl; a CRL one hour old is kept (no new CRL, and so no change for the hosts, on every run)."""
    engine.crl_lifetime = dt.timedelta(hours=72)
    done = ensure_mirror(params(tmp_path / "pki"), False, engine)
    assert engine.rotated == []
    assert any("openbao.int_mount lasts 3 days" in w and "config/crl" in w for w in done["warnings"]), done["warnings"]
    engine.crl_age, engine._int_crl, engine._root_crl = dt.timedelta(hours=50), None, None
    ensure_mirror(params(tmp_path / "pki"), False, engine)
    assert sorted(engine.rotated) == ["int_mount", "root_mount"]


def test_check_mode_does_not_rotate(tmp_path, engine):
    engine.crl_age = dt.timedelta(days=29)
    done = ensure_mirror(params(tmp_path / "pki"), True, engine)
    assert engine.rotated == [] and not (tmp_path / "pki").exists()
    assert any("would sign the CRL" in w for w in done["warnings"])


def test_an_expired_crl_the_engine_does_not_renew_is_refused(mirrored, engine):
    before = files(mirrored)
    engine.crl_age, engine.rotate_works = dt.timedelta(days=31), False
    engine._int_crl = engine._root_crl = None
    with pytest.raises(PkiError) as info:
        ensure_mirror(params(mirrored), False, engine)
    assert info.value.where == "openbao.int_mount" and "expired" in str(info.value)
    assert files(mirrored) == before


# ---- moving from the CA folder (migrate_from) ---------------------------------------------------------------------


def old_folder(tmp_path, engine, *, same_root=True, crl_age=dt.timedelta(minutes=1)):
    """The collection's CA folder the fleet moves from: the engine's root (imported) or another one, its own
    intermediate and that intermediate's CRL."""
    folder = tmp_path / "old"
    folder.mkdir()
    pki = engine.pki if same_root else Pki()
    key = generate_key("ec-p256")
    inter = issue_certificate(subject=build_name("Folder Intermediate"), public_key=key.public_key(),
                              profile=INTERMEDIATE_CA, valid_days=365, issuer=pki.root_issuer)
    (folder / "root.crt").write_bytes(pem(pki.root))
    (folder / "intermediate.crt").write_bytes(pem(inter))
    (folder / "intermediate.crl").write_text(crl_pem(inter, key, (0x77,), age=crl_age, lifetime=dt.timedelta(days=30)))
    return folder


def test_migrate_from_keeps_the_old_intermediates_crl_in_crl_pem(tmp_path, engine):
    old = old_folder(tmp_path, engine)
    before = tree(old)
    ensure_mirror(params(tmp_path / "pki", migrate_from=str(old)), False, engine)
    bundle = compat.load_crls((tmp_path / "pki" / "crl.pem").read_bytes(), "crl.pem")
    assert [c.issuer for c in bundle][2] == build_name("Folder Intermediate") and len(bundle) == 3
    assert tree(old) == before  # only read
    done = ensure_mirror(params(tmp_path / "pki"), False, engine)  # the move is over: back to two
    assert len(compat.load_crls((tmp_path / "pki" / "crl.pem").read_bytes(), "crl.pem")) == 2 and done["changed"]


@pytest.mark.parametrize("case, text", [
    ("other root", "not the root mount's root"),
    ("expired crl", "expired on"),
    ("no crl", "is missing"),
    ("without crls", "needs CRLs"),
    ("the mirror itself", "the mirror itself"),
])
def test_migrate_from_refusals_change_nothing(tmp_path, engine, case, text):
    old = old_folder(tmp_path, engine, same_root=case != "other root",
                     crl_age=dt.timedelta(days=31) if case == "expired crl" else dt.timedelta(minutes=1))
    if case == "no crl":
        (old / "intermediate.crl").unlink()
    mirror = tmp_path / "pki"
    extra = {"crl": False} if case == "without crls" else {}
    source = mirror if case == "the mirror itself" else old
    if case == "the mirror itself":
        ensure_mirror(params(mirror), False, engine)
    before = tree(mirror) if mirror.exists() else None
    with pytest.raises(PkiError) as info:
        ensure_mirror(params(mirror, migrate_from=str(source), **extra), False, engine)
    assert info.value.where == "migrate_from" and text in str(info.value), str(info.value)
    assert (tree(mirror) if mirror.exists() else None) == before
