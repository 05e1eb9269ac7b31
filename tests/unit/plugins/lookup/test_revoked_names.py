"""Lookups pgtls.ssl.revoked_names (and pgtls.ssl.revocations, last) on a CA folder made by pgtls.ssl.ca_folder's
core, its registry written by pgtls.ssl.revocation_registry's: the names revoked by name, sorted and each once, []
without a registry, and every registry it cannot trust refused with a message naming the lookup and the file. (That
client_cert leaves out the same names: tests/unit/plugins/modules/test_ca_folder_option.py.)"""

from __future__ import annotations

import os
import shutil

import pytest
from ansible.errors import AnsibleError

from ansible_collections.pgtls.ssl.plugins.lookup.revocations import LookupModule as RevocationsLookup
from ansible_collections.pgtls.ssl.plugins.lookup.revoked_names import LookupModule
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.ca_folder import ensure_folder
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.cafolder.revocation_registry import ensure_entries


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    pki = tmp_path_factory.mktemp("lookup") / "pki"
    ensure_folder({"path": str(pki), "key_type": "ec-p256", "root_common_name": "R", "intermediate_common_name": "I",
                   "root_key_passphrase": None, "root_cert_content": None, "root_key_content": None,
                   "intermediate_cert_content": None, "intermediate_key_content": None, "crl": True, "revoked": [],
                   "crl_next_update_days": 30, "crl_renew_before_days": 7, "lock_timeout": 10}, False)
    return pki


@pytest.fixture
def pki(made, tmp_path):
    shutil.copytree(made, tmp_path / "pki")
    return tmp_path / "pki"


def lookup(*terms):
    return LookupModule().run(list(terms), {})


def revocations(*terms):
    """Lookup pgtls.ssl.revocations: the same registry, by serial and by key, for the audit."""
    return RevocationsLookup().run(list(terms), {})


def revoke(pki, *entries, reason="key_compromise"):
    """Entries as the revoke playbook records them: by name (each serial issued to it) or by serial alone."""
    done = ensure_entries({"path": None, "pki_dir": str(pki), "names": [], "serials": [], "reason": reason,
                           "revocation_date": None, "lock_timeout": 10,
                           "add": [{"serial_number": serial, "name": name, "reason": reason, "revocation_date": None}
                                   for serial, name in entries]}, False)
    assert done["changed"]


def test_no_registry_no_names(pki):
    assert not (pki / "revoked.yml").exists()
    assert lookup(str(pki)) == []


def test_the_names_revoked_by_name_sorted_once_serials_alone_name_nobody(pki):
    revoke(pki, ("0x10", "mallory"), ("0x11", "mallory"))
    revoke(pki, ("0x1F2E", None), reason="superseded")
    revoke(pki, ("0x12", "eve"))
    assert lookup(str(pki)) == ["eve", "mallory"]
    # Two CA folders: their names together, each once.
    other = pki.parent / "other"
    shutil.copytree(pki, other)
    assert lookup(str(pki), str(other)) == ["eve", "mallory"]


@pytest.mark.parametrize("content, message", [
    ("- [not, an, entry]\n", "{reg} is not a list of entries with a serial_number"),
    ("- {serial_number: '0x1F', name: [mallory]}\n",
     "{reg} entry 1: name ['mallory'] is a list, not a role name (quote it in the registry)"),
    ("- {serial_number: 'zz', name: mallory}\n", "serial_number"),
    ("{ not yaml\n", "{reg} is not valid YAML"),
])
def test_a_registry_it_cannot_trust_is_refused(pki, content, message):
    registry = pki / "revoked.yml"
    registry.write_text(content)
    with pytest.raises(AnsibleError) as raised:
        lookup(str(pki))
    text = str(raised.value)
    assert "pgtls.ssl.revoked_names" in text and str(registry) in text, text
    assert message.format(reg=registry) in text, text


def test_a_registry_that_is_a_link_is_refused(pki, tmp_path):
    (tmp_path / "elsewhere.yml").write_text("- {serial_number: '0x1F', name: mallory}\n")
    os.symlink(tmp_path / "elsewhere.yml", pki / "revoked.yml")
    with pytest.raises(AnsibleError, match=r"pgtls\.ssl\.revoked_names: .*/pki/revoked\.yml is a symbolic link"):
        lookup(str(pki))


@pytest.mark.parametrize("term, message", [
    ("missing", "pgtls.ssl.revoked_names: {base}/missing does not exist: the term names a CA folder (pgtls_pki_dir)"),
    ("file", "pgtls.ssl.revoked_names: {base}/file is not a folder: the term names a CA folder (pgtls_pki_dir)"),
    ("", "pgtls.ssl.revoked_names: each term is a CA folder's path, got ''"),
    (None, "pgtls.ssl.revoked_names: each term is a CA folder's path, got None"),
])
def test_a_term_that_is_no_folder_is_refused(tmp_path, term, message):
    (tmp_path / "file").write_text("x\n")
    given = str(tmp_path / term) if term else term
    with pytest.raises(AnsibleError) as raised:
        lookup(given)
    assert str(raised.value) == message.format(base=tmp_path)


def test_revocations_gives_every_revoked_serial_and_the_compromised_keys(pki):
    assert revocations(str(pki)) == [{"serials": {}, "keys": {}}]
    revoke(pki, ("0x10", "mallory"))
    revoke(pki, ("0x1F2E", None), reason="superseded")
    done = ensure_entries({"path": None, "pki_dir": str(pki), "names": [], "serials": ["0x0BADC0DE"],
                           "reason": "key_compromise", "revocation_date": None, "lock_timeout": 10, "add": [],
                           "pending": True, "allow_unknown_serials": True}, False)
    assert done["changed"]
    found = revocations(str(pki))[0]
    assert found["serials"] == {"10": "key_compromise", "1F:2E": "superseded", "0B:AD:C0:DE": "key_compromise (pending)"}
    assert found["keys"] == {}  # none of them is in the archive: no key to record


def test_revocations_of_a_folder_that_is_not_there_is_nothing_and_a_bad_registry_fails(pki, tmp_path):
    assert revocations(str(tmp_path / "nowhere")) == [{"serials": {}, "keys": {}}]
    (pki / "revoked.yml").write_text("- serial_number: '0x1F'\n  pending: maybe\n")
    with pytest.raises(AnsibleError, match=r"pgtls.ssl.revocations: .*entry 1.pending must be true or false"):
        revocations(str(pki))
    os.remove(pki / "revoked.yml")
    os.symlink(tmp_path, pki / "revoked.yml")
    with pytest.raises(AnsibleError, match="pgtls.ssl.revocations"):
        revocations(str(pki))
