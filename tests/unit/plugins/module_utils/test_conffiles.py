"""pgtls.ssl.cluster_files: one pass over a cluster's files, the snapshot before the first write, nothing written
on bad input, truthful check mode and diff."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.pgtls.ssl.plugins.module_utils._pki import snapshot
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.conffiles import cluster_files
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.errors import PkiError


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
        "snapshot_taken": False,
    }
    base.update(extra)
    return base


def tree(root):
    """Every entry under root: content, mode, inode and mtime (what must not move on a refused run)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if stat.S_ISREG(st.st_mode) else None
            found[os.path.relpath(path, root)] = (data, stat.S_IMODE(st.st_mode), st.st_ino, st.st_mtime_ns)
    return found


@pytest.fixture
def host(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "postgresql.conf").write_text("port = 5432\n# include_dir = 'conf.d'\n")
    (conf / "pg_hba.conf").write_text("local all all peer\n")
    os.chmod(conf / "pg_hba.conf", 0o600)
    return tmp_path


def test_first_run_writes_all_then_nothing(host):
    conf = host / "conf"
    first = cluster_files(params(host), False)
    assert first["changed"] and first["snapshot_taken"]
    assert (conf / "conf.d" / "pgtls.conf").read_text() == "ssl = on\n"
    assert stat.S_IMODE(os.stat(conf / "pg_hba.conf").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(conf / "tls").st_mode) == 0o750
    assert (conf / "postgresql.conf").read_text() == "port = 5432\n# include_dir = 'conf.d'\ninclude_dir = 'conf.d'\n"
    snap = conf / "tls" / ".pgtls-snapshot"
    assert stat.S_IMODE(snap.stat().st_mode) == 0o750
    # The copies are the files as they were before the run, with their modes; files that did not exist have none.
    copy = snap / snapshot.copy_name(str(conf / "pg_hba.conf"))
    assert copy.read_text() == "local all all peer\n" and stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not (snap / snapshot.copy_name(str(conf / "conf.d" / "pgtls.conf"))).exists()
    assert sorted(first["changes"])[0].startswith(str(conf))
    second = cluster_files(params(host), False)
    assert not second["changed"] and not second["snapshot_taken"]
    assert second["stale_snapshot_removed"] and not snap.exists()
    third = cluster_files(params(host), False)
    assert third == {"changed": False, "changes": [], "snapshot_taken": False, "stale_snapshot_removed": False,
                     "diff": []}


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


def test_snapshot_taken_by_an_earlier_task_is_kept(host):
    snap = host / "conf" / "tls" / ".pgtls-snapshot"
    (host / "conf" / "tls").mkdir()
    snap.mkdir()
    (snap / "marker").write_text("taken by server_cert")
    cluster_files(params(host, snapshot_taken=True), False)
    assert (snap / "marker").read_text() == "taken by server_cert"
    cluster_files(params(host, snapshot_taken=True), False)  # nothing to change: still kept
    assert (snap / "marker").exists()


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
    from ansible_collections.pgtls.ssl.plugins.module_utils._pki.conffiles import remove_legacy_snapshots
    old, fresh, other = tmp_path / "ansible.x1.pgtls", tmp_path / "ansible.x2.pgtls", tmp_path / "ansible.x3"
    for folder in (old, fresh, other):
        folder.mkdir()
        (folder / "server.key").write_text("k")
    os.utime(old, (0, 0))
    os.utime(other, (0, 0))
    assert remove_legacy_snapshots(str(tmp_path)) == [str(old)]
    assert not old.exists() and fresh.exists() and other.exists()
