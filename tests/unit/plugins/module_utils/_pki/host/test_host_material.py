"""The host half: key created with its final mode, pending keys, install refuses a certificate for another key."""

from __future__ import annotations

import os
import stat

import pytest
from pkitools import Pki, pem
from pkitools import host_item as _item
from pkitools import sign_csr as _sign

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.host_material import PENDING_SUFFIX, host_material


def test_check_mode_writes_nothing(tmp_path):
    result = host_material({"stage": "prepare", "items": [_item(tmp_path)]}, check_mode=True)
    assert result["changed"] and result["item_results"][0]["key"]["state"] == "created"
    assert list(tmp_path.iterdir()) == []


def test_first_issue_then_unchanged(tmp_path):
    pki = Pki()
    prepared = host_material({"stage": "prepare", "items": [_item(tmp_path)]}, check_mode=False)["item_results"][0]
    pending = tmp_path / ("server.key" + PENDING_SUFFIX)
    assert pending.exists() and not (tmp_path / "server.key").exists()
    assert stat.S_IMODE(os.stat(pending).st_mode) == 0o600
    assert "PRIVATE KEY" not in repr(prepared)
    chain = pem(_sign(pki, prepared["csr"]), pki.int).decode()
    host_material({"stage": "install", "items": [_item(tmp_path, certificate=chain)]}, check_mode=False)
    assert not pending.exists() and (tmp_path / "server.key").exists()
    again = host_material({"stage": "prepare", "items": [_item(tmp_path)]}, check_mode=False)
    assert not again["changed"]
    assert again["item_results"][0]["certificate"] == chain


def test_install_of_a_foreign_certificate_changes_nothing(tmp_path):
    pki = Pki()
    prepared = host_material({"stage": "prepare", "items": [_item(tmp_path)]}, check_mode=False)["item_results"][0]
    good = pem(_sign(pki, prepared["csr"])).decode()
    host_material({"stage": "install", "items": [_item(tmp_path, certificate=good)]}, check_mode=False)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    _key, foreign = pki.leaf()
    with pytest.raises(PkiError, match="does not match the private key"):
        host_material({"stage": "install", "items": [_item(tmp_path, certificate=pem(foreign).decode())]},
                      check_mode=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


KEY_MODE_ERRORS = [
    ({"key_mode": "0640"}, "0600 or stricter"),
    ({"owner": "root", "key_mode": "0644"}, "at most 0640"),
    ({"owner": "no-such-user-pgtls"}, "user 'no-such-user-pgtls' does not exist"),
    ({"subject_alt_names": ["bad name"]}, "is neither a DNS name nor an IP address"),
]


@pytest.mark.parametrize("extra,message", KEY_MODE_ERRORS)
def test_bad_item_fails_before_writing(tmp_path, extra, message):
    if extra.get("key_mode") == "0640" and "owner" not in extra:
        extra = dict(extra, owner="nobody")
    with pytest.raises(PkiError, match=message):
        host_material({"stage": "prepare", "items": [_item(tmp_path, **extra)]}, check_mode=False)
    assert list(tmp_path.iterdir()) == []


def test_key_type_change_goes_through_a_pending_key(tmp_path):
    pki = Pki()
    first = host_material({"stage": "prepare", "items": [_item(tmp_path)]}, check_mode=False)["item_results"][0]
    host_material({"stage": "install", "items": [_item(tmp_path, certificate=pem(_sign(pki, first["csr"])).decode())]},
                  check_mode=False)
    old_key = (tmp_path / "server.key").read_bytes()
    second = host_material({"stage": "prepare", "items": [_item(tmp_path, key_type="rsa2048")]},
                           check_mode=False)["item_results"][0]
    assert second["key"]["state"] == "replaced"
    assert (tmp_path / "server.key").read_bytes() == old_key, "the active key must stay until the cert is installed"
    host_material({"stage": "install", "items": [_item(tmp_path, key_type="rsa2048",
                                                       certificate=pem(_sign(pki, second["csr"])).decode())]},
                  check_mode=False)
    assert (tmp_path / "server.key").read_bytes() != old_key


def test_a_bundles_folder_far_from_any_folder_is_refused_naming_base_dir(tmp_path):
    """A client's folder is made inside base_dir (client_cert's dest), and base_dir too when its parent exists; when
    that parent is missing as well (a typo, most likely), the message names base_dir (dest), and nothing is made."""
    folder = tmp_path / "no" / "bundles" / "app"
    item = _item(folder, create_dir=True, base_dir=str(tmp_path / "no" / "bundles"))
    with pytest.raises(PkiError) as raised:
        host_material({"stage": "prepare", "items": [item]}, check_mode=False)
    assert str(raised.value) == (f"items[0] (server).base_dir: cannot create folder {folder.parent}: "
                                 "its parent does not exist")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_bundles_folder_whose_parent_exists_is_made(tmp_path):
    """The patroni role's tls/clients on a member's first run: dest is made (0755), the client's folder in it 0700."""
    folder = tmp_path / "clients" / "patroni"
    host_material({"stage": "prepare", "items": [_item(folder, create_dir=True, base_dir=str(folder.parent))]},
                  check_mode=False)
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o755 and stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_key_folder_whose_parent_is_missing_is_refused_naming_the_key(tmp_path):
    """Without create_parents (every caller but server_cert), a key folder's parent must exist: nothing is made."""
    folder = tmp_path / "nope" / "deeper"
    with pytest.raises(PkiError) as raised:
        host_material({"stage": "prepare", "items": [_item(folder, create_dir=True)]}, check_mode=False)
    assert str(raised.value) == f"items[0] (server).key_path: cannot create folder {folder}: its parent does not exist"
    assert list(tmp_path.iterdir()) == []


def test_a_key_folder_of_its_own_is_made_with_its_missing_parents(tmp_path):
    """create_parents (server_cert's create_dir): etcd's default /etc/etcd/tls on Debian, whose etcd-server makes no
    /etc/etcd: the folders above the key's are
    made (0755, the process's owner), the key's own folder 0700 (the new key waits there for its certificate);
    check mode makes nothing."""
    folder = tmp_path / "etc" / "etcd" / "tls"
    item = _item(folder, create_dir=True, create_parents=True)
    checked = host_material({"stage": "prepare", "items": [item]}, check_mode=True)
    assert checked["changed"] is True and list(tmp_path.iterdir()) == []
    host_material({"stage": "prepare", "items": [item]}, check_mode=False)
    assert stat.S_IMODE((tmp_path / "etc").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "etc" / "etcd").stat().st_mode) == 0o755
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and [p.name for p in folder.iterdir()] == ["server.key.pgtls-new"]


def _rekeyed(tmp_path, pki):
    """A key and certificate installed, a new key pending: the install item of the new certificate (with a root)."""
    first = host_material({"stage": "prepare", "items": [_item(tmp_path)]}, check_mode=False)["item_results"][0]
    host_material({"stage": "install", "items": [_item(tmp_path, certificate=pem(_sign(pki, first["csr"])).decode())]},
                  check_mode=False)
    second = host_material({"stage": "prepare", "items": [_item(tmp_path, key_type="rsa2048")]},
                           check_mode=False)["item_results"][0]
    return _item(tmp_path, key_type="rsa2048", root_path=str(tmp_path / "root.crt"), root=pem(pki.root).decode(),
                 certificate=pem(_sign(pki, second["csr"])).decode())


def test_a_new_key_and_its_certificate_are_renamed_one_after_the_other(tmp_path, monkeypatch):
    """A libpq client reads postgresql.crt, then postgresql.key: every file is staged first, then the certificate's
    rename is followed by the key's with no write, rename or fsync between them (a key/certificate pair swapped with
    a window of microseconds, not of fsyncs; CI once saw a connection read one old and one new)."""
    item = _rekeyed(tmp_path, Pki())
    events, rename, fsync = [], os.rename, os.fsync
    monkeypatch.setattr(os, "rename", lambda a, b: (events.append(("rename", os.path.basename(b))), rename(a, b))[1])
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync",)), fsync(fd))[1])
    host_material({"stage": "install", "items": [item]}, check_mode=False)
    renames = [i for i, e in enumerate(events) if e[0] == "rename"]
    assert [events[i][1] for i in renames] == ["server.crt", "server.key", "root.crt"]
    assert renames == list(range(renames[0], renames[0] + 3)), events  # nothing between the renames
    assert events[renames[0] - 1] == ("fsync",) and ("fsync",) in events[renames[-1]:]  # staged before, durable after


def test_a_write_that_fails_while_staged_changes_no_file(tmp_path, monkeypatch):
    """The last file's staging fails (a full disk): the certificate and the key staged before it are not renamed,
    their temporaries are removed, the folder is as it was."""
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import planner
    item = _rekeyed(tmp_path, Pki())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    stage = planner.stage_file

    def full(path, *args):
        if path.endswith("root.crt"):
            raise PkiError(f"cannot write {path}: No space left on device", where="root_path")
        return stage(path, *args)
    monkeypatch.setattr(planner, "stage_file", full)
    with pytest.raises(PkiError, match="No space left on device"):
        host_material({"stage": "install", "items": [item]}, check_mode=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
