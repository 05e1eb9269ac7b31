"""pgtls.ssl.cluster_files: one pass over a cluster's files, the snapshot before the first write, nothing written
on bad input, truthful check mode and diff."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest
from pkitools import tree

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import planner
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core.errors import PkiError
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host import snapshot
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_files import cluster_files


def params(tmp_path, **extra):
    conf = tmp_path / "conf"
    base = {
        "directories": [{"path": str(conf / "tls"), "mode": "0750"}, {"path": str(conf / "conf.d"), "mode": "0755"}],
        "files": [{"path": str(conf / "conf.d" / "pgtls.conf"), "content": "ssl = on\n", "mode": "0644"},
                  {"path": str(conf / "pg_hba.conf"), "content": "hostssl all all all cert\n", "mode": "0640"},
                  {"path": str(conf / "tls" / "root.crl"), "content": "CRL\n", "mode": "0644", "diff": False}],
        "lines": [{"path": str(conf / "postgresql.conf"), "regexp": r"^\s*include_dir\s*=\s*'conf\.d'",
                   "line": "include_dir = 'conf.d'"}],
        "snapshot_dir": str(conf / "tls" / ".pgtls-snapshot"),
        "snapshot_paths": [str(conf / "pg_hba.conf"), str(conf / "postgresql.conf"), str(conf / "tls" / "server.key"),
                           str(conf / "conf.d" / "pgtls.conf")],
        "snapshot_group": None,
    }
    base.update(extra)
    return base


@pytest.fixture
def host(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "postgresql.conf").write_text("port = 5432\n# include_dir = 'conf.d'\n")
    (conf / "pg_hba.conf").write_text("local all all peer\n")
    os.chmod(conf / "pg_hba.conf", 0o600)
    return tmp_path


class SeenAtActivation:
    """Stands in for the activation (tested on its own in test_activation.py, and against real servers in e2e): it
    records the snapshot as the activation finds it, then removes it as a successful activation does."""

    seen: list = []

    def __init__(self, params):
        self.params = params

    def run(self):
        folder = self.params["snapshot_dir"]
        copies = {name: (open(os.path.join(folder, name), "rb").read(),
                         stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode)) for name in os.listdir(folder)}
        SeenAtActivation.seen.append((stat.S_IMODE(os.stat(folder).st_mode), copies))
        snapshot.remove(folder)
        return {"steps": [], "snapshot_removed": True}


ACTIVATE = {"always": False, "cert_path": "/tls/server.crt", "key_path": "/tls/server.key", "ca_path": "/tls/root.crt"}


def test_first_run_writes_all_then_nothing(host):
    conf = host / "conf"
    SeenAtActivation.seen.clear()
    first = cluster_files(params(host, activate=ACTIVATE), False, SeenAtActivation)
    assert first["changed"] and first["snapshot_taken"] and "activation" in first
    assert (conf / "conf.d" / "pgtls.conf").read_text() == "ssl = on\n"
    assert stat.S_IMODE(os.stat(conf / "pg_hba.conf").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(conf / "tls").st_mode) == 0o750
    assert (conf / "postgresql.conf").read_text() == "port = 5432\n# include_dir = 'conf.d'\ninclude_dir = 'conf.d'\n"
    # The activation found the copies of the files as they were before the run, with their modes; files that did not
    # exist have none; the marker lists what the snapshot protects.
    ((mode, copies),) = SeenAtActivation.seen
    assert mode == 0o750
    assert copies[snapshot.copy_name(str(conf / "pg_hba.conf"))] == (b"local all all peer\n", 0o600)
    assert snapshot.copy_name(str(conf / "conf.d" / "pgtls.conf")) not in copies
    assert sorted(json.loads(copies[".pgtls-snapshot-of"][0])["paths"]) == sorted(params(host)["snapshot_paths"])
    assert not (conf / "tls" / ".pgtls-snapshot").exists()
    assert sorted(first["changes"])[0].startswith(str(conf))
    second = cluster_files(params(host, activate=ACTIVATE), False, SeenAtActivation)
    assert second == {"changed": False, "changes": [], "snapshot_taken": False, "stale_snapshot_removed": False,
                      "diff": []}
    assert len(SeenAtActivation.seen) == 1  # nothing changed: nothing to activate


def test_a_run_that_does_not_activate_takes_no_snapshot(host):
    """Nothing would ever restore it: a complete run without activation leaves no snapshot behind."""
    first = cluster_files(params(host), False)
    assert first["changed"] and not first["snapshot_taken"]
    assert not (host / "conf" / "tls" / ".pgtls-snapshot").exists()


def test_a_stale_snapshot_is_removed_when_nothing_changes(host):
    cluster_files(params(host), False)
    snap = host / "conf" / "tls" / ".pgtls-snapshot"
    snap.mkdir()
    (snap / snapshot.copy_name(str(host / "conf" / "pg_hba.conf"))).write_text("old\n")  # a killed run's
    again = cluster_files(params(host), False)
    assert again["stale_snapshot_removed"] and not snap.exists()


@pytest.mark.parametrize("case", ["someone's folder", "a file", "a link"])
def test_a_snapshot_dir_that_is_not_a_snapshot_is_never_deleted(host, case):
    cluster_files(params(host), False)
    target = host / "conf" / "backups"
    if case == "someone's folder":
        target.mkdir()
        (target / "pg_hba.conf.2024").write_text("keep me\n")
    elif case == "a file":
        target.write_text("keep me\n")
    else:
        (host / "elsewhere").mkdir()
        target.symlink_to(host / "elsewhere")
    before = tree(host)
    for changed in (False, True):
        p = params(host, snapshot_dir=str(target), activate=ACTIVATE)
        if changed:
            p["files"][0]["content"] = "ssl = off\n"
        with pytest.raises(PkiError) as err:
            cluster_files(p, False, SeenAtActivation)
        assert str(err.value).startswith("snapshot_dir: ") and str(target) in str(err.value)
        assert tree(host) == before


def test_check_mode_reports_and_writes_nothing(host):
    before = tree(host)
    result = cluster_files(params(host), True)
    assert result["changed"] and not result["snapshot_taken"]
    assert tree(host) == before
    hba = [d for d in result["diff"] if d["after_header"].endswith("pg_hba.conf")][0]
    assert hba["before"] == "local all all peer\n" and hba["after"] == "hostssl all all all cert\n"
    crl = [d for d in result["diff"] if d["after_header"].endswith("root.crl")][0]
    assert "CRL" not in crl["after"]  # diff: false shows no content


def test_mode_only_change_keeps_content_and_inode(host):
    cluster_files(params(host), False)
    hba = host / "conf" / "pg_hba.conf"
    os.chmod(hba, 0o644)
    inode = hba.stat().st_ino
    result = cluster_files(params(host), False)
    assert result["changes"] == [f"{hba}: mode 0644 -> 0640"]
    assert hba.stat().st_ino == inode and stat.S_IMODE(hba.stat().st_mode) == 0o640


def test_line_replaced_not_duplicated(host):
    pg = host / "conf" / "postgresql.conf"
    pg.write_text("include_dir='conf.d'   \nport = 1\n")
    cluster_files(params(host), False)
    assert pg.read_text() == "include_dir = 'conf.d'\nport = 1\n"


@pytest.mark.parametrize("case", ["same path twice", "symlink", "missing parent", "no such group", "bad mode",
                                  "line file missing", "line and file", "bad regexp", "folder is a file"])
def test_bad_input_changes_nothing(host, case):
    conf = host / "conf"
    p = params(host)
    where = {"same path twice": "files[1].path", "symlink": "files[1].path", "missing parent": "directories[0].path",
             "no such group": "files[0].group", "bad mode": "files[2].mode", "line file missing": "lines[0].path",
             "line and file": "lines[0].path", "bad regexp": "lines[0].regexp",
             "folder is a file": "directories[1]"}[case]
    if case == "same path twice":
        p["files"][1]["path"] = str(conf / "conf.d" / ".." / "conf.d" / "pgtls.conf")
    elif case == "symlink":
        (conf / "elsewhere").write_text("x")
        os.unlink(conf / "pg_hba.conf")
        os.symlink(conf / "elsewhere", conf / "pg_hba.conf")
    elif case == "missing parent":
        p["directories"][0]["path"] = str(conf / "no" / "tls")
    elif case == "no such group":
        p["files"][0]["group"] = "pgtls-no-such-group"
    elif case == "bad mode":
        p["files"][2]["mode"] = "rw-r--r--"
    elif case == "line file missing":
        os.unlink(conf / "postgresql.conf")
    elif case == "line and file":
        p["files"].append({"path": str(conf / "postgresql.conf"), "content": "x\n", "mode": "0644"})
    elif case == "bad regexp":
        p["lines"][0]["regexp"] = "include_dir = ("
    elif case == "folder is a file":
        (conf / "conf.d").write_text("not a folder")
    before = tree(host)
    with pytest.raises(PkiError) as err:
        cluster_files(p, False)
    assert where in str(err.value), str(err.value)
    assert tree(host) == before


def test_legacy_snapshots_older_than_an_hour_are_removed(tmp_path):
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import planner
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host.cluster_files import legacy_snapshots
    old, fresh, other = tmp_path / "ansible.x1.pgtls", tmp_path / "ansible.x2.pgtls", tmp_path / "ansible.x3"
    for folder in (old, fresh, other):
        folder.mkdir()
        (folder / "server.key").write_text("k")
    os.utime(old, (0, 0))
    os.utime(other, (0, 0))
    assert legacy_snapshots(str(tmp_path)) == [str(old)]
    plan = planner.Plan("host")
    plan.delete(str(old), kind="snapshot", where="remove_legacy_snapshots", because="legacy-snapshot")
    plan.check()
    plan.apply()
    assert not old.exists() and fresh.exists() and other.exists()
    for folder in (fresh, other):  # in use, or not one of ours: refused
        plan = planner.Plan("host")
        plan.delete(str(folder), kind="snapshot", where="remove_legacy_snapshots", because="legacy-snapshot")
        with pytest.raises(PkiError, match="refusing to delete it"):
            plan.check()


def test_an_activation_without_its_files_is_refused_before_any_write(host):
    before = tree(host)
    with pytest.raises(PkiError, match="^activate.cert_path: the activation needs the file"):
        cluster_files(params(host, activate={"always": False}), False, SeenAtActivation)
    assert tree(host) == before


class HeldActivation:
    """An activation that waits until the test lets it finish (as a reload and proof take their time), then removes
    the snapshot as a successful one does."""

    entered = None
    release = None

    def __init__(self, params):
        self.params = params

    def run(self):
        HeldActivation.entered.set()
        assert HeldActivation.release.wait(20)
        snapshot.remove(self.params["snapshot_dir"])
        return {"steps": [], "snapshot_removed": True}


@pytest.fixture
def locks(tmp_path, monkeypatch):
    folder = tmp_path / "locks"
    folder.mkdir()
    monkeypatch.setattr(planner, "HOST_LOCK_DIRS", (str(folder),))
    return folder


def _apply_in_background(host):
    HeldActivation.entered, HeldActivation.release = threading.Event(), threading.Event()
    done = {}

    def apply():
        try:
            done["result"] = cluster_files(params(host, activate=ACTIVATE), False, HeldActivation)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            done["error"] = exc

    worker = threading.Thread(target=apply)
    worker.start()
    assert HeldActivation.entered.wait(20)
    return worker, done


def test_two_runs_on_one_host_take_turns_and_the_second_keeps_the_first_ones_snapshot(host, locks):
    """Two jobs whose limits overlap: while one's apply activates (its snapshot in place), the other's inspect
    waits for it instead of taking that snapshot for one a killed run left and removing it."""
    worker, done = _apply_in_background(host)
    folder = params(host)["snapshot_dir"]
    seen = {}

    def inspect():
        seen["result"] = cluster_files(params(host, compare_only=True), False)

    second = threading.Thread(target=inspect)
    second.start()
    second.join(0.8)
    assert second.is_alive(), "the second run did not wait for the first one's apply"
    assert os.path.isdir(folder), "the first run's snapshot went while it was activating"
    HeldActivation.release.set()
    worker.join(20)
    second.join(20)
    assert "error" not in done and done["result"]["snapshot_taken"]
    assert seen["result"]["stale_snapshot_removed"] is False and seen["result"]["changes"] == []
    assert not os.path.exists(folder)


def test_a_run_that_cannot_get_the_lock_fails_naming_lock_timeout_and_changes_nothing(host, locks):
    worker, _done = _apply_in_background(host)
    try:
        before = tree(host / "conf")
        with pytest.raises(PkiError) as err:
            cluster_files(params(host, lock_timeout=0, files=[]), False)
        assert err.value.where == "lock_timeout"
        assert params(host)["snapshot_dir"] in str(err.value) and "another run holds the lock" in str(err.value)
        assert tree(host / "conf") == before
    finally:
        HeldActivation.release.set()
        worker.join(20)


def test_a_lock_file_someone_else_made_is_refused(host, locks):
    protects = params(host)["snapshot_dir"]
    with planner.host_locked(protects, 1):
        pass
    (made,) = list(locks.iterdir())
    os.chown(made, 4321, 4321)
    before = tree(host / "conf")
    with pytest.raises(PkiError) as err:
        cluster_files(params(host, activate=ACTIVATE), False, SeenAtActivation)
    assert err.value.where == "lock_timeout" and "owner uid 4321" in str(err.value)
    assert tree(host / "conf") == before
    made.unlink()
    made.symlink_to(host / "conf" / "pg_hba.conf")
    with pytest.raises(PkiError) as err:
        cluster_files(params(host, compare_only=True), False)
    assert err.value.where == "lock_timeout" and "cannot open" in str(err.value)
    assert tree(host / "conf") == before


def test_a_negative_lock_timeout_is_refused_naming_it(host, locks):
    before = tree(host / "conf")
    with pytest.raises(PkiError, match="^lock_timeout: must not be negative, got -1"):
        cluster_files(params(host, lock_timeout=-1), False)
    assert tree(host / "conf") == before
