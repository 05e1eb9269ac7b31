# Copyright: pgtls.ssl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""A cluster's snapshot: copies of the files the server role may change, taken before the first write of a run.

The snapshot is a folder next to the files it protects (``<tls>/.pgtls-snapshot``), mode 0750, owner root and the
TLS folder's group; each copy keeps its original's owner and mode (a key copy is as closed as the key). A file that
did not exist has no copy: restoring removes it. A run that changes nothing takes none, and a stale one (left by a
run killed before its end) is removed by the next run.
"""

from __future__ import annotations

import os
import shutil
import stat

from .errors import PkiError


def copy_name(path: str) -> str:
    """The copy's name in the snapshot folder: the path with ``/`` as ``_`` (the role's restore uses the same)."""
    return path.replace("/", "_")


def remove(folder: str) -> bool:
    """Remove a snapshot folder; True if there was one."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        os.unlink(folder)
    else:
        shutil.rmtree(folder)
    return True


def take(folder: str, paths: list[str], gid: int | None, where: str) -> None:
    """Replace any earlier snapshot in ``folder`` by copies of ``paths`` (those that exist)."""
    try:
        remove(folder)
        os.mkdir(folder, 0o700)
        os.chown(folder, 0, -1 if gid is None else gid)
        os.chmod(folder, 0o750)
        for path in paths:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                raise PkiError(f"{path} is not a regular file: refusing to snapshot it", where=where)
            target = os.path.join(folder, copy_name(path))
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.fchown(fd, st.st_uid, st.st_gid)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                with open(path, "rb") as source, os.fdopen(fd, "wb") as copy:
                    fd = -1
                    shutil.copyfileobj(source, copy)
            finally:
                if fd >= 0:
                    os.close(fd)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError as exc:
        raise PkiError(f"cannot snapshot into {folder}: {exc.strerror} ({exc.filename})", where=where) from None
