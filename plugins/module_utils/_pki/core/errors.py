# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the pgtls.ssl collection: not a public API, may change in any release.
"""The one exception type for expected failures.

Raised anywhere in the PKI core, caught once in each module's main() (or action plugin) and turned into a
failure whose message names the option or file and what is wrong with it.
"""

from __future__ import annotations


class PkiError(Exception):
    """An expected, user-facing failure. ``str(err)`` is the complete message."""

    def __init__(self, msg: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {msg}" if where else msg)

    @property
    def msg(self) -> str:
        return str(self)
