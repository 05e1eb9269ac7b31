# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""File reads and writes: atomic, with the final owner and mode from the first byte, and PostgreSQL's key rule."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass

from .errors import PkiError


def read_bytes(path: str, where: str, *, missing_ok: bool = False) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise PkiError(f"file {path} does not exist", where=where) from None
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}", where=where) from None


def resolve_uid(owner: str | int | None, where: str) -> int | None:
    if owner in (None, ""):
        return None
    if isinstance(owner, int) or str(owner).isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(str(owner)).pw_uid
    except KeyError:
        raise PkiError(f"user {owner!r} does not exist on this host", where=where) from None


def resolve_gid(group: str | int | None, where: str) -> int | None:
    if group in (None, ""):
        return None
    if isinstance(group, int) or str(group).isdigit():
        return int(group)
    try:
        return grp.getgrnam(str(group)).gr_gid
    except KeyError:
        raise PkiError(f"group {group!r} does not exist on this host", where=where) from None


def parse_mode(mode: str | int, where: str) -> int:
    try:
        value = int(str(mode), 8) if not isinstance(mode, int) else mode
    except ValueError:
        raise PkiError(f"mode {mode!r} is not an octal mode such as '0600'", where=where) from None
    if value & ~0o7777:
        raise PkiError(f"mode {mode!r} is out of range", where=where)
    return value


@dataclass(frozen=True)
class Attrs:
    """Wanted ownership and mode of one file (None: leave as it is / as created)."""

    mode: int
    uid: int | None = None
    gid: int | None = None


def key_permission_problem(uid: int, mode: int, file_desc: str) -> str | None:
    """PostgreSQL's (and libpq's) rule for private key files, as be-secure-common.c checks it."""
    if uid == 0:
        if mode & (stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO):
            return (f"{file_desc} is owned by root with mode {mode:04o}: PostgreSQL allows at most 0640 "
                    "(group read only, nothing for others)")
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (f"{file_desc} is owned by a non-root user with mode {mode:04o}: PostgreSQL then requires "
                "0600 or stricter (no group or other access); use owner root with 0640 for group access")
    return None


def differences(path: str, attrs: Attrs) -> list[str]:
    """What ownership/mode changes ``path`` needs to match ``attrs`` (empty if none or the file is missing)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    changes = []
    if stat.S_IMODE(st.st_mode) != attrs.mode:
        changes.append(f"mode {stat.S_IMODE(st.st_mode):04o} -> {attrs.mode:04o}")
    if attrs.uid is not None and st.st_uid != attrs.uid:
        changes.append(f"owner {st.st_uid} -> {attrs.uid}")
    if attrs.gid is not None and st.st_gid != attrs.gid:
        changes.append(f"group {st.st_gid} -> {attrs.gid}")
    return changes


def apply_attributes(path: str, attrs: Attrs) -> None:
    os.chown(path, -1 if attrs.uid is None else attrs.uid, -1 if attrs.gid is None else attrs.gid)
    os.chmod(path, attrs.mode)


def write_atomic(path: str, data: bytes, attrs: Attrs, where: str) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, created with mode 0600 and given its
    final owner and mode before any byte is written, then fsync'd and renamed over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise PkiError(f"folder {folder} does not exist", where=where)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pgtls-", dir=folder)  # mkstemp creates with 0600
    except OSError as exc:
        raise PkiError(f"cannot write in {folder}: {exc.strerror}", where=where) from None
    try:
        os.fchown(fd, -1 if attrs.uid is None else attrs.uid, -1 if attrs.gid is None else attrs.gid)
        os.fchmod(fd, attrs.mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise PkiError(f"cannot write {path}: {exc.strerror}", where=where) from None
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def ensure_file(path: str, data: bytes, attrs: Attrs, where: str, check_mode: bool) -> list[str]:
    """Make ``path`` hold ``data`` with ``attrs``; return what changed (or would change), empty if nothing."""
    current = read_bytes(path, where, missing_ok=True)
    if current is None:
        changes = ["created"]
    elif current != data:
        changes = ["content changed"]
    else:
        changes = differences(path, attrs)
        if changes and not check_mode:
            apply_attributes(path, attrs)
        return changes
    if not check_mode:
        write_atomic(path, data, attrs, where)
    return changes


def readable_by(path: str, user: str) -> str | None:
    """None if OS user ``user`` can read ``path`` (permission bits and supplementary groups), else why not."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return f"user {user!r} does not exist on this host"
    if entry.pw_uid == 0:
        return None
    gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    target = os.path.abspath(path)
    parts = target.split(os.sep)
    for depth in range(1, len(parts)):
        folder = os.sep.join(parts[:depth]) or os.sep
        if not _allowed(folder, entry.pw_uid, gids, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return f"user {user!r} cannot enter folder {folder}"
    if not _allowed(target, entry.pw_uid, gids, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH):
        return f"user {user!r} cannot read {path} (owner, group and mode do not allow it)"
    return None


def _allowed(path: str, uid: int, gids: set[int], user_bit: int, group_bit: int, other_bit: int) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & user_bit)
    if st.st_gid in gids:
        return bool(st.st_mode & group_bit)
    return bool(st.st_mode & other_bit)
