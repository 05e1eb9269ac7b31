# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""File primitives: bounded reads, the atomic write (final owner and mode from the first byte), owners and modes,
and PostgreSQL's key rule. Only the write planner (planner.py) writes, moves or deletes; it uses these."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import secrets
import shutil
import stat
import time
from dataclasses import dataclass

from .errors import PkiError

# What a file we read may weigh: a key, a certificate bundle or a CSR is a few KiB (a system CA bundle about
# 200 KiB); a CRL grows with its revocations (about 40 bytes each). Anything larger is not what the option names.
MAX_PEM_BYTES = 1024 * 1024
MAX_CRL_BYTES = 32 * 1024 * 1024

# Our own temporary files: ".pgtls-tmp-<pid>-<random>" in the folder of the file they replace. A run killed
# before its rename leaves one behind; the next run in that folder removes those whose process is gone.
TMP_PREFIX = ".pgtls-tmp-"
_TMP_NAME = re.compile(r"^\.pgtls-tmp-(\d+)-[0-9a-f]+$")
# Temporaries of releases before 0.2 (mkstemp's ".pgtls-XXXXXXXX"): removed when older than this.
_LEGACY_TMP_NAME = re.compile(r"^\.pgtls-[a-z0-9_]{8}$")
_LEGACY_TMP_AGE = 600


def read_bytes(path: str, where: str, *, missing_ok: bool = False, limit: int = MAX_PEM_BYTES,
               nofollow: bool = False) -> bytes | None:
    """Read a whole file, refusing one larger than ``limit`` (and a symbolic link when ``nofollow``)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (os.O_NOFOLLOW if nofollow else 0)  # a FIFO must not block the run
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise PkiError(f"file {path} does not exist", where=where) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and nofollow:
            raise PkiError(f"{path} is a symbolic link: pgtls.ssl never follows a link at a private key path "
                           "(point the option at the real file)", where=where) from None
        raise PkiError(f"cannot read {path}: {exc.strerror}", where=where) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise PkiError(f"{path} is a folder, not a file", where=where)
        if not stat.S_ISREG(st.st_mode):
            raise PkiError(f"{path} is not a regular file", where=where)
        if st.st_size > limit:
            raise PkiError(f"{path} is {_size(st.st_size)}, more than the {_size(limit)} such a file may weigh: "
                           "it is not what this option expects", where=where)
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            data = handle.read(limit + 1)
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}", where=where) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:
        raise PkiError(f"{path} is larger than the {_size(limit)} such a file may weigh", where=where)
    return data


def _size(count: int) -> str:
    return f"{count / 1048576:.1f} MiB" if count >= 1048576 else f"{count} bytes"


# What an existing file holds, judged by its PEM labels, so an option never replaces a file of another kind.
KINDS = {
    "certificate": ("CERTIFICATE",),
    "key": ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
    "crl": ("X509 CRL",),
    "csr": ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"),
}
_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_NOUNS = {"certificate": "a certificate", "key": "a private key", "crl": "a CRL", "csr": "a certificate request"}


def describe(data: bytes) -> str:
    """Say in a few words what ``data`` holds (never any of its bytes)."""
    labels = {m.group(1).decode() for m in _LABEL.finditer(data[:MAX_PEM_BYTES])}
    found = [_NOUNS[kind] for kind, names in KINDS.items() if labels & set(names)]
    if found:
        return " and ".join(found)
    if labels:
        return "PEM data labelled " + ", ".join(sorted(labels))
    if data[:1] == b"\x30":
        return "binary data (DER?)"
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return "binary data"
    return "text that is not PEM"


def check_distinct(paths: dict[str, str | None]) -> None:
    """Refuse two options that name one file, after ``..`` and symbolic links are resolved."""
    seen: dict[str, str] = {}
    for where, path in paths.items():
        if not path:
            continue
        real = os.path.realpath(path)
        if real in seen:
            same = "" if os.path.normpath(path) == os.path.normpath(paths[seen[real]] or "") else f" ({real})"
            raise PkiError(f"{path} is the same file as {seen[real]}{same}: each output needs its own file",
                           where=where)
        seen[real] = where


def is_temporary(name: str) -> bool:
    """Whether ``name`` is that of a temporary pgtls.ssl writes before renaming it (write_atomic, staged folders)."""
    return bool(_TMP_NAME.match(name))


def remove_stale_temporaries(folder: str) -> list[str]:
    """Remove temporaries that runs killed before their rename left in ``folder``; return their names."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        match = _TMP_NAME.match(name)
        path = os.path.join(folder, name)
        if match:
            if _alive(int(match.group(1))):
                continue
        elif _LEGACY_TMP_NAME.match(name):
            try:
                if now - os.lstat(path).st_mtime < _LEGACY_TMP_AGE:
                    continue
            except OSError:
                continue
        else:
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)  # a folder made with its first files (planner.Plan.mkdir), cut short
            else:
                os.unlink(path)
            removed.append(name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        changes.append(f"owner {user_name(st.st_uid)} -> {user_name(attrs.uid)}")
    if attrs.gid is not None and st.st_gid != attrs.gid:
        changes.append(f"group {group_name(st.st_gid)} -> {group_name(attrs.gid)}")
    return changes


def user_name(uid: int) -> str:
    """The user's name (the number when the host has no such user)."""
    try:
        return pwd.getpwuid(uid)[0]
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    """The group's name (the number when the host has no such group)."""
    try:
        return grp.getgrgid(gid)[0]
    except KeyError:
        return str(gid)


def apply_attributes(path: str, attrs: Attrs) -> None:
    os.chown(path, -1 if attrs.uid is None else attrs.uid, -1 if attrs.gid is None else attrs.gid)
    os.chmod(path, attrs.mode)


def write_atomic(path: str, data: bytes, attrs: Attrs, where: str) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder (``stage_file``), renamed over ``path``."""
    tmp = stage_file(path, data, attrs, where)
    try:
        os.rename(tmp, path)
    except OSError as exc:
        discard_staged(tmp)
        raise PkiError(f"cannot write {path}: {exc.strerror}", where=where) from None
    fsync_folder(os.path.dirname(os.path.abspath(path)))


def stage_file(path: str, data: bytes, attrs: Attrs, where: str) -> str:
    """Write ``data`` to a temporary file beside ``path``, created with mode 0600 and given its final owner and mode
    before any byte is written, then fsync'd; return its path (the caller renames it over ``path``)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise PkiError(f"folder {folder} does not exist", where=where)
    remove_stale_temporaries(folder)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise PkiError(f"cannot write in {folder}: {exc.strerror}", where=where) from None
    try:
        os.fchown(fd, -1 if attrs.uid is None else attrs.uid, -1 if attrs.gid is None else attrs.gid)
        os.fchmod(fd, attrs.mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        discard_staged(tmp)
        raise PkiError(f"cannot write {path}: {exc.strerror}", where=where) from None
    return tmp


def discard_staged(tmp: str) -> None:
    """Remove a staged temporary (best effort: one left behind is removed by the next run's tidy)."""
    try:
        os.unlink(tmp)
    except OSError:
        pass


def fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (best effort: a file system that cannot is not an error)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


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
