# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""A cluster's snapshot: copies of the files the server role may change, taken before the first write of a run that
activates, restored when the activation fails, removed when it succeeds. The one owner of the snapshot: take,
restore and remove are here, each through the write planner.

The snapshot is a folder next to the files it protects (``<tls>/.pgtls-snapshot``), mode 0750, owner root and the
TLS folder's group; each copy keeps its original's owner and mode (a key copy is as closed as the key), and the
marker ``.pgtls-snapshot-of`` lists the files it protects. It is built under a temporary name and renamed into
place, and renamed aside to be removed: a run killed at any point leaves a whole snapshot or none. A file that did
not exist has no copy: restoring removes it. A run that changes nothing takes none, and a stale one (left by a run
killed before its end) is removed by the next run. A folder without the marker is never deleted or replaced
(planner.not_a_snapshot).
"""

from __future__ import annotations

import os
import stat

from ..core import planner
from ..core.files import Attrs, read_bytes

copy_name = planner.copy_name


def take(plan: planner.Plan, folder: str, paths: list[str], gid: int | None, where: str = "snapshot_dir") -> None:
    """Declare the snapshot: made before any other file of ``plan`` changes (an earlier snapshot there replaced)."""
    plan.snapshot(folder, paths, gid, where=where)


def declare_remove(plan: planner.Plan, folder: str | None, where: str = "snapshot_dir") -> bool:
    """Declare the removal of a snapshot folder; False when there is none."""
    if not folder or not os.path.lexists(folder):
        return False
    plan.delete(folder, kind="snapshot", where=where, because="snapshot")
    return True


def tidy(folder: str | None) -> None:
    """Remove the temporaries a run killed while taking or removing a snapshot left beside ``folder`` (those of a
    process that is gone: files.remove_stale_temporaries), whether or not a snapshot is there now."""
    if folder:
        planner.remove_temporaries_beside(folder)


def remove(folder: str | None, where: str = "snapshot_dir") -> bool:
    """Remove a snapshot folder (checked to be one); True if there was one."""
    tidy(folder)
    plan = planner.Plan("host")
    if not declare_remove(plan, folder, where):
        return False
    plan.check()
    plan.apply()
    return True


def _kind(data: bytes) -> str:
    found = planner.content_class(data)
    return {"key": "key", "certificate": "certificate", "crl": "crl"}.get(found, "file")


def restore(folder: str | None, paths: list[str], where: str = "snapshot_dir") -> bool:
    """Put the snapshot's copies back (a file without a copy did not exist before: removed), then remove the
    snapshot. The files are those its marker lists (``paths`` for a snapshot of 0.2, which has none). False when
    there is no snapshot (this run replaced no file)."""
    if not folder or not os.path.isdir(folder) or os.path.islink(folder):
        return False
    paths = planner.snapshot_paths(folder) or paths
    plan = planner.Plan("host")
    for path in paths:
        saved = os.path.join(folder, copy_name(path))
        if os.path.lexists(saved):
            st = os.lstat(saved)
            data = read_bytes(saved, where, nofollow=True, limit=planner.MAX_CRL_BYTES)
            plan.write(path, data, Attrs(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), kind=_kind(data),
                       where=f"{where} (restoring {path})")
        elif os.path.lexists(path):
            plan.delete(path, kind="file", where=f"{where} (removing {path}, absent before)", because="absent-before")
    plan.delete(folder, kind="snapshot", where=where, because="snapshot")
    plan.check()
    plan.apply()
    return True


class Previous:
    """One configuration file as it was before a run (kept in memory, not on disk): a service whose activation fails
    gets it back through the planner (patroni_config's Patroni YAML, etcd_config's environment file)."""

    def __init__(self, path: str, writer: str, limit: int) -> None:
        self.path, self.writer, self.limit = path, writer, limit
        self.data = read_bytes(path, "path", limit=limit, nofollow=True) \
            if os.path.isfile(path) and not os.path.islink(path) else None
        st = os.stat(path) if self.data is not None else None
        self.attrs = Attrs(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid) if st else None

    def put_back(self) -> bool:
        """Write the previous content again; False when there was none or the file did not change."""
        if self.data is None or self.attrs is None or read_bytes(self.path, "path", limit=self.limit) == self.data:
            return False
        plan = planner.Plan(self.writer)
        plan.write(self.path, self.data, self.attrs, kind="file", where="path (putting the previous file back)")
        plan.check()
        plan.apply()
        return True
