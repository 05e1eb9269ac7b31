# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The key group of the root_group layout (key root:<group> 0640): the group exists (a system group) and the
server's user is in it. A running postmaster gets a new group only by a restart; the server role decides that
(cluster_info reports whether each postmaster is in the group)."""

from __future__ import annotations

import grp
import pwd
import shutil
import subprocess

from ..core.errors import PkiError


def ensure_member(group: str, user: str, check_mode: bool, run=subprocess.run) -> list[str]:
    """Create ``group`` (system) when missing and add ``user`` to it; returns what changed (or would)."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise PkiError(f"user {user} does not exist on this host", where="key_group.user") from None
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        entry = None
    changes = []
    if entry is None:
        changes.append(f"group {group} created")
        if not check_mode:
            _run([shutil.which("groupadd") or "/usr/sbin/groupadd", "--system", group], run)
    if entry is None or (user not in entry.gr_mem and account.pw_gid != entry.gr_gid):
        changes.append(f"{user} added to group {group}")
        if not check_mode:
            _run([shutil.which("usermod") or "/usr/sbin/usermod", "-a", "-G", group, user], run)
    return changes


def _run(argv: list[str], run) -> None:
    try:
        done = run(argv, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PkiError(f"{argv[0]} failed: {exc}", where="key_group") from None
    if done.returncode != 0:
        raise PkiError(f"{' '.join(argv)} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}",
                       where="key_group")
