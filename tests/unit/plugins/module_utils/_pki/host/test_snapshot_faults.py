"""A snapshot taken, replaced or removed by a run killed (SIGKILL, in a fork) before each of its file-system calls.

Seen on CI: a run killed while a host was taking its snapshot left the folder without its marker, and every later
run refused it ("not a snapshot pgtls.ssl made"). Whatever call the kill lands on, the folder must afterwards be the
earlier snapshot, none, or the complete new one; the next run must take its snapshot and leave no temporary; the
files the snapshot protects are never touched.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal

import pytest

from ansible_collections.pgtls.ssl.plugins.module_utils._pki.core import files, planner
from ansible_collections.pgtls.ssl.plugins.module_utils._pki.host import snapshot

FORK = multiprocessing.get_context("fork")
# Every call the snapshot's steps make that changes the file system.
CALLS = [(os, "mkdir"), (os, "open"), (os, "rename"), (os, "chown"), (os, "chmod"), (os, "fchown"), (os, "fchmod"),
         (os, "utime"), (os, "unlink"), (os, "rmdir"), (os, "fsync"), (shutil, "rmtree"), (shutil, "copyfileobj")]


def _protected(tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in (("server.key", b"KEY\n"), ("server.crt", b"CERT\n"), ("pg_hba.conf", b"local all all peer\n")):
        (tls / name).write_bytes(data)
        os.chmod(tls / name, 0o600)
        paths.append(str(tls / name))
    return tls, paths + [str(tls / "absent.crl")]


def _take(folder, paths):
    plan = planner.Plan("host")
    snapshot.take(plan, folder, paths, None)
    plan.check()
    plan.apply()


def _remove(folder, _paths):
    snapshot.remove(folder)


def _counted(operation, folder, paths, die_at):
    """Run ``operation``, SIGKILL this process before its ``die_at``-th call of CALLS (0: count them, no kill)."""
    count = [0]

    def wrap(module, name):
        real = getattr(module, name)

        def call(*args, **kwargs):
            count[0] += 1
            if count[0] == die_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        setattr(module, name, call)
    for module, name in CALLS:
        wrap(module, name)
    operation(folder, paths)
    os._exit(100 + min(count[0], 150))


def _run(operation, folder, paths, die_at):
    child = FORK.Process(target=_counted, args=(operation, folder, paths, die_at))
    child.start()
    child.join()
    return child.exitcode


def _is_whole(folder, paths, contents):
    """The snapshot folder holds the marker and one copy of each existing protected file, as it was."""
    assert planner.not_a_snapshot(folder) is None
    assert planner.snapshot_paths(folder) == paths
    names = sorted(os.listdir(folder))
    assert names == sorted([planner.SNAPSHOT_MARKER] + [planner.copy_name(p) for p in paths if os.path.exists(p)])
    for path in paths:
        if os.path.exists(path):
            with open(os.path.join(folder, planner.copy_name(path)), "rb") as handle:
                assert handle.read() == contents[path]


@pytest.mark.parametrize("case", ["take a first snapshot", "replace an earlier snapshot", "remove a snapshot"])
def test_a_snapshot_killed_at_any_call_is_whole_or_absent_and_the_next_run_converges(tmp_path, case):
    operation = _remove if case == "remove a snapshot" else _take
    tls, paths = _protected(tmp_path / "count")
    folder = str(tls / ".pgtls-snapshot")
    if case != "take a first snapshot":
        _take(folder, paths)
    exit_code = _run(operation, folder, paths, 0)
    calls = exit_code - 100
    assert 0 < calls < 150, exit_code
    for die_at in range(1, calls + 1):
        base = tmp_path / f"kill{die_at}"
        tls, paths = _protected(base)
        folder = str(tls / ".pgtls-snapshot")
        contents = {p: open(p, "rb").read() for p in paths if os.path.exists(p)}
        if case != "take a first snapshot":
            _take(folder, paths)
        assert _run(operation, folder, paths, die_at) == -signal.SIGKILL, die_at
        # Whole or absent, never a part; the protected files untouched.
        if os.path.lexists(folder):
            _is_whole(folder, paths, contents)
        assert {p: open(p, "rb").read() for p in paths if os.path.exists(p)} == contents
        # The next run takes its snapshot (or removes the one left) and leaves no temporary.
        if case == "remove a snapshot":
            snapshot.remove(folder)
            assert not os.path.lexists(folder), die_at
        else:
            _take(folder, paths)
            _is_whole(folder, paths, contents)
        left = [n for n in os.listdir(tls) if files.is_temporary(n)]
        assert not left, (die_at, left)


@pytest.mark.parametrize("left", [["_tmp_x_server.key", ".pgtls-tmp-999999999-00ff"], ["_tmp_x_server.key"]])
def test_a_snapshot_an_earlier_release_was_killed_taking_is_replaced(tmp_path, left):
    """Copies and perhaps the marker's temporary, no marker: what an earlier release left when killed."""
    tls, paths = _protected(tmp_path)
    folder = tls / ".pgtls-snapshot"
    folder.mkdir()
    for name in left:
        (folder / name).write_bytes(b"copy")
    _take(str(folder), paths)
    _is_whole(str(folder), paths, {p: open(p, "rb").read() for p in paths if os.path.exists(p)})


def test_a_folder_with_a_file_of_its_own_is_still_refused(tmp_path):
    tls, paths = _protected(tmp_path)
    folder = tls / ".pgtls-snapshot"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "_tmp_x_server.key").write_bytes(b"copy")
    with pytest.raises(planner.PkiError, match="not a snapshot pgtls.ssl made"):
        _take(str(folder), paths)
    assert (folder / "notes.txt").read_text() == "mine"
